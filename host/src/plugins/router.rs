//! Approval routers: components of the `approval-router-plugin` world that
//! decide where a held call's ticket goes (channel, escalation, timeout).
//! The built-in one implements helio.yaml's `approval` blocks; an operator
//! may name their own (`approval.router`).
//!
//! Routing happens once per ticket, off the hot path, so each ticket gets a
//! fresh, configured instance: a router keeps nothing between tickets.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use super::bindings::{v1, v2};
use super::contract::Version;
use super::families::Families;
use super::{classify, ticks, Failure, LoadError, Runtime, StageSpec, StoreState, ToolCall};
use super::{Decision, Feedback};

/// A loaded router: compiled, linked, and known to accept its
/// configuration.
pub struct Router {
    pub name: Arc<str>,
    pre: RouterPre,
    config_json: Arc<str>,
    timeout: Duration,
    memory_bytes: usize,
}

impl Router {
    /// The contract version the router's component is built against.
    pub fn version(&self) -> Version {
        match self.pre {
            RouterPre::V0_1(_) => Version::V0_1,
            RouterPre::V0_2(_) => Version::V0_2,
        }
    }
}

/// Where a router sends a ticket (WIT `delivery`), as it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: String,
    pub escalate_to: Vec<String>,
    pub escalate_after_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// What a router is asked about one ticket: the stage's decision, the
/// channel and timeout it asked for, its feedback.
pub struct Asked<'a> {
    pub decision: &'a Decision,
    pub channel: Option<&'a str>,
    pub timeout_ms: Option<u64>,
    pub feedback: Option<&'a Feedback>,
}

impl Runtime {
    /// Loads a router and runs its `configure` once, so a bad configuration
    /// is reported now.
    pub fn load_router(&self, spec: &StageSpec) -> Result<Arc<Router>, LoadError> {
        let (pre, version) = self.link(spec)?;
        super::contract::without_state(&pre, &self.engine, "approval-router-plugin")?;
        let world =
            |e: wasmtime::Error| LoadError::World("approval-router-plugin", format!("{e:#}"));
        let pre = match version {
            Version::V0_1 => {
                RouterPre::V0_1(v1::router::ApprovalRouterPluginPre::new(pre).map_err(world)?)
            }
            Version::V0_2 => {
                RouterPre::V0_2(v2::router::ApprovalRouterPluginPre::new(pre).map_err(world)?)
            }
        };
        let router = Router {
            name: spec.name.as_str().into(),
            pre,
            config_json: spec.config_json.as_str().into(),
            timeout: spec.timeout,
            memory_bytes: spec.memory_bytes,
        };
        self.configured(&router).map_err(|e| match e {
            Configured::Rejected(issues) => LoadError::Config(issues),
            Configured::Failed(failure) => LoadError::Trap(failure.to_string()),
        })?;
        Ok(Arc::new(router))
    }

    /// Asks `router` where the ticket for `call` goes. Any failure (trap,
    /// timeout, memory) is the caller's to fail closed on.
    pub fn route(
        &self,
        router: &Router,
        call: ToolCall,
        asked: &Asked<'_>,
    ) -> Result<Delivery, Failure> {
        let (mut store, bindings) = self.configured(router).map_err(|e| match e {
            Configured::Rejected(issues) => {
                Failure::Instantiate(format!("configure rejected its configuration: {issues:?}"))
            }
            Configured::Failed(failure) => failure,
        })?;
        let resource = store
            .data_mut()
            .table
            .push(call)
            .map_err(|e| Failure::Instantiate(e.to_string()))?;
        let handle = Resource::<ToolCall>::new_borrow(resource.rep());
        store.set_epoch_deadline(ticks(router.timeout));
        let routed = {
            let _busy = self.ticker.busy();
            bindings.route(&mut store, handle, asked)
        };
        let _ = store.data_mut().table.delete(resource);
        routed.map_err(|e| classify(e, router.timeout, router.memory_bytes))
    }

    /// A fresh instance of `router`, configured.
    fn configured(
        &self,
        router: &Router,
    ) -> Result<(wasmtime::Store<StoreState>, RouterExports), Configured> {
        let mut store = self.store(&router.name, router.memory_bytes, &Families::default());
        let _busy = self.ticker.busy();
        store.set_epoch_deadline(ticks(super::CONFIGURE_TIMEOUT));
        let failed =
            |e| Configured::Failed(classify(e, super::CONFIGURE_TIMEOUT, router.memory_bytes));
        let bindings = match &router.pre {
            RouterPre::V0_1(pre) => {
                RouterExports::V0_1(pre.instantiate(&mut store).map_err(failed)?)
            }
            RouterPre::V0_2(pre) => {
                RouterExports::V0_2(pre.instantiate(&mut store).map_err(failed)?)
            }
        };
        bindings
            .configure(&mut store, &router.config_json)
            .map_err(failed)?
            .map_err(Configured::Rejected)?;
        Ok((store, bindings))
    }
}

/// A router's component, linked against its version's world.
enum RouterPre {
    V0_1(v1::router::ApprovalRouterPluginPre<StoreState>),
    V0_2(v2::router::ApprovalRouterPluginPre<StoreState>),
}

/// One router instance's exports.
enum RouterExports {
    V0_1(v1::router::ApprovalRouterPlugin),
    V0_2(v2::router::ApprovalRouterPlugin),
}

impl RouterExports {
    fn configure(
        &self,
        store: &mut wasmtime::Store<StoreState>,
        config_json: &str,
    ) -> wasmtime::Result<super::contract::Configured> {
        Ok(match self {
            RouterExports::V0_1(router) => router
                .helio_governance_approval_router()
                .call_configure(store, config_json)?
                .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect()),
            RouterExports::V0_2(router) => router
                .helio_governance_approval_router()
                .call_configure(store, config_json)?
                .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect()),
        })
    }

    fn route(
        &self,
        store: &mut wasmtime::Store<StoreState>,
        call: Resource<ToolCall>,
        asked: &Asked<'_>,
    ) -> wasmtime::Result<Delivery> {
        Ok(match self {
            RouterExports::V0_1(router) => {
                let d = router.helio_governance_approval_router().call_route(
                    store,
                    call,
                    &request_v1(asked),
                )?;
                Delivery {
                    channel: d.channel,
                    escalate_to: d.escalate_to,
                    escalate_after_ms: d.escalate_after_ms,
                    timeout_ms: d.timeout_ms,
                }
            }
            RouterExports::V0_2(router) => {
                let d = router.helio_governance_approval_router().call_route(
                    store,
                    call,
                    &request_v2(asked),
                )?;
                Delivery {
                    channel: d.channel,
                    escalate_to: d.escalate_to,
                    escalate_after_ms: d.escalate_after_ms,
                    timeout_ms: d.timeout_ms,
                }
            }
        })
    }
}

enum Configured {
    Rejected(Vec<(String, String)>),
    Failed(Failure),
}

/// The feedback's extra `data`, as the contract passes it.
fn extra_json(f: &Feedback) -> Option<String> {
    (!f.extra.is_empty()).then(|| serde_json::Value::Object(f.extra.clone()).to_string())
}

fn request_v1(asked: &Asked<'_>) -> v1::helio::governance::types::ApprovalRequest {
    use v1::helio::governance::types as wit;
    wit::ApprovalRequest {
        decision: wit::Decision {
            action: asked.decision.action.clone(),
            rule: asked.decision.rule.clone(),
            rule_index: asked.decision.rule_index,
            explanation: asked.decision.explanation.clone(),
        },
        channel: asked.channel.map(str::to_owned),
        timeout_ms: asked.timeout_ms,
        feedback: asked.feedback.map(|f| wit::Feedback {
            reason: f.reason.clone(),
            message: f.message.clone(),
            suggestion: f.suggestion.clone(),
            retry_allowed: f.retry_allowed,
            extra_json: extra_json(f),
        }),
    }
}

fn request_v2(asked: &Asked<'_>) -> v2::helio::governance::types::ApprovalRequest {
    use v2::helio::governance::types as wit;
    wit::ApprovalRequest {
        decision: wit::Decision {
            // Only a held call's decision reaches a router.
            action: super::verdict::action_of(&asked.decision.action)
                .unwrap_or(wit::Action::RequireApproval),
            rule: asked.decision.rule.clone(),
            rule_index: asked.decision.rule_index,
            explanation: asked.decision.explanation.clone(),
            redact: asked.decision.redact.clone(),
            observe: asked.decision.observe,
        },
        channel: asked.channel.map(str::to_owned),
        timeout_ms: asked.timeout_ms,
        feedback: asked.feedback.map(|f| wit::Feedback {
            reason: f.reason.clone(),
            message: f.message.clone(),
            suggestion: f.suggestion.clone(),
            retry_allowed: f.retry_allowed,
            extra_json: extra_json(f),
        }),
    }
}
