//! future-version: a stage built against `helio:governance@0.3.0`, a
//! version this Helio does not know. Loading it must fail with a message
//! naming the versions Helio loads.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "wit", world: "policy-stage" });

struct Future;

impl exports::helio::governance::stage::Guest for Future {
    fn configure(_config_json: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Future);
