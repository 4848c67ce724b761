use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::DemoTransport;
use crate::config;
use crate::demo;
use crate::pipeline::Pipeline;
use crate::plugins::Runtime;
use crate::state::LocalStore;

/// The example policy the demo runs, shipped in `examples/demo/helio.yaml`.
const DEMO_CONFIG: &str = include_str!("../../../examples/demo/helio.yaml");

/// The demo MCP server alone, on stdio.
pub fn serve_stdio() -> anyhow::Result<()> {
    // Logs go to stderr, which Helio drains into its own log.
    super::init_logging()?;
    super::start::runtime()?.block_on(demo::serve_stdio())?;
    Ok(())
}

/// The demo MCP server alone, over streamable HTTP, until SIGINT or SIGTERM.
pub fn serve_http(address: std::net::SocketAddr) -> anyhow::Result<()> {
    super::init_logging()?;
    super::start::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        tracing::info!("demo MCP server listening on http://{address}/mcp");
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        let signal = super::shutdown_signal();
        tokio::spawn(async move {
            signal.await;
            stopping.cancel();
        });
        demo::serve(listener, stop).await?;
        Ok(())
    })
}

pub fn run(transport: DemoTransport, drive: bool) -> anyhow::Result<()> {
    super::init_logging()?;
    super::start::runtime()?.block_on(async {
        let (listener, upstream_addr) = demo::bind().await.context("cannot start the demo MCP server")?;
        let upstream_url = format!("http://{upstream_addr}/mcp");
        // The operator API resolves held refunds, so it needs a secret.
        let api_secret = crate::auth::generate_token().context("cannot generate the demo's operator secret")?;
        let lookup = |name: &str| match name {
            "HELIO_DEMO_UPSTREAM_URL" => Some(upstream_url.clone()),
            "HELIO_DEMO_API_SECRET" => Some(api_secret.clone()),
            other => std::env::var(other).ok(),
        };
        let source = Path::new("examples/demo/helio.yaml");
        let mut loaded = config::parse(DEMO_CONFIG, source, &lookup).map_err(|e| anyhow::anyhow!(e.report()))?;
        if transport == DemoTransport::Stdio {
            // The same demo server, as a child process: this binary again.
            let exe = std::env::current_exe().context("cannot find the helio binary to run the demo server")?;
            let upstream = &mut loaded.config.upstream;
            upstream.transport = config::Transport::Stdio;
            upstream.url = "stdio://".into();
            upstream.command = Some(exe.display().to_string());
            upstream.args = vec!["demo-server".into()];
        }
        // The demo keeps its state in memory and its audit trail in a
        // temporary database, removed when it stops.
        let scratch = Scratch::create()?;
        loaded.config.audit.path = scratch.0.join("audit.db").display().to_string();
        let audit = crate::audit::Audit::open(&loaded.config).context("cannot open the demo's audit database")?;
        let plugins = Runtime::new(LocalStore::in_memory())?;
        let pipeline = Pipeline::build(&loaded.config, &plugins).map_err(|issues| {
            anyhow::anyhow!(config::ConfigError::Invalid { path: source.to_owned(), issues }.report())
        })?;
        let launch = super::start::Launch {
            config: loaded.config,
            pipeline,
            plugins,
            audit,
            warnings: loaded.warnings,
            label: "built-in demo (examples/demo/helio.yaml)".into(),
            watch: None,
        };

        let stop_upstream = CancellationToken::new();
        let stop_agent = CancellationToken::new();
        // Over stdio, Helio spawns the demo server itself.
        let upstream = match transport {
            DemoTransport::StreamableHttp => Some(tokio::spawn(demo::serve(listener, stop_upstream.clone()))),
            DemoTransport::Stdio => None,
        };
        let result = launch.run(|gateway| {
            let mcp = format!("http://{}/mcp", gateway.mcp_addr);
            super::say("");
            super::say("Helio demo is running in front of a demo shop MCP server.");
            super::say(format!("  Connect any MCP client (streamable HTTP) to: {mcp}"));
            super::say(format!("    Claude Code:     claude mcp add --transport http helio-demo {mcp}"));
            super::say("    MCP Inspector:   npx @modelcontextprotocol/inspector  (Streamable HTTP, URL above)");
            super::say("  Tools: lookup_order, search_docs, process_refund, create_payment, delete_record");
            super::say("  Policy: deletes denied; refunds only after a lookup_order in the same session, within a");
            super::say("          500 USD daily budget, and over 100 only once an operator approves; payments");
            super::say("          rehearsed (dry run); search_docs limited to 20 calls a minute per session.");
            if let Some(addr) = gateway.dashboard_addr {
                super::say_secret(
                    format!("  Dashboard:     http://{addr}/   (sign in with this run's secret: {api_secret})"),
                    "  Dashboard: this run's secret is not shown in JSON logs; run the demo with text logs to see it",
                );
                super::say_secret(format!("  Operator API:  export HELIO_SECRET={api_secret}"), "");
                super::say(format!("  Audit trail:   curl -H \"authorization: Bearer $HELIO_SECRET\" http://{addr}/api/audit"));
                super::say("                 (live: /api/events; kept until the demo stops)");
                super::say(format!("  Held refunds:  curl -H \"authorization: Bearer $HELIO_SECRET\" http://{addr}/api/approvals"));
                super::say("    approve:     curl -H \"authorization: Bearer $HELIO_SECRET\" -d '{\"approved_by\":\"you\"}' \\");
                super::say(format!("                   http://{addr}/api/approvals/<id>/approve"));
            }
            match transport {
                DemoTransport::StreamableHttp => {
                    super::say(format!("  The demo server directly (for comparison): {upstream_url}"))
                }
                DemoTransport::Stdio => super::say("  The demo server runs as Helio's child process over stdio (`helio demo-server`), shared by every client."),
            }
            if drive {
                super::say("  A scripted agent (--drive) is calling the demo's tools as session \"demo-agent\".");
                tokio::spawn(demo::drive::drive(mcp, stop_agent.clone()));
            }
            super::say("Press Ctrl-C to stop.");
        })
        .await;
        stop_agent.cancel();
        stop_upstream.cancel();
        if let Some(upstream) = upstream {
            let _ = upstream.await;
        }
        result
    })
}

/// A private temporary directory, removed (with the demo's audit database)
/// when the demo stops.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("helio-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .with_context(|| format!("cannot create the demo's directory {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
