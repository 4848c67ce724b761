//! deny-all: denies every call with reason `fixture_denied`.
//! Config: `{"message": "..."}` (default "denied by the deny-all fixture").
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use std::sync::Mutex;

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, Decision, Feedback, ToolCall, Verdict};

const DEFAULT_MESSAGE: &str = "denied by the deny-all fixture";

static MESSAGE: Mutex<Option<String>> = Mutex::new(None);

struct DenyAll;

impl Guest for DenyAll {
    fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
        let config: serde_json::Value =
            serde_json::from_str(&config_json).map_err(|e| error("", &e.to_string()))?;
        let message = match config.get("message") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(error("message", "must be a string")),
        };
        *MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) = message;
        Ok(())
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        let message = MESSAGE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Verdict::Deny((
            Decision {
                action: "deny".into(),
                rule: Some("deny-all".into()),
                rule_index: None,
                explanation: "deny-all fixture".into(),
            },
            Feedback {
                reason: "fixture_denied".into(),
                message: message.unwrap_or_else(|| DEFAULT_MESSAGE.into()),
                suggestion: None,
                retry_allowed: false,
                extra_json: None,
            },
        ))
    }
}

fn error(path: &str, message: &str) -> Vec<ConfigError> {
    vec![ConfigError {
        path: path.into(),
        message: message.into(),
    }]
}

export!(DenyAll);
