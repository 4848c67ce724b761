//! How every listener serves HTTP/1.1 connections, with the same bounds:
//! a request head must arrive whole within `connections.header_timeout`
//! (which also closes idle keep-alive connections), its body within
//! `connections.body_timeout` of the head, and no listener holds more than
//! `connections.max_per_listener` connections (past that it stops accepting
//! until one closes, so the kernel's backlog queues newcomers). A client that
//! stalls its body gets `408`-class failure and its connection is closed, so
//! slow clients cannot pin a listener's connections.
//!
//! An answer given before its request's body was read whole (a body past a
//! size limit, a refusal that needs no body) says `Connection: close`: the
//! unread rest cannot be told apart from a next request, so the connection
//! ends after the answer, and the client must know not to reuse it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Connections;

/// After a stalled body, the connection gets this long to send its answer
/// before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The connection slots of one listener.
#[derive(Clone)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    listener: &'static str,
    warned: Arc<AtomicBool>,
}

impl Slots {
    pub fn new(listener: &'static str, bounds: &Connections) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(bounds.max_per_listener)),
            listener,
            warned: Arc::default(),
        }
    }

    /// Waits for a free slot (held until the connection closes); none once
    /// `shutdown` is cancelled.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                listener = self.listener,
                "connections.max_per_listener reached: new connections wait until one closes (logged once)"
            );
        }
        tokio::select! {
            permit = self.semaphore.clone().acquire_owned() => permit.ok(),
            () = shutdown.cancelled() => None,
        }
    }
}

/// Serves a listener's connections on the current runtime until `shutdown`:
/// each one bounded, each request answered by `handle`.
pub async fn serve<H, F>(
    listener: TcpListener,
    name: &'static str,
    bounds: Connections,
    handle: H,
    shutdown: CancellationToken,
) where
    H: Fn(Request<TimedBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<axum::body::Body>> + Send + 'static,
{
    let slots = Slots::new(name, &bounds);
    let connections = TaskTracker::new();
    loop {
        let Some(permit) = slots.acquire(&shutdown).await else {
            break;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((tcp, _)) => {
                connections.spawn(connection(
                    tcp,
                    permit,
                    bounds.clone(),
                    handle.clone(),
                    shutdown.clone(),
                ));
            }
            Err(error) => {
                // Out of file descriptors and similar: back off, keep serving.
                tracing::warn!(listener = name, %error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The address a request's connection came from (a request extension), for
/// what is counted per client, such as failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// Serves one connection, holding its slot until it closes.
pub async fn connection<H, F>(
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    bounds: Connections,
    handle: H,
    shutdown: CancellationToken,
) where
    H: Fn(Request<TimedBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<axum::body::Body>> + Send + 'static,
{
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok().map(Peer);
    let stalled = Arc::new(Notify::new());
    let service = {
        let stalled = stalled.clone();
        let body_timeout = bounds.body_timeout;
        // One flag for the connection: HTTP/1.1 serves its requests one
        // after another, each read (or the connection closed) before the
        // next.
        let read_whole = Arc::new(AtomicBool::new(false));
        hyper::service::service_fn(move |request: Request<Incoming>| {
            read_whole.store(false, Ordering::Relaxed);
            let read_whole = read_whole.clone();
            let mut request = request.map(|body| {
                TimedBody::new(body, body_timeout, stalled.clone(), read_whole.clone())
            });
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            let answer = handle(request);
            async move {
                let mut response = answer.await;
                if !read_whole.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let server = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(server);
    tokio::select! {
        served = server.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => server.as_mut().graceful_shutdown(),
        () = stalled.notified() => {
            // Answer what can be answered, then let the connection go.
            server.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, server.as_mut()).await;
            return;
        }
    }
    if let Err(error) = server.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A request body that must arrive whole by a deadline set when its head
/// arrived. The timer starts only if the body is not already there: a body
/// sent with its head (nearly every request) costs no timer.
pub struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Arc<Notify>,
    /// Set once the body has been read to its end (at once for a request
    /// without one).
    read_whole: Arc<AtomicBool>,
}

/// The body did not arrive within `connections.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {}s", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

impl TimedBody {
    fn new(
        inner: Incoming,
        timeout: Duration,
        stalled: Arc<Notify>,
        read_whole: Arc<AtomicBool>,
    ) -> Self {
        if inner.is_end_stream() {
            read_whole.store(true, Ordering::Relaxed);
        }
        Self {
            inner,
            deadline: Instant::now() + timeout,
            timeout,
            sleep: None,
            stalled,
            read_whole,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.inner.is_end_stream() {
                    this.read_whole.store(true, Ordering::Relaxed);
                }
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            Poll::Pending => {}
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.stalled.notify_one();
                Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves one request whose handler reads the body or not, and returns
    /// the raw answer head.
    async fn answer_head(read_body: bool, request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let handle = move |request: Request<TimedBody>| async move {
            if read_body {
                let _ = request.into_body().collect().await;
            }
            Response::new(axum::body::Body::from("ok"))
        };
        let served = tokio::spawn(serve(
            listener,
            "test",
            Connections::default(),
            handle,
            shutdown.clone(),
        ));
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request).await.expect("write");
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before an answer");
            head.extend_from_slice(&buf[..n]);
        }
        shutdown.cancel();
        drop(tcp);
        let _ = served.await;
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    }

    const WITH_BODY: &[u8] = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello";
    const WITHOUT_BODY: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn an_answer_given_before_the_body_was_read_closes_the_connection() {
        assert!(answer_head(false, WITH_BODY)
            .await
            .contains("connection: close"));
    }

    #[tokio::test]
    async fn a_connection_whose_request_was_read_whole_stays_open() {
        assert!(!answer_head(true, WITH_BODY)
            .await
            .contains("connection: close"));
        assert!(!answer_head(false, WITHOUT_BODY)
            .await
            .contains("connection: close"));
    }
}
