use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::auth::generate_token;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::pipeline::{Active, Pipeline};
use crate::plugins::Runtime;
use crate::reload;
use crate::state::{now_ms, LocalStore, StateBackend};

/// How often records past `audit.retention` are deleted (also at start).
const AUDIT_RETENTION_SWEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often aged-out rate windows, spend and evidence are dropped.
const STATE_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub fn run(path: &Path, no_hot_reload: bool) -> anyhow::Result<()> {
    super::init_logging()?;
    // Read once: the state database's path is in the file, and the stages
    // (which need the state) are compiled from the same reading.
    let loaded = crate::config::load(path).map_err(|e| anyhow::anyhow!(e.report()))?;
    let database = loaded.config.audit.path.clone();
    let state = LocalStore::open(Path::new(&database), now_ms())
        .with_context(|| format!("cannot open the state database {database} (audit.path)"))?;
    let plugins = Runtime::new(state)?;
    let (config, pipeline, warnings) =
        reload::compile(loaded, path, &plugins).map_err(anyhow::Error::msg)?;
    let audit = Audit::open(&config).with_context(|| {
        format!(
            "cannot open the audit database {} (audit.path)",
            config.audit.path
        )
    })?;
    let watch = (!no_hot_reload && config.policies.hot_reload).then(|| path.to_owned());
    let launch = Launch {
        config,
        pipeline,
        plugins,
        audit,
        warnings,
        label: path.display().to_string(),
        watch,
    };
    runtime()?.block_on(launch.run(|_| {}))
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A checked configuration with its compiled stage chain, ready to serve.
pub(super) struct Launch {
    pub config: Config,
    pub pipeline: Pipeline,
    pub plugins: Arc<Runtime>,
    /// Where call records go.
    pub audit: Arc<Audit>,
    pub warnings: Vec<String>,
    /// How the banner names the configuration.
    pub label: String,
    /// The file to watch for hot reload, when enabled.
    pub watch: Option<PathBuf>,
}

impl Launch {
    /// Binds the listeners, prints the banner, and serves until
    /// SIGINT/SIGTERM. `ready` runs once everything is bound.
    pub async fn run(self, ready: impl FnOnce(&Gateway)) -> anyhow::Result<()> {
        let c = &self.config;
        // From here on, SIGINT and SIGTERM stop Helio cleanly (the database
        // is open).
        let stop = super::shutdown_signal();
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
        let tokens = if c.sdk.enabled {
            Some((
                token("HELIO_SDK_TOKEN", "the SDK sideband token")?,
                token("HELIO_ADAPTER_TOKEN", "the adapter API token")?,
            ))
        } else {
            None
        };
        let sideband_tokens = tokens
            .as_ref()
            .map(|(sdk, adapter)| crate::sideband::Tokens {
                sdk: sdk.value.clone(),
                adapter: adapter.value.clone(),
            });
        let traces = crate::traces::Traces::start(&c.telemetry)?;
        let active = Active::new(self.pipeline);
        spawn_state_sweep(self.plugins.state().clone(), active.clone());
        crate::audit::retention::spawn(
            c.audit.path.clone().into(),
            c.audit.retention,
            AUDIT_RETENTION_SWEEP,
        );
        let gateway = Gateway::bind(
            c,
            sideband_tokens.as_ref(),
            active.clone(),
            self.plugins.clone(),
            self.audit.clone(),
        )
        .await?;

        super::say(format!(
            "Helio {} listening on http://{}/mcp",
            env!("CARGO_PKG_VERSION"),
            gateway.mcp_addr
        ));
        let upstream = match (&c.upstream.transport, &c.upstream.command) {
            (crate::config::Transport::Stdio, Some(command)) => std::iter::once(command.as_str())
                .chain(c.upstream.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            _ => c.upstream.url.clone(),
        };
        super::say(format!(
            "  Upstream: {upstream} ({})",
            c.upstream.transport.as_str()
        ));
        super::say(format!(
            "  Policies: {} rules loaded (default: {}){}",
            c.policies.rules.len(),
            c.policies.default.as_str(),
            if c.policies.dry_run {
                "; DRY RUN: nothing is forwarded"
            } else {
                ""
            }
        ));
        for plugin in &c.plugins {
            super::say(format!(
                "  Plugin: {} ({})",
                plugin.name,
                plugin.path.display()
            ));
        }
        if let Some(router) = &c.approval.router {
            super::say(format!("  Approval router: {}", router.path.display()));
        }
        match gateway.dashboard_addr {
            Some(addr) if c.dashboard.api_secret.is_some() => {
                super::say(format!(
                    "  Dashboard listening on http://{addr}/ (sign in with dashboard.api_secret; API at /api with the bearer)"
                ))
            }
            Some(addr) => {
                super::say(format!("  Dashboard listening on http://{addr}/ (OPEN MODE: no authentication)"))
            }
            None => super::say("  Dashboard: disabled"),
        }
        if let (Some(addr), Some((sdk, adapter))) = (gateway.sdk_addr, &tokens) {
            super::say(format!("  SDK sideband listening on http://{addr}"));
            if sdk.generated {
                super::say_secret(
                    format!(
                        "  SDK sideband token (export as HELIO_SDK_TOKEN for SDK clients): {}",
                        sdk.value
                    ),
                    "  SDK sideband token: generated, not shown in JSON logs; set HELIO_SDK_TOKEN to choose it",
                );
            } else {
                super::say("  SDK sideband token: taken from HELIO_SDK_TOKEN");
            }
            if adapter.generated {
                super::say_secret(
                    format!(
                        "  Adapter API token (export as HELIO_ADAPTER_TOKEN for adapters): {}",
                        adapter.value
                    ),
                    "  Adapter API token: generated, not shown in JSON logs; set HELIO_ADAPTER_TOKEN to choose it",
                );
            } else {
                super::say("  Adapter API token: taken from HELIO_ADAPTER_TOKEN");
            }
        }
        if let Some(url) = &c.telemetry.traces_url {
            super::say(format!(
                "  Traces: OTLP to {url} (service {}, {}% of calls without a sampled parent)",
                c.telemetry.service_name,
                c.telemetry.sample_ratio * 100.0
            ));
        }
        super::say(format!("  Config: {}", self.label));

        let stop_watching = CancellationToken::new();
        match &self.watch {
            Some(path) => {
                tokio::spawn(reload::watch(
                    path.clone(),
                    self.config.clone(),
                    active,
                    self.plugins.clone(),
                    stop_watching.clone(),
                ));
                super::say(format!("  Watching {} for policy changes", path.display()));
            }
            None => {
                super::say("  Hot reload: off; configuration changes take effect at the next start")
            }
        }
        ready(&gateway);
        gateway.serve(stop).await;
        stop_watching.cancel();
        // Every call has finished: write what the last ones changed and
        // recorded.
        let state = self.plugins.state().clone();
        let audit = self.audit.clone();
        let drained = tokio::task::spawn_blocking(move || {
            let flushed = (state.flush().map_err(|e| e.to_string()), audit.flush());
            if let Some(traces) = traces {
                traces.shutdown();
            }
            flushed
        })
        .await;
        match drained {
            Ok((state, audit)) => {
                if let Err(error) = state {
                    tracing::error!(%error, "governance state not fully saved at shutdown");
                }
                if let Err(error) = audit {
                    tracing::error!(%error, "audit records not fully saved at shutdown");
                }
            }
            Err(error) => tracing::error!(%error, "state and audit not fully saved at shutdown"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

struct SidebandToken {
    value: String,
    generated: bool,
}

/// `env`'s value when set (never echoed), otherwise a fresh per-boot token.
fn token(env: &str, what: &str) -> anyhow::Result<SidebandToken> {
    match std::env::var(env) {
        Ok(value) if !value.trim().is_empty() => Ok(SidebandToken {
            value: value.trim().to_owned(),
            generated: false,
        }),
        _ => Ok(SidebandToken {
            value: generate_token().with_context(|| format!("cannot generate {what}"))?,
            generated: true,
        }),
    }
}

/// Every minute: what left its window, long-expired evidence, idle
/// sessions, and idle session pots (by the current policy's `idle_ttl`).
fn spawn_state_sweep(state: Arc<dyn StateBackend>, active: Active) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(STATE_SWEEP_INTERVAL);
        every.tick().await;
        loop {
            every.tick().await;
            let state = state.clone();
            let pipeline = active.current();
            let _ = tokio::task::spawn_blocking(move || {
                let now = now_ms();
                state.sweep(now);
                state.forget_idle_pots(now, &|key| pipeline.pot_idle_ms(key));
            })
            .await;
        }
    });
}
