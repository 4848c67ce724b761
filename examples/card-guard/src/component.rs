//! The WebAssembly glue: Helio calls `configure` once per instance, then
//! `evaluate` for each tool call.

use std::sync::Mutex;

use crate::{parse_config, scan_call, Argument, Config};

wit_bindgen::generate!({ path: "../../wit/since_v0.1.0", world: "policy-stage" });

use exports::helio::governance::stage::Guest;
use helio::governance::host::log;
use helio::governance::types::{
    ConfigError, Decision, Feedback, JsonValue, Level, ToolCall, Verdict,
};

/// Set by `configure`; the defaults until then.
static CONFIG: Mutex<Option<Config>> = Mutex::new(None);

const RULE: &str = "card-guard";

struct CardGuard;

impl Guest for CardGuard {
    fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
        let config = parse_config(&config_json).map_err(|problems| {
            problems
                .into_iter()
                .map(|p| ConfigError {
                    path: p.path,
                    message: p.message,
                })
                .collect::<Vec<_>>()
        })?;
        *CONFIG.lock().unwrap_or_else(|e| e.into_inner()) = Some(config);
        Ok(())
    }

    fn evaluate(call: &ToolCall) -> Verdict {
        let config = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
        let config = config.as_ref().cloned().unwrap_or_default();
        let hit = if call.has_arguments() {
            scan_call(&config, |path| {
                call.argument(path).map(|value| match value {
                    JsonValue::Text(s) => Argument::Text(s),
                    JsonValue::Structured(json) => Argument::Structured(json),
                    JsonValue::Null | JsonValue::Boolean(_) | JsonValue::Number(_) => {
                        Argument::Scalar
                    }
                })
            })
        } else {
            None
        };
        let Some(hit) = hit else {
            return Verdict::Allow(Decision {
                action: "allow".into(),
                // Nothing matched: no rule to name.
                rule: None,
                rule_index: None,
                explanation: "no card number found".into(),
            });
        };
        // Never the number itself: only where it was found.
        let place = hit.describe();
        log(
            Level::Debug,
            &format!(
                "blocked a call to {}: card number found in {place}",
                call.tool()
            ),
        );
        Verdict::Deny((
            Decision {
                action: "deny".into(),
                rule: Some(RULE.into()),
                rule_index: None,
                explanation: format!("card number found in {place}"),
            },
            Feedback {
                reason: "card_number_detected".into(),
                message: format!(
                    "Blocked: the arguments contain what looks like a payment card number (in {place})"
                ),
                suggestion: Some(
                    "Remove the card number and pass a payment token or the last four digits instead."
                        .into(),
                ),
                retry_allowed: true,
                extra_json: Some(serde_json::json!({ "field": hit.path }).to_string()),
            },
        ))
    }
}

export!(CardGuard);
