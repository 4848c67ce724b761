//! fault-alloc: `evaluate` allocates without bound, 1 MiB at a time, writing
//! to every chunk so the memory is really used. Helio's memory limit must stop
//! it (growing memory past the limit traps; a host that refused the growth
//! instead would make the allocation fail, which aborts: also a trap) and
//! block the call with `plugin_error`.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "policy-stage" });

use std::hint::black_box;

use exports::helio::governance::stage::Guest;
use helio::governance::types::{ConfigError, ToolCall, Verdict};

struct FaultAlloc;

const CHUNK: usize = 1 << 20;

impl Guest for FaultAlloc {
    fn configure(_config_json: String) -> Result<(), Vec<ConfigError>> {
        Ok(())
    }

    fn evaluate(_call: &ToolCall) -> Verdict {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            chunk.fill(0xA5);
            chunks.push(chunk);
            black_box(&mut chunks);
        }
    }
}

export!(FaultAlloc);
