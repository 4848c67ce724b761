//! What the live feed (`GET /api/events`) says about one written audit
//! record, in the original's event names and payloads (spec §10.4): an
//! `action` summary, a `limit_warning` for each rate or spend window the
//! call left at 80 % or more of its limit, a `budget_update` for each
//! budget it charged and a `budget_breached` for each it would have
//! overdrawn. All of it is read from the record's evidence chain, where the
//! stages' checks already are: nothing on the request path does extra work
//! for the dashboard, and nothing is computed when nobody watches.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::pipeline::Pipeline;
use crate::plugins::checks::{decimal, decimal_json};

/// The utilisation at which a window is reported.
const WARNING_UTILISATION: f64 = 0.8;

/// The record's fields in an `action` event, in the original's order.
const ACTION_FIELDS: &[&str] = &[
    "id",
    "tool_name",
    "policy_decision",
    "block_reason",
    "approval_status",
    "session_id",
    "session_source",
    "protocol_version",
    "agent_id",
    "environment",
    "timestamp",
    "total_duration_ms",
    "approval_wait_ms",
    "proxy_compute_ms",
    "flagged_destructive",
    "dry_run",
    "matched_rule",
    "matched_rule_index",
    "origin",
    "record_kind",
];

/// The events for one record (its JSON as the writer published it).
pub fn of_record(record: &Map<String, Value>, pipeline: &Pipeline) -> Vec<(&'static str, Value)> {
    let mut events = vec![("action", action(record))];
    // The writer publishes the chain as an object; text is read once.
    let parsed;
    let chain = match record.get("evidence_chain") {
        Some(Value::Object(chain)) => chain,
        Some(Value::String(text)) => match serde_json::from_str::<Map<String, Value>>(text) {
            Ok(chain) => {
                parsed = chain;
                &parsed
            }
            Err(_) => return events,
        },
        _ => return events,
    };
    let flag = |name: &str| record.get(name).and_then(Value::as_bool).unwrap_or(false);
    let dry_run = flag("dry_run");
    // Counted and charged only when the call went on to its upstream.
    let committed = !dry_run
        && record.get("block_reason").is_none_or(Value::is_null)
        && record.get("record_kind").and_then(Value::as_str) == Some("tool_call");
    if committed {
        for entry in entries(chain, "rate_limits") {
            if entry.get("took").and_then(Value::as_bool) == Some(true) {
                events.extend(limit_warning(entry, "rate", "current"));
            }
        }
        for entry in entries(chain, "spend_limits") {
            if entry.get("allowed").and_then(Value::as_bool) == Some(true) {
                events.extend(limit_warning(entry, "spend", "spent"));
            }
        }
    }
    for entry in entries(chain, "budgets") {
        let allowed = entry.get("allowed").and_then(Value::as_bool) == Some(true);
        if committed {
            events.extend(budget_update(entry, allowed, pipeline));
        }
        if !allowed && !dry_run {
            events.extend(budget_breached(entry, pipeline));
        }
    }
    events
}

fn action(record: &Map<String, Value>) -> Value {
    ACTION_FIELDS
        .iter()
        .map(|&field| {
            let value = record.get(field).cloned().unwrap_or(Value::Null);
            (field.to_owned(), value)
        })
        .collect::<Map<_, _>>()
        .into()
}

fn entries<'a>(chain: &'a Map<String, Value>, section: &str) -> impl Iterator<Item = &'a Value> {
    chain
        .get(section)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The key the operator views give a rule's window: the original's
/// `<bucket>:rule:<rule>` (`tool:refund:rule:refund-cap`).
pub fn limit_key(bucket: &str, rule: &str) -> String {
    format!("{bucket}:rule:{rule}")
}

fn limit_warning(entry: &Value, kind: &str, amount: &str) -> Option<(&'static str, Value)> {
    let current = decimal(entry.get(amount)?)?;
    let limit = decimal(entry.get("limit")?)?;
    let utilisation = utilisation(current, limit)?;
    if utilisation < WARNING_UTILISATION {
        return None;
    }
    let key = limit_key(entry.get("bucket")?.as_str()?, entry.get("rule")?.as_str()?);
    Some((
        "limit_warning",
        json!({
            "key": key,
            "type": kind,
            "current": decimal_json(&current),
            "limit": decimal_json(&limit),
            "utilization": utilisation,
        }),
    ))
}

fn budget_update(
    entry: &Value,
    allowed: bool,
    pipeline: &Pipeline,
) -> Option<(&'static str, Value)> {
    let name = entry.get("name")?.as_str()?;
    let amount = decimal(entry.get("amount")?)?;
    let limit = decimal(entry.get("limit")?)?;
    let reported = decimal(entry.get("spent")?)?;
    // A reserve that fitted reports the pot with the amount in it; one a
    // human approved beyond the limit reports it without.
    let (kind, spent) = if allowed {
        ("spend", reported)
    } else {
        ("approved_overage", reported + amount)
    };
    let remaining = (limit - spent).max(Decimal::ZERO);
    Some((
        "budget_update",
        json!({
            "name": name,
            "bucket_key": entry.get("bucket").cloned().unwrap_or(Value::Null),
            "kind": kind,
            "amount": decimal_json(&amount),
            "spent": decimal_json(&spent),
            "remaining": decimal_json(&remaining),
            "limit": decimal_json(&limit),
            "currency": currency(pipeline, name),
            "utilization": utilisation(spent, limit),
        }),
    ))
}

fn budget_breached(entry: &Value, pipeline: &Pipeline) -> Option<(&'static str, Value)> {
    let name = entry.get("name")?.as_str()?;
    let on_exceed = pipeline
        .budgets()
        .iter()
        .find(|b| b.name.as_deref() == Some(name))
        .map(|b| b.on_exceed.as_str());
    Some((
        "budget_breached",
        json!({
            "name": name,
            "bucket_key": entry.get("bucket").cloned().unwrap_or(Value::Null),
            "on_exceed": on_exceed,
            "attempted_amount": entry.get("amount").cloned().unwrap_or(Value::Null),
            "spent": entry.get("spent").cloned().unwrap_or(Value::Null),
            "limit": entry.get("limit").cloned().unwrap_or(Value::Null),
            "currency": currency(pipeline, name),
        }),
    ))
}

fn currency(pipeline: &Pipeline, budget: &str) -> Value {
    pipeline
        .budgets()
        .iter()
        .find(|b| b.name.as_deref() == Some(budget))
        .map_or(Value::Null, |b| b.currency.clone().into())
}

/// `current / limit`, for display (a float is enough for a bar).
pub fn utilisation(current: Decimal, limit: Decimal) -> Option<f64> {
    use rust_decimal::prelude::ToPrimitive;
    if limit <= Decimal::ZERO {
        return None;
    }
    (current / limit).to_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        crate::pipeline::tests::pipeline(
            "budgets:\n  - name: daily\n    limit: 100\n    currency: USD\n    window: 24h\n    on_exceed: require_approval\n    contributors:\n      - match: { tool: pay }\n        field: amount\n",
        )
    }

    fn record(chain: Value, block_reason: Value) -> Map<String, Value> {
        match json!({
            "id": "r1", "tool_name": "pay", "policy_decision": "allow",
            "block_reason": block_reason, "dry_run": false, "record_kind": "tool_call",
            "evidence_chain": chain, "tool_input": {"secret": "not in the summary"},
        }) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_forwarded_call_reports_its_windows_and_budgets() {
        let chain = json!({
            "rate_limits": [{"rule": "cap", "stage": "rules", "bucket": "tool:pay",
                "took": true, "allowed": true, "current": 4, "limit": 5,
                "window_ms": 60000, "reset_at_ms": 1}],
            "budgets": [{"name": "daily", "stage": "budgets", "bucket": "global",
                "amount": 30, "allowed": true, "spent": 90, "limit": 100,
                "window_ms": null, "reset_at_ms": null}],
        });
        let events = of_record(&record(chain, Value::Null), &pipeline());
        let names: Vec<&str> = events.iter().map(|e| e.0).collect();
        assert_eq!(names, ["action", "limit_warning", "budget_update"]);
        assert_eq!(events[0].1["id"], "r1");
        assert!(events[0].1.get("tool_input").is_none());
        assert_eq!(events[1].1["key"], "tool:pay:rule:cap");
        assert_eq!(events[1].1["utilization"], 0.8);
        assert_eq!(
            events[2].1,
            json!({"name": "daily", "bucket_key": "global", "kind": "spend", "amount": 30,
                "spent": 90, "remaining": 10, "limit": 100, "currency": "USD",
                "utilization": 0.9})
        );
    }

    #[test]
    fn a_refused_budget_is_a_breach_and_nothing_is_charged() {
        let chain = json!({
            "budgets": [{"name": "daily", "stage": "budgets", "bucket": "global",
                "amount": 30, "allowed": false, "spent": 90, "limit": 100,
                "window_ms": null, "reset_at_ms": null}],
        });
        let events = of_record(&record(chain, json!("budget_exceeded")), &pipeline());
        let names: Vec<&str> = events.iter().map(|e| e.0).collect();
        assert_eq!(names, ["action", "budget_breached"]);
        assert_eq!(events[1].1["on_exceed"], "require_approval");
        assert_eq!(events[1].1["attempted_amount"], 30);
    }

    #[test]
    fn an_approved_overage_is_charged_beyond_the_limit() {
        let chain = json!({
            "budgets": [{"name": "daily", "stage": "budgets", "bucket": "global",
                "amount": 30, "allowed": false, "spent": 90, "limit": 100,
                "window_ms": null, "reset_at_ms": null}],
        });
        let events = of_record(&record(chain, Value::Null), &pipeline());
        let update = events
            .iter()
            .find(|e| e.0 == "budget_update")
            .expect("update");
        assert_eq!(update.1["kind"], "approved_overage");
        assert_eq!(update.1["spent"], 120);
        assert_eq!(update.1["remaining"], 0);
    }
}
