//! Added latency of a `tools/call` relayed through Helio, against the same
//! call sent straight to the upstream, in one run.
//!
//!     cargo bench -p helio --bench relay [-- --calls N --concurrency 1,32]
//!     cargo bench -p helio --bench relay -- --stages-only | --audit-only
//!
//! The upstream is the demo MCP server (rmcp, streamable HTTP, SSE replies).
//! Three Helio gateways run in-process with the dashboard off: a transparent
//! one (no policy, so no stage runs), a governed one whose rules stage (a
//! WebAssembly component) checks every call against a realistic 20-rule policy
//! (`POLICY`), and a stateful one (`STATEFUL_POLICY`) where the same call
//! engages evidence, a dependency chain, a spend limit, a budget and a rate
//! limit, with governance state in SQLite. Upstream, gateways and the load generator each get their own
//! Tokio runtime, so the client does not steal the gateways' workers. Each
//! concurrency level runs the three modes in alternating rounds and reports
//! p50, p99 and throughput for each. Then the stage chain alone is timed
//! in-process, one component call with no rules to check, and the audit
//! writer's sustained throughput (records/s with 1 KiB responses).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use helio::audit::Audit;
use helio::state::{now_ms, Evidence, LocalStore, StateBackend};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The governed path: a production policy of the kind operators write for
/// an agent with payment, database, ticketing and infrastructure tools.
/// `lookup_order` (read-only) is checked against all twenty rules — globs,
/// annotation, environment and input conditions, regexes — and allowed by
/// the last one.
const POLICY: &str = r#"
environment: production
policies:
  default: deny
  flag_destructive: log
  rules:
    - name: no-deletes
      match: { tool: "delete_*" }
      action: deny
    - name: no-schema-drops
      match: { tool: "db.drop_*" }
      action: deny
    - name: no-admin-namespace
      match: { tool: "admin.*" }
      action: deny
    - name: large-refunds
      match: { tool: process_refund, input: { $.amount: { gt: 100 } } }
      action: deny
    - name: foreign-currency-refunds
      match: { tool: process_refund, input: { $.currency: { neq: "USD" } } }
      action: deny
    - name: production-payment-cap
      match: { tool: create_payment, environment: production, input: { $.amount: { gte: 1000 } } }
      action: deny
    - name: card-numbers-in-memos
      match: { tool: create_payment, input: { $.memo: { regex: "\\b[0-9]{13,16}\\b" } } }
      action: deny
    - name: rehearse-payments
      match: { tool: create_payment }
      action: dry_run
    - name: international-wires
      match: { tool: "wire_*", input: { $.destination.country: { neq: "US" } } }
      action: deny
    - name: no-ddl
      match: { tool: db.query, input: { $.sql: { regex: "(?i)\\b(drop|alter|truncate|grant)\\b" } } }
      action: deny
    - name: selects-only
      match: { tool: db.query, input: { $.sql: { regex: "(?i)^\\s*select\\b" } } }
      action: allow
    - name: no-personal-mail
      match: { tool: email.send, input: { $.to: { regex: "@(gmail|yahoo|outlook)\\.com$" } } }
      action: deny
    - name: no-closing-prod-incidents
      match: { tool: "jira.close_*", environment: production }
      action: deny
    - name: no-shell
      match: { tool: "shell.*" }
      action: deny
    - name: no-cluster-writes
      match: { tool: "k8s.*", annotations: { readOnlyHint: false } }
      action: deny
    - name: no-open-world-writes
      match: { tool: "http.*", annotations: { openWorldHint: true, readOnlyHint: false } }
      action: deny
    - name: no-wildcard-lookups
      match: { tool: lookup_order, input: { $.order_id: { contains: "*" } } }
      action: deny
    - name: idempotent-updates
      match: { tool: "update_*", annotations: { idempotentHint: true } }
      action: allow
    - name: searches
      match: { tool: "search_*" }
      action: allow
    - name: read-only-tools
      match: { annotations: { readOnlyHint: true } }
      action: allow
"#;

/// The stateful path: the call needs evidence (`ticket_verified`) and an
/// earlier `search_docs` in its session, charges a spend limit and a budget
/// (`$.amount`), and takes a rate slot in a second stage (the built-in rules
/// engine loaded again as an after-rules plugin, since a rule has one
/// action). Limits are high enough never to block during the run.
const STATEFUL_POLICY: &str = r#"
policies:
  default: deny
  rules:
    - name: grounded-spend
      match: { tool: lookup_order }
      action: spend_limit
      evidence: { requires: [ticket_verified] }
      requires: [search_docs]
      limits:
        max_spend: { field: $.amount, limit: 1000000000000, currency: USD, window: 1h, key: session }
budgets:
  - name: daily
    limit: 1000000000000
    currency: USD
    window: 1d
    contributors:
      - match: { tool: lookup_order }
        field: $.amount
"#;

/// The second stage of the stateful chain, appended with the rules
/// component's path.
fn stateful_rate_plugin(path: &Path) -> String {
    format!(
        r#"
plugins:
  - name: per-session-rate
    path: {}
    position: after_rules
    config:
      policies:
        default: allow
        rules:
          - name: session-rate
            match: {{ tool: lookup_order }}
            action: rate_limit
            limits: {{ max_calls: 1000000000000, window: 1h, key: session }}
"#,
        path.display()
    )
}

/// Limiter correctness under load: a global bucket of `BURST_LIMIT` calls
/// hit by `BURST_CALLS` calls, `BURST_IN_FLIGHT` at a time.
const BURST_POLICY: &str = r#"
policies:
  rules:
    - name: burst
      match: { tool: lookup_order }
      action: rate_limit
      limits: { max_calls: 1000, window: 1h, key: global }
"#;
const BURST_LIMIT: usize = 1000;
const BURST_CALLS: usize = 10_000;
const BURST_IN_FLIGHT: usize = 500;

/// The session every benchmark call claims.
const SESSION: &str = "bench-session";

struct Args {
    calls: usize,
    concurrency: Vec<usize>,
    rounds: usize,
    /// Only the in-process stage costs (for profiling).
    stages_only: bool,
    /// Only the audit writer's throughput.
    audit_only: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        calls: 4000,
        concurrency: vec![1, 32],
        rounds: 4,
        stages_only: false,
        audit_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--stages-only" => args.stages_only = true,
            "--audit-only" => args.audit_only = true,
            "--calls" => args.calls = it.next().and_then(|v| v.parse().ok()).unwrap_or(args.calls),
            "--rounds" => {
                args.rounds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.rounds)
            }
            "--concurrency" => {
                if let Some(list) = it.next() {
                    args.concurrency = list
                        .split(',')
                        .filter_map(|c| c.trim().parse().ok())
                        .collect();
                }
            }
            // cargo bench passes --bench; ignore what is not ours.
            _ => {}
        }
    }
    args
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench_config(upstream_url: &str, policy: &str) -> helio::config::Config {
    let yaml = format!(
        "version: \"1\"\nupstream:\n  url: {upstream_url}\ndashboard:\n  enabled: false\n{policy}"
    );
    let mut loaded =
        helio::config::parse(&yaml, Path::new("bench.yaml"), &|_| None).expect("bench config");
    loaded.config.listen.port = 0; // any free port
    loaded.config
}

fn build_pipeline(
    config: &helio::config::Config,
    plugins: &std::sync::Arc<helio::plugins::Runtime>,
) -> helio::pipeline::Pipeline {
    helio::pipeline::Pipeline::build(config, plugins)
        .unwrap_or_else(|issues| panic!("bench pipeline: {issues:?}"))
}

/// Starts a gateway in front of `upstream_url` with `policy` and governance
/// state `state`; returns its MCP URL.
async fn start_gateway(
    upstream_url: &str,
    policy: &str,
    state: Arc<dyn StateBackend>,
    audit: Arc<helio::audit::Audit>,
    stop: &CancellationToken,
) -> String {
    let config = bench_config(upstream_url, policy);
    let plugins = helio::plugins::Runtime::new(state).expect("plugin runtime");
    let active = helio::pipeline::Active::new(build_pipeline(&config, &plugins));
    let gateway = helio::gateway::Gateway::bind(&config, None, active, plugins, audit)
        .await
        .expect("bind gateway");
    let url = format!("http://{}/mcp", gateway.mcp_addr);
    let stop = stop.clone();
    tokio::spawn(gateway.serve(async move { stop.cancelled().await }));
    url
}

fn main() {
    let args = parse_args();
    let stop = CancellationToken::new();
    let scratch = std::env::temp_dir().join(format!("helio-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let rules_wasm = scratch.join("helio_rules.wasm");
    std::fs::write(&rules_wasm, helio::plugins::builtin::RULES).expect("write rules component");
    let stateful_policy = format!("{STATEFUL_POLICY}{}", stateful_rate_plugin(&rules_wasm));
    if args.audit_only {
        audit_throughput(&scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        return;
    }
    if args.stages_only {
        stage_costs(&stateful_policy, &scratch.join("in-process.db"));
        audit_throughput(&scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        return;
    }

    let upstream_rt = runtime("upstream", 1);
    let upstream_url = upstream_rt.block_on(async {
        let (listener, addr) = helio::demo::bind().await.expect("bind demo upstream");
        tokio::spawn(helio::demo::serve(listener, stop.clone()));
        format!("http://{addr}/mcp")
    });

    let gateway_rt = runtime(
        "helio",
        std::env::var("BENCH_HELIO_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
    );
    let state = grounded_state(&scratch.join("state.db"));
    let (transparent_url, governed_url, audited_url, stateful_url, burst_url) = gateway_rt
        .block_on(async {
            (
                start_gateway(
                    &upstream_url,
                    "",
                    LocalStore::in_memory(),
                    Audit::disabled(),
                    &stop,
                )
                .await,
                start_gateway(
                    &upstream_url,
                    POLICY,
                    LocalStore::in_memory(),
                    Audit::disabled(),
                    &stop,
                )
                .await,
                start_gateway(
                    &upstream_url,
                    POLICY,
                    LocalStore::in_memory(),
                    audited(&scratch, "governed-audit.db"),
                    &stop,
                )
                .await,
                start_gateway(
                    &upstream_url,
                    &stateful_policy,
                    state,
                    audited(&scratch, "stateful-audit.db"),
                    &stop,
                )
                .await,
                start_gateway(
                    &upstream_url,
                    BURST_POLICY,
                    LocalStore::open(&scratch.join("burst.db"), now_ms()).expect("burst state"),
                    Audit::disabled(),
                    &stop,
                )
                .await,
            )
        });

    let client_rt = runtime("client", 1);
    client_rt.block_on(async {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        let targets = [
            Target::connect(&client, "direct", &upstream_url).await,
            Target::connect(&client, "transparent", &transparent_url).await,
            Target::connect(&client, "governed", &governed_url).await,
            Target::connect(&client, "+audit", &audited_url).await,
            Target::connect(&client, "stateful", &stateful_url).await,
        ];

        println!(
            "tools/call lookup_order (same body every mode), loopback; {} calls per mode per concurrency level",
            args.calls
        );
        println!(
            "{:<12} {:>5} {:>10} {:>10} {:>12}",
            "mode", "conc", "p50 µs", "p99 µs", "calls/s"
        );
        for &concurrency in &args.concurrency {
            // Warm every path (connections, caches) before measuring.
            for target in &targets {
                run(&client, target, concurrency, 200.max(concurrency * 4)).await;
            }
            let per_round = (args.calls / args.rounds).max(concurrency);
            let mut results: [Sample; 5] = Default::default();
            for _ in 0..args.rounds {
                for (i, target) in targets.iter().enumerate() {
                    let sample = run(&client, target, concurrency, per_round).await;
                    results[i].merge(sample);
                }
            }
            let [direct, transparent, governed, audited, stateful] = &results;
            for (sample, target) in results.iter().zip(&targets) {
                sample.print(target.label, concurrency);
            }
            print_added("+relay", concurrency, transparent, direct);
            print_added("+governed", concurrency, governed, direct);
            print_added("+stages", concurrency, governed, transparent);
            print_added("+audit", concurrency, audited, governed);
            print_added("+stateful", concurrency, stateful, direct);
            print_added("+st.stages", concurrency, stateful, transparent);
        }
    });
    client_rt.block_on(async {
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(BURST_IN_FLIGHT)
            .build(HttpConnector::new());
        let target = Target::connect(&client, "burst", &burst_url).await;
        burst(&client, &target).await;
    });
    stop.cancel();
    stage_costs(&stateful_policy, &scratch.join("in-process.db"));
    audit_throughput(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// How many records per second the audit writer sustains, with 1 KiB
/// upstream responses stored (`include_responses: true`).
fn audit_throughput(scratch: &Path) {
    const RECORDS: usize = 200_000;
    let audit = audited(scratch, "throughput.db");
    let response = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
        "x".repeat(1024)
    );
    let template = helio::audit::AuditRecord {
        timestamp: "2026-11-23T00:00:00.000Z".into(),
        session_id: Some("bench".into()),
        session_source: Some("header"),
        tool_name: "lookup_order".into(),
        tool_input: r#"{"order_id":"ORD-1002","amount":5}"#.into(),
        policy_decision: "allow".into(),
        matched_rule: Some("read-only-tools".into()),
        matched_rule_index: Some(19),
        upstream_response: Some(response),
        upstream_http_status: Some(200),
        upstream_latency_ms: Some(0.2),
        total_duration_ms: 0.3,
        proxy_compute_ms: 0.1,
        record_kind: "tool_call",
        origin: "mcp".into(),
        ..Default::default()
    };
    let started = Instant::now();
    for _ in 0..RECORDS {
        let mut record = template.clone();
        record.id = helio::audit::new_id();
        audit.record(record);
    }
    let queued = started.elapsed().as_secs_f64();
    audit.flush().expect("audit flush");
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "audit writer: {RECORDS} records with 1 KiB responses in {elapsed:.2} s = {:.0} records/s sustained ({} waits for a full queue; all queued after {queued:.2} s)",
        RECORDS as f64 / elapsed,
        audit.full_waits()
    );
}

/// The stateful gateway records every call, as a production one does.
fn audited(scratch: &Path, file: &str) -> Arc<Audit> {
    let yaml = format!(
        "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  enabled: false\naudit:\n  path: {}\n",
        scratch.join(file).display()
    );
    let loaded =
        helio::config::parse(&yaml, Path::new("bench.yaml"), &|_| None).expect("audit config");
    Audit::open(&loaded.config).expect("audit database")
}

/// SQLite-backed state in which the benchmark session already holds the
/// evidence and the completed call the stateful policy requires.
fn grounded_state(path: &Path) -> Arc<dyn StateBackend> {
    let state = LocalStore::open(path, now_ms()).expect("state database");
    let now = now_ms();
    state
        .record_evidence(
            SESSION,
            Evidence {
                key: "ticket_verified".into(),
                data: serde_json::json!({ "ticket": "T-1" }),
                tool_name: "lookup_ticket".into(),
                recorded_ms: now,
                expires_ms: now + 24 * 3600 * 1000,
            },
        )
        .expect("evidence");
    state.record_completion(SESSION, "search_docs", true, now);
    state
}

fn print_added(label: &str, concurrency: usize, slower: &Sample, faster: &Sample) {
    println!(
        "{:<12} {:>5} {:>10.1} {:>10.1} {:>11.1}%",
        label,
        concurrency,
        slower.percentile(0.50) - faster.percentile(0.50),
        slower.percentile(0.99) - faster.percentile(0.99),
        (slower.throughput() / faster.throughput() - 1.0) * 100.0
    );
}

/// The governance share of the added latency, without sockets: the same
/// call through the compiled stage chain, in-process, many times; then one
/// component call that has nothing to check (no rules, `default: deny`), the
/// fixed cost each stage adds.
fn stage_costs(stateful_policy: &str, database: &Path) {
    use helio::govern::{CallFacts, Decision, Door, Governor, SessionIdentity};
    let plugins = helio::plugins::Runtime::new(LocalStore::in_memory()).expect("plugin runtime");
    let governed = build_pipeline(&bench_config("http://127.0.0.1:9/mcp", POLICY), &plugins);
    let bare = build_pipeline(
        &bench_config("http://127.0.0.1:9/mcp", "policies:\n  default: deny\n"),
        &plugins,
    );
    let read_only = helio::plugins::Annotations {
        read_only_hint: true,
        destructive_hint: false,
        idempotent_hint: true,
        open_world_hint: false,
        known: true,
    };
    let arguments: Arc<serde_json::Value> =
        Arc::new(serde_json::json!({"order_id": "ORD-1002", "amount": 5}));
    // Through the governance core, as a door calls it (audit off: its cost
    // is the writer's, measured with the relay above).
    let core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    let time = |plugins: &Arc<helio::plugins::Runtime>,
                pipeline: helio::pipeline::Pipeline,
                session: Option<&str>,
                forwards: bool| {
        let governor = Governor::new(
            helio::pipeline::Active::new(pipeline),
            plugins.clone(),
            Audit::disabled(),
        );
        let mut samples = Vec::with_capacity(100_000);
        for i in 0..110_000 {
            let t0 = Instant::now();
            let decision = core.block_on(governor.decide(CallFacts {
                door: Door::Mcp,
                received: t0,
                protocol_version: None,
                tool: "lookup_order".into(),
                arguments: Some(arguments.clone()),
                raw_arguments: None,
                annotations: read_only,
                drift: None,
                identity: session.map(|id| SessionIdentity {
                    id: id.into(),
                    source: "header",
                }),
                agent: None,
                metadata: None,
                trace: None,
            }));
            let forwarded = match decision {
                Decision::Forward(call) => {
                    call.answered(Some(200), answer);
                    true
                }
                Decision::Block(_) | Decision::Simulate(_) | Decision::Hold(_) => false,
            };
            let elapsed = t0.elapsed();
            assert_eq!(forwarded, forwards);
            if i >= 10_000 {
                samples.push(elapsed.as_secs_f64() * 1e6);
            }
        }
        Sample {
            latencies_us: samples,
            elapsed: Duration::ZERO,
        }
    };
    let chain = time(&plugins, governed, None, true);
    let one_call = time(&plugins, bare, None, false);
    let stateful_plugins =
        helio::plugins::Runtime::new(grounded_state(database)).expect("plugin runtime");
    let stateful_pipeline = build_pipeline(
        &bench_config("http://127.0.0.1:9/mcp", stateful_policy),
        &stateful_plugins,
    );
    let stateful = time(
        &stateful_plugins,
        build_pipeline(
            &bench_config("http://127.0.0.1:9/mcp", stateful_policy),
            &stateful_plugins,
        ),
        Some(SESSION),
        true,
    );
    println!(
        "governance core alone (rules component, 20 rules, in-process): p50 {:.2} µs, p99 {:.2} µs",
        chain.percentile(0.50),
        chain.percentile(0.99)
    );
    println!(
        "one component call, nothing to check (in-process): p50 {:.2} µs, p99 {:.2} µs",
        one_call.percentile(0.50),
        one_call.percentile(0.99)
    );
    println!(
        "stateful core alone (3 stages, holds committed to SQLite, settled): p50 {:.2} µs, p99 {:.2} µs",
        stateful.percentile(0.50),
        stateful.percentile(0.99)
    );

    // The audit's view of that call: what the stages checked, as JSON text
    // (written by the audit writer thread, off the request path).
    let decided = stateful_pipeline.evaluate(
        &stateful_plugins,
        helio::plugins::ToolCall::new(
            "lookup_order".into(),
            read_only,
            Some(arguments.clone()),
            None,
        )
        .with_session(Some(SESSION.into())),
        None,
    );
    stateful_plugins.state().release(&decided.holds);
    let mut chain = Vec::with_capacity(20_000);
    let mut bytes = 0;
    for _ in 0..20_000 {
        let t0 = Instant::now();
        let text = helio::plugins::checks::evidence_chain(&decided.checks, &[]).unwrap_or_default();
        chain.push(t0.elapsed().as_secs_f64() * 1e6);
        bytes = text.len();
    }
    let chain = Sample {
        latencies_us: chain,
        elapsed: Duration::ZERO,
    };
    println!(
        "its audit evidence_chain ({} checks, {bytes} bytes of JSON): p50 {:.2} µs, p99 {:.2} µs",
        decided.checks.len(),
        chain.percentile(0.50),
        chain.percentile(0.99)
    );
}

struct Target {
    label: &'static str,
    url: hyper::Uri,
    session: String,
}

impl Target {
    async fn connect(client: &HttpClient, label: &'static str, url: &str) -> Arc<Self> {
        let uri: hyper::Uri = url.parse().expect("url");
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"relay-bench","version":"1"}}}"#;
        let response = client
            .request(post(&uri, None, init))
            .await
            .expect("initialize");
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{label}: no Mcp-Session-Id on initialize"))
            .to_owned();
        let _ = response.into_body().collect().await;
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let response = client
            .request(post(&uri, Some(&session), initialized))
            .await
            .expect("initialized");
        let _ = response.into_body().collect().await;
        Arc::new(Self {
            label,
            url: uri,
            session,
        })
    }
}

fn post(
    uri: &hyper::Uri,
    session: Option<&str>,
    body: impl Into<Bytes>,
) -> hyper::Request<Full<Bytes>> {
    let mut builder = hyper::Request::post(uri.clone())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        builder = builder
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18")
            .header("x-helio-session-id", SESSION);
    }
    builder.body(Full::new(body.into())).expect("request")
}

/// A `tools/call` body; ids must be unique among a session's in-flight calls.
fn call_body(id: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"lookup_order","arguments":{{"order_id":"ORD-1002","amount":5}}}}}}"#
    ))
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Default)]
struct Sample {
    latencies_us: Vec<f64>,
    elapsed: Duration,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
    }

    fn percentile(&self, q: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).copied().unwrap_or(f64::NAN)
    }

    fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, mode: &str, concurrency: usize) {
        println!(
            "{:<12} {:>5} {:>10.1} {:>10.1} {:>12.0}",
            mode,
            concurrency,
            self.percentile(0.50),
            self.percentile(0.99),
            self.throughput()
        );
    }
}

/// Sends the burst and checks the bucket admitted exactly its limit.
async fn burst(client: &HttpClient, target: &Arc<Target>) {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..BURST_IN_FLIGHT {
        let client = client.clone();
        let target = target.clone();
        workers.spawn(async move {
            let (mut admitted, mut limited) = (0usize, 0usize);
            for _ in 0..BURST_CALLS / BURST_IN_FLIGHT {
                let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let response = client
                    .request(post(&target.url, Some(&target.session), call_body(id)))
                    .await
                    .expect("tools/call");
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                if memchr::memmem::find(&body, b"\"result\"").is_some() {
                    admitted += 1;
                } else if memchr::memmem::find(&body, b"\"rate_limited\"").is_some() {
                    limited += 1;
                } else {
                    panic!("unexpected reply: {}", String::from_utf8_lossy(&body));
                }
            }
            (admitted, limited)
        });
    }
    let (mut admitted, mut limited) = (0, 0);
    while let Some(done) = workers.join_next().await {
        let (a, l) = done.expect("worker");
        admitted += a;
        limited += l;
    }
    println!(
        "rate limiter burst: {BURST_CALLS} calls, {BURST_IN_FLIGHT} in flight, limit {BURST_LIMIT}: \
         {admitted} admitted, {limited} rate_limited ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(admitted, BURST_LIMIT, "the limiter over- or under-admitted");
}

/// `calls` tool calls from `concurrency` concurrent callers.
async fn run(
    client: &HttpClient,
    target: &Arc<Target>,
    concurrency: usize,
    calls: usize,
) -> Sample {
    let per_worker = calls.div_ceil(concurrency);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let target = target.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let t0 = Instant::now();
                let response = client
                    .request(post(
                        &target.url,
                        Some(&target.session),
                        call_body(NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                    ))
                    .await
                    .expect("tools/call");
                assert!(
                    response.status().is_success(),
                    "status {}",
                    response.status()
                );
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                assert!(
                    memchr::memmem::find(&body, b"\"result\"").is_some(),
                    "unexpected reply from {}: {:?}",
                    target.url,
                    String::from_utf8_lossy(&body)
                );
                latencies.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            latencies
        });
    }
    let mut sample = Sample::default();
    while let Some(done) = workers.join_next().await {
        sample.latencies_us.extend(done.expect("worker"));
    }
    sample.elapsed = started.elapsed();
    sample
}
