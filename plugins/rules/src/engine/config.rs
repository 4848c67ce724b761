//! Parsing and compiling the stage configuration. This stage owns
//! helio.yaml's `policies` schema: the host reads only what it needs of a
//! rule (its action, approval route, evidence keys) and leaves the rest to
//! this parser, which reports every problem (an unknown key, a regex
//! regex-lite rejects, a broken glob, an unknown action, a rate limit
//! without `max_calls`) with its path; the host shows them at `helio
//! validate`, at start and on reload. Paths are relative to `policies`
//! (the `session` block's are `session.…`); a key set to null counts as
//! absent, as in the host (except the `eq`/`neq` operators, where null is a
//! value).

use policy_match::{
    join, kind, present, stage_root, text, AmountSource, ConfigError, Parser, ToolIndex,
};
use serde_json::{Map, Value as Json};

use super::conditions::{AnnotationConditions, Conditions, MetadataCondition};
use super::gates::Gates;
use super::limits::{LimitKey, RateLimit, SpendLimit};
use super::rule::{Label, Rule, Then};
use super::verdicts::{self, Action, Approval};
use super::{DefaultPolicy, Engine, FlagDestructive};

const LIMIT_KEYS: &[&str] = &["tool", "session", "global", "agent", "sender_id"];

pub(super) fn compile(config_json: &str) -> Result<Engine, Vec<ConfigError>> {
    let root = &stage_root(config_json, &["environment", "policies", "session"])?;
    let mut p = Parser::default();
    let environment = match present(root, "environment") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => {
            p.error(
                "",
                format!(
                    "environment must be a string or null, found {}",
                    kind(other)
                ),
            );
            None
        }
    };
    let session = p.session(root);
    let empty = Map::new();
    let policies = match present(root, "policies") {
        None => &empty,
        Some(Json::Object(m)) => m,
        Some(other) => {
            p.error(
                "",
                format!("policies: expected a mapping, found {}", kind(other)),
            );
            &empty
        }
    };

    // Other keys of `policies` (on_tool_drift, tool_revalidation, hot_reload,
    // install) belong to other parts of Helio and are ignored here.
    let default = match present(policies, "default") {
        None => DefaultPolicy::Allow,
        Some(v) => match p.choice(v, "default", &["allow", "deny"]) {
            Some("deny") => DefaultPolicy::Deny,
            _ => DefaultPolicy::Allow,
        },
    };
    let flag_destructive = present(policies, "flag_destructive").and_then(|v| {
        match p.choice(v, "flag_destructive", &["log", "require_approval"])? {
            "log" => Some(FlagDestructive::Log),
            _ => Some(FlagDestructive::RequireApproval),
        }
    });
    let dry_run = present(policies, "dry_run")
        .and_then(|v| p.bool(v, "dry_run"))
        .unwrap_or(false);

    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    match present(policies, "rules") {
        None => {}
        Some(Json::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if let Some(rule) = rule(&mut p, item, index, &mut warnings) {
                    rules.push(rule);
                }
            }
        }
        Some(other) => p.error("rules", format!("expected a list, found {}", kind(other))),
    }

    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    Ok(Engine {
        by_tool: ToolIndex::new(rules.iter().map(|rule| rule.conditions.tool.as_ref())),
        rules,
        default,
        flag_destructive,
        dry_run,
        environment,
        session,
        warnings,
        default_verdict: verdicts::default_verdict(default),
        flagged_verdict: verdicts::flagged_destructive_verdict(),
    })
}

fn rule(p: &mut Parser, value: &Json, index: usize, warnings: &mut Vec<String>) -> Option<Rule> {
    let path = format!("rules[{index}]");
    let before = p.errors.len();
    let obj = p.object(
        value,
        &path,
        &[
            "name",
            "match",
            "action",
            "approval",
            "evidence",
            "requires",
            "requires_success",
            "limits",
            "feedback",
        ],
    )?;
    let name = present(obj, "name").and_then(|v| p.string(v, &join(&path, "name")));
    let action = p
        .required(obj, &path, "action")
        .and_then(|v| p.choice(v, &join(&path, "action"), Action::NAMES))
        .and_then(Action::from_name);
    let conditions = p
        .required(obj, &path, "match")
        .and_then(|v| rule_match(p, v, &join(&path, "match")));
    let approval = present(obj, "approval")
        .map(|v| approval(p, v, &join(&path, "approval")))
        .unwrap_or_default();
    let gates = gates(p, obj, &path);
    let raw_limits = present(obj, "limits");
    let limits = raw_limits.and_then(|v| limits(p, v, &join(&path, "limits")));
    let mut label = Label::new(index, name, action.unwrap_or_default().as_str());
    if let Some(v) = present(obj, "feedback") {
        feedback(p, v, &join(&path, "feedback"), &mut label);
    }
    if let Some(action) = action {
        require_limits(p, action, raw_limits, &path);
    }

    if p.errors.len() > before {
        return None;
    }
    let action = action?;
    let then = match action {
        Action::Allow => Then::Verdict(verdicts::allow(&label)),
        Action::Deny => Then::Verdict(verdicts::deny(&label)),
        Action::RequireApproval => Then::Verdict(verdicts::require_approval(&label, &approval)),
        Action::DryRun => Then::Verdict(verdicts::dry_run(&label)),
        Action::RateLimit => Then::Rate(rate_limit(&label, limits?, warnings)?),
        Action::SpendLimit => Then::Spend(spend_limit(&label, limits?, warnings)?),
    };
    Some(Rule {
        conditions: conditions?,
        // A deny needs no grounding: its gates are never checked.
        gates: if action == Action::Deny {
            Gates::default()
        } else {
            gates
        },
        label,
        then,
    })
}

/// `evidence.requires`, `requires` and `requires_success`.
fn gates(p: &mut Parser, obj: &Map<String, Json>, path: &str) -> Gates {
    let mut gates = Gates {
        requires_success: true,
        ..Gates::default()
    };
    if let Some(v) = present(obj, "evidence") {
        let epath = join(path, "evidence");
        if let Some(e) = p.object(v, &epath, &["requires"]) {
            if let Some(r) = p.required(e, &epath, "requires") {
                gates.evidence = p
                    .string_list(r, &join(&epath, "requires"))
                    .unwrap_or_default();
            }
        }
    }
    if let Some(v) = present(obj, "requires") {
        gates.requires = p
            .string_list(v, &join(path, "requires"))
            .unwrap_or_default();
    }
    if let Some(v) = present(obj, "requires_success") {
        gates.requires_success = p.bool(v, &join(path, "requires_success")).unwrap_or(true);
    }
    gates
}

/// A rule's `limits` block, read whatever the action (so typos fail the
/// load), compiled only for rate_limit and spend_limit.
#[derive(Debug, Default)]
struct Limits {
    max_calls: Option<u64>,
    window: Option<u64>,
    key: Option<&'static str>,
    max_spend: Option<MaxSpend>,
    /// Of the block as written: a rule's counts survive edits of other rules
    /// and restart when its own limits change.
    fingerprint: String,
}

#[derive(Debug)]
struct MaxSpend {
    source: AmountSource,
    limit: f64,
    currency: String,
    window: u64,
    key: Option<&'static str>,
}

fn limits(p: &mut Parser, value: &Json, path: &str) -> Option<Limits> {
    let obj = p.object(value, path, &["max_calls", "window", "key", "max_spend"])?;
    Some(Limits {
        max_calls: present(obj, "max_calls")
            .and_then(|v| p.positive_integer(v, &join(path, "max_calls"))),
        window: present(obj, "window").and_then(|v| p.duration_ms(v, &join(path, "window"))),
        key: present(obj, "key").and_then(|v| p.choice(v, &join(path, "key"), LIMIT_KEYS)),
        max_spend: present(obj, "max_spend")
            .and_then(|v| max_spend(p, v, &join(path, "max_spend"))),
        fingerprint: text::fingerprint(value),
    })
}

fn max_spend(p: &mut Parser, value: &Json, path: &str) -> Option<MaxSpend> {
    let obj = p.object(
        value,
        path,
        &["field", "extractor", "limit", "currency", "window", "key"],
    )?;
    let source = AmountSource::parse(p, obj, path);
    let limit = p.required(obj, path, "limit").and_then(|v| {
        let lpath = join(path, "limit");
        let n = p.number(v, &lpath)?;
        if n < 0.0 {
            p.error(&lpath, "must not be negative");
            return None;
        }
        Some(n)
    });
    let currency = p
        .required(obj, path, "currency")
        .and_then(|v| p.string(v, &join(path, "currency")));
    let window = p
        .required(obj, path, "window")
        .and_then(|v| p.duration_ms(v, &join(path, "window")));
    let key = present(obj, "key").and_then(|v| p.choice(v, &join(path, "key"), LIMIT_KEYS));
    Some(MaxSpend {
        source: source?,
        limit: limit?,
        currency: currency?,
        window: window?,
        key,
    })
}

/// What rate_limit and spend_limit rules cannot do without, as the host
/// reports it. Only absent keys are reported here: a present but invalid
/// one has its own error already, and so has a `limits` that is not a
/// mapping.
fn require_limits(p: &mut Parser, action: Action, limits: Option<&Json>, path: &str) {
    let lpath = join(path, "limits");
    let absent = |key: &str| match limits {
        None => true,
        Some(Json::Object(obj)) => present(obj, key).is_none(),
        Some(_) => false,
    };
    match action {
        Action::RateLimit => {
            if absent("max_calls") {
                p.error(
                    &join(&lpath, "max_calls"),
                    "rate_limit rules require limits.max_calls (a positive integer)",
                );
            }
            if absent("window") {
                p.error(
                    &join(&lpath, "window"),
                    "rate_limit rules require limits.window (for example \"1m\" or \"1h\")",
                );
            }
        }
        Action::SpendLimit if absent("max_spend") => p.error(
            &join(&lpath, "max_spend"),
            "spend_limit rules require limits.max_spend (field, limit, currency, window)",
        ),
        _ => {}
    }
}

fn rate_limit(label: &Label, limits: Limits, warnings: &mut Vec<String>) -> Option<RateLimit> {
    Some(RateLimit {
        max_calls: limits.max_calls?,
        window_ms: limits.window?,
        key: limit_key(limits.key, "limits.key", label, warnings),
        prefix: format!("rate:{}:{}:", label.state_id(), limits.fingerprint),
    })
}

fn spend_limit(label: &Label, limits: Limits, warnings: &mut Vec<String>) -> Option<SpendLimit> {
    let spend = limits.max_spend?;
    Some(SpendLimit {
        key: limit_key(spend.key, "limits.max_spend.key", label, warnings),
        source: spend.source,
        limit: text::decimal(spend.limit),
        currency: spend.currency,
        window_ms: spend.window,
        prefix: format!("spend:{}:{}:", label.state_id(), limits.fingerprint),
    })
}

/// `agent` has no value the rules stage can read; like the original, such
/// limits count per tool, with a warning. `sender_id` counts per sender
/// where an adapter says who sent the call (its `metadata.sender_id`), and
/// per tool elsewhere (the MCP door has no sender).
fn limit_key(key: Option<&str>, what: &str, label: &Label, warnings: &mut Vec<String>) -> LimitKey {
    match key {
        Some("session") => LimitKey::Session,
        Some("global") => LimitKey::Global,
        Some("sender_id") => LimitKey::Sender,
        Some(other @ "agent") => {
            warnings.push(format!(
                "rule \"{}\": {what} \"{other}\" is not available to the rules stage; counting per tool instead",
                label.quoted()
            ));
            LimitKey::Tool
        }
        _ => LimitKey::Tool,
    }
}

fn feedback(p: &mut Parser, value: &Json, path: &str, label: &mut Label) {
    let Some(f) = p.object(value, path, &["message", "suggestion"]) else {
        return;
    };
    label.feedback_message = p
        .required(f, path, "message")
        .and_then(|m| p.string(m, &join(path, "message")));
    label.feedback_suggestion =
        present(f, "suggestion").and_then(|s| p.string(s, &join(path, "suggestion")));
}

fn approval(p: &mut Parser, value: &Json, path: &str) -> Approval {
    let mut approval = Approval::default();
    let Some(obj) = p.object(
        value,
        path,
        &["channel", "timeout", "delegates", "escalation_after"],
    ) else {
        return approval;
    };
    approval.channel = p
        .required(obj, path, "channel")
        .and_then(|v| p.string(v, &join(path, "channel")));
    approval.timeout_ms =
        present(obj, "timeout").and_then(|v| p.duration_ms(v, &join(path, "timeout")));
    // Delegates and escalation are the approval router's business; they
    // are checked here only so a typo fails the load.
    if let Some(v) = present(obj, "delegates") {
        p.string_list(v, &join(path, "delegates"));
    }
    if let Some(v) = present(obj, "escalation_after") {
        p.duration_ms(v, &join(path, "escalation_after"));
    }
    approval
}

fn rule_match(p: &mut Parser, value: &Json, path: &str) -> Option<Conditions> {
    let obj = p.object(
        value,
        path,
        &["tool", "annotations", "input", "environment", "metadata"],
    )?;
    let tool = present(obj, "tool").and_then(|v| p.glob(v, &join(path, "tool")));
    let environment =
        present(obj, "environment").and_then(|v| p.string(v, &join(path, "environment")));
    let annotations = present(obj, "annotations")
        .and_then(|v| annotations(p, v, &join(path, "annotations")))
        .unwrap_or_default();
    let input = present(obj, "input").map(|v| p.input(v, &join(path, "input")));
    let metadata = present(obj, "metadata")
        .map(|v| metadata(p, v, &join(path, "metadata")))
        .unwrap_or_default();
    Some(Conditions {
        tool,
        environment,
        annotations,
        input,
        metadata,
    })
}

fn annotations(p: &mut Parser, value: &Json, path: &str) -> Option<AnnotationConditions> {
    let obj = p.object(
        value,
        path,
        &[
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ],
    )?;
    let mut hint = |key: &str| present(obj, key).and_then(|v| p.bool(v, &join(path, key)));
    Some(AnnotationConditions {
        read_only_hint: hint("readOnlyHint"),
        destructive_hint: hint("destructiveHint"),
        idempotent_hint: hint("idempotentHint"),
        open_world_hint: hint("openWorldHint"),
    })
}

fn metadata(p: &mut Parser, value: &Json, path: &str) -> Vec<MetadataCondition> {
    let Json::Object(map) = value else {
        p.error(path, format!("expected a mapping, found {}", kind(value)));
        return Vec::new();
    };
    map.iter()
        .filter(|(_, condition)| !condition.is_null())
        .filter_map(|(key, condition)| metadata_condition(p, key, condition, &join(path, key)))
        .collect()
}

/// One `match.metadata.<key>`: a bare string (equality) or operators.
fn metadata_condition(
    p: &mut Parser,
    key: &str,
    condition: &Json,
    path: &str,
) -> Option<MetadataCondition> {
    if let Json::String(s) = condition {
        return Some(MetadataCondition {
            key: key.to_owned(),
            eq: Some(s.clone()),
            neq: None,
            contains: None,
            regex: None,
        });
    }
    let before = p.errors.len();
    let obj = p.object(condition, path, &["eq", "neq", "contains", "regex"])?;
    let mut text = |op: &str| present(obj, op).and_then(|v| p.string(v, &join(path, op)));
    let (eq, neq, contains) = (text("eq"), text("neq"), text("contains"));
    let regex = present(obj, "regex").and_then(|v| p.regex(v, &join(path, "regex")));
    let none = ["eq", "neq", "contains", "regex"]
        .iter()
        .all(|k| present(obj, k).is_none());
    // An unknown key already explains an empty operator set.
    if none && p.errors.len() == before {
        p.error(
            path,
            "at least one metadata condition operator is required (eq, neq, contains, regex)",
        );
    }
    if none {
        return None;
    }
    Some(MetadataCondition {
        key: key.to_owned(),
        eq,
        neq,
        contains,
        regex,
    })
}
