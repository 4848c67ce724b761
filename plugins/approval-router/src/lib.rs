//! Helio's built-in approval router, as an `approval-router-plugin`
//! component: where a held call's ticket goes, how long it waits and when
//! it escalates, as helio.yaml's `approval` blocks say.
//!
//! - A rule's ticket follows the deciding rule's `approval` block; a
//!   budget's ticket the first breached budget's (configuration order).
//! - The channel and timeout are what the asking stage put in the request
//!   (the rules and budgets stages copy them from those blocks); without a
//!   channel, `dashboard`; without a timeout, the host's `approval.timeout`.
//! - The block's `escalation_after` escalates to its `delegates` (or the
//!   ticket's own channel again when it names none), if it fires at all:
//!   above zero and below the ticket's timeout.
//!
//! The logic lives in [`Routes`], natively tested; the WIT glue is compiled
//! for wasm32 only.

#![deny(unsafe_code)]

use serde_json::Value;

/// One `approval` block, as the host passes it in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    pub delegates: Vec<String>,
    pub escalation_after_ms: Option<u64>,
}

/// What the router is told about a ticket (the WIT `approval-request`,
/// reduced to what it reads).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
    pub channel: Option<String>,
    pub timeout_ms: Option<u64>,
    /// The feedback's `reason` (`budget_exceeded` for a budget's ticket).
    pub reason: Option<String>,
    /// The feedback's extra fields, as JSON text.
    pub extra_json: Option<String>,
}

/// Where a ticket goes (the WIT `delivery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: String,
    pub escalate_to: Vec<String>,
    pub escalate_after_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// A configuration problem: the path at fault and what is wrong.
pub type Problem = (String, String);

/// A rule or budget: its name and its `approval` block, if it has one.
type Named = (Option<String>, Option<Block>);

/// The compiled configuration: `{"default_timeout_ms": n, "rules": [{name,
/// approval?}], "budgets": [{name, approval?}]}` where an `approval` is
/// `{delegates?: [..], escalation_after_ms?: n}`.
#[derive(Debug, Default)]
pub struct Routes {
    default_timeout_ms: u64,
    /// By rule index: the rule's name and block.
    rules: Vec<Named>,
    budgets: Vec<(String, Block)>,
}

impl Routes {
    /// Reads the configuration the host builds from helio.yaml; an error
    /// names the path at fault.
    pub fn from_json(text: &str) -> Result<Self, Problem> {
        let config: Value =
            serde_json::from_str(text).map_err(|e| (String::new(), e.to_string()))?;
        let default_timeout_ms = config
            .get("default_timeout_ms")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                (
                    "default_timeout_ms".to_owned(),
                    "expected milliseconds".to_owned(),
                )
            })?;
        let list = |key: &str| -> Result<Vec<Named>, Problem> {
            let Some(items) = config.get(key) else {
                return Ok(Vec::new());
            };
            let items = items
                .as_array()
                .ok_or_else(|| (key.to_owned(), "expected a list".to_owned()))?;
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let at = format!("{key}[{index}]");
                    let name = item.get("name").and_then(Value::as_str).map(str::to_owned);
                    let block = match item.get("approval") {
                        None | Some(Value::Null) => None,
                        Some(block) => Some(read_block(block, &format!("{at}.approval"))?),
                    };
                    Ok((name, block))
                })
                .collect()
        };
        let rules = list("rules")?;
        let budgets = list("budgets")?
            .into_iter()
            .filter_map(|(name, block)| Some((name?, block?)))
            .collect();
        Ok(Self {
            default_timeout_ms,
            rules,
            budgets,
        })
    }

    /// Routes one ticket.
    pub fn route(&self, request: &Request) -> Delivery {
        let channel = request
            .channel
            .clone()
            .unwrap_or_else(|| "dashboard".to_owned());
        let timeout_ms = request.timeout_ms.unwrap_or(self.default_timeout_ms);
        let mut delivery = Delivery {
            channel,
            escalate_to: Vec::new(),
            escalate_after_ms: None,
            timeout_ms: request.timeout_ms,
        };
        let Some(block) = self.block(request) else {
            return delivery;
        };
        if let Some(after) = block.escalation_after_ms {
            // As in the original: it fires only strictly inside the wait.
            if after > 0 && after < timeout_ms {
                delivery.escalate_after_ms = Some(after);
                delivery.escalate_to = if block.delegates.is_empty() {
                    vec![delivery.channel.clone()]
                } else {
                    block.delegates.clone()
                };
            }
        }
        delivery
    }

    /// The `approval` block behind a request: the first breached budget's
    /// for a budget's ticket, else the deciding rule's (by index, checked
    /// against its name: a plugin's decision may carry an index of its own).
    fn block(&self, request: &Request) -> Option<&Block> {
        if request.reason.as_deref() == Some("budget_exceeded") {
            let extra: Value = serde_json::from_str(request.extra_json.as_deref()?).ok()?;
            let first = extra.get("budgets")?.get(0)?.get("name")?.as_str()?;
            return self
                .budgets
                .iter()
                .find(|(name, _)| name == first)
                .map(|(_, block)| block);
        }
        let index = usize::try_from(request.rule_index?).ok()?;
        let (name, block) = self.rules.get(index)?;
        (name.as_deref() == request.rule.as_deref())
            .then_some(block.as_ref())
            .flatten()
    }
}

fn read_block(value: &Value, at: &str) -> Result<Block, Problem> {
    let delegates = match value.get("delegates") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|d| d.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                (
                    format!("{at}.delegates"),
                    "expected channel names".to_owned(),
                )
            })?,
        Some(_) => return Err((format!("{at}.delegates"), "expected a list".to_owned())),
    };
    let escalation_after_ms = match value.get("escalation_after_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            (
                format!("{at}.escalation_after_ms"),
                "expected milliseconds".to_owned(),
            )
        })?),
    };
    Ok(Block {
        delegates,
        escalation_after_ms,
    })
}

#[cfg(target_arch = "wasm32")]
mod component {
    // The bindings generated by wit-bindgen contain unsafe ABI code.
    #![allow(unsafe_code)]

    use std::cell::RefCell;

    wit_bindgen::generate!({ path: "../../wit", world: "approval-router-plugin" });

    use exports::helio::governance::approval_router::{Delivery, Guest};
    use helio::governance::types::{ApprovalRequest, ConfigError, ToolCall};

    thread_local! {
        static ROUTES: RefCell<Option<super::Routes>> = const { RefCell::new(None) };
    }

    struct Router;

    impl Guest for Router {
        fn configure(config_json: String) -> Result<(), Vec<ConfigError>> {
            let routes = super::Routes::from_json(&config_json)
                .map_err(|(path, message)| vec![ConfigError { path, message }])?;
            ROUTES.with(|r| *r.borrow_mut() = Some(routes));
            Ok(())
        }

        fn route(_call: &ToolCall, request: ApprovalRequest) -> Delivery {
            let feedback = request.feedback.as_ref();
            let asked = super::Request {
                rule: request.decision.rule.clone(),
                rule_index: request.decision.rule_index,
                channel: request.channel.clone(),
                timeout_ms: request.timeout_ms,
                reason: feedback.map(|f| f.reason.clone()),
                extra_json: feedback.and_then(|f| f.extra_json.clone()),
            };
            // Not configured: the ticket's own channel and timeout, as asked.
            let delivery = ROUTES.with(|r| r.borrow().as_ref().map(|routes| routes.route(&asked)));
            let delivery = delivery.unwrap_or_else(|| super::Delivery {
                channel: asked.channel.clone().unwrap_or_else(|| "dashboard".into()),
                escalate_to: Vec::new(),
                escalate_after_ms: None,
                timeout_ms: asked.timeout_ms,
            });
            Delivery {
                channel: delivery.channel,
                escalate_to: delivery.escalate_to,
                escalate_after_ms: delivery.escalate_after_ms,
                timeout_ms: delivery.timeout_ms,
            }
        }
    }

    export!(Router);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes::from_json(
            r#"{"default_timeout_ms": 300000,
                "rules": [{"name": "plain"},
                          {"name": "escalates", "approval": {"delegates": ["oncall"], "escalation_after_ms": 60000}},
                          {"name": "self", "approval": {"escalation_after_ms": 1000}}],
                "budgets": [{"name": "pot", "approval": {"delegates": ["cfo"], "escalation_after_ms": 5000}}]}"#,
        )
        .expect("configuration")
    }

    fn rule(index: u32, name: &str) -> Request {
        Request {
            rule: Some(name.into()),
            rule_index: Some(index),
            ..Request::default()
        }
    }

    #[test]
    fn a_rule_without_a_block_goes_where_the_stage_asked() {
        let delivery = routes().route(&Request {
            channel: Some("ops".into()),
            timeout_ms: Some(1000),
            ..rule(0, "plain")
        });
        assert_eq!(
            delivery,
            Delivery {
                channel: "ops".into(),
                escalate_to: vec![],
                escalate_after_ms: None,
                timeout_ms: Some(1000)
            }
        );
        assert_eq!(routes().route(&Request::default()).channel, "dashboard");
    }

    #[test]
    fn escalation_fires_only_inside_the_wait_and_defaults_to_the_own_channel() {
        let r = routes();
        let d = r.route(&rule(1, "escalates"));
        assert_eq!(
            (d.escalate_after_ms, d.escalate_to),
            (Some(60000), vec!["oncall".to_owned()])
        );
        let d = r.route(&Request {
            timeout_ms: Some(60000),
            ..rule(1, "escalates")
        });
        assert_eq!(d.escalate_after_ms, None, "not before the timeout");
        let d = r.route(&Request {
            channel: Some("hook".into()),
            ..rule(2, "self")
        });
        assert_eq!(d.escalate_to, vec!["hook".to_owned()]);
        // An index that names another rule (a plugin's own) has no block.
        assert_eq!(r.route(&rule(1, "someone-else")).escalate_after_ms, None);
    }

    #[test]
    fn a_budget_ticket_follows_the_first_breached_budget() {
        let d = routes().route(&Request {
            reason: Some("budget_exceeded".into()),
            extra_json: Some(r#"{"budgets":[{"name":"pot"},{"name":"other"}]}"#.into()),
            ..Request::default()
        });
        assert_eq!(
            (d.escalate_after_ms, d.escalate_to),
            (Some(5000), vec!["cfo".to_owned()])
        );
    }

    #[test]
    fn configuration_errors_name_the_path() {
        assert_eq!(
            Routes::from_json(r#"{"default_timeout_ms": 1, "rules": [{"name": "a", "approval": {"delegates": [1]}}]}"#)
                .map(|_| ())
                .unwrap_err()
                .0,
            "rules[0].approval.delegates"
        );
        assert!(Routes::from_json("{}").is_err());
    }
}
