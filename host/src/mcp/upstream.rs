//! The upstream leg: connections to the upstream, and the headers Helio sends.
//!
//! What reaches the upstream from a caller is an allowlist: `Authorization`,
//! the MCP transport headers the upstream needs to keep the session
//! (`Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`), the W3C
//! trace context (`traceparent`, `tracestate`; a traced call carries its
//! upstream span's instead), the caller's own `Mcp-Method`, `Mcp-Name` and
//! `Mcp-Param-*` (the upstream checks them against the body, whose method,
//! name and arguments Helio forwards unchanged; Helio has already refused a
//! method or name that disagrees), and the `x-*` headers
//! the operator listed in `upstream.forward_headers`. Static
//! `upstream.headers` win over forwarded ones. `Content-Type` and `Accept`
//! are Helio's own; `Mcp-Method` and `Mcp-Name` are stamped from the body
//! only where the caller sent none.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config;
use crate::govern::Era;
use crate::traces::TraceHeaders;

pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// `Mcp-Param-{Name}`: a tool argument mirrored in a header (MCP 2026-07-28,
/// from the tool's `x-mcp-header` schema annotations).
const MCP_PARAM_PREFIX: &str = "mcp-param-";

/// Caller headers that always pass: they carry the caller's credentials and
/// the transport session the upstream itself minted.
const RELAYED_CALLER_HEADERS: [HeaderName; 6] = [
    AUTHORIZATION,
    MCP_SESSION_ID,
    MCP_PROTOCOL_VERSION,
    LAST_EVENT_ID,
    TRACEPARENT,
    TRACESTATE,
];

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `Mcp-Name` values above this size are left off rather than sent.
const MAX_NAME_HEADER_BYTES: usize = 8 * 1024;

/// Why the upstream did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("Upstream MCP server at {url} is unreachable — is it running? ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("upstream request timed out after {}", humanize(*.0))]
    Timeout(Duration),
    #[error("upstream connection failed: {0}")]
    Broken(String),
}

impl UpstreamError {
    /// A short machine-readable reason for `data.failure_reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable { .. } => "unreachable",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Broken(_) => "connection_error",
        }
    }
}

pub fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The configured upstream: where it is, how to reach it, which headers go.
pub struct Upstream {
    connector: HttpsConnector<HttpConnector>,
    uri: Uri,
    url: String,
    request_timeout: Duration,
    static_headers: Vec<(HeaderName, HeaderValue)>,
    forward_headers: Vec<HeaderName>,
    /// `upstream.protocol_version`, unless `auto`: the era Helio's own
    /// requests (priming, revalidation) speak, without probing.
    pinned_era: Option<Era>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("upstream.url \"{0}\" cannot be used as a request URI")]
    Uri(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

impl Upstream {
    pub fn new(cfg: &config::Upstream) -> Result<Self, UpstreamSetupError> {
        let uri: Uri = cfg
            .url
            .parse()
            .map_err(|_| UpstreamSetupError::Uri(cfg.url.clone()))?;
        let connector =
            crate::outbound::connector(uri.scheme_str() == Some("https"), cfg.connect_timeout)?;
        Ok(Self {
            connector,
            uri,
            url: cfg.url.clone(),
            request_timeout: cfg.request_timeout,
            static_headers: cfg
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().clone()))
                .collect(),
            forward_headers: cfg.forward_headers.clone(),
            pinned_era: match cfg.protocol_version.as_str() {
                "auto" => None,
                pinned => Some(Era::of(Some(pinned))),
            },
        })
    }

    /// The era `upstream.protocol_version` pins, if it does.
    pub fn pinned_era(&self) -> Option<Era> {
        self.pinned_era
    }

    /// `upstream.url` (for messages).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// A connection pool for the calling thread. Each MCP connection worker
    /// owns one: its connections are driven by tasks on that worker's
    /// single-threaded runtime, so a relayed exchange never wakes another
    /// thread, and keep-alive connections are reused across the downstream
    /// connections the worker serves.
    pub fn pool(&self) -> Pool {
        Pool {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(self.connector.clone()),
        }
    }

    /// Builds an upstream request carrying the allowed caller headers.
    pub fn request(
        &self,
        method: Method,
        caller: &HeaderMap,
        accept: &'static str,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut headers = HeaderMap::with_capacity(8 + self.static_headers.len());
        for name in RELAYED_CALLER_HEADERS.iter().chain(&self.forward_headers) {
            for value in caller.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        // The caller's MCP 2026-07-28 request headers, as sent: the body
        // they describe goes upstream byte for byte.
        for (name, value) in caller {
            let name_text = name.as_str();
            if name_text == "mcp-method"
                || name_text == "mcp-name"
                || name_text.starts_with(MCP_PARAM_PREFIX)
            {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.static_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if method == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = headers;
        request
    }

    /// Sends a request on `pool`; bounded by `request_timeout` up to the
    /// response head.
    pub async fn send(
        &self,
        pool: &Pool,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.request_timeout, pool.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout(self.request_timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Unreachable {
                url: self.url.clone(),
                reason: error_chain(&e),
            }),
            Ok(Err(e)) => Err(UpstreamError::Broken(error_chain(&e))),
        }
    }
}

/// One worker's upstream connections (see [`Upstream::pool`]).
#[derive(Clone)]
pub struct Pool {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Stamps the standard `Mcp-Method` and `Mcp-Name` request headers where
/// the caller sent none (a caller's own, already checked against the body,
/// are kept as sent). Values that are not plain visible ASCII travel in the
/// `=?base64?…?=` sentinel form; an oversized name is left off.
pub fn stamp_method_headers(headers: &mut HeaderMap, method: &str, name: Option<&str>) {
    if !headers.contains_key(MCP_METHOD) {
        if let Some(value) = header_safe(method) {
            headers.insert(MCP_METHOD, value);
        }
    }
    if !headers.contains_key(MCP_NAME) {
        if let Some(value) = name.and_then(header_safe) {
            headers.insert(MCP_NAME, value);
        }
    }
}

/// Replaces the caller's trace context with a traced call's own.
pub fn stamp_trace_headers(headers: &mut HeaderMap, trace: &TraceHeaders) {
    headers.remove(TRACESTATE);
    match HeaderValue::from_str(&trace.traceparent) {
        Ok(value) => headers.insert(TRACEPARENT, value),
        Err(_) => headers.remove(TRACEPARENT),
    };
    if let Some(value) = trace
        .tracestate
        .as_deref()
        .and_then(|state| HeaderValue::from_str(state).ok())
    {
        headers.insert(TRACESTATE, value);
    }
}

/// `text` as a header value: as it is when plain visible ASCII, else in the
/// `=?base64?…?=` form; none past the size a header may have.
pub(super) fn header_safe(text: &str) -> Option<HeaderValue> {
    let plain = !text.is_empty()
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && text.bytes().all(|b| (0x20..0x7f).contains(&b));
    let encoded;
    let value = if plain {
        text
    } else {
        encoded = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        );
        &encoded
    };
    if value.len() > MAX_NAME_HEADER_BYTES {
        return None;
    }
    HeaderValue::from_str(value).ok()
}

/// The error and its causes, for logs and `failure_reason` text.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_headers() {
        let mut h = HeaderMap::new();
        stamp_method_headers(&mut h, "tools/call", Some("lookup_order"));
        assert_eq!(
            h.get("mcp-method").and_then(|v| v.to_str().ok()),
            Some("tools/call")
        );
        assert_eq!(
            h.get("mcp-name").and_then(|v| v.to_str().ok()),
            Some("lookup_order")
        );

        let mut h = HeaderMap::new();
        stamp_method_headers(&mut h, "tools/call", Some("café"));
        assert_eq!(
            h.get("mcp-name").and_then(|v| v.to_str().ok()),
            Some("=?base64?Y2Fmw6k=?=")
        );

        let mut h = HeaderMap::new();
        stamp_method_headers(&mut h, "resources/read", Some(&"x".repeat(9000)));
        assert!(h.get("mcp-name").is_none());
    }
}
