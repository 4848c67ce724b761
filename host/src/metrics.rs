//! Prometheus metrics, served at `GET /metrics` on the operator port (see
//! docs/observability.md).
//!
//! One registry for the process, as Prometheus clients keep it: what is
//! observed happens in many places (the audit trail sees every call, the
//! pipeline every stage, the writers every batch), and a handle threaded
//! through each of them would carry nothing but this. Cardinality is
//! bounded: tool names past [`MAX_TOOL_LABELS`] are counted as `_other`,
//! reasons and stages come from Helio's own vocabulary and configuration,
//! and sessions, agents and arguments are never labels.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::audit::AuditRecord;

/// Distinct tool names that get a label of their own.
pub const MAX_TOOL_LABELS: usize = 200;
/// The label of every tool past [`MAX_TOOL_LABELS`].
pub const OTHER_TOOL: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriterLabels {
    writer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, 10 µs to ~84 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 24))
}

pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    blocks: Family<ReasonLabels, Counter>,
    governance: Histogram,
    upstream: Histogram,
    stages: Histograms<StageLabels>,
    stage_failures: Family<StageLabels, Counter>,
    approvals_pending: Gauge,
    writer_batches: Histograms<WriterLabels>,
    writer_queue: Family<WriterLabels, Gauge>,
    writer_failures: Family<WriterLabels, Counter>,
    state_errors: Counter,
    upstream_up: Gauge,
    upstream_restarts: Counter,
    /// The tool names labelled so far.
    tools: Mutex<HashSet<String>>,
}

/// One policy stage's series (handles onto the registry's).
#[derive(Clone)]
pub struct StageMeter {
    duration: Histogram,
    failures: Counter,
}

impl StageMeter {
    /// The stage evaluated a call in `took`, or failed.
    pub fn observe(&self, took: Duration, failed: bool) {
        self.duration.observe(took.as_secs_f64());
        if failed {
            self.failures.inc();
        }
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("helio");
        let metrics = Self {
            calls: Family::default(),
            blocks: Family::default(),
            governance: latency(),
            upstream: latency(),
            stages: Family::new_with_constructor(latency),
            stage_failures: Family::default(),
            approvals_pending: Gauge::default(),
            writer_batches: Family::new_with_constructor(latency),
            writer_queue: Family::default(),
            writer_failures: Family::default(),
            state_errors: Counter::default(),
            upstream_up: Gauge::default(),
            upstream_restarts: Counter::default(),
            tools: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "calls",
            "Tool calls by tool and decision (allowed, blocked, dry_run)",
            metrics.calls.clone(),
        );
        registry.register(
            "blocks",
            "Blocked tool calls by block reason",
            metrics.blocks.clone(),
        );
        registry.register(
            "governance_duration_seconds",
            "Time Helio spent on a call itself (total minus upstream and approval wait)",
            metrics.governance.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time the upstream (or, for the adapter API, the caller) took to run a call",
            metrics.upstream.clone(),
        );
        registry.register(
            "stage_duration_seconds",
            "Time one policy stage took to evaluate a call",
            metrics.stages.clone(),
        );
        registry.register(
            "stage_failures",
            "Policy stage evaluations that failed (trap, timeout, memory, malformed verdict, state)",
            metrics.stage_failures.clone(),
        );
        registry.register(
            "approvals_pending",
            "Calls held for an approval now",
            metrics.approvals_pending.clone(),
        );
        registry.register(
            "writer_batch_duration_seconds",
            "Time a writer (audit, state) took to write one batch",
            metrics.writer_batches.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Items waiting for a writer (audit, state), as of its last batch",
            metrics.writer_queue.clone(),
        );
        registry.register(
            "writer_failures",
            "Batches a writer could not write",
            metrics.writer_failures.clone(),
        );
        registry.register(
            "state_errors",
            "Calls refused because governance state could not be read or written",
            metrics.state_errors.clone(),
        );
        registry.register(
            "upstream_up",
            "Whether the upstream answered Helio's last listing of its tools (1) or not (0)",
            metrics.upstream_up.clone(),
        );
        registry.register(
            "upstream_restarts",
            "Times a stdio upstream's process was restarted",
            metrics.upstream_restarts.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Helio's version", build);
        Self {
            registry,
            ..metrics
        }
    }

    /// A record the audit trail keeps: a call's decision, block reason and
    /// timings (other records — drift events, install scans — are not
    /// calls).
    pub fn recorded(&self, record: &AuditRecord) {
        if record.record_kind != "tool_call" {
            return;
        }
        let decision = match (&record.block_reason, record.dry_run) {
            (Some(_), _) => "blocked",
            (None, true) => "dry_run",
            (None, false) => "allowed",
        };
        let tool = self.tool_label(&record.tool_name);
        self.calls
            .get_or_create(&CallLabels { tool, decision })
            .inc();
        if let Some(reason) = &record.block_reason {
            if reason == "state_unavailable" {
                self.state_errors.inc();
            }
            self.blocks
                .get_or_create(&ReasonLabels {
                    reason: reason.clone(),
                })
                .inc();
        }
        self.governance.observe(record.proxy_compute_ms / 1e3);
        if let Some(upstream) = record.upstream_latency_ms {
            self.upstream.observe(upstream / 1e3);
        }
    }

    /// The label for `tool`: itself while fewer than [`MAX_TOOL_LABELS`]
    /// names are labelled, else `_other`.
    fn tool_label(&self, tool: &str) -> String {
        let mut tools = self.tools.lock().unwrap_or_else(|p| p.into_inner());
        if tools.contains(tool) {
            return tool.to_owned();
        }
        if tools.len() < MAX_TOOL_LABELS {
            tools.insert(tool.to_owned());
            return tool.to_owned();
        }
        OTHER_TOOL.to_owned()
    }

    /// Stage `stage`'s series, for its chain to keep: observing through it
    /// takes no lock and allocates no label per call.
    pub fn stage_meter(&self, stage: &str) -> StageMeter {
        let labels = StageLabels {
            stage: stage.to_owned(),
        };
        StageMeter {
            duration: self.stages.get_or_create(&labels).clone(),
            failures: self.stage_failures.get_or_create(&labels).clone(),
        }
    }

    /// Writer `writer` wrote a batch in `took` (or failed to); `queued`
    /// items wait behind it.
    pub fn batch(&self, writer: &'static str, took: Duration, failed: bool, queued: usize) {
        let labels = WriterLabels { writer };
        self.writer_batches
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.writer_queue
            .get_or_create(&labels)
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        if failed {
            self.writer_failures.get_or_create(&labels).inc();
        }
    }

    /// Whether the upstream answered Helio's own listing.
    pub fn upstream_up(&self, up: bool) {
        self.upstream_up.set(i64::from(up));
    }

    /// A stdio upstream's process was restarted.
    pub fn upstream_restarted(&self) {
        self.upstream_restarts.inc();
    }

    /// The exposition (OpenMetrics text), with the gauges read at scrape
    /// time set first.
    pub fn encode(&self, approvals_pending: usize) -> String {
        self.approvals_pending
            .set(i64::try_from(approvals_pending).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "the metrics could not be encoded");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(tool: &str, block_reason: Option<&str>, dry_run: bool) -> AuditRecord {
        AuditRecord {
            tool_name: tool.into(),
            record_kind: "tool_call",
            block_reason: block_reason.map(str::to_owned),
            dry_run,
            proxy_compute_ms: 0.2,
            upstream_latency_ms: (block_reason.is_none() && !dry_run).then_some(3.0),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn calls_are_counted_by_decision_with_bounded_tool_labels() {
        let metrics = Metrics::new();
        metrics.recorded(&call("echo", None, false));
        metrics.recorded(&call("echo", Some("state_unavailable"), false));
        metrics.recorded(&call("pay", None, true));
        metrics.recorded(&AuditRecord {
            record_kind: "drift_event",
            ..call("echo", None, false)
        });
        for i in 0..MAX_TOOL_LABELS + 5 {
            metrics.recorded(&call(&format!("t{i}"), None, false));
        }
        let text = metrics.encode(2);
        assert!(text.contains("helio_calls_total{tool=\"echo\",decision=\"allowed\"} 1\n"));
        assert!(text.contains("helio_calls_total{tool=\"echo\",decision=\"blocked\"} 1\n"));
        assert!(text.contains("helio_calls_total{tool=\"pay\",decision=\"dry_run\"} 1\n"));
        assert!(text.contains("helio_blocks_total{reason=\"state_unavailable\"} 1\n"));
        assert!(text.contains("helio_state_errors_total 1\n"));
        assert!(text.contains("helio_approvals_pending 2\n"));
        // echo and pay took two of the labels; the rest of the tools share _other.
        let other = MAX_TOOL_LABELS + 5 - (MAX_TOOL_LABELS - 2);
        assert!(text.contains(&format!(
            "helio_calls_total{{tool=\"_other\",decision=\"allowed\"}} {other}\n"
        )));
        assert!(text.contains(&format!(
            "helio_governance_duration_seconds_count {}\n",
            MAX_TOOL_LABELS + 8
        )));
    }
}
