//! allow-all: allows every call.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, Decision, ToolCall, Verdict};

struct AllowAll;

impl Guest for AllowAll {
    fn configure(_config_json: String) -> Result<(), Vec<ConfigError>> {
        Ok(())
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        Verdict::Allow(Decision {
            action: "allow".into(),
            rule: None,
            rule_index: None,
            explanation: "allow-all fixture".into(),
        })
    }
}

export!(AllowAll);
