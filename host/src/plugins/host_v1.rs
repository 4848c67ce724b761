//! Contract 0.1 (`wit/since_v0.1.0/`, frozen) on top of 0.2: every 0.1
//! import delegates to its 0.2 implementation in `host_impl`, converting
//! the records, so both versions read calls and state through one path.
//!
//! Two 0.1 behaviours are kept as they were, since a 0.1 component relies
//! on them: `argument` answers numbers as `f64`, and `evidence`/`completed`
//! take the session to read (0.2 reads the call's own session only).

use wasmtime::component::Resource;

use super::bindings::v1::helio::governance::{host, state, types};
use super::bindings::v2::helio::governance as v2;
use super::call::ToolCall;
use super::StoreState;
use crate::state::EvidenceStatus;

impl types::Host for StoreState {}

impl types::HostToolCall for StoreState {
    fn tool(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<String> {
        v2::types::HostToolCall::tool(self, call)
    }

    fn annotations(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<types::Annotations> {
        let a = v2::types::HostToolCall::annotations(self, call)?;
        Ok(types::Annotations {
            read_only_hint: a.read_only_hint,
            destructive_hint: a.destructive_hint,
            idempotent_hint: a.idempotent_hint,
            open_world_hint: a.open_world_hint,
            known: a.known,
        })
    }

    fn session(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<Option<String>> {
        v2::types::HostToolCall::session(self, call)
    }

    fn environment(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<Option<String>> {
        v2::types::HostToolCall::environment(self, call)
    }

    fn has_arguments(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<bool> {
        v2::types::HostToolCall::has_arguments(self, call)
    }

    fn argument(
        &mut self,
        call: Resource<ToolCall>,
        path: String,
    ) -> wasmtime::Result<Option<types::JsonValue>> {
        use v2::types::JsonValue as V2;
        let value = v2::types::HostToolCall::argument(self, call, path)?;
        Ok(value.map(|value| match value {
            V2::Null => types::JsonValue::Null,
            V2::Boolean(b) => types::JsonValue::Boolean(b),
            // The text Helio wrote from a number it holds: always parses.
            V2::Number(text) => types::JsonValue::Number(text.parse().unwrap_or(f64::NAN)),
            V2::Text(text) => types::JsonValue::Text(text),
            V2::Structured(text) => types::JsonValue::Structured(text),
        }))
    }

    fn metadata(
        &mut self,
        call: Resource<ToolCall>,
        key: String,
    ) -> wasmtime::Result<Option<String>> {
        v2::types::HostToolCall::metadata(self, call, key)
    }

    fn drop(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<()> {
        v2::types::HostToolCall::drop(self, call)
    }
}

impl host::Host for StoreState {
    fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            types::Level::Trace => v2::types::Level::Trace,
            types::Level::Debug => v2::types::Level::Debug,
            types::Level::Info => v2::types::Level::Info,
            types::Level::Warn => v2::types::Level::Warn,
            types::Level::Error => v2::types::Level::Error,
        };
        v2::host::Host::log(self, level, message)
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        v2::host::Host::now_ms(self)
    }
}

fn rate_window(w: v2::state::RateWindow) -> state::RateWindow {
    state::RateWindow {
        allowed: w.allowed,
        current: w.current,
        limit: w.limit,
        reset_at_ms: w.reset_at_ms,
    }
}

impl state::Host for StoreState {
    fn rate_peek(
        &mut self,
        key: String,
        limit: u64,
        window_ms: u64,
    ) -> wasmtime::Result<state::RateWindow> {
        v2::state::Host::rate_peek(self, key, limit, window_ms).map(rate_window)
    }

    fn rate_take(
        &mut self,
        key: String,
        limit: u64,
        window_ms: u64,
    ) -> wasmtime::Result<state::RateWindow> {
        v2::state::Host::rate_take(self, key, limit, window_ms).map(rate_window)
    }

    fn spend_reserve(
        &mut self,
        key: String,
        amount: String,
        limit: String,
        window_ms: Option<u64>,
    ) -> wasmtime::Result<Result<state::SpendWindow, String>> {
        let reserved = v2::state::Host::spend_reserve(self, key, amount, limit, window_ms)?;
        Ok(reserved.map(|w| state::SpendWindow {
            allowed: w.allowed,
            spent: w.spent,
            limit: w.limit,
            reset_at_ms: w.reset_at_ms,
        }))
    }

    fn evidence(
        &mut self,
        session: String,
        key: String,
    ) -> wasmtime::Result<state::EvidenceStatus> {
        Ok(match self.evidence_in(&session, key)? {
            EvidenceStatus::Present => state::EvidenceStatus::Present,
            EvidenceStatus::Expired => state::EvidenceStatus::Expired,
            EvidenceStatus::Missing => state::EvidenceStatus::Missing,
        })
    }

    fn completed(
        &mut self,
        session: String,
        tool: String,
    ) -> wasmtime::Result<Option<state::Completion>> {
        let found = self.completed_in(&session, tool)?;
        Ok(found.map(|c| state::Completion {
            succeeded: c.succeeded,
            at_ms: c.at_ms,
        }))
    }

    fn describe(&mut self, families: Vec<state::KeyFamily>) -> wasmtime::Result<()> {
        let families = families.into_iter().map(|f| v2::state::KeyFamily {
            prefix: f.prefix,
            kind: f.kind,
            name: f.name,
            idle_ttl_ms: f.idle_ttl_ms,
        });
        v2::state::Host::describe(self, families.collect())
    }
}
