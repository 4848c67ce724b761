//! The core end to end in-process: real configuration, the real built-in
//! components on wasmtime, a real state store and audit trail in SQLite,
//! and an in-process upstream standing in for the MCP server (no socket).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::approvals::{Approvals, Resolution, ResolveError, Resolver, Status};
use crate::config::TimeoutOutcome;
use crate::plugins::Annotations;
use crate::scratch::Scratch;
use crate::state::{LocalStore, StateBackend};

/// A core over `store` with the policy in `yaml`, auditing to `db`.
struct Core {
    governor: Governor,
    audit: Arc<Audit>,
    state: Arc<dyn StateBackend>,
    records: tokio::sync::broadcast::Receiver<Arc<str>>,
}

impl Core {
    fn new(yaml: &str, store: Arc<dyn StateBackend>, db: &Path) -> Self {
        let text = format!(
            "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  api_secret: 0123456789abcdef0123456789abcdef\naudit:\n  path: {}\n{yaml}",
            db.display()
        );
        let loaded = match crate::config::parse(&text, Path::new("helio.yaml"), &|_| None) {
            Ok(loaded) => loaded,
            Err(e) => panic!("{}", e.report()),
        };
        let runtime = Runtime::new(store.clone()).expect("runtime");
        let pipeline = match crate::pipeline::Pipeline::build(&loaded.config, &runtime) {
            Ok(p) => p,
            Err(issues) => panic!("{issues:?}"),
        };
        let audit = Audit::open(&loaded.config).expect("audit");
        let records = audit.subscribe();
        Self {
            governor: Governor::new(
                crate::pipeline::Active::new(pipeline),
                runtime,
                audit.clone(),
            ),
            audit,
            state: store,
            records,
        }
    }

    /// Holds calls for approval; `timeout` is `approval.timeout`.
    fn holding(
        mut self,
        approvals: Arc<Approvals>,
        timeout: Duration,
        on_timeout: TimeoutOutcome,
    ) -> Self {
        self.governor = self.governor.holding_approvals(Holding {
            registry: approvals,
            timeout,
            on_timeout,
        });
        self
    }

    async fn decide(&self, tool: &str, arguments: Value, session: &str) -> Decision {
        let raw = arguments.to_string();
        self.governor
            .decide(facts(Door::Mcp, tool, &arguments, &raw, session))
            .await
    }

    /// As the adapter API asks: the caller runs the tool itself.
    async fn decide_deferred(&self, tool: &str, arguments: Value) -> Deferred {
        let raw = arguments.to_string();
        let door = Door::Adapter("openclaw".into());
        self.governor
            .decide_deferred(facts(door, tool, &arguments, &raw, "s1"))
            .await
    }

    /// A door in miniature: decides, and sends a forwarded call to the
    /// in-process `upstream`, which answers with a JSON-RPC message or
    /// fails. Returns the denial when the call was blocked.
    async fn call(
        &self,
        tool: &str,
        arguments: Value,
        upstream: impl FnOnce(&Value) -> Result<Value, Unanswered>,
    ) -> Result<Value, Denial> {
        match self.decide(tool, arguments.clone(), "s1").await {
            Decision::Forward(call) => Ok(forward(*call, &arguments, upstream)),
            Decision::Block(denial) => Err(denial),
            Decision::Simulate(simulation) => Ok(simulation.report),
            Decision::Hold(_) => panic!("nothing holds without approvals"),
        }
    }

    /// The records written so far, in order, as the API shows them.
    fn written(&mut self) -> Vec<Value> {
        self.audit.flush().expect("flush");
        let mut out = Vec::new();
        while let Ok(record) = self.records.try_recv() {
            out.push(serde_json::from_str(&record).expect("record JSON"));
        }
        out
    }

    /// Spend held or committed across every pot.
    fn spent(&self) -> f64 {
        self.state
            .windows(crate::state::now_ms())
            .expect("windows")
            .iter()
            .filter(|w| w.key.starts_with("budgets/"))
            .map(|w| w.total.to_string().parse::<f64>().expect("decimal"))
            .sum()
    }
}

/// What a door knows of a call of `tool` with `arguments` (`raw`, as sent)
/// in `session`.
fn facts<'a>(
    door: Door,
    tool: &str,
    arguments: &Value,
    raw: &'a str,
    session: &str,
) -> CallFacts<'a> {
    CallFacts {
        door,
        received: Instant::now(),
        protocol_version: Some("2025-06-18"),
        tool: tool.into(),
        arguments: Some(Arc::new(arguments.clone())),
        raw_arguments: Some(raw),
        annotations: Annotations {
            read_only_hint: false,
            destructive_hint: false,
            idempotent_hint: false,
            open_world_hint: false,
            known: true,
        },
        drift: None,
        identity: Some(SessionIdentity {
            id: session.into(),
            source: "header",
        }),
        agent: Some("tester@1".into()),
        metadata: None,
        trace: None,
    }
}

fn forward(
    call: Forwarded,
    arguments: &Value,
    upstream: impl FnOnce(&Value) -> Result<Value, Unanswered>,
) -> Value {
    match upstream(arguments) {
        Ok(message) => {
            call.answered(Some(200), message.to_string().as_bytes());
            message
        }
        Err(unanswered) => {
            call.unanswered(unanswered, "the in-process upstream did not answer");
            Value::Null
        }
    }
}

fn ok(_: &Value) -> Result<Value, Unanswered> {
    Ok(
        json!({ "jsonrpc": "2.0", "id": 1, "result": { "content": [{ "type": "text", "text": "paid" }] } }),
    )
}

fn tool_error(_: &Value) -> Result<Value, Unanswered> {
    Ok(json!({ "jsonrpc": "2.0", "id": 1, "result": { "content": [], "isError": true } }))
}

/// Two `add` calls an hour.
const TWO_SLOTS: &str = "policies:\n  rules:\n    - name: two\n      match: { tool: add }\n      action: rate_limit\n      limits: { max_calls: 2, window: 1h }\n";

/// [`TWO_SLOTS`] and a pot of 70 that `add` spends `a` from.
fn two_slots_and_a_pot(window: &str) -> String {
    format!("{TWO_SLOTS}budgets:\n  - name: pot\n    limit: 70\n    currency: EUR\n    {window}\n    contributors:\n      - match: {{ tool: add }}\n        field: a\n")
}

const BUDGET: &str = "budgets:\n  - name: pot\n    limit: 100\n    currency: EUR\n    window: 1h\n    contributors:\n      - match: { tool: pay }\n        field: a\n";

#[tokio::test(flavor = "current_thread")]
async fn forwarded_calls_settle_by_what_the_upstream_answers_and_are_recorded() {
    let scratch = Scratch::new("govern-settle");
    let mut core = Core::new(BUDGET, LocalStore::in_memory(), &scratch.0.join("audit.db"));

    assert_eq!(
        core.call("pay", json!({ "a": 40 }), ok)
            .await
            .expect("paid")["result"]["content"][0]["text"],
        "paid"
    );
    assert_eq!(core.spent(), 40.0);
    // The server says it failed: the spend is refunded.
    core.call("pay", json!({ "a": 30 }), tool_error)
        .await
        .expect("forwarded");
    assert_eq!(core.spent(), 40.0);
    // Never delivered: refunded. Outcome unknown: the charge stands.
    core.call("pay", json!({ "a": 10 }), |_| Err(Unanswered::Undelivered))
        .await
        .expect("forwarded");
    assert_eq!(core.spent(), 40.0);
    core.call("pay", json!({ "a": 10 }), |_| Err(Unanswered::Unknown))
        .await
        .expect("forwarded");
    assert_eq!(core.spent(), 50.0);
    // Over the budget: blocked, typed, and nothing held.
    let denial = core
        .call("pay", json!({ "a": 51 }), ok)
        .await
        .expect_err("over budget");
    assert_eq!(denial.reason, "budget_exceeded");
    assert_eq!(denial.data()["blocked"], json!(true));
    assert_eq!(core.spent(), 50.0);

    let records = core.written();
    let decisions: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r["policy_decision"].as_str().expect("decision"),
                r["block_reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(decisions.len(), 5, "{records:#?}");
    assert_eq!(decisions[4].1, Some("budget_exceeded"));
    assert_eq!(records[0]["origin"], json!("mcp"));
    assert_eq!(records[0]["session_id"], json!("s1"));
    assert_eq!(records[0]["upstream_http_status"], json!(200));
    assert!(
        records[2]["upstream_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer")),
        "{}",
        records[2]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_later_stage_blocking_gives_back_what_earlier_stages_took() {
    let scratch = Scratch::new("govern-later-stage");
    let core = Core::new(
        &two_slots_and_a_pot("window: 1h"),
        LocalStore::in_memory(),
        &scratch.0.join("audit.db"),
    );
    core.call("add", json!({ "a": 50 }), ok)
        .await
        .expect("first");
    the_budget_refusal_gave_back_its_slot(&core).await;
}

/// After one `add` of 50 against two slots and a pot of 70: 30 more is over
/// budget, and blocked without keeping its rate slot, so 20 still fits and
/// only the call after it is over the rate.
async fn the_budget_refusal_gave_back_its_slot(core: &Core) {
    let denial = core
        .call("add", json!({ "a": 30 }), ok)
        .await
        .expect_err("over budget");
    assert_eq!(denial.reason, "budget_exceeded");
    core.call("add", json!({ "a": 20 }), ok)
        .await
        .expect("second slot");
    let denial = core
        .call("add", json!({ "a": 0 }), ok)
        .await
        .expect_err("over rate");
    assert_eq!(denial.reason, "rate_limited");
}

#[tokio::test(flavor = "current_thread")]
async fn limits_and_budgets_hold_across_a_restart() {
    let scratch = Scratch::new("govern-restart");
    let db = scratch.0.join("state.db");
    let yaml = &two_slots_and_a_pot("window: session\n    key: session");
    {
        let core = Core::new(
            yaml,
            LocalStore::open(&db, crate::state::now_ms()).expect("db"),
            &db,
        );
        core.call("add", json!({ "a": 50 }), ok)
            .await
            .expect("first");
        // What a graceful shutdown does.
        core.state.flush().expect("flush");
    }
    let core = Core::new(
        yaml,
        LocalStore::open(&db, crate::state::now_ms()).expect("db"),
        &db,
    );
    the_budget_refusal_gave_back_its_slot(&core).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_store_that_cannot_write_blocks_the_call_state_unavailable() {
    let scratch = Scratch::new("govern-failing-store");
    let mut core = Core::new(
        TWO_SLOTS,
        crate::state::TestStore::failing_writes(LocalStore::in_memory()),
        &scratch.0.join("audit.db"),
    );
    let denial = core
        .call("add", json!({ "a": 1 }), |_| {
            panic!("a call the store could not count must not be sent")
        })
        .await
        .expect_err("blocked");
    assert_eq!(denial.reason, "state_unavailable");
    assert!(denial.retry_allowed);
    // What the stage took was given back: the window is empty.
    let windows = core.state.windows(crate::state::now_ms()).expect("windows");
    assert!(windows.iter().all(|w| w.total.is_zero()), "{windows:?}");
    let records = core.written();
    assert_eq!(records[0]["block_reason"], json!("state_unavailable"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_store_that_is_down_blocks_what_needs_it_state_unavailable() {
    let scratch = Scratch::new("govern-down-store");
    let mut core = Core::new(
        &format!("{TWO_SLOTS}    - name: grounded\n      match: {{ tool: refund }}\n      action: allow\n      evidence:\n        requires: [order_checked]\n"),
        Arc::new(crate::state::Down),
        &scratch.0.join("audit.db"),
    );
    let never = |_: &Value| -> Result<Value, Unanswered> {
        panic!("a call whose state could not be checked must not be sent")
    };
    // A rate limit and an evidence check cannot be decided without state:
    // refused as such, not as a failing stage.
    for tool in ["add", "refund"] {
        let denial = core
            .call(tool, json!({}), never)
            .await
            .expect_err("blocked");
        assert_eq!(denial.reason, "state_unavailable", "{tool}");
        assert!(denial.retry_allowed);
    }
    // A call no stage counts needs no state, and goes through.
    core.call("lookup", json!({}), ok).await.expect("forwarded");
    let records = core.written();
    let reasons: Vec<Option<&str>> = records.iter().map(|r| r["block_reason"].as_str()).collect();
    assert_eq!(
        reasons,
        vec![Some("state_unavailable"), Some("state_unavailable"), None]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_stage_waiting_on_a_slow_store_does_not_stall_the_worker() {
    let scratch = Scratch::new("govern-slow-store");
    let delay = std::time::Duration::from_millis(300);
    let core = Core::new(
        TWO_SLOTS,
        crate::state::TestStore::slow(LocalStore::in_memory(), delay),
        &scratch.0.join("audit.db"),
    );
    // One single-threaded worker: a call waits on the store while a
    // neighbour on the same worker keeps ticking.
    let ticks = std::cell::Cell::new(0u32);
    let neighbour = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            ticks.set(ticks.get() + 1);
        }
    };
    let started = Instant::now();
    let answered = tokio::select! {
        answered = core.call("add", json!({}), ok) => answered,
        () = neighbour => unreachable!("the neighbour never ends"),
    };
    answered.expect("forwarded");
    assert!(started.elapsed() >= delay);
    assert!(
        ticks.get() >= 10,
        "the worker stalled while the stage waited: {} ticks in {:?}",
        ticks.get(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_abandoned_while_a_stage_waits_on_the_store_gives_back_what_it_took() {
    let scratch = Scratch::new("govern-abandoned");
    let store = LocalStore::in_memory();
    let core = Core::new(
        TWO_SLOTS,
        crate::state::TestStore::slow(store.clone(), std::time::Duration::from_millis(200)),
        &scratch.0.join("audit.db"),
    );
    // The client goes away while the rules stage waits for its rate slot.
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        core.decide("add", json!({}), "s1"),
    )
    .await;
    assert!(abandoned.is_err(), "the call was still waiting");
    // The stage finishes on its blocking thread and takes the slot; the
    // abandoned call's guard gives it back, so both slots are free again.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    for _ in 0..2 {
        core.call("add", json!({}), ok)
            .await
            .expect("a slot the abandoned call took was given back");
    }
    let windows = store.windows(crate::state::now_ms());
    assert!(windows.iter().any(|w| w.total == 2.into()), "{windows:?}");
}

const HELD: &str = "policies:\n  rules:\n    - name: approve-payments\n      match: { tool: pay }\n      action: require_approval\nbudgets:\n  - name: pot\n    limit: 100\n    currency: EUR\n    window: 1h\n    contributors:\n      - match: { tool: pay }\n        field: a\n";

#[tokio::test(flavor = "current_thread")]
async fn without_a_way_to_collect_approvals_a_call_that_needs_one_is_refused() {
    let scratch = Scratch::new("govern-no-approvals");
    let core = Core::new(HELD, LocalStore::in_memory(), &scratch.0.join("audit.db"));
    let denial = core
        .call("pay", json!({ "a": 10 }), ok)
        .await
        .expect_err("refused");
    assert_eq!(denial.reason, "approval_unavailable");
    assert_eq!(denial.action, "deny");
    assert!(!denial.retry_allowed);
    assert_eq!(core.spent(), 0.0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_held_call_keeps_its_holds_until_resolved_and_gives_them_back_when_not_forwarded() {
    let scratch = Scratch::new("govern-held");
    let approvals = Arc::new(Approvals::default());
    let mut core = Core::new(HELD, LocalStore::in_memory(), &scratch.0.join("audit.db")).holding(
        approvals.clone(),
        Duration::from_secs(60),
        TimeoutOutcome::Deny,
    );
    let pending = |approvals: &Approvals| -> Vec<String> {
        let (tickets, _) = approvals.list(Some(Status::Pending), 100, 0);
        tickets.into_iter().map(|t| t.id).collect()
    };
    let held = |decision: Decision| match decision {
        Decision::Hold(held) => held,
        Decision::Forward(_) | Decision::Block(_) | Decision::Simulate(_) => {
            panic!("expected the call to be held")
        }
    };

    // Held: the spend is reserved while a human decides.
    let first = held(core.decide("pay", json!({ "a": 60 }), "s1").await);
    assert_eq!(
        first.approval().decision.rule.as_deref(),
        Some("approve-payments")
    );
    assert_eq!(pending(&approvals), vec![first.ticket().to_owned()]);
    let ticket = approvals.get(first.ticket()).expect("ticket");
    assert_eq!(ticket.tool_name, "pay");
    assert_eq!(ticket.session_id.as_deref(), Some("s1"));
    assert_eq!(ticket.channel_name, "dashboard");
    assert_eq!(ticket.timeout_ms, 60_000);
    assert_eq!(
        ticket.arguments_digest,
        crate::approvals::arguments_digest(Some(&json!({ "a": 60 })))
    );
    assert_eq!(ticket.policy_version.len(), 64);
    assert_eq!(core.spent(), 60.0);
    // So a second call cannot take what the first holds.
    let Decision::Block(denial) = core.decide("pay", json!({ "a": 50 }), "s1").await else {
        panic!("the held spend must count");
    };
    assert_eq!(denial.reason, "budget_exceeded");

    // The client goes away: nothing is forwarded, the spend comes back.
    drop(first);
    assert_eq!(core.spent(), 0.0);
    assert!(pending(&approvals).is_empty());
    assert_eq!(
        approvals.get(&ticket.id).map(|t| t.status),
        Some(Status::ClientDisconnected)
    );

    // Denied: blocked with the operator's reason, released.
    let second = held(core.decide("pay", json!({ "a": 50 }), "s1").await);
    let ticket = second.ticket().to_owned();
    approvals
        .resolve(
            &ticket,
            Resolution::Denied {
                reason: Some("not this vendor".into()),
            },
            operator("alice"),
        )
        .expect("deny");
    let Resolved::Block(denial) = second.resolved().await else {
        panic!("a denied call is blocked");
    };
    assert_eq!(denial.reason, "approval_denied");
    assert!(denial.message.contains("not this vendor"));
    assert_eq!(core.spent(), 0.0);
    assert_eq!(
        approvals.resolve(&ticket, Resolution::Approved, operator("bob")),
        Err(ResolveError::AlreadyResolved(Status::Denied)),
        "resolved once"
    );

    // Cancelled (shutdown): released.
    let third = held(core.decide("pay", json!({ "a": 50 }), "s1").await);
    approvals.cancel_all();
    let Resolved::Block(denial) = third.resolved().await else {
        panic!("a cancelled call is blocked");
    };
    assert_eq!(denial.reason, "shutdown_cancelled");
    assert_eq!(core.spent(), 0.0);

    // Approved: forwarded exactly once with its holds committed.
    let fourth = held(core.decide("pay", json!({ "a": 70 }), "s1").await);
    let resolving = tokio::spawn({
        let approvals = approvals.clone();
        let ticket = fourth.ticket().to_owned();
        async move {
            tokio::task::yield_now().await;
            approvals.resolve(&ticket, Resolution::Approved, operator("carol"))
        }
    });
    let Resolved::Forward(call) = fourth.resolved().await else {
        panic!("an approved call is forwarded");
    };
    resolving.await.expect("resolver").expect("approved");
    forward(*call, &json!({ "a": 70 }), ok);
    assert_eq!(core.spent(), 70.0);

    let records = core.written();
    let reasons: Vec<Option<&str>> = records.iter().map(|r| r["block_reason"].as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            Some("budget_exceeded"),
            Some("client_disconnected"),
            Some("approval_denied"),
            Some("shutdown_cancelled"),
            None
        ],
        "{records:#?}"
    );
    let approved = &records[4];
    assert_eq!(approved["policy_decision"], json!("require_approval"));
    assert_eq!(approved["matched_rule"], json!("approve-payments"));
    assert_eq!(approved["upstream_http_status"], json!(200));
    assert_eq!(approved["approval_status"], json!("approved"));
    assert_eq!(approved["approved_by"], json!("carol"));
    assert!(approved["evidence_chain"]["approval"]["ticket_id"].is_string());
    let denied = &records[2];
    assert_eq!(denied["approval_status"], json!("denied"));
    assert_eq!(denied["approved_by"], json!("alice"));
    assert_eq!(
        denied["evidence_chain"]["approval"]["denial_reason"],
        json!("not this vendor")
    );
    assert_eq!(records[1]["approval_status"], json!("client_disconnected"));
    assert_eq!(records[3]["approval_status"], json!("shutdown_cancelled"));
}

fn operator(name: &str) -> Resolver {
    Resolver {
        name: name.into(),
        credential: "api_secret".into(),
    }
}

const HELD_RULE_ONLY: &str = "policies:\n  rules:\n    - name: approve-mail\n      match: { tool: mail }\n      action: require_approval\n";

#[tokio::test(flavor = "current_thread")]
async fn a_held_call_nobody_decides_on_times_out_as_configured() {
    let scratch = Scratch::new("govern-held-timeout");
    for (on_timeout, forwarded) in [(TimeoutOutcome::Deny, false), (TimeoutOutcome::Allow, true)] {
        let approvals = Arc::new(Approvals::default());
        let mut core = Core::new(
            HELD_RULE_ONLY,
            LocalStore::in_memory(),
            &scratch.0.join(format!("audit-{forwarded}.db")),
        )
        .holding(approvals.clone(), Duration::from_millis(300), on_timeout);
        let Decision::Hold(held) = core.decide("mail", json!({ "to": "x" }), "s1").await else {
            panic!("held");
        };
        let id = held.ticket().to_owned();
        match held.resolved().await {
            Resolved::Forward(call) => {
                assert!(forwarded, "forwarded only when the timeout allows");
                forward(*call, &json!({ "to": "x" }), ok);
            }
            Resolved::Block(denial) => {
                assert!(!forwarded);
                assert_eq!(denial.reason, "approval_timeout");
            }
        }
        assert_eq!(approvals.get(&id).map(|t| t.status), Some(Status::Timeout));
        // Too late: the ticket is closed.
        assert_eq!(
            approvals.resolve(&id, Resolution::Approved, operator("alice")),
            Err(ResolveError::AlreadyResolved(Status::Timeout))
        );
        let records = core.written();
        assert_eq!(records[0]["approval_status"], json!("timeout"));
        assert!(records[0]["approval_wait_ms"].as_f64().unwrap_or(0.0) >= 250.0);
    }
}

/// A rule holds `pay`; a pot of 100 asks for an approval past its limit
/// (with its own route), a pot of 1,000 beside it fits.
const HELD_BUDGETS: &str = "policies:\n  rules:\n    - name: approve-payments\n      match: { tool: pay }\n      action: require_approval\nbudgets:\n  - name: pot\n    limit: 100\n    currency: EUR\n    window: 1h\n    on_exceed: require_approval\n    approval: { channel: dashboard, timeout: 30s }\n    contributors:\n      - match: { tool: \"*\" }\n        field: a\n  - name: big\n    limit: 1000\n    currency: EUR\n    window: 1h\n    on_exceed: require_approval\n    contributors:\n      - match: { tool: \"*\" }\n        field: a\n";

/// A core holding calls under [`HELD_BUDGETS`], with its registry.
fn holding_budgets(scratch: &Scratch) -> (Core, Arc<Approvals>) {
    let approvals = Arc::new(Approvals::default());
    let core = Core::new(
        HELD_BUDGETS,
        LocalStore::in_memory(),
        &scratch.0.join("audit.db"),
    )
    .holding(
        approvals.clone(),
        Duration::from_secs(60),
        TimeoutOutcome::Deny,
    );
    (core, approvals)
}

fn held(decision: Decision) -> Box<Held> {
    match decision {
        Decision::Hold(held) => held,
        Decision::Forward(_) | Decision::Block(_) | Decision::Simulate(_) => {
            panic!("expected the call to be held")
        }
    }
}

/// Resolves ticket `id` once the held call is waiting on it.
fn resolve_soon(approvals: &Arc<Approvals>, id: String, resolution: Resolution, by: &str) {
    let approvals = approvals.clone();
    let by = operator(by);
    tokio::spawn(async move {
        for _ in 0..200 {
            if approvals
                .get(&id)
                .is_some_and(|t| t.status == Status::Pending)
            {
                approvals.resolve(&id, resolution, by).expect("resolve");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("ticket {id} never became pending");
    });
}

/// The pending tickets other than `except`.
fn pending_except(approvals: &Approvals, except: &str) -> Vec<crate::approvals::Ticket> {
    let (tickets, _) = approvals.list(Some(Status::Pending), 100, 0);
    tickets.into_iter().filter(|t| t.id != except).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_budget_ticket_lists_what_it_breaches_and_charges_the_overage_when_approved() {
    let scratch = Scratch::new("govern-budget-ticket");
    let (mut core, approvals) = holding_budgets(&scratch);

    // Only the budget asks: one ticket, from the first breached budget's route.
    let call = held(core.decide("refund", json!({ "a": 150 }), "s1").await);
    let id = call.ticket().to_owned();
    let ticket = approvals.get(&id).expect("ticket");
    assert_eq!(
        ticket.timeout_ms, 30_000,
        "the budget's own approval timeout"
    );
    let breached = ticket.breached_budgets.expect("a budget ticket");
    assert_eq!(breached.len(), 1);
    assert_eq!(breached[0]["name"], json!("pot"));
    assert_eq!(breached[0]["attempted_amount"], json!(150));
    assert_eq!(breached[0]["limit"], json!(100));
    // Held: only the pot that fits has the amount reserved.
    assert_eq!(core.spent(), 150.0);
    resolve_soon(&approvals, id, Resolution::Approved, "finance");
    let Resolved::Forward(forwarded) = call.resolved().await else {
        panic!("an approved budget ticket forwards the call");
    };
    forward(*forwarded, &json!({ "a": 150 }), ok);
    // Both pots are charged: the breached one beyond its limit.
    assert_eq!(core.spent(), 300.0);

    // Now over its limit, the pot asks again: denied, nothing is charged.
    let call = held(core.decide("refund", json!({ "a": 5 }), "s1").await);
    let id = call.ticket().to_owned();
    resolve_soon(
        &approvals,
        id,
        Resolution::Denied {
            reason: Some("not this month".into()),
        },
        "finance",
    );
    let Resolved::Block(denial) = call.resolved().await else {
        panic!("denied");
    };
    assert_eq!(denial.reason, "budget_exceeded");
    assert_eq!(denial.action, "budget");
    assert!(!denial.retry_allowed);
    assert_eq!(denial.extra["denied_by"], json!("finance"));
    assert_eq!(denial.extra["denial_reason"], json!("not this month"));
    assert_eq!(denial.extra["budgets"][0]["name"], json!("pot"));
    assert_eq!(core.spent(), 300.0);

    let records = core.written();
    let approved = &records[0];
    assert_eq!(approved["approval_status"], json!("approved"));
    assert_eq!(approved["approved_by"], json!("finance"));
    let chain = &approved["evidence_chain"];
    assert!(chain["approval"].is_null(), "{chain}");
    assert_eq!(chain["budget_approval"]["status"], json!("approved"));
    assert_eq!(
        chain["budget_approval"]["approved_overage"],
        json!([{ "name": "pot", "amount": 150, "currency": "EUR", "kind": "approved_overage" }])
    );
    assert_eq!(records[1]["block_reason"], json!("budget_exceeded"));
    assert_eq!(records[1]["approval_status"], json!("denied"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_rule_and_a_budget_ask_one_after_the_other() {
    let scratch = Scratch::new("govern-rule-then-budget");
    let (mut core, approvals) = holding_budgets(&scratch);

    for money in [Resolution::Approved, Resolution::Denied { reason: None }] {
        let approved = money == Resolution::Approved;
        let call = held(core.decide("pay", json!({ "a": 120 }), "s1").await);
        let rule_ticket = call.ticket().to_owned();
        assert!(approvals
            .get(&rule_ticket)
            .expect("rule ticket")
            .breached_budgets
            .is_none());
        resolve_soon(&approvals, rule_ticket.clone(), Resolution::Approved, "ops");
        let waiting = tokio::spawn(call.resolved());
        // The money is asked for on its own ticket once the action is approved.
        let budget_ticket = loop {
            if let Some(ticket) = pending_except(&approvals, &rule_ticket).pop() {
                break ticket;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_ne!(budget_ticket.id, rule_ticket);
        assert_eq!(budget_ticket.call_id, rule_ticket, "bound to the same call");
        assert_eq!(
            budget_ticket.breached_budgets.expect("budgets")[0]["name"],
            json!("pot")
        );
        approvals
            .resolve(&budget_ticket.id, money, operator("finance"))
            .expect("resolve");
        match waiting.await.expect("joined") {
            Resolved::Forward(forwarded) => {
                assert!(approved);
                forward(*forwarded, &json!({ "a": 120 }), ok);
            }
            Resolved::Block(denial) => {
                assert!(!approved);
                assert_eq!(denial.reason, "budget_exceeded");
            }
        }
    }
    assert_eq!(core.spent(), 240.0, "charged to both pots once");
    let records = core.written();
    for (record, money) in records.iter().zip(["approved", "denied"]) {
        // The columns keep the rule's decision; the money's is beside it.
        assert_eq!(record["approval_status"], json!("approved"), "{record:#}");
        assert_eq!(record["approved_by"], json!("ops"));
        assert_eq!(record["matched_rule"], json!("approve-payments"));
        assert_eq!(
            record["evidence_chain"]["approval"]["status"],
            json!("approved")
        );
        assert_eq!(
            record["evidence_chain"]["budget_approval"]["status"],
            json!(money)
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_budget_ticket_nobody_decides_on_blocks_even_where_timeouts_allow() {
    let scratch = Scratch::new("govern-budget-timeout");
    let approvals = Arc::new(Approvals::default());
    let budget = "budgets:\n  - name: pot\n    limit: 10\n    currency: EUR\n    window: 1h\n    on_exceed: require_approval\n    contributors:\n      - match: { tool: refund }\n        field: a\n";
    let mut core = Core::new(budget, LocalStore::in_memory(), &scratch.0.join("audit.db")).holding(
        approvals.clone(),
        Duration::from_millis(200),
        TimeoutOutcome::Allow,
    );
    let call = held(core.decide("refund", json!({ "a": 50 }), "s1").await);
    let Resolved::Block(denial) = call.resolved().await else {
        panic!("a budget ticket fails closed");
    };
    assert_eq!(denial.reason, "budget_exceeded");
    assert_eq!(denial.extra["timeout_seconds"], json!(0));
    assert_eq!(core.spent(), 0.0);
    let records = core.written();
    assert_eq!(records[0]["approval_status"], json!("timeout"));
    assert_eq!(records[0]["block_reason"], json!("budget_exceeded"));
}

// ------------------------------------------------- calls their caller runs

fn allowed(deferred: Deferred) -> Box<Pending> {
    match deferred {
        Deferred::Allow(pending) => pending,
        Deferred::Block(denial) => panic!("blocked: {}", denial.reason),
        Deferred::Simulate(_) => panic!("simulated"),
        Deferred::Hold(_) => panic!("held"),
    }
}

fn blocked(deferred: Deferred) -> Denial {
    match deferred {
        Deferred::Block(denial) => denial,
        _ => panic!("not blocked"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_evaluation_reserves_until_its_caller_reports() {
    let scratch = Scratch::new("govern-deferred");
    let mut core = Core::new(
        &two_slots_and_a_pot("window: 1h"),
        LocalStore::in_memory(),
        &scratch.0.join("audit.db"),
    );
    // Two evaluations take both slots; a third, while they are pending,
    // is refused: the last slot is never given twice.
    let first = allowed(core.decide_deferred("add", json!({ "a": 30 })).await);
    let second = allowed(core.decide_deferred("add", json!({ "a": 10 })).await);
    assert_eq!(core.spent(), 40.0, "reserved while pending");
    let third = blocked(core.decide_deferred("add", json!({ "a": 1 })).await);
    assert_eq!(third.reason, "rate_limited");
    assert_eq!(
        first.decision().and_then(|d| d.rule.as_deref()),
        Some("two")
    );

    // Not run: everything it reserved comes back.
    second.report(Report::NotRun).expect("reported");
    assert_eq!(core.spent(), 30.0);
    // Ran and succeeded: committed, recorded with what it returned.
    let id = first.record_id().to_owned();
    first
        .report(Report::Ran {
            outcome: crate::state::CallOutcome::Succeeded,
            result: Some(br#"{"sum": 30}"#),
            error: None,
            took: Some(Duration::from_millis(12)),
            actual_amount: None,
        })
        .expect("reported");
    assert_eq!(core.spent(), 30.0);
    // The slot the unrun call gave back is there again; one failed run
    // is refunded, its slot stays used.
    let failed = allowed(core.decide_deferred("add", json!({ "a": 20 })).await);
    assert_eq!(core.spent(), 50.0);
    failed
        .report(Report::Ran {
            outcome: crate::state::CallOutcome::Failed,
            result: None,
            error: Some("division by zero".into()),
            took: None,
            actual_amount: None,
        })
        .expect("reported");
    assert_eq!(core.spent(), 30.0);
    assert_eq!(
        blocked(core.decide_deferred("add", json!({ "a": 1 })).await).reason,
        "rate_limited"
    );

    let records = core.written();
    let ran = records
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("the run's record");
    assert_eq!(ran["origin"], "openclaw");
    assert_eq!(ran["upstream_response"], json!({ "sum": 30 }));
    assert_eq!(ran["upstream_latency_ms"], 12.0);
    assert_eq!(ran["record_kind"], "tool_call");
    let unrun = records
        .iter()
        .find(|r| {
            r["upstream_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("not executed"))
        })
        .expect("the unrun call's record");
    assert_eq!(unrun["origin"], "openclaw");
    assert!(records
        .iter()
        .any(|r| r["upstream_error"] == "division by zero"));
}

#[tokio::test(flavor = "current_thread")]
async fn an_evaluation_never_reported_gives_back_what_it_reserved_and_says_so() {
    let scratch = Scratch::new("govern-expired");
    let mut core = Core::new(
        &two_slots_and_a_pot("window: 1h"),
        LocalStore::in_memory(),
        &scratch.0.join("audit.db"),
    );
    let pending = allowed(core.decide_deferred("add", json!({ "a": 60 })).await);
    assert_eq!(core.spent(), 60.0);
    drop(pending);
    assert_eq!(core.spent(), 0.0);
    let records = core.written();
    let expired = records.last().expect("a record");
    assert_eq!(expired["record_kind"], "evaluation_expired");
    assert_eq!(
        expired["evidence_chain"]["sideband"],
        json!({ "unreported": true })
    );
    assert_eq!(expired["block_reason"], Value::Null);
}

/// A held evaluation: the rule's ticket, then the budget's.
fn held_deferred(deferred: Deferred) -> Box<Held> {
    match deferred {
        Deferred::Hold(held) => held,
        Deferred::Allow(_) | Deferred::Block(_) | Deferred::Simulate(_) => {
            panic!("expected the evaluation to be held")
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_held_evaluation_keeps_its_reservation_until_approved_then_until_its_report() {
    let scratch = Scratch::new("govern-deferred-approval");
    let (mut core, approvals) = holding_budgets(&scratch);
    let held = held_deferred(core.decide_deferred("pay", json!({ "a": 50 })).await);
    let id = held.ticket().to_owned();
    let ticket = approvals.get(&id).expect("ticket");
    assert_eq!(ticket.origin, "openclaw", "the ticket names its door");
    assert_eq!(core.spent(), 100.0, "both pots hold the amount while held");
    resolve_soon(&approvals, id.clone(), Resolution::Approved, "ops");
    let pending = held.resolved_deferred().await.expect("approved");
    assert_eq!(pending.record_id(), id);
    assert_eq!(core.spent(), 100.0, "still reserved until the report");
    pending
        .report(Report::Ran {
            outcome: crate::state::CallOutcome::Succeeded,
            result: Some(b"{}"),
            error: None,
            took: None,
            actual_amount: None,
        })
        .expect("reported");
    assert_eq!(core.spent(), 100.0, "committed");
    let records = core.written();
    let record = records
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("record");
    assert_eq!(record["approval_status"], json!("approved"));
    assert_eq!(record["approved_by"], json!("ops"));
    assert_eq!(record["origin"], json!("openclaw"));
    assert_eq!(record["policy_decision"], json!("require_approval"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_held_evaluation_its_caller_withdraws_is_blocked_and_gives_back_its_holds() {
    let scratch = Scratch::new("govern-deferred-withdrawn");
    let (mut core, approvals) = holding_budgets(&scratch);
    let by = operator("adapter");
    for (status, reason) in [
        (Status::Timeout, "approval_timeout"),
        (Status::ClientDisconnected, "client_disconnected"),
    ] {
        let held = held_deferred(core.decide_deferred("pay", json!({ "a": 50 })).await);
        assert_eq!(core.spent(), 100.0);
        approvals
            .withdraw(held.ticket(), status, &by)
            .expect("withdrawn");
        let Err(denial) = held.resolved_deferred().await else {
            panic!("a withdrawn evaluation is blocked");
        };
        assert_eq!(denial.reason, reason);
        assert_eq!(core.spent(), 0.0, "given back");
        assert_eq!(
            approvals.withdraw(&denial_ticket(&approvals), status, &by),
            Err(ResolveError::AlreadyResolved(status))
        );
    }
    let records = core.written();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["approval_status"], json!("timeout"));
    assert_eq!(records[1]["approval_status"], json!("client_disconnected"));
}

/// The newest ticket's id.
fn denial_ticket(approvals: &Arc<Approvals>) -> String {
    approvals.list(None, 1, 0).0[0].id.clone()
}

fn ran(outcome: crate::state::CallOutcome, actual: &str) -> Report<'static> {
    Report::Ran {
        outcome,
        result: None,
        error: None,
        took: None,
        actual_amount: Some(actual.parse().expect("decimal")),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_reported_actual_amount_replaces_what_was_evaluated() {
    use crate::state::CallOutcome::{Failed, Succeeded};
    let scratch = Scratch::new("govern-actual-amount");
    let mut core = Core::new(BUDGET, LocalStore::in_memory(), &scratch.0.join("audit.db"));
    // Cheaper than evaluated: the difference is free again at once.
    let cheaper = allowed(core.decide_deferred("pay", json!({ "a": 60 })).await);
    let id = cheaper.record_id().to_owned();
    cheaper.report(ran(Succeeded, "12.50")).expect("reported");
    assert_eq!(core.spent(), 12.5);
    // Dearer than the limit allows: it ran, so it counts — and blocks
    // what no longer fits.
    let dearer = allowed(core.decide_deferred("pay", json!({ "a": 10 })).await);
    dearer.report(ran(Succeeded, "95")).expect("reported");
    assert_eq!(core.spent(), 107.5);
    assert_eq!(
        blocked(core.decide_deferred("pay", json!({ "a": 1 })).await).reason,
        "budget_exceeded"
    );
    // Failed, yet it cost something: the cost stands (no refund).
    let core2 = Core::new(
        BUDGET,
        LocalStore::in_memory(),
        &scratch.0.join("audit2.db"),
    );
    let failed = allowed(core2.decide_deferred("pay", json!({ "a": 30 })).await);
    failed.report(ran(Failed, "0.3")).expect("reported");
    assert_eq!(core2.spent(), 0.3);

    let records = core.written();
    let record = records
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("record");
    let chain = &record["evidence_chain"];
    assert_eq!(
        chain["actual_amount"],
        json!({ "amount": 12.5, "evaluated": [60] })
    );
    assert_eq!(chain["budgets"][0]["amount"], json!(12.5));
    assert_eq!(chain["budgets"][0]["spent"], json!(12.5));
}
