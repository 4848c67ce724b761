use std::path::Path;
use std::time::Duration;

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn env(name: &str) -> Option<String> {
    match name {
        "UPSTREAM_TOKEN" => Some("tok-123".into()),
        "HELIO_PORT" => Some("4000".into()),
        _ => None,
    }
}

fn parse_text(text: &str) -> Result<Loaded, ConfigError> {
    parse(text, Path::new("helio.yaml"), &env)
}

fn minimal(extra: &str) -> String {
    format!(
        "version: \"1\"\nupstream:\n  url: http://127.0.0.1:8080/mcp\ndashboard:\n  api_secret: {SECRET}\n{extra}"
    )
}

fn issues(text: &str) -> Vec<String> {
    match parse_text(text) {
        Ok(_) => panic!("expected the config to be rejected:\n{text}"),
        Err(ConfigError::Invalid { issues, .. }) => {
            issues.iter().map(ToString::to_string).collect()
        }
        Err(other) => vec![other.to_string()],
    }
}

#[test]
fn minimal_config_gets_the_original_defaults() {
    let loaded = parse_text(&minimal("")).expect("valid");
    let c = loaded.config;
    assert_eq!(c.upstream.url, "http://127.0.0.1:8080/mcp");
    assert_eq!(c.upstream.transport, Transport::StreamableHttp);
    assert_eq!(c.upstream.request_timeout, Duration::from_secs(30));
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(10));
    assert_eq!((c.listen.host.as_str(), c.listen.port), ("127.0.0.1", 3000));
    assert_eq!(
        (c.dashboard.host.as_str(), c.dashboard.port),
        ("127.0.0.1", 3100)
    );
    assert!(c.dashboard.enabled);
    assert!(!c.sdk.enabled);
    assert_eq!(c.sdk.port, 3200);
    assert_eq!(c.policies.default, DefaultDecision::Allow);
    assert_eq!(c.policies.on_tool_drift, OnToolDrift::Block);
    assert!(c.policies.hot_reload);
    assert_eq!(c.approval.timeout, Duration::from_secs(300));
    assert_eq!(c.audit.path, "./helio-audit.db");
    assert_eq!(c.audit.retention, Duration::from_secs(90 * 86_400));
    assert_eq!(
        c.session.identity,
        vec![
            IdentitySource::Header("x-helio-session-id".into()),
            IdentitySource::LegacyHeader
        ]
    );
    assert!(loaded.warnings.iter().any(|w| w.contains("audit-only")));
}

/// Every section of the original's schema, written the way its docs do.
const FULL: &str = r##"
version: "1"
x-payments: &payments
  tool: "stripe_*"
upstream:
  url: https://tools.internal.example/mcp
  transport: streamable-http
  protocol_version: auto
  connect_timeout: 5s
  request_timeout: 45s
  forward_headers: [x-team, X-Request-Id]
  headers:
    Authorization: "Bearer ${UPSTREAM_TOKEN}"
listen:
  port: ${HELIO_PORT}
  host: 0.0.0.0
  allowed_origins: ["http://localhost:5173"]
environment: production
session:
  identity:
    - source: header
      name: X-Agent-Run
    - source: meta
    - source: legacy_header
  on_unresolved: anonymous
policies:
  default: deny
  flag_destructive: log
  on_tool_drift: log
  tool_revalidation:
    enabled: true
    interval: 10m
    max_advertised_ttl: 10m
  dry_run: false
  hot_reload: false
  rules:
    - name: reads
      match:
        annotations: { readOnlyHint: true }
      action: allow
    - name: big-refunds
      match:
        tool: process_refund
        input:
          $.amount: { gt: 100 }
          reason: { regex: "^fraud", neq: "test" }
        environment: production
      action: require_approval
      approval:
        channel: ops-slack
        timeout: 10m
        delegates: [dashboard]
        escalation_after: 5m
      feedback:
        message: Large refunds need a human.
        suggestion: Split the refund or ask an operator.
    - match: { tool: "send_*" }
      action: rate_limit
      limits: { max_calls: 10, window: 1m, key: session }
    - match: *payments
      action: spend_limit
      limits:
        max_spend: { field: $.amount, limit: 500, currency: USD, window: 1h }
    - match: { tool: deploy }
      action: allow
      evidence: { requires: [change_ticket] }
      requires: [run_tests]
      requires_success: true
    - match:
        metadata:
          channel_id: C123
          sender_id: { contains: "bot" }
      action: dry_run
  install:
    default: allow
    rules:
      - match: { name: "evil-*", source: npm }
        action: deny_install
budgets:
  - name: agent-payments
    limit: 500
    currency: USD
    window: 1h
    key: session
    on_exceed: require_approval
    approval: { channel: dashboard, timeout: 2m }
    contributors:
      - match: { tool: "stripe_*", input: { currency: { eq: USD } } }
        field: $.amount
  - name: per-session
    limit: 50
    currency: USD
    window: session
    key: session
    idle_ttl: 24h
    contributors:
      - match: { tool: "*" }
        field: amount
approval:
  timeout: 300s
  default_on_timeout: deny
  channels:
    - type: slack
      name: ops-slack
      bot_token: xoxb-1
      signing_secret: abc
      channel: "#ops"
    - type: webhook
      url: https://hooks.example.com/helio
      secret: whsec
    - type: dashboard
audit:
  storage: sqlite
  path: /data/helio-audit.db
  retention: 30d
  include_responses: false
dashboard:
  enabled: true
  port: 3100
  host: 127.0.0.1
  api_secret: 0123456789abcdef0123456789abcdef
  allow_open_mode: false
  sse_heartbeat_interval: 15s
sdk:
  enabled: true
  port: 3200
  host: 127.0.0.1
  evaluation_ttl: 5m
"##;

#[test]
fn a_full_original_config_loads_unchanged() {
    let loaded = match parse_text(FULL) {
        Ok(l) => l,
        Err(e) => panic!("{}", e.report()),
    };
    let c = &loaded.config;
    assert_eq!(
        c.listen.port, 4000,
        "${{HELIO_PORT}} interpolated into a port"
    );
    assert_eq!(c.upstream.headers.len(), 1);
    assert_eq!(c.upstream.headers[0].1.expose(), "Bearer tok-123");
    assert_eq!(
        c.upstream
            .forward_headers
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>(),
        ["x-team", "x-request-id"]
    );
    assert_eq!(
        c.session.identity[0],
        IdentitySource::Header("x-agent-run".into())
    );
    assert_eq!(c.policies.rules.len(), 6);
    assert_eq!(c.policies.rules[1].action, Some(Action::RequireApproval));
    // What the rules stage gets: the section as written, aliases resolved.
    assert_eq!(
        c.policies_json["rules"][1]["match"]["input"]
            .as_object()
            .map(|i| i.len()),
        Some(2)
    );
    assert_eq!(
        c.policies_json["rules"][3]["match"]["tool"],
        serde_json::json!("stripe_*"),
        "merge/alias resolved"
    );
    assert_eq!(
        c.policies.tool_revalidation.max_advertised_ttl,
        Duration::from_secs(600)
    );
    assert_eq!(c.budgets.len(), 2);
    assert_eq!(c.budgets_json[1]["window"], serde_json::json!("session"));
    assert_eq!(c.approval.channels.len(), 3);
    assert!(!c.audit.include_responses);
    assert!(c.sdk.enabled);
    // Every key is enforced: none is reported as accepted but inert.
    assert!(!loaded
        .warnings
        .iter()
        .any(|w| w.contains("not yet enforced")));
    assert!(!loaded.warnings.iter().any(|w| w.starts_with("budgets:")));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let loaded = parse_text(FULL).expect("valid");
    let debug = format!("{:?}", loaded.config);
    for secret in [
        "tok-123",
        "0123456789abcdef0123456789abcdef",
        "xoxb-1",
        "whsec",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
}

#[test]
fn telemetry_is_off_by_default_and_its_endpoint_is_a_base_or_traces_url() {
    let c = parse_text(&minimal("")).expect("valid").config;
    assert_eq!(c.telemetry.traces_url, None);
    assert_eq!(
        (c.telemetry.service_name.as_str(), c.telemetry.sample_ratio),
        ("helio", 1.0)
    );
    for (written, url) in [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        (
            "https://otel.example/otlp",
            "https://otel.example/otlp/v1/traces",
        ),
        (
            "http://collector:4318/v1/traces",
            "http://collector:4318/v1/traces",
        ),
    ] {
        let text = minimal(&format!(
            "telemetry:\n  otlp_endpoint: {written}\n  sample_ratio: 0.25\n  headers:\n    x-api-key: ${{UPSTREAM_TOKEN}}\n"
        ));
        let c = parse_text(&text).expect("valid").config;
        assert_eq!(c.telemetry.traces_url.as_deref(), Some(url));
        assert_eq!(c.telemetry.sample_ratio, 0.25);
        assert_eq!(c.telemetry.headers[0].0, "x-api-key");
        assert!(!format!("{:?}", c.telemetry).contains("tok-123"));
    }
    let traced_upstream = format!(
        "version: \"1\"\nupstream:\n  url: http://u/mcp\n  headers: {{tracestate: x}}\ndashboard:\n  api_secret: {SECRET}\n"
    );
    let found = issues(&traced_upstream);
    assert!(
        found.iter().any(|i| i.contains(
            "upstream.headers.tracestate: upstream.headers must not set reserved header \"tracestate\""
        )),
        "{found:#?}"
    );
}

/// Invalid configurations and the exact `path: message` fragment each must report.
const INVALID: &[(&str, &str)] = &[
    ("rules: []\n", "(top level): unknown key \"rules\""),
    ("sdkk: {}\n", "(top level): unknown key \"sdkk\" (did you mean \"sdk\"?)"),
    ("listen:\n  port: 70000\n", "listen.port: port 70000 is out of range (1-65535)"),
    ("listen:\n  port: abc\n", "listen.port: expected a port number, found \"abc\""),
    ("environment: ${NOT_SET_VAR}\n", "environment: environment variable \"NOT_SET_VAR\" is not set"),
    ("policies:\n  default: maybe\n", "policies.default: invalid value \"maybe\" (expected one of: allow, deny)"),
    ("policies:\n  rules:\n    - match: {environment: prod}\n      action: deny\n", "policies.rules[0].match.environment: rule sets match.environment=\"prod\" but top-level `environment` is not configured"),
    ("policies:\n  rules:\n    - match: {tool: x}\n      action: require_approval\n      approval: {channel: nowhere}\n", "policies.rules[0].approval.channel: unknown approval channel \"nowhere\""),
    ("policies:\n  tool_revalidation: {interval: 5s}\n", "policies.tool_revalidation.interval: tool_revalidation.interval must be at least 10s"),
    ("listen:\n  allowed_origins: [\"*\"]\n", "listen.allowed_origins[0]: wildcards are not supported"),
    ("listen:\n  allowed_origins: [\"http://localhost:5173/\"]\n", "did you mean \"http://localhost:5173\"?"),
    ("approval:\n  channels:\n    - type: pager\n", "approval.channels[0].type: invalid value \"pager\""),
    ("approval:\n  channels:\n    - type: slack\n      name: dashboard\n      bot_token: a\n      signing_secret: b\n      channel: c\n", "approval.channels[0].name: the channel key \"dashboard\" is reserved"),
    ("sdk:\n  enabled: maybe\n", "sdk.enabled: expected true or false, found \"maybe\""),
    ("session:\n  identity: []\n", "session.identity: session.identity cannot be empty"),
    ("session:\n  identity:\n    - source: header\n      name: mcp-session-id\n", "session.identity[0].name: session identity header names must start with \"x-\""),
    ("audit:\n  storage: postgres\n", "audit.storage: invalid value \"postgres\" (expected one of: sqlite)"),
    ("audit:\n  redact: [\"a.**\", \"**.b\"]\n", "audit.redact[0]: \"a.**\" is not an argument path"),
    ("telemetry:\n  otlp_endpoint: collector:4317\n", "telemetry.otlp_endpoint: \"collector:4317\" is not an http(s) URL"),
    ("telemetry:\n  otlp_endpoint: http://c:4318\n  sample_ratio: -1\n", "telemetry.sample_ratio: expected a number from 0 to 1"),
    ("telemetry:\n  otlp_endpoint: http://c:4318\n  headers: {traceparent: x}\n", "telemetry.headers.traceparent: telemetry.headers must not set reserved header"),
];

#[test]
fn invalid_configs_report_exact_paths() {
    for (extra, expected) in INVALID {
        let text = minimal(extra);
        let found = issues(&text);
        assert!(
            found.iter().any(|i| i.contains(expected)),
            "config:\n{text}\nexpected an issue containing {expected:?}, got {found:#?}"
        );
    }
}

#[test]
fn upstream_problems() {
    let cases: &[(&str, &str)] = &[
        ("upstream:\n  url: \"not a url\"\n", "upstream.url: \"not a url\" is not a valid URL"),
        ("upstream:\n  url: ftp://x/mcp\n", "upstream.url: \"ftp://x/mcp\" is not an http(s) URL"),
        ("upstream:\n  url: http://x/mcp\n  request_timout: 5s\n", "upstream: unknown key \"request_timout\" (did you mean \"request_timeout\"?)"),
        ("upstream:\n  url: http://x/mcp\n  headers:\n    Content-Type: text/plain\n", "upstream.headers.Content-Type: upstream.headers must not set reserved header \"Content-Type\""),
        ("upstream:\n  url: http://x/mcp\n  headers:\n    Mcp-Session-Id: abc\n", "reserved header \"Mcp-Session-Id\""),
        ("upstream:\n  url: http://x/mcp\n  forward_headers: [authorization]\n", "upstream.forward_headers[0]: forwarded caller headers must start with \"x-\""),
        ("upstream:\n  url: http://x/mcp\n  request_timeout: 0s\n", "upstream.request_timeout: must be greater than zero"),
        ("upstream:\n  url: stdio://\n  transport: stdio\n", "upstream.command: \"command\" is required when transport is \"stdio\""),
        ("upstream:\n  transport: sse\n", "upstream.url: missing required key"),
        ("upstream:\n  url: http://x/mcp\n  headers:\n    X-Key: \"${MISSING_KEY}\"\n", "upstream.headers.X-Key: environment variable \"MISSING_KEY\" is not set"),
    ];
    for (section, expected) in cases {
        let text = format!("version: \"1\"\n{section}dashboard:\n  api_secret: {SECRET}\n");
        let found = issues(&text);
        assert!(
            found.iter().any(|i| i.contains(expected)),
            "config:\n{text}\nexpected {expected:?}, got {found:#?}"
        );
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let text = "version: \"2\"\nupstream:\n  url: nope\nlisten:\n  port: 0\nrules: []\npolicies:\n  default: maybe\n";
    let found = issues(text);
    for expected in [
        "version: unsupported version",
        "upstream.url:",
        "listen.port: port 0 is out of range",
        "(top level): unknown key \"rules\"",
        "policies.default: invalid value \"maybe\"",
        "dashboard.api_secret: dashboard.api_secret is required",
    ] {
        assert!(
            found.iter().any(|i| i.contains(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn dashboard_secret_rules() {
    let base = "version: \"1\"\nupstream:\n  url: http://x/mcp\n";
    let no_secret = issues(base);
    assert!(
        no_secret
            .iter()
            .any(|i| i.starts_with("dashboard.api_secret: ")),
        "{no_secret:?}"
    );

    let open_loopback = format!("{base}dashboard:\n  allow_open_mode: true\n");
    let loaded = parse_text(&open_loopback).expect("open mode on loopback is allowed");
    assert!(loaded.warnings.iter().any(|w| w.contains("open mode")));

    let open_remote = format!("{base}dashboard:\n  allow_open_mode: true\n  host: 0.0.0.0\n");
    assert!(issues(&open_remote)
        .iter()
        .any(|i| i.starts_with("dashboard.host: ")));

    let disabled = format!("{base}dashboard:\n  enabled: false\n");
    parse_text(&disabled).expect("no secret needed with the dashboard off");

    let approvals_open = format!(
        "{base}dashboard:\n  allow_open_mode: true\npolicies:\n  rules:\n    - match: {{tool: x}}\n      action: require_approval\n"
    );
    assert!(
        issues(&approvals_open)
            .iter()
            .any(|i| i.contains("required when any rule uses require_approval")),
        "open mode cannot bypass the approval secret requirement"
    );
}

#[test]
fn yaml_errors_and_empty_documents() {
    match parse_text("version: \"1\"\n  bad: indentation\n") {
        Err(ConfigError::Yaml { message, .. }) => assert!(message.contains("line"), "{message}"),
        other => panic!("expected a YAML error, got {other:?}"),
    }
    assert!(issues("").iter().any(|i| i.contains("(top level)")));
    assert!(issues("- a\n- b\n")
        .iter()
        .any(|i| i.contains("(top level): expected a mapping, found a list")));
}

#[test]
fn empty_sections_mean_defaults() {
    let loaded = parse_text(&minimal("policies:\nbudgets:\nlisten:\n")).expect("valid");
    assert!(loaded.config.policies.rules.is_empty());
    assert_eq!(loaded.config.listen.port, 3000);
}

#[test]
fn x_keys_only_stripped_at_the_root() {
    parse_text(&minimal("x-anchors: {a: 1}\n")).expect("root x- keys are extension holders");
    let found = issues(&minimal("listen:\n  x-note: hi\n"));
    assert!(
        found
            .iter()
            .any(|i| i.contains("listen: unknown key \"x-note\"")),
        "{found:?}"
    );
}

#[test]
fn the_init_scaffold_is_valid() {
    let text = scaffold(SECRET);
    let loaded = match parse(&text, Path::new("helio.yaml"), &|_| None) {
        Ok(l) => l,
        Err(e) => panic!("{}", e.report()),
    };
    assert_eq!(
        loaded
            .config
            .dashboard
            .api_secret
            .as_ref()
            .map(|s| s.expose().as_str()),
        Some(SECRET)
    );
}

#[test]
fn a_reload_may_not_route_approvals_to_channels_the_running_helio_lacks() {
    let config = |channels: &str, route: &str| {
        let text = minimal(&format!(
            "approval:\n  channels:\n{channels}policies:\n  rules:\n    - name: approve\n      match: {{ tool: pay }}\n      action: require_approval\n      approval: {route}\n"
        ));
        match parse_text(&text) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{}", e.report()),
        }
    };
    let hook = "    - { type: webhook, name: ops, url: \"https://hooks.example/a\" }\n";
    let both = "    - { type: webhook, name: ops, url: \"https://hooks.example/a\" }\n    - { type: webhook, name: oncall, url: \"https://hooks.example/b\" }\n";
    let running = config(hook, "{ channel: ops }");
    assert!(unroutable_on_reload(&running, &config(hook, "{ channel: dashboard }")).is_empty());
    let reloaded = config(
        both,
        "{ channel: oncall, escalation_after: 1m, delegates: [ops, oncall] }",
    );
    assert_eq!(
        unroutable_on_reload(&running, &reloaded),
        vec![
            (
                "policies.rules[0].approval.channel".to_owned(),
                "oncall".to_owned()
            ),
            (
                "policies.rules[0].approval.delegates[1]".to_owned(),
                "oncall".to_owned()
            ),
        ]
    );
}

#[test]
fn spend_extractors_are_components_rules_and_budgets_name() {
    let text = minimal(
        "extractors:\n  - name: line-items\n    path: x.wasm\n    config: {items: items}\n    limits: {timeout_ms: 20}\npolicies:\n  rules:\n    - match: {tool: pay}\n      action: spend_limit\n      limits: {max_spend: {extractor: line-items, limit: 5, currency: USD, window: 1h}}\n",
    );
    let loaded = parse_text(&text).expect("valid");
    let extractor = &loaded.config.extractors[0];
    assert_eq!(extractor.name, "line-items");
    assert_eq!(extractor.timeout, Duration::from_millis(20));
    assert_eq!(extractor.config, serde_json::json!({"items": "items"}));
    let unknown = issues(&minimal(
        "policies:\n  rules:\n    - match: {tool: pay}\n      action: spend_limit\n      limits: {max_spend: {extractor: items, limit: 5, currency: USD, window: 1h}}\nbudgets:\n  - name: b\n    limit: 5\n    currency: USD\n    window: 1h\n    contributors:\n      - match: {tool: pay}\n        extractor: cents\n",
    ));
    assert!(unknown.iter().any(|i| i == "policies.rules[0].limits.max_spend.extractor: no spend extractor named \"items\" in `extractors` (none are defined)"), "{unknown:?}");
    assert!(
        unknown.iter().any(|i| i.starts_with(
            "budgets[0].contributors[0].extractor: no spend extractor named \"cents\""
        )),
        "{unknown:?}"
    );
    let bad = issues(&minimal("extractors:\n  - name: Line Items\n    path: x.wasm\n  - {name: a, path: y.wasm}\n  - {name: a, path: z.wasm, position: after_rules}\n"));
    assert!(
        bad.iter()
            .any(|i| i.starts_with("extractors[0].name: extractor names may only contain")),
        "{bad:?}"
    );
    assert!(
        bad.iter()
            .any(|i| i.starts_with("extractors[2]: unknown key \"position\"")),
        "{bad:?}"
    );
}
