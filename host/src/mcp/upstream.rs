//! The upstream leg: connections to the upstream, and the headers Helio sends.
//!
//! What reaches the upstream from a caller is an allowlist: `Authorization`,
//! the MCP transport headers the upstream needs to keep the session
//! (`Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`), and the `x-*`
//! headers the operator listed in `upstream.forward_headers`. Static
//! `upstream.headers` win over forwarded ones. `Content-Type`, `Accept`,
//! `Mcp-Method` and `Mcp-Name` are always Helio's own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::config;

pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// Caller headers that always pass: they carry the caller's credentials and
/// the transport session the upstream itself minted.
const RELAYED_CALLER_HEADERS: [HeaderName; 4] = [
    AUTHORIZATION,
    MCP_SESSION_ID,
    MCP_PROTOCOL_VERSION,
    LAST_EVENT_ID,
];

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
    /// Absolute URI, for connecting.
    uri: Uri,
    /// Origin-form URI (`/mcp?x`) and `Host` value, for the request line.
    path: Uri,
    host: HeaderValue,
    url: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    static_headers: Vec<(HeaderName, HeaderValue)>,
    forward_headers: Vec<HeaderName>,
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
        let bad_uri = || UpstreamSetupError::Uri(cfg.url.clone());
        let uri: Uri = cfg.url.parse().map_err(|_| bad_uri())?;
        let authority = uri.authority().ok_or_else(bad_uri)?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad_uri())?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| bad_uri())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            connector,
            uri,
            path,
            host,
            url: cfg.url.clone(),
            connect_timeout: cfg.connect_timeout,
            request_timeout: cfg.request_timeout,
            static_headers: cfg
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().clone()))
                .collect(),
            forward_headers: cfg.forward_headers.clone(),
        })
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
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
        for (name, value) in &self.static_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(HOST, self.host.clone());
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if method == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = headers;
        request
    }

    async fn connect(&self) -> Result<(Sender, Connection), UpstreamError> {
        let unreachable = |reason: String| UpstreamError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let mut connector = self.connector.clone();
        let connecting = async {
            let stream = tower_service::Service::call(&mut connector, self.uri.clone())
                .await
                .map_err(|e| unreachable(error_chain(e.as_ref())))?;
            hyper::client::conn::http1::handshake(stream)
                .await
                .map_err(|e| unreachable(error_chain(&e)))
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(unreachable(format!(
                "no connection within upstream.connect_timeout ({})",
                humanize(self.connect_timeout)
            ))),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type Connection =
    hyper::client::conn::http1::Connection<MaybeHttpsStream<TokioIo<TcpStream>>, Full<Bytes>>;

/// A future that drives one upstream connection until it closes.
pub type ConnectionDriver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The upstream connection that belongs to one downstream connection.
///
/// A downstream HTTP/1 connection carries one exchange at a time, so it gets
/// one upstream connection of its own, and both are driven by the same task:
/// relaying a message then costs no cross-thread wake-ups, which is most of
/// a shared pool's latency on a small machine. The link reconnects when the
/// upstream closes the connection.
pub struct Link {
    upstream: Arc<Upstream>,
    sender: Mutex<Option<Sender>>,
    /// Hands new connections to the downstream connection's task to drive.
    drivers: mpsc::UnboundedSender<ConnectionDriver>,
}

impl Link {
    pub fn new(upstream: Arc<Upstream>, drivers: mpsc::UnboundedSender<ConnectionDriver>) -> Self {
        Self {
            upstream,
            sender: Mutex::new(None),
            drivers,
        }
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Sends a request; bounded by `request_timeout` up to the response head.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let timeout = self.upstream.request_timeout;
        match tokio::time::timeout(timeout, self.send_inner(request)).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(timeout)),
        }
    }

    async fn send_inner(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // A kept-alive connection the upstream has just closed fails before
        // the request is written; hyper hands the request back and it is
        // retried once on a fresh connection. Anything later is not retried:
        // the upstream may have acted on it.
        let mut fresh = false;
        loop {
            let mut sender = match self.take_sender() {
                Some(sender) => sender,
                None => {
                    fresh = true;
                    self.open().await?
                }
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(UpstreamError::Broken(
                        "upstream closed the connection".into(),
                    ));
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.put_sender(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(UpstreamError::Broken(error_chain(error.error()))),
                },
            }
        }
    }

    async fn open(&self) -> Result<Sender, UpstreamError> {
        let (sender, connection) = self.upstream.connect().await?;
        let driver = Box::pin(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error_chain(&error), "upstream connection ended");
            }
        });
        if self.drivers.send(driver).is_err() {
            return Err(UpstreamError::Broken(
                "downstream connection is closing".into(),
            ));
        }
        Ok(sender)
    }

    fn take_sender(&self) -> Option<Sender> {
        let sender = self.sender.lock().ok()?.take()?;
        (!sender.is_closed()).then_some(sender)
    }

    fn put_sender(&self, sender: Sender) {
        if let Ok(mut slot) = self.sender.lock() {
            *slot = Some(sender);
        }
    }
}

/// Stamps the standard `Mcp-Method` and `Mcp-Name` request headers.
/// Values that are not plain visible ASCII travel in the `=?base64?…?=`
/// sentinel form; an oversized name is left off.
pub fn stamp_method_headers(headers: &mut HeaderMap, method: &str, name: Option<&str>) {
    if let Some(value) = header_safe(method) {
        headers.insert(MCP_METHOD, value);
    }
    if let Some(value) = name.and_then(header_safe) {
        headers.insert(MCP_NAME, value);
    }
}

fn header_safe(text: &str) -> Option<HeaderValue> {
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

/// Native roots with the ring provider. A machine without CA certificates
/// still proxies plain-HTTP upstreams; HTTPS upstreams then fail to verify,
/// which is reported per request as an unreachable upstream.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping a system CA certificate");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!(
            "no system CA certificates found; HTTPS upstreams will fail TLS verification"
        );
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
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
