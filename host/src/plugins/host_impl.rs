//! What the host gives plugins: the `tool-call` accessors, logging and a
//! clock. Each import reads only the call it was handed.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::Resource;

use super::bindings::helio::governance::{host, types};
use super::call::ToolCall;
use super::StoreState;

/// Longest log line a plugin may write; the rest is cut.
const MAX_LOG_LINE: usize = 2048;

impl types::Host for StoreState {}

impl types::HostToolCall for StoreState {
    fn tool(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<String> {
        Ok(self.table.get(&call)?.tool.to_string())
    }

    fn annotations(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<types::Annotations> {
        let a = self.table.get(&call)?.annotations;
        Ok(types::Annotations {
            read_only_hint: a.read_only_hint,
            destructive_hint: a.destructive_hint,
            idempotent_hint: a.idempotent_hint,
            open_world_hint: a.open_world_hint,
            known: a.known,
        })
    }

    fn session(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&call)?.session.as_deref().map(str::to_owned))
    }

    fn environment(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<Option<String>> {
        Ok(self
            .table
            .get(&call)?
            .environment
            .as_deref()
            .map(str::to_owned))
    }

    fn has_arguments(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&call)?.arguments.is_some())
    }

    fn argument(
        &mut self,
        call: Resource<ToolCall>,
        path: String,
    ) -> wasmtime::Result<Option<types::JsonValue>> {
        use serde_json::Value;
        let value = self.table.get(&call)?.argument(&path).map(|v| match v {
            Value::Null => types::JsonValue::Null,
            Value::Bool(b) => types::JsonValue::Boolean(*b),
            Value::Number(n) => types::JsonValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => types::JsonValue::Text(s.clone()),
            structured => types::JsonValue::Structured(structured.to_string()),
        });
        Ok(value)
    }

    fn metadata(
        &mut self,
        call: Resource<ToolCall>,
        _key: String,
    ) -> wasmtime::Result<Option<String>> {
        // Adapter metadata exists only on the SDK sideband, never on the MCP path.
        self.table.get(&call)?;
        Ok(None)
    }

    fn drop(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<()> {
        self.table.delete(call)?;
        Ok(())
    }
}

impl host::Host for StoreState {
    fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        match level {
            types::Level::Trace => tracing::trace!(plugin, "{message}"),
            types::Level::Debug => tracing::debug!(plugin, "{message}"),
            types::Level::Info => tracing::info!(plugin, "{message}"),
            types::Level::Warn => tracing::warn!(plugin, "{message}"),
            types::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64))
    }
}
