//! fault-configure: `configure` always rejects its config with two errors.
//! `helio validate` (and start, and reload) must report them as
//! `plugins[<i>].config.threshold: must be a number` and
//! `plugins[<i>].config: fixture always rejects its config`.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, Decision, ToolCall, Verdict};

struct FaultConfigure;

impl Guest for FaultConfigure {
    fn configure(_config_json: String) -> Result<(), Vec<ConfigError>> {
        Err(vec![
            ConfigError {
                path: "threshold".into(),
                message: "must be a number".into(),
            },
            ConfigError {
                path: String::new(),
                message: "fixture always rejects its config".into(),
            },
        ])
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        // Never reached: a stage whose configure failed is never loaded.
        Verdict::Allow(Decision {
            action: "allow".into(),
            rule: None,
            rule_index: None,
            explanation: "fault-configure fixture".into(),
        })
    }
}

export!(FaultConfigure);
