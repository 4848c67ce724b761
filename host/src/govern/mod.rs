//! The governance core: one call lifecycle for every door.
//!
//! A door (the MCP relay, with its stdio and legacy SSE clients; the
//! adapter API) reads a call off its wire into [`CallFacts`] and asks
//! [`Governor::decide`] (or, for a call its caller runs itself,
//! [`Governor::decide_deferred`]). The core runs the stage chain, decides what
//! happens to the call and to what its stages took from governance state,
//! and keeps the call's audit record:
//!
//! - [`Decision::Forward`]: the holds are committed (spend durable) and the
//!   door sends the call; it reports the upstream's answer to the
//!   [`Forwarded`] it got, which settles state and completes the record.
//! - [`Decision::Block`] / [`Decision::Simulate`]: holds released, record
//!   written; the door renders the [`Denial`] or [`Simulation`] for its wire.
//! - [`Decision::Hold`]: a human must approve first; the holds stay
//!   reserved until the ticket is resolved ([`held`]).
//!
//! The core never sees a transport type (no headers, no status codes of
//! its own); doors never contain policy.

mod answer;
mod facts;
mod forward;
mod held;
mod observe;
mod pending;
mod record;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::approvals::arguments_digest;
use crate::audit::Audit;
use crate::pipeline::{Active, Evaluation, Outcome};
use crate::plugins::{Runtime, ToolCall};

pub use crate::pipeline::{Approval, Denial, Simulation};
pub use answer::Answer;
pub use facts::{CallFacts, Door, Era, Refused, SessionIdentity};
pub use forward::{Forwarded, Unanswered};
pub use held::{Held, Holding, Resolved};
pub use pending::{Pending, Report};
pub use record::InstallScan;

use held::Routing;

use forward::Release;
use observe::Observers;
use record::CallAudit;

/// What happens to a call.
pub enum Decision {
    /// Send it upstream and report the answer to the [`Forwarded`].
    Forward(Box<Forwarded>),
    Block(Denial),
    /// Answer with the simulated result; do not send it.
    Simulate(Simulation),
    /// Wait for a human; see [`Held::resolved`].
    Hold(Box<Held>),
}

/// A call its caller runs itself (see [`Governor::decide_deferred`]).
pub enum Deferred {
    /// Run it, then report to the [`Pending`] how it went.
    Allow(Box<Pending>),
    Block(Denial),
    Simulate(Simulation),
    /// Wait for a human; [`Held::resolved_deferred`] then says whether it
    /// may run.
    Hold(Box<Held>),
}

/// What the stage chain's outcome left to do.
enum Judged {
    Allowed(Allowed),
    Blocked(Denial),
    Simulated(Simulation),
    Approvals(Approvals),
}

/// An allowed call: its holds reserved, its record open.
struct Allowed {
    release: Release,
    audit: CallAudit,
    decision: Option<crate::plugins::Decision>,
}

/// A call that needs approvals before it may go.
struct Approvals {
    approvals: Vec<Approval>,
    routing: Routing,
    policy_version: Arc<str>,
    release: Release,
    audit: CallAudit,
}

/// The core, shared by every door.
pub struct Governor {
    pipeline: Active,
    runtime: Arc<Runtime>,
    audit: Arc<Audit>,
    /// Where held calls wait. Without it (no operator API to resolve
    /// them), a call that needs an approval is refused.
    holding: Option<Holding>,
}

impl Governor {
    pub fn new(pipeline: Active, runtime: Arc<Runtime>, audit: Arc<Audit>) -> Self {
        Self {
            pipeline,
            runtime,
            audit,
            holding: None,
        }
    }

    /// Holds calls that need an approval (see [`Holding`]) instead of
    /// refusing them.
    pub fn holding_approvals(mut self, holding: Holding) -> Self {
        self.holding = Some(holding);
        self
    }

    /// `policies.tool_revalidation` as configured now (it is reloadable).
    pub fn tool_revalidation(&self) -> crate::config::ToolRevalidation {
        self.pipeline.current().tool_revalidation().clone()
    }

    /// The audit trail (doors use its redaction for what they refuse).
    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// Decides what happens to a call the door will send on itself: an
    /// allowed call's holds are committed before it goes (see
    /// [`Decision`]). Waits (yielding, never blocking the worker) while the
    /// audit or state writer is too far behind to take another call's
    /// changes.
    pub async fn decide(&self, facts: CallFacts<'_>) -> Decision {
        match self.judge(facts).await {
            Judged::Allowed(allowed) => match allowed
                .release
                .forward(allowed.audit, allowed.decision.as_ref())
            {
                Resolved::Forward(forwarded) => Decision::Forward(forwarded),
                Resolved::Block(denial) => Decision::Block(denial),
            },
            Judged::Blocked(denial) => Decision::Block(denial),
            Judged::Simulated(simulation) => Decision::Simulate(simulation),
            Judged::Approvals(approvals) => match self.hold(approvals).await {
                Ok(held) => Decision::Hold(held),
                Err(denial) => Decision::Block(denial),
            },
        }
    }

    /// Decides what happens to a call its caller runs itself (the adapter
    /// API): an allowed call's holds stay reserved for it — so two callers
    /// never both get the last slot — until the caller reports the call ran
    /// (they are committed) or did not (they are given back), or the
    /// [`Pending`] is dropped unreported (given back, recorded as expired).
    pub async fn decide_deferred(&self, facts: CallFacts<'_>) -> Deferred {
        match self.judge(facts).await {
            Judged::Allowed(allowed) => Deferred::Allow(Box::new(Pending::new(allowed))),
            Judged::Blocked(denial) => Deferred::Block(denial),
            Judged::Simulated(simulation) => Deferred::Simulate(simulation),
            Judged::Approvals(approvals) => match self.hold(approvals).await {
                Ok(held) => Deferred::Hold(held),
                Err(denial) => Deferred::Block(denial),
            },
        }
    }

    /// Runs the stage chain on a call and settles what follows from its
    /// outcome alone; an allowed or held call's holds are still reserved.
    async fn judge(&self, facts: CallFacts<'_>) -> Judged {
        self.audit.ready().await;
        let state = self.runtime.state();
        if let Some(room) = state.room() {
            room.ready().await;
        }
        let pipeline = self.pipeline.current();
        let environment = pipeline.environment();
        let mut audit = CallAudit::begin(
            &self.audit,
            &facts,
            environment.map(|e| &**e),
            pipeline.stage_names(),
        );
        let session = facts.identity.as_ref().map(|identity| identity.id.clone());
        let era = facts.era();
        let call = ToolCall::new(
            facts.tool.clone(),
            facts.annotations,
            facts.arguments,
            environment.cloned(),
        )
        .with_session(session.clone())
        .with_metadata(facts.metadata.clone())
        .with_caller(facts.agent.clone(), facts.door.clone(), era)
        .with_extractors(pipeline.extractors().cloned());
        // Kept for a held call's router and the stages that observe.
        let seen = call.clone();
        // What the stages take is guarded from the moment they take it: a
        // call abandoned while a stage waits on the store gives it back.
        let guard = |holds| Release {
            state: state.clone(),
            session: session.clone(),
            tool: facts.tool.clone(),
            holds,
            observers: None,
        };
        let (mut evaluation, release) = if state.may_block() {
            // Off the connection worker: its other connections keep going
            // while a stage waits on the store.
            let (chain, runtime) = (pipeline.clone(), self.runtime.clone());
            let mut release = guard(Vec::new());
            let drift = facts.drift.clone();
            let evaluated = tokio::task::spawn_blocking(move || {
                let mut evaluation = chain.evaluate(&runtime, call, drift.as_deref());
                release.holds = std::mem::take(&mut evaluation.holds);
                (evaluation, release)
            })
            .await;
            match evaluated {
                Ok(evaluated) => evaluated,
                Err(error) => {
                    tracing::error!(%error, "the stage chain did not finish; blocking the call");
                    let denial = Denial::plugin_error("governance chain", "it did not finish");
                    (Evaluation::blocked(denial), guard(Vec::new()))
                }
            }
        } else {
            let mut evaluation = pipeline.evaluate(&self.runtime, call, facts.drift.as_deref());
            let release = guard(std::mem::take(&mut evaluation.holds));
            (evaluation, release)
        };
        let mut release = release;
        if !evaluation.observers.is_empty() {
            release.observers = Some(Observers {
                runtime: self.runtime.clone(),
                stages: std::mem::take(&mut evaluation.observers),
                call: seen.clone(),
            });
        }
        if !evaluation.redact.is_empty() {
            audit.redact_also(&evaluation.redact, seen.arguments.as_deref());
        }
        audit.checked(
            std::mem::take(&mut evaluation.checks),
            evaluation.flagged_destructive,
            evaluation.drift.take(),
            evaluation.decided_by.take(),
            &evaluation.stages,
        );
        match evaluation.outcome {
            Outcome::Forward(decision) => Judged::Allowed(Allowed {
                release,
                audit,
                decision,
            }),
            Outcome::Block(denial) => {
                release.release(&audit);
                audit.blocked(&denial);
                Judged::Blocked(denial)
            }
            Outcome::DryRun(simulation) => {
                release.release(&audit);
                audit.simulated(&simulation);
                Judged::Simulated(simulation)
            }
            Outcome::RequireApproval(approvals) => Judged::Approvals(Approvals {
                approvals,
                routing: Routing {
                    runtime: self.runtime.clone(),
                    router: pipeline.router().clone(),
                    call: seen,
                },
                policy_version: pipeline.version().clone(),
                release,
                audit,
            }),
        }
    }

    /// Holds a call for its approvals (refused when there is nowhere to
    /// hold it).
    async fn hold(&self, held: Approvals) -> Result<Box<Held>, Denial> {
        let mut steps = held.approvals.into_iter();
        let (Some(holding), Some(first)) = (&self.holding, steps.next()) else {
            let denial = Denial::approval_unavailable();
            held.release.release(&held.audit);
            held.audit.blocked(&denial);
            return Err(denial);
        };
        let digest = arguments_digest(held.routing.call.arguments.as_deref());
        let call = Holding::call(held.audit.record(), digest, &held.policy_version);
        Ok(Box::new(
            Held::open(
                holding,
                held.routing,
                call,
                first,
                steps.collect(),
                held.release,
                held.audit,
            )
            .await,
        ))
    }

    /// The stage chain and policy in force now.
    pub fn pipeline(&self) -> Arc<crate::pipeline::Pipeline> {
        self.pipeline.current()
    }

    /// Records an install scan; its record id.
    pub fn install_scanned(&self, scan: InstallScan<'_>) -> String {
        record::install_scan(&self.audit, scan)
    }

    /// Records a call a door refused before any stage saw it.
    pub fn refused(&self, refused: Refused<'_>) {
        record::refused(&self.audit, refused);
    }
}
