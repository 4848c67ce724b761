//! What the host gives plugins (contract 0.2; 0.1 delegates here, see
//! `host_v1`): the `tool-call` accessors, logging, a clock, and governance
//! state. Each import reads only the call it was handed; state keys are
//! scoped by plugin name, session reads by the call under evaluation.

use std::str::FromStr;

use wasmtime::component::Resource;

use super::bindings::v2::helio::governance::{host, state, types};
use super::call::ToolCall;
use super::checks::{Check, Labelled};
use super::families::{family_of, FamilyIndex, KeyFamily, MAX_FAMILIES, MAX_LABEL_BYTES};
use super::StoreState;
use crate::govern::{Door, Era};
use crate::state::{now_ms, Decimal, EvidenceStatus, StateError, StateStore};

/// Longest log line a plugin may write; the rest is cut.
const MAX_LOG_LINE: usize = 2048;
/// Longest state key a plugin may use.
const MAX_KEY_BYTES: usize = 512;
/// Most slots and amounts one call may take.
const MAX_HOLDS_PER_CALL: usize = 64;
/// Most `tool-call.spend` asks one call may make (each runs an extractor).
const MAX_SPENDS_PER_CALL: u32 = 16;
/// Most state reads one call's audit record lists (a stage may read more).
const MAX_CHECKS_PER_CALL: usize = 256;

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

    fn agent(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&call)?.agent.as_deref().map(str::to_owned))
    }

    fn origin(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<String> {
        Ok(self.table.get(&call)?.door.origin().into_owned())
    }

    fn era(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<types::Era> {
        let call = self.table.get(&call)?;
        Ok(match (&call.door, call.era) {
            (Door::Adapter(_), _) => types::Era::None,
            (Door::Mcp, Era::Handshake) => types::Era::Handshake,
            (Door::Mcp, Era::Stateless) => types::Era::Stateless,
        })
    }

    fn has_arguments(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&call)?.arguments.is_some())
    }

    fn argument(
        &mut self,
        call: Resource<ToolCall>,
        path: String,
    ) -> wasmtime::Result<Option<types::JsonValue>> {
        Ok(self.table.get(&call)?.argument(&path).map(json_value))
    }

    fn arguments_at(
        &mut self,
        call: Resource<ToolCall>,
        path: String,
    ) -> wasmtime::Result<Vec<(String, types::JsonValue)>> {
        let call = self.table.get(&call)?;
        let Some(found) = call.arguments_at(&path) else {
            return Err(wasmtime::Error::msg(format!(
                "arguments-at(\"{path}\") names more than {} values",
                super::call::MAX_ARGUMENTS_AT
            )));
        };
        Ok(found
            .into_iter()
            .map(|(at, value)| (at, json_value(value)))
            .collect())
    }

    fn metadata(
        &mut self,
        call: Resource<ToolCall>,
        key: String,
    ) -> wasmtime::Result<Option<String>> {
        // Only an adapter's calls have metadata; the MCP door's never do.
        Ok(self.table.get(&call)?.metadata(&key))
    }

    fn spend(
        &mut self,
        call: Resource<ToolCall>,
        extractor: String,
    ) -> wasmtime::Result<Result<Option<types::Spend>, String>> {
        self.spends += 1;
        if self.spends > MAX_SPENDS_PER_CALL {
            return Err(wasmtime::Error::msg(format!(
                "asked for a call's spend more than {MAX_SPENDS_PER_CALL} times"
            )));
        }
        let call = self.table.get(&call)?.clone();
        let Some(extractors) = call.extractors.clone() else {
            return Ok(Err(format!(
                "no spend extractor named \"{extractor}\" is configured"
            )));
        };
        // The extractor's time is bounded by its own limit; the asking
        // stage gets it back, as it does a wait on state.
        let started = std::time::Instant::now();
        let read = extractors.extract(&extractor, call);
        self.state_waited += started.elapsed();
        Ok(read.map(|spend| {
            spend.map(|s| types::Spend {
                amount: s.amount,
                currency: s.currency,
            })
        }))
    }

    fn drop(&mut self, call: Resource<ToolCall>) -> wasmtime::Result<()> {
        self.table.delete(call)?;
        Ok(())
    }
}

/// A JSON value as the contract passes it: numbers as the text Helio read.
fn json_value(value: &serde_json::Value) -> types::JsonValue {
    use serde_json::Value;
    match value {
        Value::Null => types::JsonValue::Null,
        Value::Bool(b) => types::JsonValue::Boolean(*b),
        Value::Number(n) => types::JsonValue::Number(n.to_string()),
        Value::String(s) => types::JsonValue::Text(s.clone()),
        structured => types::JsonValue::Structured(structured.to_string()),
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
        Ok(now_ms())
    }
}

impl StoreState {
    /// The plugin's key in the shared store; a trap for an oversized key.
    fn scoped(&self, key: &str) -> wasmtime::Result<String> {
        if key.len() > MAX_KEY_BYTES {
            return Err(wasmtime::Error::msg(format!(
                "state key is {} bytes; the limit is {MAX_KEY_BYTES}",
                key.len()
            )));
        }
        Ok(format!("{}/{key}", self.plugin))
    }

    /// What the stage described `key` (scoped) as, if it did.
    fn family(&self, key: &str) -> Option<Labelled> {
        let own = key.get(self.plugin.len() + 1..)?;
        let (family, bucket) = family_of(&self.families, own)?;
        Some(Labelled {
            family: family.clone(),
            bucket_at: key.len() - bucket.len(),
        })
    }

    fn checked(&mut self, check: Check) {
        if self.checks.len() < MAX_CHECKS_PER_CALL {
            self.checks.push(check);
        }
    }

    /// Runs a state operation. A store that may wait has its wait timed
    /// (it does not count against the stage's time limit); a failure is
    /// kept (the call will be refused `state_unavailable`) and traps the
    /// stage. With traces on, the operation (`name`, on `key`) is timed
    /// for the call's trace.
    fn reach<T>(
        &mut self,
        name: &'static str,
        key: &str,
        operation: impl FnOnce(&dyn StateStore) -> Result<T, StateError>,
    ) -> wasmtime::Result<T> {
        let traced = crate::traces::enabled();
        let result = if self.state_may_block || traced {
            let started = std::time::Instant::now();
            let result = operation(self.state.as_ref());
            let took = started.elapsed();
            if self.state_may_block {
                self.state_waited += took;
            }
            if traced && self.state_ops.len() < MAX_CHECKS_PER_CALL {
                self.state_ops.push(crate::traces::StateOp {
                    operation: name,
                    key: key.to_owned(),
                    started,
                    took,
                });
            }
            result
        } else {
            operation(self.state.as_ref())
        };
        result.map_err(|error| {
            let trap = wasmtime::Error::msg(error.to_string());
            self.state_failure = Some(error);
            trap
        })
    }

    fn room_for_hold(&self) -> wasmtime::Result<()> {
        if self.holds.len() >= MAX_HOLDS_PER_CALL {
            return Err(wasmtime::Error::msg(format!(
                "took more than {MAX_HOLDS_PER_CALL} slots or amounts for one call"
            )));
        }
        Ok(())
    }
}

fn rate_window(w: crate::state::RateWindow) -> state::RateWindow {
    state::RateWindow {
        allowed: w.allowed,
        current: w.current,
        limit: w.limit,
        reset_at_ms: w.reset_at_ms,
    }
}

/// A non-negative exact decimal, as the WIT `state` interface passes money.
fn amount(text: &str, what: &str) -> Result<Decimal, String> {
    let value = Decimal::from_str(text.trim())
        .map_err(|_| format!("{what} \"{text}\" is not a decimal number"))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("{what} \"{text}\" is negative"));
    }
    Ok(value)
}

impl state::Host for StoreState {
    fn rate_peek(
        &mut self,
        key: String,
        limit: u64,
        window_ms: u64,
    ) -> wasmtime::Result<state::RateWindow> {
        let key = self.scoped(&key)?;
        let window = self.reach("rate_peek", &key, |state| {
            state.rate_peek(&key, limit, window_ms, now_ms())
        })?;
        let result = rate_window(window.clone());
        self.checked(Check::Rate {
            family: self.family(&key),
            key,
            took: false,
            window_ms,
            window,
        });
        Ok(result)
    }

    fn rate_take(
        &mut self,
        key: String,
        limit: u64,
        window_ms: u64,
    ) -> wasmtime::Result<state::RateWindow> {
        let key = self.scoped(&key)?;
        self.room_for_hold()?;
        let (window, hold) = self.reach("rate_take", &key, |state| {
            state.rate_take(&key, limit, window_ms, now_ms())
        })?;
        self.holds.extend(hold);
        let result = rate_window(window.clone());
        self.checked(Check::Rate {
            family: self.family(&key),
            key,
            took: true,
            window_ms,
            window,
        });
        Ok(result)
    }

    fn spend_reserve(
        &mut self,
        key: String,
        amount_text: String,
        limit_text: String,
        window_ms: Option<u64>,
    ) -> wasmtime::Result<Result<state::SpendWindow, String>> {
        let key = self.scoped(&key)?;
        self.room_for_hold()?;
        let (spend, limit) = match (amount(&amount_text, "amount"), amount(&limit_text, "limit")) {
            (Ok(a), Ok(l)) => (a, l),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let (window, hold) = self.reach("spend_reserve", &key, |state| {
            state.spend_reserve(&key, spend, limit, window_ms, now_ms())
        })?;
        self.holds.extend(hold);
        let result = state::SpendWindow {
            allowed: window.allowed,
            spent: window.spent.normalize().to_string(),
            limit: window.limit.normalize().to_string(),
            reset_at_ms: window.reset_at_ms,
        };
        self.checked(Check::Spend {
            family: self.family(&key),
            key,
            amount: spend,
            window_ms,
            window,
        });
        Ok(Ok(result))
    }

    fn evidence(&mut self, key: String) -> wasmtime::Result<state::EvidenceStatus> {
        let session = self.session.clone();
        let status = match session {
            Some(session) => self.evidence_in(&session, key)?,
            None => EvidenceStatus::Missing,
        };
        Ok(match status {
            EvidenceStatus::Present => state::EvidenceStatus::Present,
            EvidenceStatus::Expired => state::EvidenceStatus::Expired,
            EvidenceStatus::Missing => state::EvidenceStatus::Missing,
        })
    }

    fn completed(&mut self, tool: String) -> wasmtime::Result<Option<state::Completion>> {
        let Some(session) = self.session.clone() else {
            return Ok(None);
        };
        let found = self.completed_in(&session, tool)?;
        Ok(found.map(|c| state::Completion {
            succeeded: c.succeeded,
            at_ms: c.at_ms,
        }))
    }

    fn describe(&mut self, families: Vec<state::KeyFamily>) -> wasmtime::Result<()> {
        if families.len() > MAX_FAMILIES {
            return Err(wasmtime::Error::msg(format!(
                "described {} key families; the limit is {MAX_FAMILIES}",
                families.len()
            )));
        }
        let mut described = Vec::with_capacity(families.len());
        for family in families {
            if family.prefix.len() > MAX_KEY_BYTES
                || family.kind.len() > MAX_LABEL_BYTES
                || family.name.len() > MAX_LABEL_BYTES
            {
                return Err(wasmtime::Error::msg(format!(
                    "key family \"{}\" is too long: prefixes up to {MAX_KEY_BYTES} bytes, kinds and names up to {MAX_LABEL_BYTES}",
                    family.prefix.chars().take(64).collect::<String>()
                )));
            }
            described.push(std::sync::Arc::new(KeyFamily {
                prefix: family.prefix,
                kind: family.kind,
                name: family.name,
                idle_ttl_ms: family.idle_ttl_ms,
            }));
        }
        self.described = Some(FamilyIndex::new(described));
        Ok(())
    }
}

impl StoreState {
    /// Evidence `key` of `session`, read and listed in the audit record.
    pub(super) fn evidence_in(
        &mut self,
        session: &str,
        key: String,
    ) -> wasmtime::Result<EvidenceStatus> {
        let status = self.reach("evidence", &key, |state| {
            state.evidence_status(session, &key, now_ms())
        })?;
        self.checked(Check::Evidence { key, status });
        Ok(status)
    }

    /// The latest completed call of `tool` in `session`, read and listed in
    /// the audit record.
    pub(super) fn completed_in(
        &mut self,
        session: &str,
        tool: String,
    ) -> wasmtime::Result<Option<crate::state::Completion>> {
        let found = self.reach("completed", &tool, |state| state.completed(session, &tool))?;
        self.checked(Check::Completion { tool, found });
        Ok(found)
    }
}
