//! pii-guard: finds e-mail addresses, US social security numbers and phone
//! numbers in a call's string arguments, at any depth. It blocks the call
//! (`pii_detected`), or with `on_match: redact` lets it through, and either
//! way keeps what it found out of the audit record.

use helio_plugin::{Call, ConfigError, Stage, StageError, State, Verdict};
use regex_lite::Regex;
use serde::Deserialize;

/// helio.yaml's `config:` for the stage.
#[derive(Deserialize)]
pub struct Config {
    /// What to look for (default: all three).
    #[serde(default = "every_kind")]
    detect: Vec<Kind>,
    /// Where to look: argument paths, `*` and `**` allowed (default: every
    /// value at any depth).
    #[serde(default = "everywhere")]
    paths: Vec<String>,
    /// `deny` (default) blocks the call; `redact` lets it through.
    #[serde(default)]
    on_match: OnMatch,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Email,
    Ssn,
    Phone,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum OnMatch {
    #[default]
    Deny,
    Redact,
}

fn every_kind() -> Vec<Kind> {
    vec![Kind::Email, Kind::Ssn, Kind::Phone]
}

fn everywhere() -> Vec<String> {
    vec!["**.*".into()]
}

pub struct PiiGuard {
    config: Config,
    patterns: Vec<(Kind, Regex)>,
}

impl Stage for PiiGuard {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Vec<ConfigError>> {
        if config.detect.is_empty() {
            return Err(vec![ConfigError::new(
                "detect",
                "name at least one of email, ssn, phone",
            )]);
        }
        let pattern = |kind| match kind {
            Kind::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
            Kind::Ssn => r"\b\d{3}-\d{2}-\d{4}\b",
            Kind::Phone => r"\+?\d{1,3}[ .-]?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b",
        };
        let patterns = config
            .detect
            .iter()
            .map(|&kind| (kind, Regex::new(pattern(kind))));
        let patterns = patterns
            .map(|(kind, regex)| {
                regex
                    .map(|r| (kind, r))
                    .map_err(|e| vec![ConfigError::new("detect", e.to_string())])
            })
            .collect::<Result<_, _>>()?;
        Ok(PiiGuard { config, patterns })
    }

    fn evaluate(&self, call: &Call, _state: &mut State) -> Result<Verdict, StageError> {
        let mut found: Vec<(String, Kind)> = Vec::new();
        for path in &self.config.paths {
            for (at, value) in call.arguments_at(path) {
                let Some(text) = value.as_str() else { continue };
                if let Some((kind, _)) = self.patterns.iter().find(|(_, re)| re.is_match(text)) {
                    found.push((at, *kind));
                }
            }
        }
        let Some((first, kind)) = found.first() else {
            return Ok(Verdict::allow());
        };
        // Say where, never what: the message reaches the agent and the log.
        let mut verdict = match self.config.on_match {
            OnMatch::Deny => Verdict::deny(
                "pii_detected",
                &format!("Blocked: {kind:?} found in {first}"),
            )
            .suggest("Refer to the person by an internal id instead of their contact details.")
            .extra("field", first.as_str().into()),
            OnMatch::Redact => Verdict::allow(),
        };
        verdict = verdict.rule("pii-guard").explain(format!(
            "{} value(s) with PII, first {kind:?} at {first}",
            found.len()
        ));
        for (at, _) in &found {
            verdict = verdict.redact(at);
        }
        Ok(verdict)
    }
}

helio_plugin::export_stage!(PiiGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use helio_plugin::MockCall;
    use serde_json::json;

    fn decide(config: &str, arguments: serde_json::Value) -> Verdict {
        let stage = PiiGuard::configure(config).expect("valid config");
        let mock = MockCall::new("send").arguments(arguments);
        stage
            .evaluate(&Call::mock(&mock), &mut State::memory(0))
            .expect("a verdict")
    }

    #[test]
    fn finds_pii_at_any_depth_and_redacts_it() {
        let verdict = decide(
            "{}",
            json!({"to": [{"name": "A", "email": "a@example.com"}], "n": 3}),
        );
        assert!(verdict.check().is_ok());
        let feedback = verdict.feedback().expect("denied");
        assert_eq!(feedback.reason, "pii_detected");
        assert!(!feedback.message.contains("a@example.com"));
        assert_eq!(verdict.decision().redact, ["$.to.0.email"]);
    }

    #[test]
    fn redact_mode_lets_the_call_through() {
        let verdict = decide(
            r#"{"on_match": "redact", "detect": ["ssn"]}"#,
            json!({"note": "ssn 078-05-1120"}),
        );
        assert!(matches!(verdict, Verdict::Allow(_)));
        assert_eq!(verdict.decision().redact, ["$.note"]);
        assert!(matches!(
            decide("{}", json!({"note": "nothing here"})),
            Verdict::Allow(_)
        ));
    }

    #[test]
    fn configuration_errors_name_their_path() {
        let errors = PiiGuard::configure(r#"{"detect": ["email", "iban"]}"#)
            .err()
            .expect("refused");
        assert_eq!(errors[0].path, "detect[1]");
        let errors = PiiGuard::configure(r#"{"on_mtch": "deny"}"#)
            .err()
            .expect("refused");
        assert_eq!(
            (errors[0].path.as_str(), errors[0].message.as_str()),
            ("on_mtch", "unknown key")
        );
    }
}
