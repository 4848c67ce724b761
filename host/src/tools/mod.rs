//! What Helio knows about the upstream's tools, learned from every
//! `tools/list` page it relays and from its own listings (at start, then
//! every `policies.tool_revalidation.interval`).
//!
//! The first definition Helio sees of a tool is its **baseline**: policy
//! reads the baseline's annotations, so a server cannot loosen a rule by
//! re-declaring a tool read-only. A listing whose definition differs from
//! the baseline (any field, compared canonically) marks the tool as
//! **drifted** until a listing shows the baseline again (reverted) or an
//! operator accepts the new definition. Each drift, revert and acceptance
//! is an audit record (`record_kind: drift_event`). Baselines are kept in
//! the state store, so a tool changed while Helio was down is caught.
//!
//! A tool not seen yet gets the MCP default annotations, which look
//! destructive, so destructive-guarding rules hold before priming succeeds.
//!
//! Adapters (the adapter API) have their tools too: each origin's
//! definitions, as sent with its evaluations, are kept in a catalog of
//! their own ([`AdapterTools`]), baselined and compared the same way.

mod definition;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{new_id, Audit, AuditRecord};
use crate::config::{Transport, Upstream};
use crate::plugins::Annotations;
use crate::state::{now_ms, BaselineStore, StoredBaseline};

pub use definition::{Change, Definition, ParamHeader};

/// The most tools one upstream may have baselined: a server that lists
/// ever-new names cannot grow Helio's memory or its database without bound.
const MAX_TOOLS: usize = 10_000;
/// The most tools one adapter (origin) may have baselined.
pub const MAX_ADAPTER_TOOLS: usize = 1_024;

/// How a tool's current definition differs from its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDrift {
    /// What changed; a tool listed twice in one page has the single aspect
    /// `duplicate` (which definition applies cannot be told: fail closed).
    pub changes: Vec<Change>,
    /// The definition now listed; none for a duplicate.
    pub current: Option<Definition>,
    pub detected_ms: u64,
}

impl ToolDrift {
    pub fn aspects(&self) -> Vec<&'static str> {
        self.changes.iter().map(|c| c.aspect).collect()
    }

    /// The annotations the tool now declares (the MCP defaults, which fail
    /// closed, for a duplicate).
    pub fn current_annotations(&self) -> Annotations {
        self.current
            .as_ref()
            .map_or(Annotations::UNKNOWN, |d| d.annotations)
    }

    /// `changes[] {aspect, baseline, current}` as the audit trail keeps them.
    pub fn changes_json(&self) -> Value {
        self.changes
            .iter()
            .map(|c| json!({ "aspect": c.aspect, "baseline": c.baseline, "current": c.current }))
            .collect()
    }
}

/// What a call needs to know about its tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolView {
    /// The baseline's annotations (the MCP defaults for an unseen tool).
    pub annotations: Annotations,
    /// Whether the baseline declares an `outputSchema` (clients then check
    /// a successful result against it).
    pub output_schema: bool,
    /// The baseline's `Mcp-Param-*` headers.
    pub param_headers: Arc<[ParamHeader]>,
    pub drift: Option<Arc<ToolDrift>>,
}

struct Known {
    baseline: Definition,
    accepted_ms: u64,
    accepted_by: Option<String>,
    drift: Option<Arc<ToolDrift>>,
}

/// What a listing changed, acted on once the catalog's lock is released.
enum Event {
    Baselined(String, Definition),
    Drifted(String, Arc<ToolDrift>),
    Reverted(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcceptError {
    #[error("no tool named {0:?} has been listed")]
    Unknown(String),
    #[error("tool {0:?} is listed more than once, so there is no single definition to accept")]
    Duplicate(String),
}

/// A definition an adapter sent could not be baselined: its catalog holds
/// [`MAX_ADAPTER_TOOLS`] already.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("at most {0} tools are baselined per adapter")]
pub struct CatalogFull(pub usize);

pub struct ToolCatalog {
    /// Which server's tools these are (baselines are stored under it).
    upstream: String,
    /// The door its tools are called through (drift records' `origin`).
    origin: String,
    /// The most tools it baselines.
    limit: usize,
    tools: RwLock<HashMap<String, Known>>,
    store: Arc<dyn BaselineStore>,
    audit: Arc<Audit>,
}

#[derive(Deserialize)]
struct ListResponse {
    result: Option<ListResult>,
}

#[derive(Deserialize)]
struct ListResult {
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

impl ToolCatalog {
    /// The catalog of `upstream`'s tools, starting from the baselines the
    /// store kept for it.
    pub fn restore(upstream: &Upstream, store: Arc<dyn BaselineStore>, audit: Arc<Audit>) -> Self {
        Self::restored(upstream_key(upstream), "mcp", MAX_TOOLS, store, audit)
    }

    fn restored(
        upstream: String,
        origin: &str,
        limit: usize,
        store: Arc<dyn BaselineStore>,
        audit: Arc<Audit>,
    ) -> Self {
        let mut tools = HashMap::new();
        for stored in store.restored_baselines(&upstream) {
            match serde_json::from_str::<Value>(&stored.definition) {
                Ok(value) => {
                    tools.insert(
                        stored.tool,
                        Known {
                            baseline: Definition::new(value),
                            accepted_ms: stored.accepted_ms,
                            accepted_by: stored.accepted_by,
                            drift: None,
                        },
                    );
                }
                Err(error) => {
                    tracing::warn!(tool = %stored.tool, %error, "a stored tool baseline is unreadable; the tool will be baselined again")
                }
            }
        }
        if !tools.is_empty() {
            tracing::info!(
                tools = tools.len(),
                origin,
                "tool definition baselines restored from the state database"
            );
        }
        Self {
            upstream,
            origin: origin.to_owned(),
            limit,
            tools: RwLock::new(tools),
            store,
            audit,
        }
    }

    pub fn view(&self, tool: &str) -> ToolView {
        let tools = self.tools.read().unwrap_or_else(|p| p.into_inner());
        match tools.get(tool) {
            Some(known) => ToolView {
                annotations: known.baseline.annotations,
                output_schema: known.baseline.value["outputSchema"].is_object(),
                param_headers: known.baseline.param_headers.clone(),
                drift: known.drift.clone(),
            },
            None => ToolView {
                annotations: Annotations::UNKNOWN,
                output_schema: false,
                param_headers: Arc::from([]),
                drift: None,
            },
        }
    }

    pub fn count(&self) -> usize {
        self.tools.read().map_or(0, |tools| tools.len())
    }

    /// Learns from one `tools/list` response message (a page); returns the
    /// next cursor, if any. Messages that are not list results are ignored.
    pub fn observe(&self, message: &[u8]) -> Option<String> {
        let response: ListResponse = serde_json::from_slice(message).ok()?;
        let result = response.result?;
        // Grouped by name (a page may list a name twice), in listed order.
        let mut listed: Vec<(String, Vec<Value>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for tool in result.tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            match index.get(name) {
                Some(&at) => listed[at].1.push(tool),
                None => {
                    index.insert(name.to_owned(), listed.len());
                    listed.push((name.to_owned(), vec![tool]));
                }
            }
        }
        let events = self.compare(listed);
        self.act(events);
        result.next_cursor
    }

    /// Learns one definition (an adapter's, sent with an evaluation); the
    /// tool as a call sees it then.
    pub fn learn(&self, name: &str, definition: Value) -> Result<ToolView, CatalogFull> {
        let events = self.compare(vec![(name.to_owned(), vec![definition])]);
        self.act(events);
        let known = self
            .tools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name);
        if !known {
            return Err(CatalogFull(self.limit));
        }
        Ok(self.view(name))
    }

    fn compare(&self, listed: Vec<(String, Vec<Value>)>) -> Vec<Event> {
        let now = now_ms();
        let mut events = Vec::new();
        let mut tools = self.tools.write().unwrap_or_else(|p| p.into_inner());
        for (name, mut definitions) in listed {
            let duplicate = definitions.len() > 1;
            let current = Definition::new(definitions.swap_remove(0));
            let full = tools.len() >= self.limit;
            let known = match tools.entry(name.clone()) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(_) if full => {
                    tracing::warn!(tool = %name, limit = self.limit, origin = %self.origin, "more tools than Helio keeps baselines for; this one is treated as unseen");
                    continue;
                }
                Entry::Vacant(vacant) => {
                    events.push(Event::Baselined(name.clone(), current.clone()));
                    vacant.insert(Known {
                        baseline: current.clone(),
                        accepted_ms: now,
                        accepted_by: None,
                        drift: None,
                    })
                }
            };
            let drift = if duplicate {
                let mut all = vec![current.value.clone()];
                all.extend(definitions);
                Some(ToolDrift {
                    changes: vec![Change {
                        aspect: "duplicate",
                        baseline: known.baseline.value.clone(),
                        current: Value::Array(all),
                    }],
                    current: None,
                    detected_ms: now,
                })
            } else if current.fingerprint == known.baseline.fingerprint {
                None
            } else {
                Some(ToolDrift {
                    changes: current.changes_from(&known.baseline),
                    current: Some(current),
                    detected_ms: now,
                })
            };
            match (&known.drift, drift) {
                (None, None) => {}
                (Some(_), None) => {
                    known.drift = None;
                    events.push(Event::Reverted(name));
                }
                (Some(old), Some(new)) if old.changes == new.changes => {}
                (Some(_) | None, Some(new)) => {
                    let new = Arc::new(new);
                    known.drift = Some(new.clone());
                    events.push(Event::Drifted(name, new));
                }
            }
        }
        events
    }

    fn act(&self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Baselined(tool, definition) => {
                    self.save(&tool, &definition, now_ms(), None);
                }
                Event::Drifted(tool, drift) => {
                    tracing::warn!(%tool, aspects = ?drift.aspects(), "the upstream changed a tool's definition since Helio baselined it (tool definition drift)");
                    self.record(&tool, "tool_drift", None, Some(&drift));
                }
                Event::Reverted(tool) => {
                    tracing::info!(%tool, "the tool's definition is back to its baseline");
                    self.record(&tool, "tool_drift_reverted", None, None);
                }
            }
        }
    }

    /// Makes the drifted tools' current definitions their baselines: the
    /// named ones, or every drifted tool when `names` is empty. Returns the
    /// tools accepted; each acceptance is audited with `by`.
    pub fn accept(&self, names: &[String], by: &str) -> Result<Vec<String>, AcceptError> {
        let now = now_ms();
        let mut accepted = Vec::new();
        {
            let mut tools = self.tools.write().unwrap_or_else(|p| p.into_inner());
            for name in names {
                match tools.get(name) {
                    None => return Err(AcceptError::Unknown(name.clone())),
                    Some(known) if known.drift.as_ref().is_some_and(|d| d.current.is_none()) => {
                        return Err(AcceptError::Duplicate(name.clone()))
                    }
                    Some(_) => {}
                }
            }
            for (name, known) in tools.iter_mut() {
                let wanted = names.is_empty() || names.contains(name);
                let Some(drift) = known.drift.clone().filter(|_| wanted) else {
                    continue;
                };
                let Some(current) = drift.current.clone() else {
                    continue;
                };
                known.baseline = current;
                known.accepted_ms = now;
                known.accepted_by = Some(by.to_owned());
                known.drift = None;
                accepted.push((name.clone(), known.baseline.clone(), drift));
            }
        }
        for (tool, definition, drift) in &accepted {
            self.save(tool, definition, now, Some(by));
            tracing::info!(%tool, accepted_by = %by, "an operator accepted the tool's current definition as its baseline");
            self.record(tool, "tool_drift_accepted", Some(by), Some(drift));
        }
        let mut names: Vec<String> = accepted.into_iter().map(|(name, ..)| name).collect();
        names.sort();
        Ok(names)
    }

    /// Every known tool: its baseline and drift (the operator's view).
    pub fn describe(&self) -> Vec<Value> {
        let tools = self.tools.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Value> = tools
            .iter()
            .map(|(name, known)| {
                json!({
                    "name": name,
                    "fingerprint": known.baseline.fingerprint,
                    "baselined_at": crate::time::iso_utc(known.accepted_ms),
                    "accepted_by": known.accepted_by,
                    "drift": known.drift.as_ref().map(|d| json!({
                        "aspects": d.aspects(),
                        "changes": d.changes_json(),
                        "detected_at": crate::time::iso_utc(d.detected_ms),
                    })),
                })
            })
            .collect();
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        out
    }

    fn save(&self, tool: &str, definition: &Definition, at: u64, by: Option<&str>) {
        let stored = StoredBaseline {
            upstream: self.upstream.clone(),
            tool: tool.to_owned(),
            definition: definition.canonical.clone(),
            accepted_ms: at,
            accepted_by: by.map(str::to_owned),
        };
        if let Err(error) = self.store.save_baseline(stored) {
            tracing::error!(%tool, %error, "cannot save the tool's baseline definition; it holds until Helio restarts");
        }
    }

    fn record(&self, tool: &str, decision: &str, by: Option<&str>, drift: Option<&ToolDrift>) {
        self.audit.record(AuditRecord {
            id: new_id(),
            timestamp: crate::time::iso_utc(now_ms()),
            tool_name: tool.to_owned(),
            tool_input: "{}".into(),
            policy_decision: decision.into(),
            approved_by: by.map(str::to_owned),
            evidence_chain: drift.map(|d| {
                json!({ "tool_drift": { "aspects": d.aspects(), "changes": d.changes_json() } })
                    .to_string()
            }),
            record_kind: "drift_event",
            origin: self.origin.clone().into(),
            ..AuditRecord::default()
        });
    }
}

/// Each adapter's tools, by origin (their number bounded by the adapter
/// API's origins), baselines stored under `adapter:<origin>`.
pub struct AdapterTools {
    store: Arc<dyn BaselineStore>,
    audit: Arc<Audit>,
    catalogs: RwLock<HashMap<String, Arc<ToolCatalog>>>,
}

impl AdapterTools {
    pub fn new(store: Arc<dyn BaselineStore>, audit: Arc<Audit>) -> Self {
        Self {
            store,
            audit,
            catalogs: RwLock::default(),
        }
    }

    /// `origin`'s catalog, once it has sent a definition.
    pub fn get(&self, origin: &str) -> Option<Arc<ToolCatalog>> {
        let catalogs = self.catalogs.read().unwrap_or_else(|p| p.into_inner());
        catalogs.get(origin).cloned()
    }

    /// `origin`'s catalog, restored from the store the first time.
    pub fn catalog(&self, origin: &str) -> Arc<ToolCatalog> {
        if let Some(catalog) = self.get(origin) {
            return catalog;
        }
        let mut catalogs = self.catalogs.write().unwrap_or_else(|p| p.into_inner());
        catalogs
            .entry(origin.to_owned())
            .or_insert_with(|| {
                Arc::new(ToolCatalog::restored(
                    format!("adapter:{origin}"),
                    origin,
                    MAX_ADAPTER_TOOLS,
                    self.store.clone(),
                    self.audit.clone(),
                ))
            })
            .clone()
    }
}

/// The server whose tools these are: its URL, or the command that starts it.
fn upstream_key(upstream: &Upstream) -> String {
    match upstream.transport {
        Transport::StreamableHttp | Transport::Sse => upstream.url.clone(),
        Transport::Stdio => {
            let mut key = vec![upstream.command.clone().unwrap_or_default()];
            key.extend(upstream.args.iter().cloned());
            Value::from(key).to_string()
        }
    }
}

#[cfg(test)]
mod tests;
