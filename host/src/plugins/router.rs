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

use super::bindings::helio::governance::types as wit;
use super::bindings::router::{ApprovalRouterPlugin, ApprovalRouterPluginPre};
use super::families::Families;
use super::{classify, ticks, Failure, LoadError, Runtime, StageSpec, StoreState, ToolCall};
use super::{Decision, Feedback};

/// A loaded router: compiled, linked, and known to accept its
/// configuration.
pub struct Router {
    pub name: Arc<str>,
    pre: ApprovalRouterPluginPre<StoreState>,
    config_json: Arc<str>,
    timeout: Duration,
    memory_bytes: usize,
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
        let pre = ApprovalRouterPluginPre::new(self.link(spec)?)
            .map_err(|e| LoadError::World("approval-router-plugin", format!("{e:#}")))?;
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
        let request = request(asked);
        store.set_epoch_deadline(ticks(router.timeout));
        let routed = {
            let _busy = self.ticker.busy();
            bindings
                .helio_governance_approval_router()
                .call_route(&mut store, handle, &request)
        };
        let _ = store.data_mut().table.delete(resource);
        let delivery = routed.map_err(|e| classify(e, router.timeout, router.memory_bytes))?;
        Ok(Delivery {
            channel: delivery.channel,
            escalate_to: delivery.escalate_to,
            escalate_after_ms: delivery.escalate_after_ms,
            timeout_ms: delivery.timeout_ms,
        })
    }

    /// A fresh instance of `router`, configured.
    fn configured(
        &self,
        router: &Router,
    ) -> Result<(wasmtime::Store<StoreState>, ApprovalRouterPlugin), Configured> {
        let mut store = self.store(&router.name, router.memory_bytes, &Families::default());
        let _busy = self.ticker.busy();
        store.set_epoch_deadline(ticks(super::CONFIGURE_TIMEOUT));
        let failed =
            |e| Configured::Failed(classify(e, super::CONFIGURE_TIMEOUT, router.memory_bytes));
        let bindings = router.pre.instantiate(&mut store).map_err(failed)?;
        let configured = bindings
            .helio_governance_approval_router()
            .call_configure(&mut store, &router.config_json)
            .map_err(failed)?;
        if let Err(errors) = configured {
            return Err(Configured::Rejected(
                errors.into_iter().map(|e| (e.path, e.message)).collect(),
            ));
        }
        Ok((store, bindings))
    }
}

enum Configured {
    Rejected(Vec<(String, String)>),
    Failed(Failure),
}

fn request(asked: &Asked<'_>) -> wit::ApprovalRequest {
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
            extra_json: (!f.extra.is_empty())
                .then(|| serde_json::Value::Object(f.extra.clone()).to_string()),
        }),
    }
}
