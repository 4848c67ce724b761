//! The running gateway: its three listeners, bound up front so a taken port
//! fails start before anything serves, and shut down together.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::approvals::{Approvals, Notifier, NotifierError};
use crate::audit::Audit;
use crate::config::{Config, Transport};
use crate::govern::{Governor, Holding};
use crate::pipeline::Active;
use crate::plugins::Runtime;
use crate::tools::{AdapterTools, ToolCatalog};
use crate::upstreams::Bridge;
use crate::{dashboard, mcp, sideband};

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the local endpoint of the stdio or SSE upstream: {0}")]
    Bridge(#[source] std::io::Error),
    #[error(transparent)]
    Upstream(#[from] mcp::UpstreamSetupError),
    #[error(transparent)]
    Approvals(#[from] NotifierError),
}

/// Listeners bound and ready to serve.
pub struct Gateway {
    pub mcp_addr: SocketAddr,
    pub dashboard_addr: Option<SocketAddr>,
    pub sdk_addr: Option<SocketAddr>,
    servers: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>,
    shutdown: CancellationToken,
    /// Held calls' tickets (when the operator API that resolves them runs).
    approvals: Option<Arc<Approvals>>,
    /// A stdio or SSE upstream's link and endpoint, stopped after the
    /// listeners.
    bridge: Option<Bridge>,
    /// The adapter API's pending evaluations, given back at shutdown.
    evaluations: Option<Arc<sideband::Evaluations>>,
}

impl Gateway {
    /// Binds every enabled listener. `sdk_token` is required when
    /// `sdk.enabled`; the caller decides where it comes from. `pipeline` is
    /// the stage chain, which the caller may replace later (hot reload).
    pub async fn bind(
        config: &Config,
        sideband_tokens: Option<&sideband::Tokens>,
        pipeline: Active,
        runtime: Arc<Runtime>,
        audit: Arc<Audit>,
    ) -> Result<Self, StartError> {
        let bridge = match config.upstream.transport {
            Transport::StreamableHttp => None,
            Transport::Stdio | Transport::Sse => {
                Some(Bridge::start(config).await.map_err(StartError::Bridge)?)
            }
        };
        // Baselines belong to the server as configured (its URL or command),
        // not to the bridge's local endpoint, which changes at every start.
        let tools = Arc::new(ToolCatalog::restore(
            &config.upstream,
            runtime.state().clone(),
            audit.clone(),
        ));
        // The relay speaks streamable HTTP; a stdio or SSE server is
        // reached through its local endpoint.
        let relayed;
        let config = match &bridge {
            Some(bridge) => {
                let mut with_endpoint = config.clone();
                bridge.authenticate(&mut with_endpoint.upstream);
                relayed = with_endpoint;
                &relayed
            }
            None => config,
        };
        let shutdown = CancellationToken::new();
        let mut servers: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();

        let listener = bind("listen.port", &config.listen.host, config.listen.port).await?;
        let mcp_addr = local_addr(&listener);
        let state = runtime.state().clone();
        // Adapters' tool definitions, per origin (with the SDK sideband on).
        let adapter_tools = config
            .sdk
            .enabled
            .then(|| Arc::new(AdapterTools::new(state.clone(), audit.clone())));
        let mut core = Governor::new(pipeline.clone(), runtime, audit.clone());
        // The adapter API's pending evaluations (the sideband's) and the
        // adapters seen (the operator API lists them).
        let evaluations = config.sdk.enabled.then(|| {
            let evaluations = Arc::new(sideband::Evaluations::new(config.sdk.evaluation_ttl));
            spawn_evaluation_sweep(evaluations.clone());
            evaluations
        });
        // Tickets are resolved through the operator API: without it, a call
        // that needs an approval is refused, never held for nobody.
        // Tickets are resolved through the operator API or from Slack.
        let resolvable = config.dashboard.enabled
            || config.approval.channels.iter().any(|c| c.kind() == "slack");
        let approvals = match resolvable {
            true => {
                let notifier = Notifier::new(&config.approval.channels)?;
                let approvals = Arc::new(Approvals::restore(state.clone()).notifying(notifier));
                spawn_ticket_retention(approvals.clone(), config.audit.retention);
                Some(approvals)
            }
            false => None,
        };
        if let Some(registry) = &approvals {
            core = core.holding_approvals(Holding {
                registry: registry.clone(),
                timeout: config.approval.timeout,
                on_timeout: config.approval.default_on_timeout,
            });
        }
        let core = Arc::new(core);
        let mcp = mcp::McpServer::new(
            config,
            core.clone(),
            tools.clone(),
            approvals.clone(),
            shutdown.clone(),
        )?;
        servers.push(Box::pin(mcp.serve(listener)));

        let mut dashboard_addr = None;
        if config.dashboard.enabled {
            let listener = bind(
                "dashboard.port",
                &config.dashboard.host,
                config.dashboard.port,
            )
            .await?;
            dashboard_addr = Some(local_addr(&listener));
            servers.push(serve_router(
                listener,
                "dashboard",
                config,
                dashboard::router(
                    config,
                    dashboard::Sources {
                        audit,
                        state: state.clone(),
                        pipeline: pipeline.clone(),
                        approvals: approvals.clone(),
                        tools,
                        evaluations: evaluations.clone(),
                        adapter_tools: adapter_tools.clone(),
                    },
                    shutdown.clone(),
                ),
                shutdown.clone(),
            ));
        }

        let mut sdk_addr = None;
        if let (Some(tokens), Some(evaluations), Some(adapter_tools)) =
            (sideband_tokens, &evaluations, adapter_tools)
        {
            let listener = bind("sdk.port", &config.sdk.host, config.sdk.port).await?;
            sdk_addr = Some(local_addr(&listener));
            let door = sideband::AdapterDoor {
                governor: core.clone(),
                evaluations: evaluations.clone(),
                tools: adapter_tools,
                approvals: approvals.clone(),
            };
            servers.push(serve_router(
                listener,
                "sdk",
                config,
                sideband::router(tokens, state, pipeline, door),
                shutdown.clone(),
            ));
        }

        Ok(Self {
            mcp_addr,
            dashboard_addr,
            sdk_addr,
            servers,
            shutdown,
            approvals,
            bridge,
            evaluations,
        })
    }

    /// Serves until `signal` resolves, then stops accepting, ends the
    /// long-lived server-to-client streams, and gives in-flight calls up to
    /// [`SHUTDOWN_GRACE`] to finish.
    pub async fn serve(self, signal: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = JoinSet::new();
        for server in self.servers {
            tasks.spawn(server);
        }
        let shutdown = self.shutdown.clone();
        tokio::select! {
            () = signal => {}
            // A listener that dies on its own takes the gateway down with it.
            _ = tasks.join_next() => tracing::error!("a listener stopped unexpectedly; shutting down"),
        }
        shutdown.cancel();
        // Held calls end now (`shutdown_cancelled`), not at the grace's end.
        if let Some(approvals) = &self.approvals {
            approvals.cancel_all();
        }
        // Evaluations nobody can report any more give back what they hold
        // (recorded as expired), before the state store closes; held ones
        // first end their wait on the tickets just cancelled.
        if let Some(evaluations) = &self.evaluations {
            evaluations.settle_held(SHUTDOWN_GRACE).await;
            evaluations.expire_all();
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "in-flight requests did not finish within the shutdown grace period; closing them"
            );
            tasks.abort_all();
        }
        // Last: calls still finishing needed the server.
        if let Some(bridge) = self.bridge {
            bridge.stop().await;
        }
    }
}

/// Tickets are kept as long as the audit records of their calls
/// (`audit.retention`), checked every minute.
/// Every 30 s: adapter evaluations past their TTL give back what they hold.
fn spawn_evaluation_sweep(evaluations: Arc<sideband::Evaluations>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        every.tick().await;
        loop {
            every.tick().await;
            let evaluations = evaluations.clone();
            // Settling writes records and state: off the async workers.
            let _ = tokio::task::spawn_blocking(move || evaluations.sweep()).await;
        }
    });
}

fn spawn_ticket_retention(approvals: Arc<Approvals>, retention: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
            approvals.forget_before(crate::state::now_ms().saturating_sub(retention_ms));
        }
    });
}

/// Serves an axum router (the operator API, the SDK sideband, a bridged
/// upstream's local endpoint) with the same connection bounds as
/// the MCP listener ([`crate::serve`]).
pub(crate) fn serve_router(
    listener: TcpListener,
    name: &'static str,
    config: &Config,
    router: Router,
    shutdown: CancellationToken,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let handle = move |request| {
        let mut router = router.clone();
        async move {
            match tower_service::Service::call(&mut router, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    Box::pin(crate::serve::serve(
        listener,
        name,
        config.connections.clone(),
        handle,
        shutdown,
    ))
}

async fn bind(key: &'static str, host: &str, port: u16) -> Result<TcpListener, StartError> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind { key, addr, source })
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
