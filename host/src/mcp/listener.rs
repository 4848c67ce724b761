//! The MCP listener: an acceptor and a pool of single-threaded connection
//! workers, one per CPU.
//!
//! Each downstream connection lives on one worker thread for its whole life,
//! and that worker owns its own upstream connection pool, so relaying a
//! message never crosses threads. On a work-stealing runtime every relayed
//! exchange woke a second worker several times (futex and eventfd calls seen
//! in the relay benchmark), which cost tens of microseconds per call on a
//! two-core machine.

//!
//! Connections are bounded like every listener's ([`crate::serve`]): the
//! acceptor takes a slot before it accepts, and the slot travels with the
//! connection to its worker.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Connections;
use crate::serve::Slots;

use super::relay::Relay;

type Accepted = (std::net::TcpStream, OwnedSemaphorePermit);

pub(super) async fn serve(
    listener: TcpListener,
    relay: Arc<Relay>,
    bounds: Connections,
    shutdown: CancellationToken,
) {
    let count = std::thread::available_parallelism().map_or(1, usize::from);
    let mut workers = Vec::with_capacity(count);
    let mut finished = Vec::with_capacity(count);
    for index in 0..count {
        let (tx, rx) = mpsc::unbounded_channel::<Accepted>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let relay = relay.clone();
        let shutdown = shutdown.clone();
        let bounds = bounds.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("helio-mcp-{index}"))
            .spawn(move || {
                worker(rx, relay, bounds, shutdown);
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

    let slots = Slots::new("mcp", &bounds);
    let mut next = 0;
    loop {
        let Some(slot) = slots.acquire(&shutdown).await else {
            break;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted.and_then(|(tcp, _)| tcp.into_std()) {
            Ok(tcp) => {
                next = (next + 1) % workers.len();
                if workers[next].send((tcp, slot)).is_err() {
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
    mut incoming: mpsc::UnboundedReceiver<Accepted>,
    relay: Arc<Relay>,
    bounds: Connections,
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
        while let Some((tcp, slot)) = incoming.recv().await {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => {
                    let (relay, pool) = (relay.clone(), pool.clone());
                    let handle = move |request| {
                        let (relay, pool) = (relay.clone(), pool.clone());
                        async move { super::route(&relay, &pool, request).await }
                    };
                    connections.spawn(crate::serve::connection(
                        tcp,
                        slot,
                        bounds.clone(),
                        handle,
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
