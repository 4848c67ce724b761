//! The chain end to end in-process: real config, the real built-in rules
//! component, real wasmtime.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use super::*;
use crate::plugins::{Annotations, ToolCall};

fn runtime() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(crate::state::LocalStore::in_memory()).expect("wasmtime runtime")
    })
}

/// A pipeline of the built-ins for `extra` YAML (other modules' tests use
/// it too).
pub(crate) fn pipeline(extra: &str) -> Pipeline {
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

/// The call as the governance core hands it to the chain.
fn call(
    p: &Pipeline,
    tool: &str,
    annotations: Annotations,
    arguments: Option<Arc<Value>>,
    session: Option<Arc<str>>,
) -> ToolCall {
    ToolCall::new(
        tool.into(),
        annotations,
        arguments,
        p.environment().cloned(),
    )
    .with_session(session)
}

/// Runs the chain once, giving back whatever it held.
fn run(
    p: &Pipeline,
    tool: &str,
    annotations: Annotations,
    arguments: Option<Arc<Value>>,
) -> Outcome {
    let evaluation = p.evaluate(runtime(), call(p, tool, annotations, arguments, None), None);
    runtime().state().release(&evaluation.holds);
    evaluation.outcome
}

fn block_data(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Block(denial) => denial.data(),
        other => panic!("expected a block, got {other:?}"),
    }
}

fn forwarded(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Forward(_))
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
    assert!(forwarded(&run(
        &p,
        "lookup_order",
        known(true, false),
        None
    )));

    let denied = run(
        &p,
        "process_refund",
        known(false, false),
        args(json!({ "amount": 250 })),
    );
    let Outcome::Block(denial) = &denied else {
        panic!("{denied:?}")
    };
    assert_eq!(denial.message, "Refunds over 100 need a human.");
    let data = denial.data();
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
fn the_record_names_the_stage_whose_verdict_stands_when_a_control_engaged() {
    let p = pipeline(RULES);
    let decided = |tool: &str, annotations, arguments| {
        let evaluation = p.evaluate(
            runtime(),
            call(&p, tool, annotations, arguments, None),
            None,
        );
        runtime().state().release(&evaluation.holds);
        evaluation.decided_by
    };
    let refused = decided(
        "process_refund",
        known(false, false),
        args(json!({ "amount": 250 })),
    );
    assert_eq!(
        refused,
        Some(json!({"stage": "rules", "explanation": "Matched \"big-refunds\" -> deny"}))
    );
    let read = decided("lookup_order", known(true, false), None);
    assert_eq!(read.expect("a rule allowed it")["stage"], json!("rules"));
    // Nothing objected and no rule spoke: no chain to keep.
    let open = pipeline("policies:\n  default: allow\n");
    let evaluation = open.evaluate(
        runtime(),
        call(&open, "x", known(true, false), None, None),
        None,
    );
    assert_eq!(evaluation.decided_by, None);
}

#[test]
fn dry_run_rule_simulates() {
    let p = pipeline(RULES);
    let Outcome::DryRun(Simulation { report, .. }) =
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
fn approval_rules_ask_for_an_approval() {
    let p = pipeline(RULES);
    let outcome = run(&p, "delete_record", known(false, true), None);
    let Outcome::RequireApproval(approvals) = &outcome else {
        panic!("{outcome:?}")
    };
    let [approval] = approvals.as_slice() else {
        panic!("one stage asked: {approvals:?}")
    };
    assert_eq!(approval.decision.action, "require_approval");
    assert_eq!(approval.decision.rule_index, Some(3));
}

#[test]
fn global_dry_run_reports_the_decision() {
    let p = pipeline(&format!("{RULES}  dry_run: true\n"));
    let Outcome::DryRun(Simulation { report, .. }) = run(
        &p,
        "process_refund",
        known(false, false),
        args(json!({ "amount": 500 })),
    ) else {
        panic!("expected a dry run");
    };
    assert_eq!(report["would_forward"], json!(false));
    assert_eq!(report["policy_decision"], json!("deny"));
    let Outcome::DryRun(Simulation { report, .. }) =
        run(&p, "lookup_order", known(true, false), None)
    else {
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
    assert!(forwarded(&run(&p, "mystery", known(false, false), None)));
}

#[test]
fn environment_rules() {
    let rule = "policies:\n  rules:\n    - match: { environment: production, tool: deploy }\n      action: deny\n";
    let prod = pipeline(&format!("environment: production\n{rule}"));
    assert!(matches!(
        run(&prod, "deploy", known(false, false), None),
        Outcome::Block(_)
    ));
    let staging = pipeline(&format!("environment: staging\n{rule}"));
    assert!(forwarded(&run(
        &staging,
        "deploy",
        known(false, false),
        None
    )));
}

/// `read`'s drift: its description changed and it no longer says it is
/// read-only.
fn drifted() -> crate::tools::ToolDrift {
    let baseline = crate::tools::Definition::new(
        json!({"name":"read","description":"Reads","annotations":{"readOnlyHint":true,"destructiveHint":false}}),
    );
    let current = crate::tools::Definition::new(
        json!({"name":"read","description":"Reads and deletes","annotations":{"readOnlyHint":false,"destructiveHint":true}}),
    );
    crate::tools::ToolDrift {
        changes: current.changes_from(&baseline),
        current: Some(current),
        detected_ms: 0,
    }
}

fn run_drifted(p: &Pipeline, annotations: Annotations) -> Evaluation {
    let drift = drifted();
    let evaluation = p.evaluate(
        runtime(),
        call(p, "read", annotations, None, None),
        Some(&drift),
    );
    runtime().state().release(&evaluation.holds);
    evaluation
}

#[test]
fn a_drifted_tool_is_blocked_whatever_the_rules_say() {
    let p = pipeline("policies:\n  rules:\n    - name: reads\n      match: { tool: read }\n      action: allow\n");
    let evaluation = run_drifted(&p, known(true, false));
    let data = block_data(&evaluation.outcome);
    assert_eq!(data["reason"], "tool_definition_drift");
    assert_eq!(data["retry_allowed"], false);
    assert_eq!(
        data["drifted_aspects"],
        json!(["annotations", "description"])
    );
    let section = evaluation.drift.expect("audited");
    assert_eq!(section["mode"], "block");
    assert_eq!(section["changes"][1]["current"], "Reads and deletes");
    // The same tool without drift is allowed by its rule.
    assert!(forwarded(&run(&p, "read", known(true, false), None)));
    // A global dry run simulates the block.
    let dry = pipeline("policies:\n  dry_run: true\n");
    match run_drifted(&dry, known(true, false)).outcome {
        Outcome::DryRun(simulation) => {
            assert_eq!(simulation.report["would_forward"], false);
            assert_eq!(simulation.report["reason"], "tool_definition_drift");
        }
        other => panic!("expected a dry run, got {other:?}"),
    }
}

#[test]
fn drift_require_approval_asks_first_and_a_deny_still_wins() {
    let p = pipeline("policies:\n  on_tool_drift: require_approval\n  rules:\n    - name: held\n      match: { tool: read }\n      action: require_approval\n    - name: no-wipe\n      match: { tool: wipe }\n      action: deny\n");
    match run_drifted(&p, known(true, false)).outcome {
        Outcome::RequireApproval(approvals) => {
            assert_eq!(approvals.len(), 2, "the drift's ticket, then the rule's");
            assert_eq!(approvals[0].channel.as_deref(), Some("dashboard"));
            assert_eq!(
                approvals[0].feedback.as_ref().map(|f| f.reason.as_str()),
                Some("tool_definition_drift")
            );
            assert_eq!(approvals[1].decision.rule.as_deref(), Some("held"));
        }
        other => panic!("expected approvals, got {other:?}"),
    }
    let drift = drifted();
    let wiped = p.evaluate(
        runtime(),
        call(&p, "wipe", known(true, false), None, None),
        Some(&drift),
    );
    assert_eq!(block_data(&wiped.outcome)["reason"], "policy_denied");
}

#[test]
fn drift_log_judges_both_definitions_and_the_stricter_stands() {
    let p = pipeline("policies:\n  on_tool_drift: log\n  rules:\n    - name: no-destructive\n      match: { annotations: { destructiveHint: true } }\n      action: deny\n    - name: limited\n      match: { tool: read }\n      action: rate_limit\n      limits: { max_calls: 1, window: 1h }\n");
    // The baseline says harmless; the tool now says destructive: denied.
    let evaluation = run_drifted(&p, known(true, false));
    assert_eq!(block_data(&evaluation.outcome)["rule"], "no-destructive");
    assert_eq!(evaluation.drift.expect("audited")["mode"], "log");
    // The judgement on the current annotations gives back what it took:
    // the one rate slot is still there for the next call.
    let p = pipeline("policies:\n  on_tool_drift: log\n  rules:\n    - name: drift-log-writes\n      match: { annotations: { readOnlyHint: false } }\n      action: rate_limit\n      limits: { max_calls: 1, window: 1h }\n");
    assert!(forwarded(&run_drifted(&p, known(true, false)).outcome));
    let evaluation = p.evaluate(
        runtime(),
        call(&p, "read", known(false, false), None, None),
        None,
    );
    assert!(forwarded(&evaluation.outcome));
    runtime().state().release(&evaluation.holds);
    // Destructive as the tool now declares itself: flagged.
    let p = pipeline("policies:\n  on_tool_drift: log\n  flag_destructive: log\n");
    assert!(run_drifted(&p, known(true, false)).flagged_destructive);
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
    assert!(forwarded(&run(
        &pipeline(""),
        "delete_record",
        known(false, true),
        None
    )));
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
    let Outcome::DryRun(_) = run(
        &pipeline("policies:\n  dry_run: true\n"),
        "lookup_order",
        known(true, false),
        None,
    ) else {
        panic!("global dry run must still simulate");
    };
}

#[test]
fn the_decision_reports_what_the_stages_checked_allowed_or_blocked() {
    let p = pipeline(
        "policies:\n  rules:\n    - name: paced\n      match: { tool: checked_pay }\n      action: rate_limit\n      requires: [checked_lookup]\n      limits: { max_calls: 1, window: 1h, key: session }\nbudgets:\n  - name: checked-pot\n    limit: 100\n    currency: EUR\n    window: 1h\n    contributors:\n      - match: { tool: checked_pay }\n        field: a\n",
    );
    let state = runtime().state();
    state.record_completion("checker", "checked_lookup", true, crate::state::now_ms());
    // The first call's holds are kept, as the core keeps a forwarded call's.
    let pay = || {
        p.evaluate(
            runtime(),
            call(
                &p,
                "checked_pay",
                known(false, false),
                args(json!({ "a": 30 })),
                Some("checker".into()),
            ),
            None,
        )
    };
    let sections = |decided: &Evaluation| -> Value {
        let text = crate::plugins::checks::evidence_chain(&decided.checks, &[]).expect("checks");
        serde_json::from_str(&text).expect("JSON")
    };

    let allowed = pay();
    assert!(forwarded(&allowed.outcome));
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
    let blocked = pay();
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
        p.evaluate(runtime(), call(&p, tool, annotations, None, None), None)
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
                call(&quiet, "drop_table", known(false, true), None, None),
                None,
            )
            .flagged_destructive
    );
}

#[test]
fn the_stages_describe_their_keys_and_how_long_idle_pots_are_kept() {
    let p = pipeline(
        "policies:\n  rules:\n    - name: paced\n      match: { tool: pay }\n      action: rate_limit\n      limits: { max_calls: 100, window: 1h, key: session }\nbudgets:\n  - name: per-run\n    limit: 10\n    currency: EUR\n    window: session\n    key: session\n    idle_ttl: 2h\n    contributors:\n      - match: { tool: pay }\n        field: a\n  - name: shared\n    limit: 10\n    currency: EUR\n    window: 1d\n    contributors:\n      - match: { tool: pay }\n        field: a\n  - name: hourly\n    limit: 10\n    currency: EUR\n    window: 1h\n    key: session\n    contributors:\n      - match: { tool: pay }\n        field: a\n",
    );
    // The keys a call takes, as the host saw them.
    let evaluation = p.evaluate(
        runtime(),
        call(
            &p,
            "pay",
            known(false, false),
            args(json!({ "a": 1 })),
            Some("s1".into()),
        ),
        None,
    );
    runtime().state().release(&evaluation.holds);
    let keys: Vec<String> = evaluation
        .checks
        .iter()
        .filter_map(|check| match check {
            crate::plugins::Check::Rate { key, .. } | crate::plugins::Check::Spend { key, .. } => {
                Some(key.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    let described: Vec<(&str, &str, &str, Option<u64>)> = keys
        .iter()
        .map(|key| {
            let d = p.describe(key).expect("described");
            (
                d.family.kind.as_str(),
                d.family.name.as_str(),
                d.bucket,
                d.family.idle_ttl_ms,
            )
        })
        .collect();
    assert_eq!(
        described,
        vec![
            ("rate", "paced", "session:s1", None),
            // A per-session pot that never replenishes goes after its idle_ttl...
            ("budget", "per-run", "session:s1", Some(2 * 3_600_000)),
            // ...sliding windows empty themselves.
            ("budget", "shared", "global", None),
            ("budget", "hourly", "session:s1", None),
        ]
    );
    // A budget no longer configured as it was: a day idle, then collected.
    let retired = p
        .describe("budgets/budget:retired:0a1b:session:s1")
        .expect("the budgets stage's catch-all");
    assert_eq!(retired.family.kind, "retired-budget");
    assert_eq!(
        p.pot_idle_ms("budgets/budget:retired:0a1b:global"),
        Some(86_400_000)
    );
    // Keys of stages not in the chain, or of no described family, are kept.
    assert_eq!(p.pot_idle_ms("card-guard/exposure"), None);
    assert!(p.describe("rules/unknown-key").is_none());
}

/// The stage sections of helio.yaml, checked by their own stages (what
/// `helio validate`, start and reload run): each problem at its YAML path.
const STAGE_SECTION_PROBLEMS: &[(&str, &str)] = &[
    (
        "policies:\n  rules:\n    - match: {tool: a}\n      action: allow\n    - match: {tool: b}\n      action: allow\n    - match: {tool: c}\n      action: rate_limit\n      limits: {max_calls: 3, window: 1 hour}\n",
        "policies.rules[2].limits.window: invalid duration \"1 hour\"",
    ),
    ("policies:\n  rules:\n    - match: {tool: x}\n      action: denny\n", "policies.rules[0].action: invalid value \"denny\""),
    ("policies:\n  rules:\n    - match: {tool: x}\n      action: denny\n", "did you mean \"deny\"?"),
    ("policies:\n  rules:\n    - action: deny\n", "policies.rules[0].match: missing required key"),
    ("policies:\n  rules:\n    - match: {toool: x}\n      action: deny\n", "policies.rules[0].match: unknown key \"toool\" (did you mean \"tool\"?)"),
    ("policies:\n  rules:\n    - match: {input: {amount: {}}}\n      action: deny\n", "policies.rules[0].match.input.amount: at least one condition operator is required"),
    ("policies:\n  rules:\n    - match: {input: {amount: {regex: \"(a\"}}}\n      action: deny\n", "policies.rules[0].match.input.amount.regex: invalid regex \"(a\""),
    ("policies:\n  rules:\n    - match: {tool: x}\n      action: rate_limit\n", "policies.rules[0].limits.max_calls: rate_limit rules require limits.max_calls"),
    ("policies:\n  rules:\n    - match: {tool: x}\n      action: spend_limit\n", "policies.rules[0].limits.max_spend: spend_limit rules require limits.max_spend"),
    ("budgets:\n  - name: b\n    limit: 5\n    currency: USD\n    window: 1h\n    contributors:\n      - tool: x\n        field: amount\n", "budgets[0].contributors[0]: contributor \"tool\" moved under \"match\""),
    ("budgets:\n  - name: b\n    limit: 5\n    currency: USD\n    window: session\n    contributors:\n      - match: {tool: x}\n        field: amount\n", "budgets[0].key: window: \"session\" requires key"),
    ("budgets:\n  - name: \"bad name\"\n    limit: 0\n    currency: USD\n    window: 1h\n    contributors: []\n", "budgets[0].name: budget names must be 1 to 64 letters, digits"),
    ("budgets:\n  - name: b\n    limit: 0\n    currency: USD\n    window: 1h\n    contributors: []\n", "budgets[0].limit: must be greater than zero"),
    ("budgets:\n  - name: b\n    limit: 1\n    currency: USD\n    window: 1h\n    contributors: []\n", "budgets[0].contributors: a budget needs at least one contributor"),
];

#[test]
fn the_stages_validate_their_own_sections_at_yaml_paths() {
    for (extra, expected) in STAGE_SECTION_PROBLEMS {
        let text = format!(
            "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  api_secret: 0123456789abcdef0123456789abcdef\n{extra}"
        );
        // The host reads these sections leniently: no error of its own...
        let loaded = match config::parse(&text, Path::new("helio.yaml"), &|_| None) {
            Ok(loaded) => loaded,
            Err(e) => panic!("the host reported a stage's section:\n{}", e.report()),
        };
        // ...the stage reports it.
        let Err(issues) = Pipeline::build(&loaded.config, runtime()) else {
            panic!("config:\n{text}\nexpected the stage to reject it");
        };
        let found: Vec<String> = issues
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        assert!(
            found.iter().any(|i| i.contains(expected)),
            "config:\n{text}\nexpected an issue containing {expected:?}, got {found:#?}"
        );
    }
}
