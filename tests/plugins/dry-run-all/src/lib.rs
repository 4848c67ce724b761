//! dry-run-all: answers every call with a dry run.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, Decision, ToolCall, Verdict};

struct DryRunAll;

impl Guest for DryRunAll {
    fn configure(_config_json: String) -> Result<(), Vec<ConfigError>> {
        Ok(())
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        Verdict::DryRun(Decision {
            action: "dry_run".into(),
            rule: Some("dry-run-all".into()),
            rule_index: None,
            explanation: "dry-run-all fixture".into(),
        })
    }
}

export!(DryRunAll);
