//! The built-in stages on the Rust SDK (`helio-plugin`): the SDK's call and
//! state serve as this crate's [`CallView`] and [`State`], engine verdicts
//! become SDK verdicts, and [`Builtin`] makes any [`StageEngine`] an SDK
//! [`helio_plugin::Stage`], exported with `helio_plugin::export_stage!`.

use crate::{
    Annotations, CallView, Completion, ConfigError, EvidenceStatus, KeyFamily, RateWindow,
    SpendWindow, State, Value, Verdict,
};

/// A built-in stage's engine.
pub trait StageEngine: Sized + 'static {
    /// Compiles the stage's configuration (`configure`).
    fn from_json(config_json: &str) -> Result<Self, Vec<ConfigError>>;
    /// Warnings about the configuration, logged once it is accepted.
    fn warnings(&self) -> &[String];
    /// The verdict on one call, and a line to log with it, if any.
    fn decide(&self, call: &impl CallView, state: &mut impl State) -> (Verdict, Option<String>);
    /// The families of keys this configuration uses.
    fn key_families(&self) -> Vec<KeyFamily>;
}

/// A [`StageEngine`] as an SDK stage.
pub struct Builtin<E>(pub E);

impl<E: StageEngine> helio_plugin::Stage for Builtin<E> {
    /// Read by the engine's own parser, which knows each key's YAML path.
    type Config = serde_json::Value;

    fn new(config: serde_json::Value) -> Result<Self, Vec<helio_plugin::ConfigError>> {
        Self::configure(&config.to_string())
    }

    fn configure(config_json: &str) -> Result<Self, Vec<helio_plugin::ConfigError>> {
        let engine = E::from_json(config_json).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| helio_plugin::ConfigError::new(e.path, e.message))
                .collect::<Vec<_>>()
        })?;
        for warning in engine.warnings() {
            helio_plugin::log::warn(warning);
        }
        Ok(Builtin(engine))
    }

    fn evaluate(
        &self,
        call: &helio_plugin::Call<'_>,
        state: &mut helio_plugin::State,
    ) -> Result<helio_plugin::Verdict, helio_plugin::StageError> {
        let (verdict, warning) = self.0.decide(call, state);
        if let Some(warning) = warning {
            helio_plugin::log::warn(&warning);
        }
        Ok(to_sdk(verdict))
    }

    fn key_families(&self) -> Vec<KeyFamily> {
        self.0.key_families()
    }
}

impl CallView for helio_plugin::Call<'_> {
    fn tool(&self) -> &str {
        helio_plugin::Call::tool(self)
    }

    fn annotations(&self) -> Annotations {
        let a = helio_plugin::Call::annotations(self);
        Annotations {
            read_only_hint: a.read_only_hint,
            destructive_hint: a.destructive_hint,
            idempotent_hint: a.idempotent_hint,
            open_world_hint: a.open_world_hint,
        }
    }

    fn session(&self) -> Option<&str> {
        helio_plugin::Call::session(self)
    }

    fn environment(&self) -> Option<&str> {
        helio_plugin::Call::environment(self)
    }

    fn has_arguments(&self) -> bool {
        helio_plugin::Call::has_arguments(self)
    }

    fn argument(&self, path: &str) -> Option<Value> {
        use helio_plugin::Value as Sdk;
        helio_plugin::Call::argument(self, path).map(|value| match value {
            Sdk::Null => Value::Null,
            Sdk::Bool(b) => Value::Bool(b),
            // The engines compare numbers as f64, as helio.yaml's
            // conditions always have.
            Sdk::Number(text) => Value::Number(text.parse().unwrap_or(f64::NAN)),
            Sdk::Text(text) => Value::Text(text),
            Sdk::Structured(text) => Value::Structured(text),
        })
    }

    fn metadata(&self, key: &str) -> Option<String> {
        helio_plugin::Call::metadata(self, key)
    }

    fn spend(&self, extractor: &str) -> crate::call::Extracted {
        helio_plugin::Call::spend(self, extractor).map(|s| s.map(|s| (s.amount, s.currency)))
    }
}

/// The SDK's state as the engines' [`State`]. Session reads are the call's
/// own session's (contract 0.2): the engines always ask about the session
/// of the call they evaluate, so the session they name is that one.
impl State for helio_plugin::State {
    fn now_ms(&self) -> u64 {
        helio_plugin::State::now_ms(self)
    }

    fn rate_peek(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        helio_plugin::State::rate_peek(self, key, limit, window_ms)
    }

    fn rate_take(&mut self, key: &str, limit: u64, window_ms: u64) -> RateWindow {
        helio_plugin::State::rate_take(self, key, limit, window_ms)
    }

    fn spend_reserve(
        &mut self,
        key: &str,
        amount: &str,
        limit: &str,
        window_ms: Option<u64>,
    ) -> Result<SpendWindow, String> {
        helio_plugin::State::spend_reserve(self, key, amount, limit, window_ms)
    }

    fn evidence(&self, _session: &str, key: &str) -> EvidenceStatus {
        helio_plugin::State::evidence(self, key)
    }

    fn completed(&self, _session: &str, tool: &str) -> Option<Completion> {
        helio_plugin::State::completed(self, tool)
    }
}

fn action(word: &str) -> helio_plugin::Action {
    use helio_plugin::Action;
    match word {
        "allow" => Action::Allow,
        "dry_run" => Action::DryRun,
        "require_approval" => Action::RequireApproval,
        "rate_limit" => Action::RateLimit,
        "spend_limit" => Action::SpendLimit,
        "budget" => Action::Budget,
        // `deny`, and (fail closed) any word an engine should never use.
        _ => Action::Deny,
    }
}

fn decision(d: crate::Decision) -> helio_plugin::Decision {
    helio_plugin::Decision {
        action: action(&d.action),
        rule: d.rule,
        rule_index: d.rule_index,
        explanation: d.explanation,
        redact: Vec::new(),
        observe: false,
    }
}

fn feedback(f: crate::Feedback) -> helio_plugin::Feedback {
    let extra = f
        .extra_json
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    helio_plugin::Feedback {
        reason: f.reason,
        message: f.message,
        suggestion: f.suggestion,
        retry_allowed: f.retry_allowed,
        extra: match extra {
            Some(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        },
    }
}

/// An engine verdict as the SDK's.
pub fn to_sdk(verdict: Verdict) -> helio_plugin::Verdict {
    match verdict {
        Verdict::Allow(d) => helio_plugin::Verdict::Allow(decision(d)),
        Verdict::Deny(d, f) => helio_plugin::Verdict::Deny(decision(d), feedback(f)),
        Verdict::DryRun(d) => helio_plugin::Verdict::DryRun(decision(d)),
        Verdict::RequireApproval(r) => {
            helio_plugin::Verdict::RequireApproval(helio_plugin::ApprovalRequest {
                decision: decision(r.decision),
                channel: r.channel,
                timeout_ms: r.timeout_ms,
                feedback: r.feedback.map(feedback),
            })
        }
    }
}
