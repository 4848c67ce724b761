//! The HTTP client the OTLP exporter sends with: Helio's own connector
//! (system CA certificates, the `ring` provider) on a small runtime of its
//! own. The SDK exports from a thread of its own, blocking on each export;
//! a runtime here keeps that thread off the gateway's runtime, so a slow
//! collector never takes a worker from calls, and shutdown order does not
//! matter.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError};

/// The most of a collector's answer that is read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

pub struct OtlpClient {
    /// Taken on drop, which may happen on a runtime's thread.
    runtime: Option<tokio::runtime::Runtime>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpClient {
    /// A client for `url`, each export bounded by `timeout` (connecting,
    /// sending and reading the answer).
    pub fn new(url: &str, timeout: Duration) -> std::io::Result<Self> {
        let https = url.starts_with("https://");
        let connector =
            crate::outbound::connector(https, timeout).map_err(std::io::Error::other)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            timeout,
        })
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

impl HttpClient for OtlpClient {
    // `async_trait`'s shape, written out: the exporter awaits this on its
    // own thread, which runs it to the end on this client's runtime.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let outcome = match &self.runtime {
            Some(runtime) => runtime.block_on(async {
                match tokio::time::timeout(self.timeout, self.send(request)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("no answer within {:?}", self.timeout).into()),
                }
            }),
            None => Err("the exporter is shut down".into()),
        };
        Box::pin(std::future::ready(outcome))
    }
}

impl Drop for OtlpClient {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
