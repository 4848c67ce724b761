//! A legacy HTTP+SSE upstream (MCP 2024-11-05): one long `GET` stream the
//! server speaks on, whose first `endpoint` event names the URL to `POST`
//! messages to. Helio holds one such connection for every client (the
//! [`Mux`] keeps them apart), initializes it itself, and when the stream
//! drops — the original never reconnects — fails the requests in flight
//! and reconnects with backoff (1 s doubling to 30 s, for as long as it
//! takes), initializing the new connection before any request is sent.
//!
//! Only the operator's static `upstream.headers` go with these requests:
//! the connection is shared, so no client's credentials may ride on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::child::initialize;
use super::mux::{Link, Mux};
use crate::config::Upstream;
use crate::sse::EventScanner;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// A connection that stayed up this long starts the backoff over.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// Largest event Helio reads from the stream.
const MAX_EVENT_BYTES: usize = 64 << 20;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Connects, relays and reconnects until `shutdown`.
pub async fn run(
    config: Upstream,
    mux: Arc<Mux>,
    mut outbox: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
) {
    let https = config.url.starts_with("https://");
    let client: HttpClient = match crate::outbound::connector(https, config.connect_timeout) {
        Ok(connector) => Client::builder(TokioExecutor::new()).build(connector),
        Err(error) => {
            mux.set_link(Link::Dead(format!("TLS setup failed: {error}")));
            return;
        }
    };
    let mut delay = FIRST_RETRY;
    loop {
        let started = Instant::now();
        let why = tokio::select! {
            why = connection(&config, &client, &mux, &mut outbox) => why,
            () = shutdown.cancelled() => return,
        };
        mux.set_link(Link::Down(Some(why.clone())));
        while outbox.try_recv().is_ok() {}
        mux.lost(&why);
        if started.elapsed() >= STABLE_RUN {
            delay = FIRST_RETRY;
        }
        tracing::warn!("SSE upstream: {why}; reconnecting in {}s", delay.as_secs());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// One connection: the stream, the endpoint, Helio's `initialize`, then
/// messages both ways until the stream ends. Returns why it ended.
async fn connection(
    config: &Upstream,
    client: &HttpClient,
    mux: &Arc<Mux>,
    outbox: &mut mpsc::UnboundedReceiver<String>,
) -> String {
    let base: url::Url = match config.url.parse() {
        Ok(url) => url,
        Err(error) => return format!("upstream.url cannot be used: {error}"),
    };
    let mut stream = request(config, Method::GET, base.as_str(), Bytes::new());
    stream
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let response = match tokio::time::timeout(config.connect_timeout, client.request(stream)).await
    {
        Ok(Ok(response)) if response.status().is_success() => response,
        Ok(Ok(response)) => {
            return format!(
                "the SSE stream was refused (HTTP {})",
                response.status().as_u16()
            )
        }
        Ok(Err(error)) => return format!("cannot connect to {}: {error}", config.url),
        Err(_) => {
            return format!(
                "no answer from {} within {}s",
                config.url,
                config.connect_timeout.as_secs()
            )
        }
    };
    let mut body = response.into_body();
    let mut scanner = EventScanner::new();
    let mut endpoint: Option<String> = None;
    let mut read = 0usize;
    let initialize = initialize(mux, config.connect_timeout);
    tokio::pin!(initialize);
    let mut initialized = false;
    loop {
        tokio::select! {
            frame = body.frame() => {
                let chunk = match frame {
                    None => return "the SSE stream ended".into(),
                    Some(Err(error)) => return format!("the SSE stream broke: {error}"),
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(chunk) => chunk,
                        Err(_) => continue,
                    },
                };
                let mut problem = None;
                scanner.feed_events(&chunk, |event, data| {
                    read = 0;
                    match event {
                        b"endpoint" if endpoint.is_none() => match same_origin(&base, data) {
                            Ok(url) => endpoint = Some(url),
                            Err(why) => problem = Some(why),
                        },
                        b"" | b"message" => mux.received(&String::from_utf8_lossy(data)),
                        _ => {}
                    }
                });
                if let Some(why) = problem {
                    return why;
                }
                read += chunk.len();
                if scanner.mid_event() && read > MAX_EVENT_BYTES {
                    return format!("an SSE event over {} MiB", MAX_EVENT_BYTES >> 20);
                }
            }
            message = outbox.recv(), if endpoint.is_some() => {
                let (Some(message), Some(endpoint)) = (message, &endpoint) else {
                    return "Helio is shutting down".into();
                };
                // Each POST on its own: a slow one holds no other back.
                let post = request(config, Method::POST, endpoint, Bytes::from(message));
                let (client, timeout) = (client.clone(), config.request_timeout);
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, client.request(post)).await {
                        Ok(Ok(response)) if response.status().is_success() => {}
                        Ok(Ok(response)) => tracing::warn!(status = response.status().as_u16(), "SSE upstream refused a message"),
                        Ok(Err(error)) => tracing::warn!(%error, "a message could not be posted to the SSE upstream"),
                        Err(_) => tracing::warn!("posting a message to the SSE upstream timed out"),
                    }
                });
            }
            result = &mut initialize, if endpoint.is_some() && !initialized => {
                initialized = true;
                match result {
                    Ok(init) => {
                        tracing::info!(endpoint = endpoint.as_deref().unwrap_or_default(), "SSE upstream connected and initialized");
                        mux.set_link(Link::Up(init));
                    }
                    Err(why) => return why,
                }
            }
        }
    }
}

/// The `endpoint` event's URL, resolved against the stream's, if it is on
/// the same origin (a server may not send Helio's messages elsewhere).
fn same_origin(base: &url::Url, data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    let url = base
        .join(text.trim())
        .map_err(|error| format!("the endpoint event is not a URL ({error})"))?;
    if url.origin() != base.origin() {
        return Err(format!(
            "the endpoint event points to another origin ({}); refused",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url.to_string())
}

fn request(config: &Upstream, method: Method, url: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method.clone();
    if let Ok(uri) = url.parse::<Uri>() {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    for (name, value) in &config.headers {
        headers.insert(name.clone(), value.expose().clone());
    }
    if method == Method::POST {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_must_stay_on_the_servers_origin() {
        let base: url::Url = "http://127.0.0.1:9000/sse".parse().expect("url");
        assert_eq!(
            same_origin(&base, b"/messages/?session_id=abc").as_deref(),
            Ok("http://127.0.0.1:9000/messages/?session_id=abc")
        );
        assert!(same_origin(&base, b"http://evil.example/messages").is_err());
        assert!(same_origin(&base, b"http://127.0.0.1:9001/messages").is_err());
    }
}
