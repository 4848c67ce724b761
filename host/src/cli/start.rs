use std::path::Path;

use anyhow::Context;

use crate::auth::generate_token;
use crate::config::{self, Loaded};
use crate::gateway::Gateway;

pub fn run(path: &Path, no_hot_reload: bool) -> anyhow::Result<()> {
    super::init_logging();
    let loaded = config::load(path).map_err(|e| anyhow::anyhow!(e.report()))?;
    runtime()?.block_on(launch(
        &loaded,
        &path.display().to_string(),
        no_hot_reload,
        |_| {},
    ))
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Binds the listeners, prints the banner, and serves until SIGINT/SIGTERM.
/// `ready` runs once everything is bound, before serving starts.
pub(super) async fn launch(
    loaded: &Loaded,
    config_label: &str,
    no_hot_reload: bool,
    ready: impl FnOnce(&Gateway),
) -> anyhow::Result<()> {
    let c = &loaded.config;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let sdk_token = if c.sdk.enabled {
        Some(sdk_token()?)
    } else {
        None
    };
    let gateway = Gateway::bind(c, sdk_token.as_ref().map(|t| t.value.as_str())).await?;

    eprintln!(
        "Helio {} listening on http://{}/mcp",
        env!("CARGO_PKG_VERSION"),
        gateway.mcp_addr
    );
    eprintln!(
        "  Upstream: {} ({})",
        c.upstream.url,
        c.upstream.transport.as_str()
    );
    eprintln!(
        "  Policies: {} rules loaded (default: {})",
        c.policies.rules.len(),
        c.policies.default.as_str()
    );
    match gateway.dashboard_addr {
        Some(addr) if c.dashboard.api_secret.is_some() => {
            eprintln!("  Dashboard API listening on http://{addr}/api (bearer api_secret required)")
        }
        Some(addr) => eprintln!(
            "  Dashboard API listening on http://{addr}/api (OPEN MODE: no authentication)"
        ),
        None => eprintln!("  Dashboard: disabled"),
    }
    if let (Some(addr), Some(token)) = (gateway.sdk_addr, &sdk_token) {
        eprintln!("  SDK sideband listening on http://{addr}");
        if token.generated {
            eprintln!(
                "  SDK sideband token (export as HELIO_SDK_TOKEN for SDK clients): {}",
                token.value
            );
        } else {
            eprintln!("  SDK sideband token: taken from HELIO_SDK_TOKEN");
        }
    }
    eprintln!("  Config: {config_label}");
    if no_hot_reload || !c.policies.hot_reload {
        eprintln!("  Hot reload: disabled; configuration changes require a restart");
    } else {
        eprintln!("  Hot reload: not available in this version yet; configuration changes require a restart");
    }
    ready(&gateway);
    gateway.serve(super::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

struct SdkToken {
    value: String,
    generated: bool,
}

/// `HELIO_SDK_TOKEN` when set (never echoed), otherwise a fresh per-boot token.
fn sdk_token() -> anyhow::Result<SdkToken> {
    match std::env::var("HELIO_SDK_TOKEN") {
        Ok(value) if !value.trim().is_empty() => Ok(SdkToken {
            value: value.trim().to_owned(),
            generated: false,
        }),
        _ => Ok(SdkToken {
            value: generate_token().context("cannot generate the SDK sideband token")?,
            generated: true,
        }),
    }
}
