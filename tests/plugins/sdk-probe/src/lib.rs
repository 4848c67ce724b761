//! sdk-probe: a `helio:governance@0.2.0` stage built with the Rust SDK, for
//! the end-to-end tests of what 0.2 gives a stage.
//!
//! - Logs, at info, `sdk-probe saw tool=<t> agent=<a> origin=<o> era=<e>
//!   session=<s> amount=<number text> ticket=<evidence>` (`-` for none).
//! - Denies (`pii_detected`) a call with any member named `ssn` at any
//!   depth, redacting each one it found from the audit record.
//! - Redacts the configured `redact` paths from every call's record.
//! - With `observe: true`, asks to observe every call it allows and logs
//!   `sdk-probe observed tool=<t> ending=<e>`.
//! - For the tool named `fail_tool`, fails as `fail` says: `panic`, `loop`,
//!   `alloc` (without bound), `error` (a stage error) or `spend-loop`
//!   (asks for the call's spend without end).

use helio_plugin::{Call, ConfigError, Ending, Outcome, Stage, StageError, State, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Config {
    #[serde(default)]
    redact: Vec<String>,
    #[serde(default)]
    observe: bool,
    fail_tool: Option<String>,
    fail: Option<Failure>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Failure {
    Panic,
    Loop,
    Alloc,
    Error,
    /// Asks for the call's spend without end (an extractor that does not
    /// exist answers at once): must not keep moving its deadline.
    SpendLoop,
}

pub struct Probe(Config);

impl Stage for Probe {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Vec<ConfigError>> {
        if config.fail.is_some() != config.fail_tool.is_some() {
            return Err(vec![ConfigError::new(
                "fail",
                "fail and fail_tool go together",
            )]);
        }
        Ok(Probe(config))
    }

    fn evaluate(&self, call: &Call<'_>, state: &mut State) -> Result<Verdict, StageError> {
        let text = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let amount = call
            .argument("amount")
            .and_then(|v| v.as_number_text().map(str::to_owned));
        helio_plugin::log::info(&format!(
            "sdk-probe saw tool={} agent={} origin={} era={:?} session={} amount={} ticket={:?}",
            call.tool(),
            text(call.agent()),
            call.origin(),
            call.era(),
            call.session().unwrap_or("-"),
            text(amount),
            state.evidence("ticket"),
        ));
        if self.0.fail_tool.as_deref() == Some(call.tool()) {
            if let Some(failure) = self.0.fail {
                fail(failure, call)?;
            }
        }
        let found = call.arguments_at("**.ssn");
        if !found.is_empty() {
            let mut verdict = Verdict::deny(
                "pii_detected",
                "Blocked: the arguments carry a social security number",
            )
            .rule("no-ssn")
            .explain(format!("ssn at {}", found.len()));
            for (at, _) in &found {
                verdict = verdict.redact(at);
            }
            return Ok(verdict);
        }
        let mut verdict = Verdict::allow();
        for path in &self.0.redact {
            verdict = verdict.redact(path);
        }
        if self.0.observe {
            verdict = verdict.observe();
        }
        Ok(verdict)
    }

    fn observe(&self, call: &Call<'_>, outcome: Outcome, _state: &mut State) {
        let ending = match outcome.ending {
            Ending::Succeeded => "succeeded",
            Ending::ToolError => "tool-error",
            Ending::ProtocolError => "protocol-error",
            Ending::NoAnswer => "no-answer",
        };
        helio_plugin::log::info(&format!(
            "sdk-probe observed tool={} ending={ending}",
            call.tool()
        ));
    }
}

fn fail(failure: Failure, call: &Call<'_>) -> Result<(), StageError> {
    match failure {
        Failure::SpendLoop => loop {
            let _ = std::hint::black_box(call.spend("nothing-by-this-name"));
        },
        Failure::Panic => panic!("sdk-probe was told to panic"),
        Failure::Loop => loop {
            std::hint::black_box(());
        },
        Failure::Alloc => {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                chunks.push(vec![0xA5; 1 << 20]);
                std::hint::black_box(&mut chunks);
            }
        }
        Failure::Error => Err(StageError::new("sdk-probe was told to report an error")),
    }
}

helio_plugin::export_stage!(Probe);

#[cfg(test)]
mod tests {
    use super::*;
    use helio_plugin::MockCall;
    use serde_json::json;

    #[test]
    fn ssn_anywhere_is_denied_and_redacted() {
        let probe = Probe::configure("{}").expect("config");
        let mock = MockCall::new("file").arguments(json!({"people": [{"ssn": "1"}]}));
        let verdict = probe
            .evaluate(&Call::mock(&mock), &mut State::memory(0))
            .expect("verdict");
        assert!(verdict.check().is_ok());
        assert_eq!(verdict.decision().redact, ["$.people.0.ssn"]);
        assert!(Probe::configure(r#"{"fail": "panic"}"#).is_err());
        assert!(Probe::configure(r#"{"observe": "yes"}"#).is_err());
    }
}
