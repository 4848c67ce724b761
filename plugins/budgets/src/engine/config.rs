//! Parsing the stage configuration `{"session": {...}, "budgets": [...]}`.
//! This stage owns helio.yaml's `budgets` schema (the host reads only a
//! budget's key, `on_exceed` and approval route): every problem is reported
//! with its path from the root (e.g. `budgets[0].contributors[1].match.tool`).

use std::collections::HashSet;

use policy_match::{
    join, kind, present, stage_root, text, AmountSource, ConfigError, Parser, ToolIndex,
};
use serde_json::{json, Map, Value as Json};

use super::budget::{Approval, Budget, BudgetKey, Contributor, OnExceed, Window};
use super::Engine;

pub(super) fn compile(config_json: &str) -> Result<Engine, Vec<ConfigError>> {
    let root = &stage_root(config_json, &["budgets", "session"])?;
    let mut p = Parser::default();
    let session = p.session(root);
    let mut budgets = Vec::new();
    let mut warnings = Vec::new();
    match present(root, "budgets") {
        None => {}
        Some(Json::Array(items)) => {
            let mut names = HashSet::new();
            for (index, item) in items.iter().enumerate() {
                let path = format!("budgets[{index}]");
                if let Some(b) = budget(&mut p, item, &path) {
                    check_unique_name(&mut p, &mut names, &b, &path);
                    budgets.push(b);
                }
            }
        }
        Some(other) => p.error("budgets", format!("expected a list, found {}", kind(other))),
    }
    for b in budgets.iter().filter(|b| b.key == BudgetKey::SenderId) {
        warnings.push(format!(
            "budget \"{}\": key \"sender_id\" has no value on the MCP path (only adapters name a sender); MCP calls draw from the global pot",
            b.name
        ));
    }
    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    let contributors: Vec<(usize, usize)> = budgets
        .iter()
        .enumerate()
        .flat_map(|(b, budget)| (0..budget.contributors.len()).map(move |c| (b, c)))
        .collect();
    let by_tool = ToolIndex::new(
        contributors
            .iter()
            .map(|&(b, c)| Some(&budgets[b].contributors[c].tool)),
    );
    Ok(Engine {
        budgets,
        by_tool,
        contributors,
        session,
        warnings,
    })
}

/// Names identify pots (and their spend), so two budgets cannot share one.
/// `earlier` holds the names seen so far (a set: thousands of budgets must
/// not cost a quadratic configure).
fn check_unique_name(p: &mut Parser, earlier: &mut HashSet<String>, budget: &Budget, path: &str) {
    if !earlier.insert(budget.name.clone()) {
        p.error(
            &join(path, "name"),
            format!(
                "duplicate budget name \"{}\"; names identify a pot's accrued spend",
                budget.name
            ),
        );
    }
}

fn budget(p: &mut Parser, value: &Json, path: &str) -> Option<Budget> {
    let before = p.errors.len();
    let obj = p.object(
        value,
        path,
        &[
            "name",
            "limit",
            "currency",
            "window",
            "key",
            "on_exceed",
            "approval",
            "idle_ttl",
            "contributors",
        ],
    )?;
    let name = name(p, obj, path);
    let limit = p.required(obj, path, "limit").and_then(|v| {
        let lpath = join(path, "limit");
        let n = p.number(v, &lpath)?;
        if n <= 0.0 {
            p.error(&lpath, "must be greater than zero");
            return None;
        }
        Some(n)
    });
    let currency = p
        .required(obj, path, "currency")
        .and_then(|v| p.string(v, &join(path, "currency")));
    let window = p
        .required(obj, path, "window")
        .and_then(|v| window(p, v, &join(path, "window")));
    let key = match present(obj, "key")
        .and_then(|v| p.choice(v, &join(path, "key"), &["global", "session", "sender_id"]))
    {
        Some("session") => BudgetKey::Session,
        Some("sender_id") => BudgetKey::SenderId,
        _ => BudgetKey::Global,
    };
    let on_exceed = match present(obj, "on_exceed")
        .and_then(|v| p.choice(v, &join(path, "on_exceed"), &["deny", "require_approval"]))
    {
        Some("require_approval") => OnExceed::RequireApproval,
        _ => OnExceed::Deny,
    };
    let approval = present(obj, "approval").and_then(|v| approval(p, v, &join(path, "approval")));
    let idle_ttl_ms =
        present(obj, "idle_ttl").and_then(|v| p.duration_ms(v, &join(path, "idle_ttl")));
    let contributors = p
        .required(obj, path, "contributors")
        .map(|v| contributors(p, v, &join(path, "contributors")))
        .unwrap_or_default();
    cross_checks(p, obj, path, window.as_ref(), key, on_exceed);

    if p.errors.len() > before {
        return None;
    }
    let (name, limit, currency, window) = (name?, limit?, currency?, window?);
    let limit = text::decimal(limit);
    let fingerprint = text::fingerprint(&json!({
        "limit": limit,
        "currency": currency,
        "window": window.text(),
        "key": key.as_str(),
    }));
    Some(Budget {
        prefix: format!("budget:{name}:{fingerprint}:"),
        idle_ttl_ms,
        name,
        limit,
        currency,
        window,
        key,
        on_exceed,
        approval,
        contributors,
    })
}

/// Names go into state keys and feedback: letters, digits, `_` and `-`.
fn name(p: &mut Parser, obj: &Map<String, Json>, path: &str) -> Option<String> {
    let npath = join(path, "name");
    let name = p
        .required(obj, path, "name")
        .and_then(|v| p.string(v, &npath))?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        p.error(
            &npath,
            "budget names must be 1 to 64 letters, digits, \"_\" or \"-\"",
        );
        return None;
    }
    Some(name)
}

fn window(p: &mut Parser, value: &Json, path: &str) -> Option<Window> {
    if value.as_str() == Some("session") {
        return Some(Window::Session);
    }
    let ms = p.duration_ms(value, path)?;
    // A duration was read, so the value is a string.
    let text = value.as_str()?.to_owned();
    Some(Window::Sliding { ms, text })
}

/// Combinations of keys that cannot work.
fn cross_checks(
    p: &mut Parser,
    obj: &Map<String, Json>,
    path: &str,
    window: Option<&Window>,
    key: BudgetKey,
    on_exceed: OnExceed,
) {
    if present(obj, "approval").is_some() && on_exceed != OnExceed::RequireApproval {
        p.error(
            &join(path, "approval"),
            "budget approval config only applies with on_exceed: \"require_approval\"",
        );
    }
    if window == Some(&Window::Session) && key == BudgetKey::Global {
        p.error(
            &join(path, "key"),
            "window: \"session\" requires key: \"session\" or \"sender_id\"; a global pot with session lifetime never replenishes",
        );
    }
    if present(obj, "idle_ttl").is_some() && window.is_some_and(|w| *w != Window::Session) {
        p.error(
            &join(path, "idle_ttl"),
            "idle_ttl only applies to window: \"session\" budgets",
        );
    }
}

fn approval(p: &mut Parser, value: &Json, path: &str) -> Option<Approval> {
    let obj = p.object(
        value,
        path,
        &["channel", "timeout", "delegates", "escalation_after"],
    )?;
    let channel = p
        .required(obj, path, "channel")
        .and_then(|v| p.string(v, &join(path, "channel")));
    let timeout_ms = present(obj, "timeout").and_then(|v| p.duration_ms(v, &join(path, "timeout")));
    // Delegates and escalation are the approval router's business; they are
    // checked here only so a typo fails the load.
    if let Some(v) = present(obj, "delegates") {
        p.string_list(v, &join(path, "delegates"));
    }
    if let Some(v) = present(obj, "escalation_after") {
        p.duration_ms(v, &join(path, "escalation_after"));
    }
    Some(Approval {
        channel,
        timeout_ms,
    })
}

fn contributors(p: &mut Parser, value: &Json, path: &str) -> Vec<Contributor> {
    let Json::Array(items) = value else {
        p.error(path, format!("expected a list, found {}", kind(value)));
        return Vec::new();
    };
    if items.is_empty() {
        p.error(path, "a budget needs at least one contributor");
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| contributor(p, item, &format!("{path}[{i}]")))
        .collect()
}

fn contributor(p: &mut Parser, value: &Json, path: &str) -> Option<Contributor> {
    if value.get("tool").is_some() {
        p.error(
            path,
            "contributor \"tool\" moved under \"match\" in v0.11.0; write { match: { tool: \"<glob>\" }, field: \"<path>\" }",
        );
        return None;
    }
    let obj = p.object(value, path, &["match", "field", "extractor"])?;
    let matcher = p.required(obj, path, "match").and_then(|v| {
        let mpath = join(path, "match");
        let m = p.object(v, &mpath, &["tool", "input"])?;
        let tool = p
            .required(m, &mpath, "tool")
            .and_then(|t| p.glob(t, &join(&mpath, "tool")));
        let input = present(m, "input").map(|i| p.input(i, &join(&mpath, "input")));
        Some((tool, input))
    });
    let source = AmountSource::parse(p, obj, path);
    let (tool, input) = matcher?;
    Some(Contributor {
        tool: tool?,
        input,
        source: source?,
    })
}
