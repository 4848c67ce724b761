//! The chain end to end in-process: real config, the real built-in rules
//! component, real wasmtime.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use super::*;

fn runtime() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(crate::state::LocalStore::in_memory()).expect("wasmtime runtime")
    })
}

fn pipeline(extra: &str) -> Pipeline {
    let text = format!(
        "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  api_secret: 0123456789abcdef0123456789abcdef\n{extra}"
    );
    let loaded = match config::parse(&text, Path::new("helio.yaml"), &|_| None) {
        Ok(loaded) => loaded,
        Err(e) => panic!("{}", e.report()),
    };
    match Pipeline::build(&loaded.config, runtime()) {
        Ok(p) => p,
        Err(issues) => panic!("{issues:?}"),
    }
}

fn args(json: Value) -> Option<Arc<Value>> {
    Some(Arc::new(json))
}

fn known(read_only: bool, destructive: bool) -> Annotations {
    Annotations {
        read_only_hint: read_only,
        destructive_hint: destructive,
        idempotent_hint: false,
        open_world_hint: false,
        known: true,
    }
}

fn run(
    p: &Pipeline,
    tool: &str,
    annotations: Annotations,
    arguments: Option<Arc<Value>>,
) -> Outcome {
    p.evaluate(runtime(), tool.into(), annotations, arguments, None)
        .outcome
}

fn block_data(outcome: &Outcome) -> &Value {
    match outcome {
        Outcome::Block { data, .. } => data,
        other => panic!("expected a block, got {other:?}"),
    }
}

const RULES: &str = r#"
policies:
  rules:
    - name: reads
      match: { annotations: { readOnlyHint: true } }
      action: allow
    - name: big-refunds
      match:
        tool: process_refund
        input: { amount: { gt: 100 } }
      action: deny
      feedback:
        message: Refunds over 100 need a human.
        suggestion: Split the refund.
    - name: try-payments
      match: { tool: "create_*" }
      action: dry_run
    - match: { tool: delete_record }
      action: require_approval
  default: deny
"#;

#[test]
fn first_match_decides() {
    let p = pipeline(RULES);
    assert_eq!(
        run(&p, "lookup_order", known(true, false), None),
        Outcome::Forward
    );

    let denied = run(
        &p,
        "process_refund",
        known(false, false),
        args(json!({ "amount": 250 })),
    );
    let Outcome::Block { message, data } = &denied else {
        panic!("{denied:?}")
    };
    assert_eq!(message, "Refunds over 100 need a human.");
    assert_eq!(data["blocked"], json!(true));
    assert_eq!(data["reason"], json!("policy_denied"));
    assert_eq!(data["rule"], json!("big-refunds"));
    assert_eq!(data["rule_index"], json!(1));
    assert_eq!(data["action"], json!("deny"));
    assert_eq!(data["suggestion"], json!("Split the refund."));
    assert_eq!(data["retry_allowed"], json!(false));

    // Below the threshold the refund rule does not match; the default denies.
    let small = run(
        &p,
        "process_refund",
        known(false, false),
        args(json!({ "amount": 20 })),
    );
    assert_eq!(block_data(&small)["reason"], json!("policy_denied"));
    assert_eq!(block_data(&small)["rule"], Value::Null);
}

#[test]
fn dry_run_rule_simulates() {
    let p = pipeline(RULES);
    let Outcome::DryRun { report, .. } =
        run(&p, "create_payment", known(false, false), args(json!({})))
    else {
        panic!("expected a dry run");
    };
    assert_eq!(report["dry_run"], json!(true));
    assert_eq!(report["would_forward"], json!(false));
    assert_eq!(report["policy_decision"], json!("dry_run"));
    assert_eq!(report["matched_rule"], json!("try-payments"));
}

#[test]
fn approvals_fail_closed_until_built() {
    let p = pipeline(RULES);
    let outcome = run(&p, "delete_record", known(false, true), None);
    let data = block_data(&outcome);
    assert_eq!(data["reason"], json!("not_yet_enforced"));
    assert_eq!(data["action"], json!("require_approval"));
    assert_eq!(data["rule_index"], json!(3));
}

#[test]
fn global_dry_run_reports_the_decision() {
    let p = pipeline(&format!("{RULES}  dry_run: true\n"));
    let Outcome::DryRun { report, .. } = run(
        &p,
        "process_refund",
        known(false, false),
        args(json!({ "amount": 500 })),
    ) else {
        panic!("expected a dry run");
    };
    assert_eq!(report["would_forward"], json!(false));
    assert_eq!(report["policy_decision"], json!("deny"));
    let Outcome::DryRun { report, .. } = run(&p, "lookup_order", known(true, false), None) else {
        panic!("expected a dry run");
    };
    assert_eq!(report["would_forward"], json!(true));
}

#[test]
fn unknown_tools_get_the_mcp_defaults() {
    let p = pipeline(
        "policies:\n  rules:\n    - name: no-destructive\n      match: { annotations: { destructiveHint: true } }\n      action: deny\n",
    );
    // Never listed: destructive by default, so the guard holds.
    let outcome = run(&p, "mystery", Annotations::UNKNOWN, None);
    assert_eq!(block_data(&outcome)["rule"], json!("no-destructive"));
    assert_eq!(
        run(&p, "mystery", known(false, false), None),
        Outcome::Forward
    );
}

#[test]
fn environment_rules() {
    let rule = "policies:\n  rules:\n    - match: { environment: production, tool: deploy }\n      action: deny\n";
    let prod = pipeline(&format!("environment: production\n{rule}"));
    assert!(matches!(
        run(&prod, "deploy", known(false, false), None),
        Outcome::Block { .. }
    ));
    let staging = pipeline(&format!("environment: staging\n{rule}"));
    assert_eq!(
        run(&staging, "deploy", known(false, false), None),
        Outcome::Forward
    );
}

#[test]
fn requested_drift_blocking_refuses_every_call_until_built() {
    let p = pipeline("policies:\n  on_tool_drift: block\n");
    let outcome = run(&p, "anything", known(true, false), None);
    assert_eq!(
        block_data(&outcome)["not_yet_enforced"],
        json!(["policies.on_tool_drift"])
    );
    let logged = pipeline("policies:\n  on_tool_drift: log\n");
    assert_eq!(
        run(&logged, "anything", known(true, false), None),
        Outcome::Forward
    );
}

#[test]
fn bad_plugin_paths_are_config_issues() {
    let text = "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  enabled: false\nplugins:\n  - name: missing\n    path: ./no-such.wasm\n";
    let loaded =
        config::parse(text, Path::new("/etc/helio/helio.yaml"), &|_| None).expect("schema is fine");
    let Err(issues) = Pipeline::build(&loaded.config, runtime()) else {
        panic!("a missing plugin file must fail the build");
    };
    assert_eq!(issues[0].path, "plugins[0].path");
    assert!(
        issues[0].message.contains("/etc/helio/./no-such.wasm"),
        "{}",
        issues[0].message
    );
}

#[test]
fn rules_stage_is_left_out_only_when_it_could_not_block() {
    assert_eq!(pipeline("").stage_count(), 0);
    assert_eq!(
        run(&pipeline(""), "delete_record", known(false, true), None),
        Outcome::Forward
    );
    for settings in [
        "policies:\n  default: deny\n",
        "policies:\n  flag_destructive: log\n",
        "policies:\n  dry_run: true\n",
    ] {
        assert_eq!(pipeline(settings).stage_count(), 1, "{settings}");
    }
    assert_eq!(
        block_data(&run(
            &pipeline("policies:\n  default: deny\n"),
            "lookup_order",
            known(true, false),
            None
        ))["reason"],
        json!("policy_denied")
    );
    let Outcome::DryRun { .. } = run(
        &pipeline("policies:\n  dry_run: true\n"),
        "lookup_order",
        known(true, false),
        None,
    ) else {
        panic!("global dry run must still simulate");
    };
}

#[test]
fn a_later_stage_blocking_gives_back_what_earlier_stages_took() {
    let p = pipeline(
        "policies:\n  rules:\n    - name: two\n      match: { tool: add }\n      action: rate_limit\n      limits: { max_calls: 2, window: 1h }\nbudgets:\n  - name: pot\n    limit: 70\n    currency: EUR\n    window: 1h\n    contributors:\n      - match: { tool: add }\n        field: a\n",
    );
    let session: Option<Arc<str>> = Some("s".into());
    let call = |a: i64| {
        p.evaluate(
            runtime(),
            "add".into(),
            known(true, false),
            args(json!({ "a": a })),
            session.clone(),
        )
    };
    assert_eq!(call(50).outcome, Outcome::Forward);
    // Over budget: blocked, and its rate slot is given back...
    assert_eq!(
        block_data(&call(30).outcome)["reason"],
        json!("budget_exceeded")
    );
    // ...so the second of two slots is still free.
    assert_eq!(call(20).outcome, Outcome::Forward);
    assert_eq!(
        block_data(&call(0).outcome)["reason"],
        json!("rate_limited")
    );
}

#[test]
fn limits_and_budgets_hold_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("helio-pipeline-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("state.db");
    let yaml = "policies:\n  rules:\n    - name: two\n      match: { tool: add }\n      action: rate_limit\n      limits: { max_calls: 2, window: 1h }\nbudgets:\n  - name: pot\n    limit: 70\n    currency: EUR\n    window: session\n    key: session\n    contributors:\n      - match: { tool: add }\n        field: a\n";
    let session: Option<Arc<str>> = Some("keeper".into());
    let run_with = |runtime: &Runtime, a: i64| {
        let p = {
            let text = format!("version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  enabled: false\n{yaml}");
            let loaded = config::parse(&text, Path::new("helio.yaml"), &|_| None).expect("config");
            Pipeline::build(&loaded.config, runtime).expect("pipeline")
        };
        let decided = p.evaluate(
            runtime,
            "add".into(),
            known(true, false),
            args(json!({ "a": a })),
            session.clone(),
        );
        if let Some(s) = decided.settlement {
            s.settle(crate::state::CallOutcome::Succeeded);
        }
        decided.outcome
    };
    {
        let runtime =
            Runtime::new(crate::state::LocalStore::open(&db, crate::state::now_ms()).expect("db"))
                .expect("runtime");
        assert_eq!(run_with(&runtime, 50), Outcome::Forward);
        // What a graceful shutdown does.
        runtime.state().flush().expect("flush");
    }
    let runtime =
        Runtime::new(crate::state::LocalStore::open(&db, crate::state::now_ms()).expect("db"))
            .expect("runtime");
    let data = block_data(&run_with(&runtime, 30)).clone();
    assert_eq!(data["reason"], json!("budget_exceeded"), "{data}");
    assert_eq!(run_with(&runtime, 20), Outcome::Forward);
    assert_eq!(
        block_data(&run_with(&runtime, 0))["reason"],
        json!("rate_limited")
    );
}

#[test]
fn the_decision_reports_what_the_stages_checked_allowed_or_blocked() {
    let p = pipeline(
        "policies:\n  rules:\n    - name: paced\n      match: { tool: checked_pay }\n      action: rate_limit\n      requires: [checked_lookup]\n      limits: { max_calls: 1, window: 1h, key: session }\nbudgets:\n  - name: checked-pot\n    limit: 100\n    currency: EUR\n    window: 1h\n    contributors:\n      - match: { tool: checked_pay }\n        field: a\n",
    );
    let state = runtime().state();
    state.record_completion("checker", "checked_lookup", true, crate::state::now_ms());
    let call = || {
        p.evaluate(
            runtime(),
            "checked_pay".into(),
            known(false, false),
            args(json!({ "a": 30 })),
            Some("checker".into()),
        )
    };
    let sections = |decided: &Decided| -> Value {
        let text = crate::plugins::checks::evidence_chain(&decided.checks, None).expect("checks");
        serde_json::from_str(&text).expect("JSON")
    };

    let allowed = call();
    assert_eq!(allowed.outcome, Outcome::Forward);
    let chain = sections(&allowed);
    assert_eq!(
        chain["dependencies"]["completed"],
        json!(["checked_lookup"]),
        "{chain}"
    );
    assert_eq!(chain["rate_limits"][0]["rule"], json!("paced"), "{chain}");
    assert_eq!(chain["rate_limits"][0]["current"], json!(1), "{chain}");
    assert_eq!(chain["budgets"][0]["name"], json!("checked-pot"), "{chain}");
    assert_eq!(chain["budgets"][0]["spent"], json!(30), "{chain}");

    // The second call is over the rate: blocked, and the chain says why.
    let blocked = call();
    assert_eq!(
        block_data(&blocked.outcome)["reason"],
        json!("rate_limited")
    );
    let chain = sections(&blocked);
    assert_eq!(chain["rate_limits"][0]["allowed"], json!(false), "{chain}");
    assert_eq!(chain["rate_limits"][0]["limit"], json!(1), "{chain}");
}

#[test]
fn destructive_tools_no_rule_matched_are_flagged_under_flag_destructive_log() {
    let p = pipeline(
        "policies:\n  flag_destructive: log\n  rules:\n    - name: deletes-ok\n      match: { tool: delete_draft }\n      action: allow\n",
    );
    let flagged = |tool: &str, annotations: Annotations| {
        p.evaluate(runtime(), tool.into(), annotations, None, None)
            .flagged_destructive
    };
    assert!(flagged("drop_table", known(false, true)));
    // Unknown tools look destructive (the MCP default).
    assert!(flagged("never_listed", Annotations::UNKNOWN));
    assert!(!flagged("read_table", known(true, false)));
    assert!(
        !flagged("delete_draft", known(false, true)),
        "a rule matched"
    );
    let quiet = pipeline("policies:\n  rules: []\n  default: deny\n");
    assert!(
        !quiet
            .evaluate(
                runtime(),
                "drop_table".into(),
                known(false, true),
                None,
                None
            )
            .flagged_destructive
    );
}

#[test]
fn session_pots_are_collected_after_their_budgets_idle_ttl() {
    let p = pipeline(
        "budgets:\n  - name: per-run\n    limit: 10\n    currency: EUR\n    window: session\n    key: session\n    idle_ttl: 2h\n    contributors:\n      - match: { tool: pay }\n        field: a\n  - name: hourly\n    limit: 10\n    currency: EUR\n    window: 1h\n    key: session\n    contributors:\n      - match: { tool: pay }\n        field: a\n",
    );
    assert_eq!(
        p.pot_idle_ms("budgets/budget:per-run:0a1b:session:s1"),
        Some(2 * 3_600_000)
    );
    // A budget no longer configured per session: its pots only go stale.
    assert_eq!(
        p.pot_idle_ms("budgets/budget:retired:0a1b:session:s1"),
        Some(DEFAULT_POT_IDLE_MS)
    );
    assert_eq!(
        p.pot_idle_ms("budgets/budget:hourly:0a1b:session:s1"),
        Some(DEFAULT_POT_IDLE_MS)
    );
    assert_eq!(p.pot_idle_ms("budgets/budget:per-run:0a1b:global"), None);
    assert_eq!(p.pot_idle_ms("rules/spend:cap:0a1b:session:s1"), None);
    assert_eq!(p.pot_idle_ms("card-guard/exposure"), None);
}

#[test]
fn a_store_that_cannot_write_blocks_the_call_state_unavailable() {
    let failing = Runtime::new(Arc::new(crate::state::FailingWrites(
        crate::state::LocalStore::in_memory(),
    )))
    .expect("runtime");
    let text = "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  enabled: false\npolicies:\n  rules:\n    - name: two\n      match: { tool: add }\n      action: rate_limit\n      limits: { max_calls: 2, window: 1h }\n";
    let loaded = config::parse(text, Path::new("helio.yaml"), &|_| None).expect("config");
    let p = Pipeline::build(&loaded.config, &failing).expect("pipeline");
    let decided = p.evaluate(
        &failing,
        "add".into(),
        known(true, false),
        args(json!({ "a": 1 })),
        Some("s".into()),
    );
    let data = block_data(&decided.outcome);
    assert_eq!(data["reason"], json!("state_unavailable"));
    assert_eq!(data["retry_allowed"], json!(true));
    assert!(decided.settlement.is_none());
    // What the stage took was given back: the window is empty.
    let windows = failing.state().windows(crate::state::now_ms());
    assert!(windows.iter().all(|w| w.total.is_zero()), "{windows:?}");
}
