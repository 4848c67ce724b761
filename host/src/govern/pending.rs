//! A call its caller runs itself (the adapter API's `/evaluate` then
//! `/audit`): the core has allowed it and reserved what its stages took;
//! the caller reports whether it ran. Ran: the holds are committed and
//! settled by how it went, as for a forwarded call. Did not run: they are
//! given back. Never reported (the caller crashed, or lied by silence):
//! they are given back when the [`Pending`] is dropped, and the record says
//! the evaluation expired unreported — a tamper signal for the operator.

use std::time::Duration;

use crate::pipeline::Denial;
use crate::plugins::Decision;
use crate::state::{CallOutcome, Decimal};

use super::forward::Release;
use super::held::Resolved;
use super::record::CallAudit;
use super::Allowed;

/// An allowed call waiting for its caller's report.
pub struct Pending {
    /// Both taken by the report; still here on drop means it never came.
    parts: Option<(Release, CallAudit)>,
    decision: Option<Decision>,
}

/// What the caller reports of an allowed call.
pub enum Report<'a> {
    /// It ran and `outcome` says how; `result` (JSON) is what it returned
    /// or `error` why it failed, `took` how long it ran; `actual_amount`
    /// what it cost, when that is not what was evaluated.
    Ran {
        outcome: CallOutcome,
        result: Option<&'a [u8]>,
        error: Option<String>,
        took: Option<Duration>,
        actual_amount: Option<Decimal>,
    },
    /// The caller did not run it.
    NotRun,
}

impl Pending {
    pub(super) fn new(allowed: Allowed) -> Self {
        Self {
            parts: Some((allowed.release, allowed.audit)),
            decision: allowed.decision,
        }
    }

    /// The stage decision that allowed it (the rule, if one matched).
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// What its stages found of its limits (see [`CallAudit::limits`]).
    pub fn limits(&self) -> Option<serde_json::Value> {
        self.parts.as_ref().and_then(|(_, audit)| audit.limits())
    }

    /// Whether it holds spend, which an `actual_amount` would resize.
    pub fn holds_spend(&self) -> bool {
        self.parts
            .as_ref()
            .is_some_and(|(release, _)| release.holds_spend())
    }

    /// The id its audit record will have.
    pub fn record_id(&self) -> &str {
        self.parts
            .as_ref()
            .map_or("", |(_, audit)| &audit.record().id)
    }

    /// Settles the call as reported. A call that ran but whose holds cannot
    /// be committed (the state store failed) is recorded as blocked
    /// `state_unavailable`: the caller learns its spend was not recorded.
    pub fn report(mut self, report: Report<'_>) -> Result<(), Box<Denial>> {
        let Some((release, audit)) = self.parts.take() else {
            return Ok(());
        };
        match report {
            Report::NotRun => {
                release.release(&audit);
                audit.not_run();
                Ok(())
            }
            Report::Ran {
                mut outcome,
                result,
                error,
                took,
                actual_amount,
            } => {
                let mut audit = audit;
                // How it went, as observers are told, whatever settles it.
                let reported = outcome;
                if let Some(amount) = actual_amount {
                    match release.resize_spend(amount) {
                        Ok(resized) => audit.actual_amount(amount, &resized),
                        Err(error) => {
                            tracing::error!(%error, "a reported actual amount could not be held");
                            let denial = Denial::state_unavailable();
                            release.release(&audit);
                            audit.blocked(&denial);
                            return Err(Box::new(denial));
                        }
                    }
                    // What it cost stands even if it failed: the caller said so.
                    if outcome == CallOutcome::Failed {
                        outcome = CallOutcome::Unknown;
                    }
                }
                match release.forward(audit, self.decision.as_ref()) {
                    Resolved::Forward(forwarded) => {
                        forwarded.ran(outcome, reported, result, error, took);
                        Ok(())
                    }
                    Resolved::Block(denial) => Err(Box::new(denial)),
                }
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((release, audit)) = self.parts.take() {
            release.release(&audit);
            audit.expired();
        }
    }
}
