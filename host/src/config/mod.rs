//! `helio.yaml`: reading, `${VAR}` interpolation, strict schema checking with
//! every problem reported by its YAML path, and the typed model.
//!
//! Loading pipeline: read file → YAML (anchors and `<<:` merge keys) → drop
//! root `x-*` extension keys → interpolate `${VAR}` → schema → cross-field
//! checks. All-or-nothing: a file with any issue yields no `Config`.

mod checks;
pub use checks::unroutable_on_reload;
mod env;
mod model;
mod nesting;
mod read;
mod reader;
mod scaffold;

use std::path::{Path as FsPath, PathBuf};

use yaml_serde::Value;

pub use model::*;
pub use read::{DEFAULT_PLUGIN_LIMITS, RESERVED_HEADERS};
pub use reader::{parse_duration, Issue};
pub use scaffold::scaffold;

use reader::{Path, Reader};

/// A configuration that passed every check, with the warnings it earned.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("YAML parse error in {path}: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("invalid configuration in {path} ({count} error{s})", count = issues.len(), s = if issues.len() == 1 { "" } else { "s" })]
    Invalid { path: PathBuf, issues: Vec<Issue> },
}

impl ConfigError {
    /// The full report: the summary line, then one `path: message` per issue.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        if let ConfigError::Invalid { issues, .. } = self {
            for issue in issues {
                out.push_str(&format!("\n  {issue}"));
            }
        }
        out
    }
}

/// Loads and checks the file at `path`, reading `${VAR}` from the process
/// environment.
pub fn load(path: &FsPath) -> Result<Loaded, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = crate::files::read_regular(path, MAX_CONFIG_BYTES).map_err(read_error)?;
    let digest = digest(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    let mut loaded = parse(&text, path, &|name| std::env::var(name).ok())?;
    loaded.config.source_digest = Some(digest);
    Ok(loaded)
}

/// What identifies a version of a configuration file: its bytes' SHA-256.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Largest helio.yaml read (thousands of rules fit in far less).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Parses and checks configuration text. `source` names it in errors.
pub fn parse(
    text: &str,
    source: &FsPath,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let yaml_error = |message: String| ConfigError::Yaml {
        path: source.to_owned(),
        message,
    };
    nesting::check(text)
        .map_err(|(line, message)| yaml_error(format!("line {line}: {message}")))?;
    let mut root: Value = yaml_serde::from_str(text).map_err(|e| yaml_error(e.to_string()))?;
    root.apply_merge().map_err(|e| yaml_error(e.to_string()))?;
    if let Value::Mapping(map) = &mut root {
        map.retain(|key, _| !key.as_str().is_some_and(|k| k.starts_with("x-")));
    }

    let mut r = Reader::new();
    env::interpolate(&mut r, &mut root, &Path::root(), lookup);
    let config = read::config(&mut r, &root, source);
    if let Some(config) = &config {
        checks::cross_field(&mut r, config);
    }
    let issues = r.into_issues();
    match config {
        Some(config) if issues.is_empty() => {
            let warnings = warnings(&config);
            Ok(Loaded { config, warnings })
        }
        _ => Err(ConfigError::Invalid {
            path: source.to_owned(),
            issues: if issues.is_empty() {
                vec![Issue {
                    path: String::new(),
                    message: "the document is empty or not a mapping".into(),
                }]
            } else {
                issues
            },
        }),
    }
}

/// Whether `command` names an executable file: a path (relative to `cwd`
/// when it has a directory part), or a name found on `PATH`.
fn runnable(command: &str, cwd: Option<&std::path::Path>) -> bool {
    let executable = |path: &std::path::Path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            path.is_file()
        }
    };
    let path = std::path::Path::new(command);
    if command.contains(std::path::MAIN_SEPARATOR) {
        return match (path.is_relative(), cwd) {
            (true, Some(cwd)) => executable(&cwd.join(path)),
            _ => executable(path),
        };
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| executable(&dir.join(command)))
    })
}

/// Valid-but-questionable settings, printed by `validate` and at start.
fn warnings(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // Budgets and plugins block too: only with none of them is Helio audit-only.
    let blocks = !c.policies.rules.is_empty() || !c.budgets.is_empty() || !c.plugins.is_empty();
    if !blocks && c.policies.default == DefaultDecision::Allow {
        out.push("no policy rules, budgets or plugins, and policies.default is allow: Helio runs audit-only and blocks nothing".into());
    }
    if c.dashboard.enabled && c.dashboard.api_secret.is_none() {
        out.push(format!(
            "dashboard open mode: the operator API on {}:{} requires no authentication",
            c.dashboard.host, c.dashboard.port
        ));
    }
    if c.sdk.enabled && !is_loopback_host(&c.sdk.host) {
        out.push(format!(
            "sdk.host {} is not a loopback address: the SDK sideband is reachable from other machines",
            c.sdk.host
        ));
    }
    if c.upstream.transport == Transport::Stdio {
        if let Some(command) = &c.upstream.command {
            if !runnable(command, c.upstream.cwd.as_deref()) {
                out.push(format!(
                    "upstream.command: \"{command}\" is not an executable file here, nor found on PATH; Helio will keep trying to start it"
                ));
            }
        }
    }
    for (i, channel) in c.approval.channels.iter().enumerate() {
        if let Channel::Slack {
            approvers: None, ..
        } = channel
        {
            out.push(format!(
                "approval.channels[{i}]: a Slack channel without approvers lets anyone who can press the message's buttons approve or deny; list the Slack user ids allowed to decide"
            ));
        }
    }
    for (i, rule) in c.policies.rules.iter().enumerate() {
        if rule.action == Some(Action::RequireApproval) && rule.approval.is_none() {
            out.push(format!(
                "policies.rules[{i}]: require_approval without an approval block uses the dashboard channel and approval.timeout"
            ));
        }
        if rule.limits_key == Some(LimitKey::Agent) {
            out.push(format!(
                "policies.rules[{i}].limits.key: \"agent\" is not available on the MCP path and falls back to \"tool\""
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
