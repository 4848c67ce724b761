//! OpenTelemetry traces of governed calls, exported over OTLP/HTTP
//! (`telemetry` in helio.yaml; see docs/observability.md).
//!
//! Off unless `telemetry.otlp_endpoint` is set; then nothing is timed or
//! recorded for traces. On, each governed call is a span (continuing the
//! client's W3C trace context) with a child per stage (and per state
//! operation a stage made), the state commit and settlement, the approval
//! wait and the upstream call, whose context goes upstream. Spans leave
//! through the SDK's batch processor: a call never waits on the exporter,
//! and spans past its queue are dropped, never the call.
//!
//! One tracer for the process, as for [`crate::metrics`]: the call
//! lifecycle reaches it through the audit record of each call, the stage
//! chain and the state imports, and a handle threaded through each would
//! carry nothing but this.

mod call;
mod export;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::Telemetry;

pub use call::{CallStart, CallTrace, StageRun, StateOp, TraceContext, TraceHeaders};

/// How long the spans still queued at shutdown get to leave.
const SHUTDOWN_EXPORT: Duration = Duration::from_secs(5);

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The process's tracer, when traces are on.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Whether calls are traced (so timings are worth taking).
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("telemetry.otlp_endpoint: {0}")]
    Exporter(String),
    #[error("traces were already started in this process")]
    AlreadyStarted,
}

/// Traces being exported; [`Traces::shutdown`] sends what is queued.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Starts exporting, when `telemetry` names an endpoint.
    pub fn start(telemetry: &Telemetry) -> Result<Option<Self>, TracesError> {
        let Some(url) = &telemetry.traces_url else {
            return Ok(None);
        };
        let client = export::OtlpClient::new(url, telemetry.export_timeout)
            .map_err(|e| TracesError::Exporter(e.to_string()))?;
        let headers: HashMap<String, String> = telemetry
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.to_string(), value.expose().to_str().ok()?.to_owned()))
            })
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(telemetry.export_timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| TracesError::Exporter(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(telemetry.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // A client's sampling decision stands; calls without one are
        // sampled at the configured ratio.
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(telemetry.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        TRACER
            .set(provider.tracer("helio"))
            .map_err(|_| TracesError::AlreadyStarted)?;
        Ok(Some(Self { provider }))
    }

    /// Exports the spans still queued; blocks (up to [`SHUTDOWN_EXPORT`]).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_EXPORT) {
            tracing::warn!(%error, "not every trace span was exported at shutdown");
        }
    }
}
