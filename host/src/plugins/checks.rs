//! What the stages read or took from governance state while deciding one
//! call, as the host saw it through the `state` imports. The audit trail
//! shows it as the record's `evidence_chain`, for allowed calls as much as
//! for blocked ones, and for third-party stages as much as built-in ones:
//! the host reports what was checked, not what a stage says it checked.

use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::families::KeyFamily;

use crate::state::{Completion, Decimal, EvidenceStatus, RateWindow, SpendWindow};

/// One state operation of one stage. Keys are scoped: `<stage>/<key>`.
#[derive(Debug, Clone, PartialEq)]
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
        /// What the stage described this key as, if it did.
        family: Option<Labelled>,
        took: bool,
        window_ms: u64,
        window: RateWindow,
    },
    Spend {
        key: String,
        family: Option<Labelled>,
        amount: Decimal,
        window_ms: Option<u64>,
        window: SpendWindow,
    },
}

/// A key's family, as its stage described it.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub family: Arc<KeyFamily>,
    /// Where the bucket starts in the (scoped) key.
    pub bucket_at: usize,
}

/// A scoped key (`<stage>/<key>`) as its stage described it.
pub struct Described<'a> {
    pub stage: &'a str,
    pub family: &'a KeyFamily,
    /// Whose calls share it: `tool:<name>`, `session:<id>`, `global`, …
    pub bucket: &'a str,
}

impl Described<'_> {
    /// The operator view's section: `rate`, `spend` or `budget`; none for
    /// a kind of the stage's own.
    pub fn kind(&self) -> Option<&'static str> {
        match self.family.kind.as_str() {
            "rate" => Some("rate"),
            "spend" => Some("spend"),
            "budget" => Some("budget"),
            _ => None,
        }
    }

    /// `{rule|name, stage, bucket}`: the start of its description.
    pub fn describe(&self) -> Map<String, Value> {
        let mut entry = Map::new();
        entry.insert(self.name_label().into(), self.family.name.clone().into());
        entry.insert("stage".into(), self.stage.into());
        entry.insert("bucket".into(), self.bucket.into());
        entry
    }

    fn name_label(&self) -> &'static str {
        if self.family.kind == "budget" {
            "name"
        } else {
            "rule"
        }
    }
}

/// A rate or spend check's key, described, if its stage described it.
fn described(check: &Check) -> Option<Described<'_>> {
    let (key, family) = match check {
        Check::Rate { key, family, .. } | Check::Spend { key, family, .. } => (key, family),
        Check::Evidence { .. } | Check::Completion { .. } => return None,
    };
    let family = family.as_ref()?;
    Some(Described {
        stage: key.split_once('/').map_or("", |(stage, _)| stage),
        family: &family.family,
        bucket: key.get(family.bucket_at..).unwrap_or_default(),
    })
}

/// A JSON number as an exact decimal (its shortest text: serde_json
/// keeps integers exact and floats as the shortest text that reads back
/// the same).
pub fn decimal(value: &Value) -> Option<Decimal> {
    let text = value.as_number()?.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// An exact decimal as a JSON number written from its digits.
pub fn decimal_json(value: &Decimal) -> Value {
    serde_json::from_str(&value.normalize().to_string()).unwrap_or(Value::Null)
}

/// The audit's `evidence_chain` as JSON text: the sections of what was
/// checked — `evidence {found, missing, expired}`, `dependencies
/// {completed, failed, missing}`, `rate_limits[]`, `spend_limits[]`,
/// `budgets[]`, `other[]` (keys of stages other than the built-ins) — then
/// `outcome` (`blocked` with the block's data, `dry_run` with the report).
/// Empty sections are left out; none when there is nothing to say.
///
/// Built by the audit writer thread, straight to text: a `serde_json::Map`
/// of small strings cost ~10 µs a call, this ~3.5 µs for five checks.
pub fn evidence_chain(checks: &[Check], sections: &[(&str, &Value)]) -> Option<String> {
    if checks.is_empty() && sections.is_empty() {
        return None;
    }
    let mut evidence: [Vec<&str>; 3] = Default::default();
    let mut dependencies: [Vec<&str>; 3] = Default::default();
    let mut limits: [Vec<(&Check, Option<Described<'_>>)>; 4] = Default::default();
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
            Check::Rate { .. } | Check::Spend { .. } => {
                let described = described(check).filter(|d| d.kind().is_some());
                let section = match described.as_ref().and_then(Described::kind) {
                    Some("rate") => 0,
                    Some("spend") => 1,
                    Some(_) => 2,
                    None => 3,
                };
                limits[section].push((check, described));
            }
        }
    }
    let mut out = Chain::default();
    out.text.push(b'{');
    out.lists("evidence", ["found", "missing", "expired"], &evidence);
    out.lists(
        "dependencies",
        ["completed", "failed", "missing"],
        &dependencies,
    );
    for (section, entries) in SECTIONS.iter().zip(&limits) {
        out.limits(section, entries);
    }
    for (name, value) in sections {
        out.key(name);
        out.json(value);
    }
    out.text.push(b'}');
    String::from_utf8(out.text).ok()
}

const SECTIONS: [&str; 4] = ["rate_limits", "spend_limits", "budgets", "other"];

/// JSON text under construction: one object, fields appended.
#[derive(Default)]
struct Chain {
    text: Vec<u8>,
    fields: usize,
}

impl Chain {
    fn key(&mut self, key: &str) {
        if self.fields > 0 {
            self.text.push(b',');
        }
        self.fields += 1;
        self.json(key);
        self.text.push(b':');
    }

    /// Any serializable value, escaped by serde_json (writing to a `Vec`
    /// cannot fail).
    fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        let _ = serde_json::to_writer(&mut self.text, value);
    }

    /// `"section":{"a":[…],"b":[…],"c":[…]}`, unless all three are empty.
    fn lists(&mut self, section: &str, names: [&str; 3], lists: &[Vec<&str>; 3]) {
        if lists.iter().all(Vec::is_empty) {
            return;
        }
        self.key(section);
        self.text.push(b'{');
        for (i, (name, items)) in names.iter().zip(lists).enumerate() {
            if i > 0 {
                self.text.push(b',');
            }
            self.json(name);
            self.text.push(b':');
            self.json(items);
        }
        self.text.push(b'}');
    }

    /// `"section":[{…},…]`.
    fn limits(&mut self, section: &str, entries: &[(&Check, Option<Described<'_>>)]) {
        if entries.is_empty() {
            return;
        }
        self.key(section);
        self.text.push(b'[');
        for (i, (check, key)) in entries.iter().enumerate() {
            if i > 0 {
                self.text.push(b',');
            }
            self.text.push(b'{');
            match key {
                Some(k) => {
                    self.field(k.name_label(), &k.family.name, true);
                    self.field("stage", k.stage, false);
                    self.field("bucket", k.bucket, false);
                }
                None => {
                    let scoped = match check {
                        Check::Rate { key, .. } | Check::Spend { key, .. } => key.as_str(),
                        _ => "",
                    };
                    let (stage, own) = scoped.split_once('/').unwrap_or(("", scoped));
                    self.field("stage", stage, true);
                    self.field("key", own, false);
                }
            }
            self.limit_fields(check);
            self.text.push(b'}');
        }
        self.text.push(b']');
    }

    fn limit_fields(&mut self, check: &Check) {
        use std::io::Write;
        let _ = match check {
            Check::Rate {
                took,
                window_ms,
                window,
                ..
            } => write!(
                self.text,
                r#","took":{took},"allowed":{},"current":{},"limit":{},"window_ms":{window_ms},"reset_at_ms":{}"#,
                window.allowed, window.current, window.limit, window.reset_at_ms
            ),
            Check::Spend {
                amount,
                window_ms,
                window,
                ..
            } => write!(
                self.text,
                r#","amount":{},"allowed":{},"spent":{},"limit":{},"window_ms":{},"reset_at_ms":{}"#,
                amount.normalize(),
                window.allowed,
                window.spent.normalize(),
                window.limit.normalize(),
                Optional(*window_ms),
                Optional(window.reset_at_ms)
            ),
            _ => Ok(()),
        };
    }

    fn field(&mut self, name: &str, value: &str, first: bool) {
        if !first {
            self.text.push(b',');
        }
        self.json(name);
        self.text.push(b':');
        self.json(value);
    }
}

/// A number, or `null`.
struct Optional(Option<u64>);

impl std::fmt::Display for Optional {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("null"),
        }
    }
}

fn push_unique<'a>(list: &mut Vec<&'a str>, item: &'a str) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    /// A family described by its stage; `scoped_prefix` includes the
    /// stage's name, as keys in checks do.
    fn labelled(scoped_prefix: &str, kind: &str, name: &str) -> Option<Labelled> {
        let (_, prefix) = scoped_prefix.split_once('/').expect("scoped");
        Some(Labelled {
            family: Arc::new(KeyFamily {
                prefix: prefix.into(),
                kind: kind.into(),
                name: name.into(),
                idle_ttl_ms: None,
            }),
            bucket_at: scoped_prefix.len(),
        })
    }

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
                family: labelled("rules/rate:per-session:ab12:", "rate", "per-session"),
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
                family: labelled("budgets/budget:daily:cd34:", "budget", "daily"),
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
                family: None,
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
        let text = evidence_chain(&checks, &[]).expect("chain");
        let chain: Value = serde_json::from_str(&text).expect("valid JSON");
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
    fn the_outcome_comes_last_and_nothing_checked_is_no_chain() {
        assert_eq!(evidence_chain(&[], &[]), None);
        let blocked = json!({"blocked": true, "reason": "policy_denied"});
        let text = evidence_chain(&[], &[("blocked", &blocked)]).expect("chain");
        assert_eq!(
            text,
            r#"{"blocked":{"blocked":true,"reason":"policy_denied"}}"#
        );
        let checks = [Check::Evidence {
            key: "a\"b".into(),
            status: EvidenceStatus::Missing,
        }];
        let text = evidence_chain(&checks, &[("blocked", &blocked)]).expect("chain");
        let chain: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(chain["evidence"]["missing"], json!(["a\"b"]));
        assert_eq!(chain["blocked"], blocked);
    }
}
