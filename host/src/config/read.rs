//! Reads each section of `helio.yaml` into the typed model, recording every
//! problem with its path. Section by section, in the canonical order.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use sha2::Digest;
use yaml_serde::Value;

use super::model::*;
use super::reader::{Obj, Path, Reader};

/// Transport headers Helio owns on the upstream wire; operators can neither set
/// them statically nor read them as a session identity source. Hop-by-hop
/// headers are here too: they describe one connection, not the request.
pub const RESERVED_HEADERS: &[&str] = &[
    "mcp-session-id",
    "mcp-protocol-version",
    "content-type",
    "content-length",
    "host",
    "accept",
    "mcp-method",
    "mcp-name",
    // Helio continues a call's trace and sends its own context upstream.
    "traceparent",
    "tracestate",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const ROOT_KEYS: &[&str] = &[
    "version",
    "upstream",
    "listen",
    "connections",
    "environment",
    "session",
    "policies",
    "budgets",
    "approval",
    "audit",
    "dashboard",
    "sdk",
    "telemetry",
    "plugins",
    "extractors",
];

/// Sections whose changes need a restart: they shape listeners, the
/// upstream connection and secrets, which are bound at start.
const RESTART_SECTIONS: &[&str] = &[
    "upstream",
    "listen",
    "connections",
    "session",
    "approval",
    "audit",
    "dashboard",
    "sdk",
    "telemetry",
];

/// Reads the whole document. Returns `None` only when the root is unusable;
/// otherwise the model is built from whatever was valid, with defaults filling
/// the gaps, and the caller decides from the issue list whether to accept it.
pub fn config(r: &mut Reader, root: &Value, source: &std::path::Path) -> Option<Config> {
    let root_path = Path::root();
    let obj = r.object(root, &root_path, ROOT_KEYS)?;

    match r.required(&obj, "version") {
        Some((Value::String(v), _)) if v == "1" => {}
        Some((Value::Number(n), _)) if n.as_u64() == Some(1) => {}
        Some((_, path)) => r.error(&path, "unsupported version (expected \"1\")"),
        None => {}
    }

    let mut upstream = match r.required(&obj, "upstream") {
        Some((value, path)) => upstream(r, value, &path),
        None => None,
    };
    if let Some(cwd) = upstream.as_mut().and_then(|u| u.cwd.as_mut()) {
        *cwd = crate::plugins::resolve_path(source, &cwd.to_string_lossy());
    }
    let listen = section(r, &obj, "listen", listen).unwrap_or_else(listen_default);
    let connections = section(r, &obj, "connections", connections).unwrap_or_default();
    let environment = r
        .field(&obj, "environment")
        .and_then(|(v, p)| r.non_empty_string(v, &p));
    let session = section(r, &obj, "session", session).unwrap_or_else(session_default);
    let policies = section(r, &obj, "policies", policies).unwrap_or_else(policies_default);
    let budgets = match r.field(&obj, "budgets") {
        Some((value, path)) => list(r, value, &path, budget),
        None => Vec::new(),
    };
    let mut approval = section(r, &obj, "approval", approval).unwrap_or_else(approval_default);
    if let Some(router) = &mut approval.router {
        router.path = crate::plugins::resolve_path(source, &router.path.to_string_lossy());
    }
    let audit = section(r, &obj, "audit", audit).unwrap_or_else(audit_default);
    let dashboard = section(r, &obj, "dashboard", dashboard).unwrap_or_else(dashboard_default);
    let sdk = section(r, &obj, "sdk", sdk).unwrap_or_else(sdk_default);
    let telemetry = section(r, &obj, "telemetry", telemetry).unwrap_or_else(telemetry_default);
    let plugins = match r.field(&obj, "plugins") {
        Some((value, path)) => plugin_list(r, value, &path, source),
        None => Vec::new(),
    };
    let extractors = match r.field(&obj, "extractors") {
        Some((value, path)) => extractor_list(r, value, &path, source),
        None => Vec::new(),
    };
    // Sections a reload cannot change, as written, to tell when one did.
    let restart_sections = RESTART_SECTIONS
        .iter()
        .map(|key| {
            let mut section = root.get(*key).cloned();
            if *key == "approval" {
                // The router reloads with the rules it routes for.
                if let Some(Value::Mapping(approval)) = &mut section {
                    approval.remove("router");
                }
            }
            let text = section
                .and_then(|v| serde_json::to_string(&v).ok())
                .unwrap_or_default();
            // A digest, not the text: these sections hold secrets.
            let digest: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
            (*key, digest)
        })
        .collect();
    // The rule engine reads the section as written (it is its configuration).
    let policies_json = match root.get("policies") {
        Some(value) if !value.is_null() => serde_json::to_value(value).unwrap_or_default(),
        _ => serde_json::Value::Object(Default::default()),
    };
    // Likewise the budgets stage.
    let budgets_json = match root.get("budgets") {
        Some(value) if !value.is_null() => serde_json::to_value(value).unwrap_or_default(),
        _ => serde_json::Value::Array(Vec::new()),
    };

    Some(Config {
        upstream: upstream?,
        listen,
        connections,
        environment,
        session,
        policies,
        budgets,
        approval,
        audit,
        dashboard,
        sdk,
        telemetry,
        plugins,
        extractors,
        policies_json,
        budgets_json,
        restart_sections,
        source_digest: None,
    })
}

fn section<T>(
    r: &mut Reader,
    obj: &Obj<'_>,
    key: &str,
    read: fn(&mut Reader, &Value, &Path) -> Option<T>,
) -> Option<T> {
    let (value, path) = r.field(obj, key)?;
    read(r, value, &path)
}

fn list<T>(
    r: &mut Reader,
    value: &Value,
    path: &Path,
    read: fn(&mut Reader, &Value, &Path) -> Option<T>,
) -> Vec<T> {
    let Some(items) = r.sequence(value, path) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| read(r, item, &path.index(i)))
        .collect()
}

fn opt<T>(
    r: &mut Reader,
    obj: &Obj<'_>,
    key: &str,
    read: impl FnOnce(&mut Reader, &Value, &Path) -> Option<T>,
) -> Option<T> {
    let (value, path) = r.field(obj, key)?;
    read(r, value, &path)
}

fn opt_string(r: &mut Reader, obj: &Obj<'_>, key: &str) -> Option<String> {
    opt(r, obj, key, Reader::non_empty_string)
}

fn opt_duration(r: &mut Reader, obj: &Obj<'_>, key: &str) -> Option<Duration> {
    opt(r, obj, key, Reader::duration)
}

fn opt_bool(r: &mut Reader, obj: &Obj<'_>, key: &str) -> Option<bool> {
    opt(r, obj, key, Reader::bool)
}

fn opt_choice(
    r: &mut Reader,
    obj: &Obj<'_>,
    key: &str,
    choices: &'static [&'static str],
) -> Option<&'static str> {
    opt(r, obj, key, |r, v, p| r.choice(v, p, choices))
}

fn req_string(r: &mut Reader, obj: &Obj<'_>, key: &str) -> Option<String> {
    let (value, path) = r.required(obj, key)?;
    r.non_empty_string(value, &path)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// --- upstream -------------------------------------------------------------

fn upstream(r: &mut Reader, value: &Value, path: &Path) -> Option<Upstream> {
    let obj = r.object(
        value,
        path,
        &[
            "url",
            "transport",
            "protocol_version",
            "command",
            "args",
            "env",
            "cwd",
            "connect_timeout",
            "request_timeout",
            "forward_headers",
            "headers",
        ],
    )?;
    let transport = match opt_choice(r, &obj, "transport", &["streamable-http", "sse", "stdio"]) {
        Some("sse") => Transport::Sse,
        Some("stdio") => Transport::Stdio,
        _ => Transport::StreamableHttp,
    };
    // A stdio server has no URL; configs written for the original carry a
    // placeholder (`stdio://`), accepted and unused.
    let url = if transport == Transport::Stdio {
        Some(opt_string(r, &obj, "url").unwrap_or_else(|| "stdio://".into()))
    } else {
        req_string(r, &obj, "url")
    };
    if let Some(url) = &url {
        if transport != Transport::Stdio {
            check_http_url(r, url, &path.key("url"));
        }
    }
    let protocol_version = opt_choice(
        r,
        &obj,
        "protocol_version",
        &["auto", "2025-06-18", "2026-07-28"],
    )
    .unwrap_or("auto");
    if protocol_version == "2026-07-28" && transport != Transport::StreamableHttp {
        r.error(
            &path.key("protocol_version"),
            "protocol_version \"2026-07-28\" requires transport \"streamable-http\"",
        );
    }
    let command = opt_string(r, &obj, "command");
    if transport == Transport::Stdio && command.is_none() && !obj.has("command") {
        r.error(
            &path.key("command"),
            "\"command\" is required when transport is \"stdio\"",
        );
    }
    let args = opt(r, &obj, "args", Reader::string_list).unwrap_or_default();
    let env = opt(r, &obj, "env", environment).unwrap_or_default();
    let cwd = opt_string(r, &obj, "cwd").map(std::path::PathBuf::from);
    if transport != Transport::Stdio {
        for key in ["command", "args", "env", "cwd"] {
            if obj.has(key) {
                r.error(&path.key(key), "only applies with transport \"stdio\"");
            }
        }
    }
    let connect_timeout = opt_duration(r, &obj, "connect_timeout").unwrap_or(secs(10));
    let request_timeout = opt_duration(r, &obj, "request_timeout").unwrap_or(secs(30));
    for (key, value) in [
        ("connect_timeout", connect_timeout),
        ("request_timeout", request_timeout),
    ] {
        if value.is_zero() {
            r.error(&path.key(key), "must be greater than zero");
        }
    }
    let forward_headers = opt(r, &obj, "forward_headers", forward_header_names).unwrap_or_default();
    let headers = opt(r, &obj, "headers", static_headers).unwrap_or_default();

    Some(Upstream {
        url: url?,
        transport,
        protocol_version: protocol_version.to_owned(),
        command,
        args,
        env,
        cwd,
        connect_timeout,
        request_timeout,
        forward_headers,
        headers,
    })
}

/// `upstream.env`: variable names to string values.
fn environment(
    r: &mut Reader,
    value: &Value,
    path: &Path,
) -> Option<Vec<(String, Secret<String>)>> {
    let Value::Mapping(map) = value else {
        r.error(path, "expected a mapping of variable names to values");
        return None;
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let Some(name) = key.as_str() else {
            r.error(path, "variable names must be strings");
            continue;
        };
        let at = path.key(name);
        let valid = !name.is_empty() && !name.contains('=') && !name.contains('\0');
        if !valid {
            r.error(&at, "not a valid environment variable name");
            continue;
        }
        if let Some(text) = r.string(value, &at) {
            out.push((name.to_owned(), Secret::new(text)));
        }
    }
    Some(out)
}

fn check_http_url(r: &mut Reader, text: &str, path: &Path) {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        Ok(u) => r.error(
            path,
            format!(
                "\"{text}\" is not an http(s) URL (scheme \"{}\"); expected e.g. \"http://localhost:8080/mcp\"",
                u.scheme()
            ),
        ),
        Err(e) => r.error(
            path,
            format!("\"{text}\" is not a valid URL ({e}); expected e.g. \"http://localhost:8080/mcp\""),
        ),
    }
}

fn forward_header_names(r: &mut Reader, value: &Value, path: &Path) -> Option<Vec<HeaderName>> {
    let names = r.string_list(value, path)?;
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        if !lower.starts_with("x-") {
            r.error(
                &path.index(i),
                format!("forwarded caller headers must start with \"x-\" (got \"{name}\")"),
            );
            continue;
        }
        match HeaderName::from_bytes(lower.as_bytes()) {
            Ok(h) => out.push(h),
            Err(_) => r.error(
                &path.index(i),
                format!("\"{name}\" is not a valid header name"),
            ),
        }
    }
    Some(out)
}

fn static_headers(
    r: &mut Reader,
    value: &Value,
    path: &Path,
) -> Option<Vec<(HeaderName, Secret<HeaderValue>)>> {
    let mut out = Vec::new();
    for (name, value, entry_path) in r.entries(value, path) {
        let Some(text) = r.string(value, &entry_path) else {
            continue;
        };
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            r.error(
                &entry_path,
                format!("\"{name}\" is not a valid header name"),
            );
            continue;
        };
        if RESERVED_HEADERS.contains(&header.as_str()) {
            r.error(
                &entry_path,
                format!(
                    "{} must not set reserved header \"{name}\" (Helio owns it on the wire)",
                    path.as_str()
                ),
            );
            continue;
        }
        match HeaderValue::from_str(&text) {
            Ok(mut v) => {
                v.set_sensitive(true);
                out.push((header, Secret::new(v)));
            }
            // The value may hold a secret: name the header, never echo the value.
            Err(_) => r.error(
                &entry_path,
                "header value contains characters not allowed in HTTP headers (e.g. a newline)",
            ),
        }
    }
    Some(out)
}

// --- listen ---------------------------------------------------------------

fn listen_default() -> Listen {
    Listen {
        port: 3000,
        host: "127.0.0.1".into(),
        allowed_origins: Vec::new(),
    }
}

fn listen(r: &mut Reader, value: &Value, path: &Path) -> Option<Listen> {
    let obj = r.object(value, path, &["port", "host", "allowed_origins"])?;
    let d = listen_default();
    Some(Listen {
        port: opt(r, &obj, "port", Reader::port).unwrap_or(d.port),
        host: opt_string(r, &obj, "host").unwrap_or(d.host),
        allowed_origins: opt(r, &obj, "allowed_origins", origins).unwrap_or_default(),
    })
}

/// Most connections one listener may be told to hold: each is a file
/// descriptor, and the process has others to keep.
const MAX_CONNECTIONS_CEILING: u64 = 65_536;

fn connections(r: &mut Reader, value: &Value, path: &Path) -> Option<Connections> {
    let obj = r.object(
        value,
        path,
        &["header_timeout", "body_timeout", "max_per_listener"],
    )?;
    let d = Connections::default();
    let max_per_listener = match r.field(&obj, "max_per_listener") {
        Some((value, path)) => match r.positive_integer(value, &path) {
            Some(n) if n > MAX_CONNECTIONS_CEILING => {
                r.error(
                    &path,
                    format!("at most {MAX_CONNECTIONS_CEILING} connections per listener"),
                );
                d.max_per_listener
            }
            Some(n) => usize::try_from(n).unwrap_or(d.max_per_listener),
            None => d.max_per_listener,
        },
        None => d.max_per_listener,
    };
    let mut timeout = |key: &str, default: Duration| match r.field(&obj, key) {
        Some((value, path)) => match r.duration(value, &path) {
            Some(d) if d.is_zero() => {
                r.error(&path, "must be at least 1s");
                default
            }
            Some(d) => d,
            None => default,
        },
        None => default,
    };
    Some(Connections {
        header_timeout: timeout("header_timeout", d.header_timeout),
        body_timeout: timeout("body_timeout", d.body_timeout),
        max_per_listener,
    })
}

fn origins(r: &mut Reader, value: &Value, path: &Path) -> Option<Vec<String>> {
    let entries = r.string_list(value, path)?;
    for (i, entry) in entries.iter().enumerate() {
        if let Err(message) = check_origin(entry) {
            r.error(&path.index(i), message);
        }
    }
    Some(entries)
}

/// An allowlist entry must be exactly what a browser sends in `Origin`.
fn check_origin(entry: &str) -> Result<(), String> {
    if entry == "*" {
        return Err("wildcards are not supported; list each origin exactly".into());
    }
    if entry == "null" {
        return Err("the opaque origin \"null\" cannot be allowlisted: sandboxed frames, data: documents and file:// pages all send it".into());
    }
    let parsed = url::Url::parse(entry).map_err(|_| {
        format!("\"{entry}\" is not a serialized origin; use scheme://host[:port], e.g. \"http://localhost:5173\"")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "\"{entry}\" is not an http(s) origin; entries must look like \"http://localhost:5173\""
        ));
    }
    let serialized = parsed.origin().ascii_serialization();
    if serialized != entry {
        return Err(format!(
            "\"{entry}\" is not in serialized origin form and would never match; did you mean \"{serialized}\"?"
        ));
    }
    Ok(())
}

// --- session --------------------------------------------------------------

fn session_default() -> Session {
    Session {
        identity: vec![
            IdentitySource::Header(DEFAULT_IDENTITY_HEADER.into()),
            IdentitySource::LegacyHeader,
        ],
        on_unresolved: OnUnresolved::Deny,
    }
}

fn session(r: &mut Reader, value: &Value, path: &Path) -> Option<Session> {
    let obj = r.object(value, path, &["identity", "on_unresolved"])?;
    let mut out = session_default();
    if let Some((value, ipath)) = r.field(&obj, "identity") {
        let sources = list(r, value, &ipath, identity_source);
        if matches!(value, Value::Sequence(items) if items.is_empty()) {
            r.error(
                &ipath,
                "session.identity cannot be empty; omit the section for the defaults or list at least one source",
            );
        }
        let mut seen = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            if let IdentitySource::Header(name) = source {
                if seen.contains(name) {
                    r.error(
                        &ipath.index(i).key("name"),
                        format!("duplicate session identity header \"{name}\"; the first entry always wins"),
                    );
                }
                seen.push(name.clone());
            }
        }
        if !sources.is_empty() {
            out.identity = sources;
        }
    }
    out.on_unresolved = match opt_choice(r, &obj, "on_unresolved", &["deny", "anonymous"]) {
        Some("anonymous") => OnUnresolved::Anonymous,
        _ => OnUnresolved::Deny,
    };
    Some(out)
}

fn identity_source(r: &mut Reader, value: &Value, path: &Path) -> Option<IdentitySource> {
    let obj = r.object(value, path, &["source", "name"])?;
    let (source_value, source_path) = r.required(&obj, "source")?;
    let source = r.choice(
        source_value,
        &source_path,
        &["header", "meta", "legacy_header"],
    )?;
    if source != "header" && obj.has("name") {
        r.error(
            &path.key("name"),
            format!("source \"{source}\" takes no \"name\""),
        );
    }
    match source {
        "header" => {
            let name = opt_string(r, &obj, "name")
                .unwrap_or_else(|| DEFAULT_IDENTITY_HEADER.into())
                .to_ascii_lowercase();
            let name_path = path.key("name");
            if !name.starts_with("x-") {
                r.error(
                    &name_path,
                    "session identity header names must start with \"x-\" (for example \"x-helio-session-id\")",
                );
            } else if RESERVED_HEADERS.contains(&name.as_str()) {
                r.error(
                    &name_path,
                    format!("session.identity must not read reserved transport header \"{name}\""),
                );
            }
            Some(IdentitySource::Header(name))
        }
        "meta" => Some(IdentitySource::Meta),
        _ => Some(IdentitySource::LegacyHeader),
    }
}

// --- policies -------------------------------------------------------------

fn policies_default() -> Policies {
    Policies {
        default: DefaultDecision::Allow,
        flag_destructive: None,
        on_tool_drift: OnToolDrift::Block,
        tool_revalidation: ToolRevalidation {
            enabled: true,
            interval: secs(300),
            max_advertised_ttl: secs(300),
        },
        dry_run: false,
        hot_reload: true,
        rules: Vec::new(),
        install: Install {
            default: DefaultDecision::Allow,
            rules: Vec::new(),
        },
    }
}

fn policies(r: &mut Reader, value: &Value, path: &Path) -> Option<Policies> {
    let obj = r.object(
        value,
        path,
        &[
            "default",
            "flag_destructive",
            "on_tool_drift",
            "tool_revalidation",
            "dry_run",
            "hot_reload",
            "rules",
            "install",
        ],
    )?;
    let d = policies_default();
    Some(Policies {
        default: opt(r, &obj, "default", default_decision).unwrap_or(d.default),
        flag_destructive: match opt_choice(
            r,
            &obj,
            "flag_destructive",
            &["log", "require_approval"],
        ) {
            Some("log") => Some(FlagDestructive::Log),
            Some(_) => Some(FlagDestructive::RequireApproval),
            None => None,
        },
        on_tool_drift: match opt_choice(
            r,
            &obj,
            "on_tool_drift",
            &["block", "require_approval", "log"],
        ) {
            Some("require_approval") => OnToolDrift::RequireApproval,
            Some("log") => OnToolDrift::Log,
            _ => OnToolDrift::Block,
        },
        tool_revalidation: opt(r, &obj, "tool_revalidation", tool_revalidation)
            .unwrap_or(d.tool_revalidation),
        dry_run: opt_bool(r, &obj, "dry_run").unwrap_or(false),
        hot_reload: opt_bool(r, &obj, "hot_reload").unwrap_or(true),
        rules: match r.field(&obj, "rules") {
            Some((value, rpath)) => list(r, value, &rpath, rule),
            None => Vec::new(),
        },
        install: opt(r, &obj, "install", install).unwrap_or(d.install),
    })
}

fn default_decision(r: &mut Reader, value: &Value, path: &Path) -> Option<DefaultDecision> {
    Some(match r.choice(value, path, &["allow", "deny"])? {
        "deny" => DefaultDecision::Deny,
        _ => DefaultDecision::Allow,
    })
}

fn tool_revalidation(r: &mut Reader, value: &Value, path: &Path) -> Option<ToolRevalidation> {
    let obj = r.object(value, path, &["enabled", "interval", "max_advertised_ttl"])?;
    let enabled = opt_bool(r, &obj, "enabled").unwrap_or(true);
    let interval = opt_duration(r, &obj, "interval").unwrap_or(secs(300));
    if interval < secs(10) {
        r.error(
            &path.key("interval"),
            "tool_revalidation.interval must be at least 10s",
        );
    }
    let max_advertised_ttl = opt_duration(r, &obj, "max_advertised_ttl").unwrap_or(interval);
    Some(ToolRevalidation {
        enabled,
        interval,
        max_advertised_ttl,
    })
}

/// The host's view of one rule ([`Rule`]): read leniently, since the rules
/// stage validates the rule and reports its problems at their paths. Only
/// the approval route, which the host resolves against its channels, is
/// checked here.
fn rule(r: &mut Reader, value: &Value, path: &Path) -> Option<Rule> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let limits = value.get("limits");
    Some(Rule {
        name: text(value.get("name")),
        action: value
            .get("action")
            .and_then(Value::as_str)
            .and_then(Action::from_name),
        approval: match value.get("approval") {
            Some(v) if !v.is_null() => approval_route(r, v, &path.key("approval")),
            _ => None,
        },
        evidence_requires: value
            .get("evidence")
            .and_then(|e| e.get("requires"))
            .and_then(Value::as_sequence)
            .map(|keys| keys.iter().filter_map(|k| text(Some(k))).collect())
            .unwrap_or_default(),
        match_environment: text(value.get("match").and_then(|m| m.get("environment"))),
        gated_by_metadata: value
            .get("match")
            .and_then(|m| m.get("metadata"))
            .and_then(Value::as_mapping)
            .is_some_and(|m| !m.is_empty()),
        limits_key: text(limits.and_then(|l| l.get("key"))).map(|k| limit_key(&k)),
        max_spend_key: text(
            limits
                .and_then(|l| l.get("max_spend"))
                .and_then(|m| m.get("key")),
        )
        .map(|k| limit_key(&k)),
        max_spend_currency: text(
            limits
                .and_then(|l| l.get("max_spend"))
                .and_then(|m| m.get("currency")),
        ),
        max_spend_extractor: text(
            limits
                .and_then(|l| l.get("max_spend"))
                .and_then(|m| m.get("extractor")),
        ),
    })
}

fn regex_source(r: &mut Reader, value: &Value, path: &Path) -> Option<String> {
    let source = r.string(value, path)?;
    match regex_lite::Regex::new(&source) {
        Ok(_) => Some(source),
        Err(e) => {
            let detail = e.to_string();
            let reason = detail.lines().last().unwrap_or("invalid syntax").trim();
            r.error(path, format!("invalid regex \"{source}\": {reason}"));
            None
        }
    }
}

fn metadata_conditions(
    r: &mut Reader,
    value: &Value,
    path: &Path,
) -> Option<Vec<(String, MetadataCondition)>> {
    let mut out = Vec::new();
    for (key, value, cpath) in r.entries(value, path) {
        if let Value::String(s) = value {
            out.push((
                key,
                MetadataCondition {
                    eq: Some(s.clone()),
                    ..Default::default()
                },
            ));
            continue;
        }
        let Some(obj) = r.object(value, &cpath, &["eq", "neq", "contains", "regex"]) else {
            continue;
        };
        let condition = MetadataCondition {
            eq: opt(r, &obj, "eq", Reader::string),
            neq: opt(r, &obj, "neq", Reader::string),
            contains: opt(r, &obj, "contains", Reader::string),
            regex: opt(r, &obj, "regex", regex_source),
        };
        if !["eq", "neq", "contains", "regex"]
            .iter()
            .any(|k| obj.has(k))
        {
            r.error(
                &cpath,
                "at least one metadata condition operator is required (eq, neq, contains, regex)",
            );
        }
        out.push((key, condition));
    }
    Some(out)
}

fn approval_route(r: &mut Reader, value: &Value, path: &Path) -> Option<ApprovalRoute> {
    let obj = r.object(
        value,
        path,
        &["channel", "timeout", "delegates", "escalation_after"],
    )?;
    let channel = req_string(r, &obj, "channel");
    Some(ApprovalRoute {
        channel: channel?,
        timeout: opt_duration(r, &obj, "timeout"),
        delegates: opt(r, &obj, "delegates", Reader::string_list).unwrap_or_default(),
        escalation_after: opt_duration(r, &obj, "escalation_after"),
    })
}

fn limit_key(name: &str) -> LimitKey {
    match name {
        "global" => LimitKey::Global,
        "agent" => LimitKey::Agent,
        "session" => LimitKey::Session,
        "sender_id" => LimitKey::SenderId,
        _ => LimitKey::Tool,
    }
}

fn feedback(r: &mut Reader, value: &Value, path: &Path) -> Option<Feedback> {
    let obj = r.object(value, path, &["message", "suggestion"])?;
    let message = r
        .required(&obj, "message")
        .and_then(|(v, p)| r.string(v, &p));
    Some(Feedback {
        message: message?,
        suggestion: opt(r, &obj, "suggestion", Reader::string),
    })
}

fn install(r: &mut Reader, value: &Value, path: &Path) -> Option<Install> {
    let obj = r.object(value, path, &["default", "rules"])?;
    Some(Install {
        default: opt(r, &obj, "default", default_decision).unwrap_or(DefaultDecision::Allow),
        rules: match r.field(&obj, "rules") {
            Some((value, rpath)) => list(r, value, &rpath, install_rule),
            None => Vec::new(),
        },
    })
}

fn install_rule(r: &mut Reader, value: &Value, path: &Path) -> Option<InstallRule> {
    let obj = r.object(value, path, &["name", "match", "action", "feedback"])?;
    let name = opt_string(r, &obj, "name");
    let (package_name, source, metadata) = match r.required(&obj, "match") {
        Some((value, mpath)) => {
            let m = r.object(value, &mpath, &["name", "source", "metadata"])?;
            (
                opt_string(r, &m, "name"),
                opt_string(r, &m, "source"),
                opt(r, &m, "metadata", metadata_conditions).unwrap_or_default(),
            )
        }
        None => (None, None, Vec::new()),
    };
    let action = r
        .required(&obj, "action")
        .and_then(|(v, p)| r.choice(v, &p, &["deny_install", "allow"]));
    Some(InstallRule {
        name,
        package_name,
        source,
        metadata,
        deny: action? == "deny_install",
        feedback: opt(r, &obj, "feedback", feedback),
    })
}

// --- budgets --------------------------------------------------------------

/// The host's view of one budget ([`Budget`]), read leniently like a rule:
/// the budgets stage validates the rest.
fn budget(r: &mut Reader, value: &Value, path: &Path) -> Option<Budget> {
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    Some(Budget {
        name: text("name").map(str::to_owned),
        limit: value
            .get("limit")
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or_default(),
        currency: text("currency").unwrap_or_default().to_owned(),
        window: value
            .get("window")
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or_default(),
        key: match text("key") {
            Some("session") => BudgetKey::Session,
            Some("sender_id") => BudgetKey::SenderId,
            _ => BudgetKey::Global,
        },
        on_exceed: match text("on_exceed") {
            Some("require_approval") => OnExceed::RequireApproval,
            _ => OnExceed::Deny,
        },
        approval: match value.get("approval") {
            Some(v) if !v.is_null() => approval_route(r, v, &path.key("approval")),
            _ => None,
        },
        contributor_extractors: value
            .get("contributors")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.get("extractor")?.as_str()?.to_owned())))
            .collect(),
    })
}

// --- approval -------------------------------------------------------------

fn approval_default() -> Approval {
    Approval {
        timeout: secs(300),
        default_on_timeout: TimeoutOutcome::Deny,
        channels: Vec::new(),
        router: None,
    }
}

fn approval(r: &mut Reader, value: &Value, path: &Path) -> Option<Approval> {
    let obj = r.object(
        value,
        path,
        &["timeout", "default_on_timeout", "channels", "router"],
    )?;
    Some(Approval {
        timeout: opt_duration(r, &obj, "timeout").unwrap_or(secs(300)),
        default_on_timeout: match opt_choice(r, &obj, "default_on_timeout", &["deny", "allow"]) {
            Some("allow") => TimeoutOutcome::Allow,
            _ => TimeoutOutcome::Deny,
        },
        channels: match r.field(&obj, "channels") {
            Some((value, cpath)) => list(r, value, &cpath, channel),
            None => Vec::new(),
        },
        router: opt(r, &obj, "router", router),
    })
}

/// `approval.router: {path, sha256?, config?, limits?}`. The path is kept
/// as written here and resolved against the file's directory by
/// [`config`], which knows the file.
fn router(r: &mut Reader, value: &Value, path: &Path) -> Option<RouterConfig> {
    let obj = r.object(value, path, &["path", "sha256", "config", "limits"])?;
    let file = req_string(r, &obj, "path").map(std::path::PathBuf::from);
    let component = component(r, &obj);
    Some(RouterConfig {
        path: file?,
        sha256: component.sha256,
        config: component.config,
        timeout: component.timeout,
        memory_bytes: component.memory_bytes,
    })
}

/// What every component named in helio.yaml may set besides its path.
struct Component {
    sha256: Option<[u8; 32]>,
    config: serde_json::Value,
    timeout: Duration,
    memory_bytes: usize,
}

/// `sha256`, `config` and `limits` of a component's mapping.
fn component(r: &mut Reader, obj: &Obj<'_>) -> Component {
    let sha256 = opt(r, obj, "sha256", |r, v, p| {
        let text = r.string(v, p)?;
        let pin = crate::plugins::parse_sha256(&text);
        if pin.is_none() {
            r.error(
                p,
                "expected 64 hexadecimal digits (the output of `sha256sum`)",
            );
        }
        pin
    });
    let config = match r.field(obj, "config") {
        Some((value, cpath)) => match serde_json::to_value(value) {
            Ok(json) => json,
            Err(e) => {
                r.error(
                    &cpath,
                    format!("cannot be passed to the plugin as JSON: {e}"),
                );
                serde_json::Value::Null
            }
        },
        None => serde_json::Value::Object(Default::default()),
    };
    let (timeout, memory_bytes) =
        opt(r, obj, "limits", plugin_limits).unwrap_or(DEFAULT_PLUGIN_LIMITS);
    Component {
        sha256,
        config,
        timeout,
        memory_bytes,
    }
}

/// Slack's Web API (a workspace on GovSlack sets `api_url:
/// https://slack-gov.com/api`).
const SLACK_API_URL: &str = "https://slack.com/api";

fn channel(r: &mut Reader, value: &Value, path: &Path) -> Option<Channel> {
    let kind = match value {
        Value::Mapping(map) => map.get("type").and_then(Value::as_str),
        _ => None,
    };
    match kind {
        Some("dashboard") => {
            let obj = r.object(value, path, &["type", "name"])?;
            Some(Channel::Dashboard {
                name: opt_string(r, &obj, "name"),
            })
        }
        Some("webhook") => {
            let obj = r.object(value, path, &["type", "name", "url", "secret"])?;
            let name = opt_string(r, &obj, "name");
            let url = req_string(r, &obj, "url");
            if let Some(url) = &url {
                check_http_url(r, url, &path.key("url"));
            }
            let secret = opt_string(r, &obj, "secret").map(Secret::new);
            Some(Channel::Webhook {
                name,
                url: url?,
                secret,
            })
        }
        Some("slack") => {
            let obj = r.object(
                value,
                path,
                &[
                    "type",
                    "name",
                    "bot_token",
                    "signing_secret",
                    "channel",
                    "approvers",
                    "api_url",
                ],
            )?;
            let name = opt_string(r, &obj, "name");
            let bot_token = req_string(r, &obj, "bot_token");
            let signing_secret = req_string(r, &obj, "signing_secret");
            let channel = req_string(r, &obj, "channel");
            let approvers = opt(r, &obj, "approvers", Reader::string_list);
            let api_url = opt_string(r, &obj, "api_url");
            if let Some(url) = &api_url {
                check_http_url(r, url, &path.key("api_url"));
            }
            Some(Channel::Slack {
                name,
                bot_token: Secret::new(bot_token?),
                signing_secret: Secret::new(signing_secret?),
                channel: channel?,
                approvers,
                api_url: api_url.unwrap_or_else(|| SLACK_API_URL.to_owned()),
            })
        }
        _ => {
            let obj = r.object(
                value,
                path,
                &[
                    "type",
                    "name",
                    "url",
                    "secret",
                    "bot_token",
                    "signing_secret",
                    "channel",
                ],
            )?;
            if let Some((v, p)) = r.required(&obj, "type") {
                r.choice(v, &p, &["dashboard", "webhook", "slack"]);
            }
            None
        }
    }
}

// --- audit, dashboard, sdk ------------------------------------------------

fn audit_default() -> Audit {
    Audit {
        path: "./helio-audit.db".into(),
        retention: secs(90 * 86_400),
        include_responses: true,
        redact: Vec::new(),
    }
}

fn audit(r: &mut Reader, value: &Value, path: &Path) -> Option<Audit> {
    let obj = r.object(
        value,
        path,
        &[
            "storage",
            "path",
            "retention",
            "include_responses",
            "redact",
        ],
    )?;
    let d = audit_default();
    opt_choice(r, &obj, "storage", &["sqlite"]);
    Some(Audit {
        path: opt_string(r, &obj, "path").unwrap_or(d.path),
        retention: opt_duration(r, &obj, "retention").unwrap_or(d.retention),
        include_responses: opt_bool(r, &obj, "include_responses").unwrap_or(true),
        redact: opt(r, &obj, "redact", redact_paths).unwrap_or_default(),
    })
}

/// `audit.redact`: argument paths (`$.card.number`, `password`, `items.*.cvv`,
/// `**.password`).
fn redact_paths(r: &mut Reader, value: &Value, path: &Path) -> Option<Vec<String>> {
    let paths = r.string_list(value, path)?;
    for (i, p) in paths.iter().enumerate() {
        if !helio_syntax::argpath::is_valid(p) {
            r.error(
                &path.index(i),
                format!("\"{p}\" is not an argument path (expected e.g. $.card.number, password, items.*.cvv or **.password; `**` at most once, and not last)"),
            );
        }
    }
    Some(paths)
}

fn dashboard_default() -> Dashboard {
    Dashboard {
        enabled: true,
        port: 3100,
        host: "127.0.0.1".into(),
        api_secret: None,
        allow_open_mode: false,
        sse_heartbeat_interval: secs(30),
        metrics_public: false,
    }
}

fn dashboard(r: &mut Reader, value: &Value, path: &Path) -> Option<Dashboard> {
    let obj = r.object(
        value,
        path,
        &[
            "enabled",
            "port",
            "host",
            "api_secret",
            "allow_open_mode",
            "sse_heartbeat_interval",
            "metrics_public",
        ],
    )?;
    let d = dashboard_default();
    Some(Dashboard {
        enabled: opt_bool(r, &obj, "enabled").unwrap_or(true),
        port: opt(r, &obj, "port", Reader::port).unwrap_or(d.port),
        host: opt_string(r, &obj, "host").unwrap_or(d.host),
        // An empty secret is no secret: treated as unset, like the original.
        api_secret: opt(r, &obj, "api_secret", Reader::string)
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        allow_open_mode: opt_bool(r, &obj, "allow_open_mode").unwrap_or(false),
        sse_heartbeat_interval: opt_duration(r, &obj, "sse_heartbeat_interval")
            .unwrap_or(d.sse_heartbeat_interval)
            .max(secs(1)),
        metrics_public: opt_bool(r, &obj, "metrics_public").unwrap_or(false),
    })
}

fn sdk_default() -> Sdk {
    Sdk {
        enabled: false,
        port: 3200,
        host: "127.0.0.1".into(),
        evaluation_ttl: secs(600),
    }
}

fn sdk(r: &mut Reader, value: &Value, path: &Path) -> Option<Sdk> {
    let obj = r.object(value, path, &["enabled", "port", "host", "evaluation_ttl"])?;
    let d = sdk_default();
    Some(Sdk {
        enabled: opt_bool(r, &obj, "enabled").unwrap_or(false),
        port: opt(r, &obj, "port", Reader::port).unwrap_or(d.port),
        host: opt_string(r, &obj, "host").unwrap_or(d.host),
        evaluation_ttl: opt_duration(r, &obj, "evaluation_ttl").unwrap_or(d.evaluation_ttl),
    })
}

// --- telemetry ------------------------------------------------------------

/// The path OTLP/HTTP serves traces on, appended to a bare base URL.
const OTLP_TRACES_PATH: &str = "/v1/traces";

fn telemetry_default() -> Telemetry {
    Telemetry {
        traces_url: None,
        service_name: "helio".into(),
        sample_ratio: 1.0,
        headers: Vec::new(),
        export_timeout: secs(10),
    }
}

fn telemetry(r: &mut Reader, value: &Value, path: &Path) -> Option<Telemetry> {
    let obj = r.object(
        value,
        path,
        &[
            "otlp_endpoint",
            "service_name",
            "sample_ratio",
            "headers",
            "export_timeout",
        ],
    )?;
    let d = telemetry_default();
    let traces_url = opt(r, &obj, "otlp_endpoint", otlp_traces_url);
    let export_timeout = opt_duration(r, &obj, "export_timeout").unwrap_or(d.export_timeout);
    if export_timeout.is_zero() {
        r.error(&path.key("export_timeout"), "must be greater than zero");
    }
    Some(Telemetry {
        traces_url,
        service_name: opt_string(r, &obj, "service_name").unwrap_or(d.service_name),
        sample_ratio: opt(r, &obj, "sample_ratio", ratio).unwrap_or(d.sample_ratio),
        headers: opt(r, &obj, "headers", static_headers).unwrap_or_default(),
        export_timeout,
    })
}

/// `telemetry.otlp_endpoint`: an http(s) base URL (`http://collector:4318`,
/// as `OTEL_EXPORTER_OTLP_ENDPOINT`), or the full traces URL.
fn otlp_traces_url(r: &mut Reader, value: &Value, path: &Path) -> Option<String> {
    let text = r.non_empty_string(value, path)?;
    let example = "expected e.g. \"http://otel-collector:4318\"";
    let url = match url::Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
        Ok(url) => {
            let scheme = url.scheme();
            r.error(
                path,
                format!("\"{text}\" is not an http(s) URL (scheme \"{scheme}\"); {example}"),
            );
            return None;
        }
        Err(e) => {
            r.error(
                path,
                format!("\"{text}\" is not a valid URL ({e}); {example}"),
            );
            return None;
        }
    };
    if url.query().is_some() || url.fragment().is_some() {
        r.error(
            path,
            format!("\"{text}\" has a query or fragment; {example}"),
        );
        return None;
    }
    let base = text.trim_end_matches('/');
    Some(
        match url.path().trim_end_matches('/').ends_with(OTLP_TRACES_PATH) {
            true => base.to_owned(),
            false => format!("{base}{OTLP_TRACES_PATH}"),
        },
    )
}

/// A number from 0 to 1.
fn ratio(r: &mut Reader, value: &Value, path: &Path) -> Option<f64> {
    match value.as_f64() {
        Some(n) if (0.0..=1.0).contains(&n) => Some(n),
        _ => {
            r.error(path, "expected a number from 0 to 1 (e.g. 0.25)");
            None
        }
    }
}

// --- plugins --------------------------------------------------------------

/// Names a built-in stage already uses.
const RESERVED_PLUGIN_NAMES: &[&str] = &["rules"];

fn plugin_list(
    r: &mut Reader,
    value: &Value,
    path: &Path,
    source: &std::path::Path,
) -> Vec<PluginConfig> {
    let Some(items) = r.sequence(value, path) else {
        return Vec::new();
    };
    let mut out: Vec<PluginConfig> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        if let Some(plugin) = plugin(r, item, &item_path, source) {
            if out.iter().any(|p| p.name == plugin.name) {
                r.error(
                    &item_path.key("name"),
                    format!("duplicate plugin name \"{}\"", plugin.name),
                );
            }
            out.push(plugin);
        }
    }
    out
}

/// `extractors: [{name, path, sha256?, config?, limits?}]`.
fn extractor_list(
    r: &mut Reader,
    value: &Value,
    path: &Path,
    source: &std::path::Path,
) -> Vec<ExtractorConfig> {
    let Some(items) = r.sequence(value, path) else {
        return Vec::new();
    };
    let mut out: Vec<ExtractorConfig> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let Some(obj) = r.object(item, &at, &["name", "path", "sha256", "config", "limits"]) else {
            continue;
        };
        let name = req_string(r, &obj, "name");
        if let Some(name) = &name {
            check_component_name(r, &at, name, "extractor");
            if out.iter().any(|e| &e.name == name) {
                r.error(
                    &at.key("name"),
                    format!("duplicate extractor name \"{name}\""),
                );
            }
        }
        let file = req_string(r, &obj, "path").map(|p| crate::plugins::resolve_path(source, &p));
        let component = component(r, &obj);
        if let (Some(name), Some(path)) = (name, file) {
            out.push(ExtractorConfig {
                name,
                path,
                sha256: component.sha256,
                config: component.config,
                timeout: component.timeout,
                memory_bytes: component.memory_bytes,
            });
        }
    }
    out
}

/// Plugin and extractor names (`what`): what logs, the audit trail and
/// state keys carry. Whether the name is well formed.
fn check_component_name(r: &mut Reader, at: &Path, name: &str, what: &str) -> bool {
    let valid = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        r.error(&at.key("name"), format!("{what} names may only contain lower-case letters, digits, \"-\" and \"_\" (at most 64)"));
    }
    valid
}

fn plugin(
    r: &mut Reader,
    value: &Value,
    path: &Path,
    source: &std::path::Path,
) -> Option<PluginConfig> {
    let obj = r.object(
        value,
        path,
        &[
            "name",
            "path",
            "sha256",
            "position",
            "may_loosen",
            "config",
            "limits",
        ],
    )?;
    let name = req_string(r, &obj, "name");
    if let Some(name) = &name {
        if check_component_name(r, path, name, "plugin")
            && RESERVED_PLUGIN_NAMES.contains(&name.as_str())
        {
            r.error(
                &path.key("name"),
                format!("\"{name}\" is the name of a built-in stage; pick another"),
            );
        }
    }
    let file = req_string(r, &obj, "path").map(|p| crate::plugins::resolve_path(source, &p));
    let component = component(r, &obj);
    let position = match opt_choice(r, &obj, "position", &["before_rules", "after_rules"]) {
        Some("before_rules") => PluginPosition::BeforeRules,
        _ => PluginPosition::AfterRules,
    };
    let may_loosen = opt_bool(r, &obj, "may_loosen").unwrap_or(false);
    Some(PluginConfig {
        name: name?,
        path: file?,
        sha256: component.sha256,
        position,
        may_loosen,
        config: component.config,
        timeout: component.timeout,
        memory_bytes: component.memory_bytes,
    })
}

/// A plugin's `limits` when helio.yaml sets none: its time per call and
/// its memory.
pub const DEFAULT_PLUGIN_LIMITS: (Duration, usize) = (Duration::from_millis(50), 32 << 20);

fn plugin_limits(r: &mut Reader, value: &Value, path: &Path) -> Option<(Duration, usize)> {
    let obj = r.object(value, path, &["timeout_ms", "memory_mb"])?;
    let bounded = |r: &mut Reader, v: &Value, p: &Path, max: u64| {
        let n = r.positive_integer(v, p)?;
        if n > max {
            r.error(p, format!("{n} is above the maximum of {max}"));
            return None;
        }
        Some(n)
    };
    let timeout = opt(r, &obj, "timeout_ms", |r, v, p| bounded(r, v, p, 10_000))
        .map_or(DEFAULT_PLUGIN_LIMITS.0, Duration::from_millis);
    let memory = opt(r, &obj, "memory_mb", |r, v, p| bounded(r, v, p, 4096))
        .map_or(DEFAULT_PLUGIN_LIMITS.1, |mb| (mb as usize) << 20);
    Some((timeout, memory))
}

#[cfg(test)]
mod tests {
    use super::check_origin;

    #[test]
    fn origins_must_be_serialized_http_origins() {
        assert!(check_origin("http://localhost:5173").is_ok());
        assert!(check_origin("https://app.example.com").is_ok());
        for (bad, fragment) in [
            ("*", "wildcards"),
            ("null", "opaque origin"),
            ("localhost:5173", "not an http(s) origin"),
            ("ws://localhost", "not an http(s) origin"),
            (
                "http://localhost:5173/",
                "did you mean \"http://localhost:5173\"",
            ),
            (
                "https://example.com:443",
                "did you mean \"https://example.com\"",
            ),
            ("http://Example.com", "did you mean \"http://example.com\""),
        ] {
            let err = check_origin(bad).expect_err(bad);
            assert!(err.contains(fragment), "{bad}: {err}");
        }
    }
}
