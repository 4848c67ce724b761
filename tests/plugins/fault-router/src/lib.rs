//! fault-router: an approval router that misbehaves as its configuration
//! says — `{"mode": "trap"}` panics (a trap), `{"mode": "loop"}` never
//! returns (a timeout), `{"channel": "x", "timeout_ms": n}` answers that
//! channel and timeout whether or not they make sense. Helio must fail
//! closed to the dashboard and say so on the ticket.
#![cfg(target_arch = "wasm32")] // the bindings only link as a component

use std::sync::Mutex;

wit_bindgen::generate!({ path: "../../../wit/since_v0.1.0", world: "approval-router-plugin" });

use exports::helio::governance::approval_router::{Delivery, Guest};
use helio::governance::types::{ApprovalRequest, ConfigError, ToolCall};

static CONFIG: Mutex<Option<serde_json::Value>> = Mutex::new(None);

struct FaultRouter;

impl Guest for FaultRouter {
    fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
        let config = serde_json::from_str(&config_json).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                message: e.to_string(),
            }]
        })?;
        *CONFIG.lock().unwrap_or_else(|e| e.into_inner()) = Some(config);
        Ok(())
    }

    fn route(call: &ToolCall, _request: ApprovalRequest) -> Delivery {
        let config = CONFIG
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        match config.get("mode").and_then(|m| m.as_str()) {
            Some("trap") => panic!("fault-router fixture: route traps (tool {})", call.tool()),
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => Delivery {
                channel: config
                    .get("channel")
                    .and_then(|c| c.as_str())
                    .unwrap_or("dashboard")
                    .to_owned(),
                escalate_to: Vec::new(),
                escalate_after_ms: None,
                timeout_ms: config.get("timeout_ms").and_then(|t| t.as_u64()),
            },
        }
    }
}

export!(FaultRouter);
