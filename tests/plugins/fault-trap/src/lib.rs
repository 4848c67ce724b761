//! fault-trap: `evaluate` panics. With `panic = "abort"` a panic is a trap;
//! Helio must block the call with `plugin_error` and keep serving.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, ToolCall, Verdict};

struct FaultTrap;

impl Guest for FaultTrap {
    fn configure(_config_json: String) -> Result<(), Vec<ConfigError>> {
        Ok(())
    }

    fn evaluate(call: &ToolCall) -> Verdict {
        panic!(
            "fault-trap fixture: evaluate always traps (tool {})",
            call.tool()
        );
    }
}

export!(FaultTrap);
