//! Hot reload: when helio.yaml changes, load and check it in full, compile
//! the stage chain, and swap it in whole. An invalid edit changes nothing:
//! the errors are logged and the last good configuration stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigError};
use crate::pipeline::{Active, Pipeline};
use crate::plugins::Runtime;

/// How often the file is checked. Polling works on every filesystem,
/// including container bind mounts and editors that replace the file.
const POLL: Duration = Duration::from_millis(500);
/// An edit must stay unchanged this long before it is read (editors save in
/// several writes).
const SETTLE: Duration = Duration::from_millis(200);

pub async fn watch(
    path: PathBuf,
    running: Config,
    active: Active,
    runtime: Arc<Runtime>,
    shutdown: CancellationToken,
) {
    // The file as it was read for `running`, not as it is now: an edit made
    // since is a change to load.
    let mut seen = running.source_digest;
    // `running` stays what took effect at start: the restart-required
    // sections (approval channels among them) are compared with it on every
    // reload, so a difference is reported for as long as it lasts.
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
        let now = fingerprint(&path);
        if now == seen {
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let settled = fingerprint(&path);
        if settled != now {
            continue;
        }
        seen = settled;
        let (load_path, load_runtime) = (path.clone(), runtime.clone());
        let built = tokio::task::spawn_blocking(move || load(&load_path, &load_runtime)).await;
        match built {
            Ok(Ok((config, pipeline, warnings))) => {
                let unroutable = config::unroutable_on_reload(&running, &config);
                if !unroutable.is_empty() {
                    let lines: Vec<String> = unroutable
                        .iter()
                        .map(|(at, channel)| format!("  {at}: approval channel \"{channel}\" is not one the running Helio has (approval.channels take effect at start); restart to add it"))
                        .collect();
                    tracing::error!(
                        "config reload failed (keeping the current configuration):\n{}",
                        lines.join("\n")
                    );
                    continue;
                }
                let changed = running.restart_required_changes(&config);
                if !changed.is_empty() {
                    tracing::warn!(
                        sections = %changed.join(", "),
                        "restart required: these sections changed but only take effect at start; their running values are kept"
                    );
                }
                tracing::info!(
                    rules = pipeline.rule_count(),
                    default = config.policies.default.as_str(),
                    plugins = config.plugins.len(),
                    "policy reloaded"
                );
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                active.replace(pipeline);
                seen = config.source_digest;
            }
            Ok(Err(report)) => {
                tracing::error!(
                    "config reload failed (keeping the current configuration):\n{report}"
                );
            }
            Err(error) => {
                tracing::error!(%error, "config reload failed (keeping the current configuration)")
            }
        }
    }
}

/// Loads, checks and compiles a configuration file: everything a reload or
/// a start needs before anything changes.
pub fn load(
    path: &std::path::Path,
    runtime: &Arc<Runtime>,
) -> Result<(Config, Pipeline, Vec<String>), String> {
    let loaded = config::load(path).map_err(|e| e.report())?;
    compile(loaded, path, runtime)
}

/// Compiles the stages of a configuration already read from `path`.
pub fn compile(
    loaded: config::Loaded,
    path: &std::path::Path,
    runtime: &Arc<Runtime>,
) -> Result<(Config, Pipeline, Vec<String>), String> {
    let pipeline = Pipeline::build(&loaded.config, runtime).map_err(|issues| {
        ConfigError::Invalid {
            path: path.to_owned(),
            issues,
        }
        .report()
    })?;
    Ok((loaded.config, pipeline, loaded.warnings))
}

/// What identifies a version of the file: its bytes (and of the plugin
/// files it names, via a reload when the config itself changes).
fn fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    crate::files::read_regular(path, crate::config::MAX_CONFIG_BYTES)
        .ok()
        .map(|bytes| config::digest(&bytes))
}
