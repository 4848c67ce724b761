//! What the stages read or took from governance state while deciding one
//! call, as the host saw it through the `state` imports. The audit trail
//! shows it as the record's `evidence_chain`, for allowed calls as much as
//! for blocked ones, and for third-party stages as much as built-in ones:
//! the host reports what was checked, not what a stage says it checked.

use serde_json::{json, Map, Value};

use crate::state::{Completion, Decimal, EvidenceStatus, RateWindow, SpendWindow};

/// One state operation of one stage. Keys are scoped: `<stage>/<key>`.
#[derive(Debug, Clone)]
pub enum Check {
    Evidence {
        key: String,
        status: EvidenceStatus,
    },
    Completion {
        tool: String,
        found: Option<Completion>,
    },
    Rate {
        key: String,
        took: bool,
        window_ms: u64,
        window: RateWindow,
    },
    Spend {
        key: String,
        amount: Decimal,
        window_ms: Option<u64>,
        window: SpendWindow,
    },
}

/// A built-in stage's limit key, read back: `rules/rate:<rule>:<fp>:<bucket>`,
/// `rules/spend:…`, `budgets/budget:<name>:<fp>:<bucket>`.
pub struct LimitKey<'a> {
    /// `rate`, `spend` or `budget`.
    pub kind: &'static str,
    pub stage: &'a str,
    /// The rule's or the budget's name.
    pub name: &'a str,
    /// Whose calls share the window: `tool:<name>`, `session:<id>`, `global`.
    pub bucket: &'a str,
}

impl<'a> LimitKey<'a> {
    pub fn read(scoped: &'a str) -> Option<Self> {
        let (stage, key) = scoped.split_once('/')?;
        let (kind, rest) = key.split_once(':')?;
        let (name, rest) = rest.split_once(':')?;
        let (_fingerprint, bucket) = rest.split_once(':')?;
        let kind = match (stage, kind) {
            (_, "rate") => "rate",
            (_, "spend") => "spend",
            ("budgets", "budget") => "budget",
            _ => return None,
        };
        Some(Self {
            kind,
            stage,
            name,
            bucket,
        })
    }

    /// `{rule|name, stage, bucket}`: the start of its description.
    pub fn describe(&self) -> Map<String, Value> {
        let label = if self.kind == "budget" {
            "name"
        } else {
            "rule"
        };
        let mut entry = Map::new();
        entry.insert(label.into(), self.name.into());
        entry.insert("stage".into(), self.stage.into());
        entry.insert("bucket".into(), self.bucket.into());
        entry
    }
}

/// An exact decimal as a JSON number written from its digits.
pub fn decimal_json(value: &Decimal) -> Value {
    serde_json::from_str(&value.normalize().to_string()).unwrap_or(Value::Null)
}

/// The checks as the audit's `evidence_chain` sections:
/// `evidence {found, missing, expired}`, `dependencies {completed, failed,
/// missing}`, `rate_limits[]`, `spend_limits[]`, `budgets[]`, `other[]`
/// (limits of keys Helio's built-in stages did not write). Empty sections
/// are left out.
pub fn chain_sections(checks: &[Check]) -> Map<String, Value> {
    let mut sections = Map::new();
    let mut evidence = [Vec::new(), Vec::new(), Vec::new()];
    let mut dependencies = [Vec::new(), Vec::new(), Vec::new()];
    let mut limits: [(&str, Vec<Value>); 4] = [
        ("rate_limits", Vec::new()),
        ("spend_limits", Vec::new()),
        ("budgets", Vec::new()),
        ("other", Vec::new()),
    ];
    for check in checks {
        match check {
            Check::Evidence { key, status } => {
                let slot = match status {
                    EvidenceStatus::Present => 0,
                    EvidenceStatus::Missing => 1,
                    EvidenceStatus::Expired => 2,
                };
                push_unique(&mut evidence[slot], key);
            }
            Check::Completion { tool, found } => {
                let slot = match found {
                    Some(c) if c.succeeded => 0,
                    Some(_) => 1,
                    None => 2,
                };
                push_unique(&mut dependencies[slot], tool);
            }
            Check::Rate {
                key,
                took,
                window_ms,
                window,
            } => {
                let (section, mut entry) = limit_entry(key);
                entry.insert("took".into(), (*took).into());
                entry.insert("allowed".into(), window.allowed.into());
                entry.insert("current".into(), window.current.into());
                entry.insert("limit".into(), window.limit.into());
                entry.insert("window_ms".into(), (*window_ms).into());
                entry.insert("reset_at_ms".into(), window.reset_at_ms.into());
                limits[section].1.push(entry.into());
            }
            Check::Spend {
                key,
                amount,
                window_ms,
                window,
            } => {
                let (section, mut entry) = limit_entry(key);
                entry.insert("amount".into(), decimal_json(amount));
                entry.insert("allowed".into(), window.allowed.into());
                entry.insert("spent".into(), decimal_json(&window.spent));
                entry.insert("limit".into(), decimal_json(&window.limit));
                entry.insert("window_ms".into(), (*window_ms).into());
                entry.insert("reset_at_ms".into(), window.reset_at_ms.into());
                limits[section].1.push(entry.into());
            }
        }
    }
    if evidence.iter().any(|v| !v.is_empty()) {
        let [found, missing, expired] = evidence;
        sections.insert(
            "evidence".into(),
            json!({"found": found, "missing": missing, "expired": expired}),
        );
    }
    if dependencies.iter().any(|v| !v.is_empty()) {
        let [completed, failed, missing] = dependencies;
        sections.insert(
            "dependencies".into(),
            json!({"completed": completed, "failed": failed, "missing": missing}),
        );
    }
    for (name, entries) in limits {
        if !entries.is_empty() {
            sections.insert(name.into(), entries.into());
        }
    }
    sections
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|seen| seen == item) {
        list.push(item.to_owned());
    }
}

/// Which section a limit belongs to, and the start of its entry.
fn limit_entry(scoped: &str) -> (usize, Map<String, Value>) {
    match LimitKey::read(scoped) {
        Some(key) => {
            let section = match key.kind {
                "rate" => 0,
                "spend" => 1,
                _ => 2,
            };
            (section, key.describe())
        }
        None => {
            let mut entry = Map::new();
            let (stage, key) = scoped.split_once('/').unwrap_or(("", scoped));
            entry.insert("stage".into(), stage.into());
            entry.insert("key".into(), key.into());
            (3, entry)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn checks_become_the_evidence_chain_sections() {
        let checks = vec![
            Check::Evidence {
                key: "ticket".into(),
                status: EvidenceStatus::Present,
            },
            Check::Evidence {
                key: "approval_doc".into(),
                status: EvidenceStatus::Expired,
            },
            Check::Completion {
                tool: "lookup_order".into(),
                found: Some(Completion {
                    succeeded: true,
                    at_ms: 5,
                }),
            },
            Check::Completion {
                tool: "verify".into(),
                found: None,
            },
            Check::Rate {
                key: "rules/rate:per-session:ab12:session:s1".into(),
                took: true,
                window_ms: 60_000,
                window: RateWindow {
                    allowed: true,
                    current: 3,
                    limit: 5,
                    reset_at_ms: 70_000,
                },
            },
            Check::Spend {
                key: "budgets/budget:daily:cd34:global".into(),
                amount: Decimal::from_str("2.50").expect("decimal"),
                window_ms: None,
                window: SpendWindow {
                    allowed: false,
                    spent: Decimal::from_str("99.00").expect("decimal"),
                    limit: Decimal::from_str("100").expect("decimal"),
                    reset_at_ms: None,
                },
            },
            Check::Spend {
                key: "card-guard/exposure".into(),
                amount: Decimal::from_str("1").expect("decimal"),
                window_ms: Some(1000),
                window: SpendWindow {
                    allowed: true,
                    spent: Decimal::from_str("1").expect("decimal"),
                    limit: Decimal::from_str("10").expect("decimal"),
                    reset_at_ms: Some(2000),
                },
            },
        ];
        let chain = Value::Object(chain_sections(&checks));
        assert_eq!(
            chain,
            json!({
                "evidence": {"found": ["ticket"], "missing": [], "expired": ["approval_doc"]},
                "dependencies": {"completed": ["lookup_order"], "failed": [], "missing": ["verify"]},
                "rate_limits": [{"rule": "per-session", "stage": "rules", "bucket": "session:s1",
                    "took": true, "allowed": true, "current": 3, "limit": 5,
                    "window_ms": 60000, "reset_at_ms": 70000}],
                "budgets": [{"name": "daily", "stage": "budgets", "bucket": "global",
                    "amount": 2.5, "allowed": false, "spent": 99, "limit": 100,
                    "window_ms": null, "reset_at_ms": null}],
                "other": [{"stage": "card-guard", "key": "exposure", "amount": 1,
                    "allowed": true, "spent": 1, "limit": 10,
                    "window_ms": 1000, "reset_at_ms": 2000}],
            })
        );
    }

    #[test]
    fn nothing_checked_means_no_sections() {
        assert!(chain_sections(&[]).is_empty());
    }
}
