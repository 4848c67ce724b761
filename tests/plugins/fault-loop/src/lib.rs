//! fault-loop: `evaluate` never returns. Helio's per-call timeout (epoch
//! interruption) must stop it and block the call with `plugin_error`.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use std::hint::black_box;

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, ToolCall, Verdict};

struct FaultLoop;

impl Guest for FaultLoop {
    fn configure(_config_json: String) -> Result<(), Vec<ConfigError>> {
        Ok(())
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        let mut n: u64 = 0;
        loop {
            // black_box keeps the optimiser from proving the loop pointless.
            n = black_box(n.wrapping_add(1));
        }
    }
}

export!(FaultLoop);
