//! The MCP listener: an acceptor and a pool of single-threaded connection
//! workers, one per CPU.
//!
//! Each downstream connection lives on one worker thread for its whole life,
//! and that worker owns its own upstream connection pool, so relaying a
//! message never crosses threads. On a work-stealing runtime every relayed
//! exchange woke a second worker several times (futex and eventfd calls seen
//! in the relay benchmark), which cost tens of microseconds per call on a
//! two-core machine.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::relay::Relay;
use super::upstream::Pool;

/// An idle keep-alive connection (or one trickling its request head) is
/// closed after this long, like nginx's `keepalive_timeout`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);

pub(super) async fn serve(listener: TcpListener, relay: Arc<Relay>, shutdown: CancellationToken) {
    let count = std::thread::available_parallelism().map_or(1, usize::from);
    let mut workers = Vec::with_capacity(count);
    let mut finished = Vec::with_capacity(count);
    for index in 0..count {
        let (tx, rx) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let relay = relay.clone();
        let shutdown = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("helio-mcp-{index}"))
            .spawn(move || {
                worker(rx, relay, shutdown);
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) => {
                workers.push(tx);
                finished.push(done_rx);
            }
            Err(error) => tracing::error!(%error, "cannot start an MCP connection worker"),
        }
    }
    if workers.is_empty() {
        tracing::error!("no MCP connection workers; the MCP listener is not serving");
        return;
    }

    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted.and_then(|(tcp, _)| tcp.into_std()) {
            Ok(tcp) => {
                next = (next + 1) % workers.len();
                if workers[next].send(tcp).is_err() {
                    tracing::error!(worker = next, "an MCP connection worker has stopped");
                }
            }
            Err(error) => {
                // Out of file descriptors and similar: back off, keep serving.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(workers);
    for done in finished {
        let _ = done.await;
    }
}

/// Runs one worker thread: serves the connections handed to it until the
/// acceptor goes away, then waits for them to finish.
fn worker(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    relay: Arc<Relay>,
    shutdown: CancellationToken,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start an MCP connection worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let pool = relay.upstream.pool();
        let connections = TaskTracker::new();
        while let Some(tcp) = incoming.recv().await {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => {
                    connections.spawn(connection(
                        tcp,
                        relay.clone(),
                        pool.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(error) => tracing::warn!(%error, "cannot register an accepted connection"),
            }
        }
        connections.close();
        connections.wait().await;
    });
}

async fn connection(tcp: TcpStream, relay: Arc<Relay>, pool: Pool, shutdown: CancellationToken) {
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let relay = relay.clone();
        let pool = pool.clone();
        async move { Ok::<_, std::convert::Infallible>(super::route(&relay, &pool, request).await) }
    });
    let server = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(server);
    tokio::select! {
        served = server.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%error, "downstream connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => server.as_mut().graceful_shutdown(),
    }
    if let Err(error) = server.await {
        tracing::debug!(%error, "downstream connection ended with an error");
    }
}
