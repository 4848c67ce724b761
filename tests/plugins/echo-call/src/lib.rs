//! echo-call: logs what the host passes in, at info level, as
//! `echo-call saw tool=<tool> destructive=<bool> known=<bool> env=<env or ->`,
//! then allows the call, or denies it (reason `echo_denied`) when its tool is
//! config `{"deny_tool": "<name>"}`.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use std::sync::Mutex;

use exports::helio::governance::stage::Guest;
use helio::governance::host::log;
use helio::governance::types::{ConfigError, Decision, Feedback, Level, ToolCall, Verdict};

static DENY_TOOL: Mutex<Option<String>> = Mutex::new(None);

struct EchoCall;

impl Guest for EchoCall {
    fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
        let config: serde_json::Value =
            serde_json::from_str(&config_json).map_err(|e| error("", &e.to_string()))?;
        let deny_tool = match config.get("deny_tool") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(error("deny_tool", "must be a string")),
        };
        *DENY_TOOL.lock().unwrap_or_else(|e| e.into_inner()) = deny_tool;
        Ok(())
    }

    fn evaluate(call: &ToolCall) -> Verdict {
        let tool = call.tool();
        let annotations = call.annotations();
        let env = call.environment();
        log(
            Level::Info,
            &format!(
                "echo-call saw tool={tool} destructive={} known={} env={}",
                annotations.destructive_hint,
                annotations.known,
                env.as_deref().unwrap_or("-"),
            ),
        );
        let denied = DENY_TOOL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(tool.as_str());
        if denied {
            return Verdict::Deny((
                Decision {
                    action: "deny".into(),
                    rule: Some("echo-call".into()),
                    rule_index: None,
                    explanation: format!("echo-call fixture denies tool {tool}"),
                },
                Feedback {
                    reason: "echo_denied".into(),
                    message: format!(
                        "denied by the echo-call fixture: tool {tool} is its deny_tool"
                    ),
                    suggestion: None,
                    retry_allowed: false,
                    extra_json: None,
                },
            ));
        }
        Verdict::Allow(Decision {
            action: "allow".into(),
            rule: None,
            rule_index: None,
            explanation: "echo-call fixture".into(),
        })
    }
}

fn error(path: &str, message: &str) -> Vec<ConfigError> {
    vec![ConfigError {
        path: path.into(),
        message: message.into(),
    }]
}

export!(EchoCall);
