//! Evidence grounding (`evidence.requires`) and dependency chains
//! (`requires`): what a session must hold, or have done, before a rule's
//! action applies.

use policy_match::text::JsonObject;
use policy_match::SessionPolicy;

use super::rule::Label;
use super::{CallView, EvidenceStatus, Feedback, State, Verdict};

/// A rule's gates.
#[derive(Debug, Default)]
pub(crate) struct Gates {
    /// Evidence keys that must be held, unexpired, in the session.
    pub evidence: Vec<String>,
    /// Tools the session must have called first.
    pub requires: Vec<String>,
    /// Whether those calls must have succeeded (`requires_success`, default
    /// true).
    pub requires_success: bool,
}

/// What a session lacks.
#[derive(Debug, Default)]
struct Lacking {
    missing_evidence: Vec<String>,
    expired_evidence: Vec<String>,
    missing_dependencies: Vec<String>,
}

impl Gates {
    /// None when every gate passes; otherwise the deny.
    pub fn check(
        &self,
        label: &Label,
        call: &impl CallView,
        state: &impl State,
        session: &SessionPolicy,
    ) -> Option<Verdict> {
        if self.evidence.is_empty() && self.requires.is_empty() {
            return None;
        }
        // Evidence and completed calls are per session: without one there is
        // nothing to check against, in both on_unresolved modes (pooling
        // everyone into one "unknown" session would let one agent's evidence
        // ground another's call).
        let Some(id) = call.session() else {
            return Some(unresolved(label, session));
        };
        let lacking = self.lacking(id, state);
        let passes = lacking.missing_evidence.is_empty()
            && lacking.expired_evidence.is_empty()
            && lacking.missing_dependencies.is_empty();
        (!passes).then(|| self.blocked(label, &lacking))
    }

    /// Everything the session lacks, all of it, so the feedback lists every
    /// problem at once.
    fn lacking(&self, session: &str, state: &impl State) -> Lacking {
        let mut lacking = Lacking::default();
        for key in &self.evidence {
            match state.evidence(session, key) {
                EvidenceStatus::Present => {}
                EvidenceStatus::Expired => lacking.expired_evidence.push(key.clone()),
                EvidenceStatus::Missing => lacking.missing_evidence.push(key.clone()),
            }
        }
        for tool in &self.requires {
            let done = state
                .completed(session, tool)
                .is_some_and(|c| c.succeeded || !self.requires_success);
            if !done {
                lacking.missing_dependencies.push(tool.clone());
            }
        }
        lacking
    }

    fn blocked(&self, label: &Label, lacking: &Lacking) -> Verdict {
        // Expired evidence says the most about what to do (refresh it), then
        // missing evidence, then dependencies (checked after evidence).
        let reason = if !lacking.expired_evidence.is_empty() {
            "evidence_expired"
        } else if !lacking.missing_evidence.is_empty() {
            "evidence_missing"
        } else {
            "dependency_missing"
        };
        let extra = JsonObject::new()
            .strings("missing_evidence", &lacking.missing_evidence)
            .strings("expired_evidence", &lacking.expired_evidence)
            .strings("missing_dependencies", &lacking.missing_dependencies)
            .finish();
        // A failed gate is reported as a deny, as the original reports it.
        Verdict::Deny(
            label.decision("deny", format!("{}; {}", label.matched(), explain(lacking))),
            Feedback {
                reason: reason.into(),
                message: label.message(|| self.message(label, lacking)),
                suggestion: label.suggestion(|| self.suggestion(lacking)),
                retry_allowed: true,
                extra_json: Some(extra),
            },
        )
    }

    fn message(&self, label: &Label, lacking: &Lacking) -> String {
        let rule = label.quoted();
        let mut problems = Vec::new();
        if !lacking.missing_evidence.is_empty() {
            problems.push(format!(
                "is missing: {}",
                lacking.missing_evidence.join(", ")
            ));
        }
        if !lacking.expired_evidence.is_empty() {
            problems.push(format!(
                "has expired: {}",
                lacking.expired_evidence.join(", ")
            ));
        }
        let dependencies = (!lacking.missing_dependencies.is_empty()).then(|| {
            format!(
                "these tools to {} in this session first: {}",
                self.completion_words(),
                lacking.missing_dependencies.join(", ")
            )
        });
        match (problems.is_empty(), dependencies) {
            (true, Some(deps)) => format!("Blocked: rule \"{rule}\" requires {deps}"),
            (false, Some(deps)) => format!(
                "Blocked: rule \"{rule}\" requires evidence that {}; it also requires {deps}",
                problems.join("; ")
            ),
            (_, None) => format!(
                "Blocked: rule \"{rule}\" requires evidence that {}",
                problems.join("; ")
            ),
        }
    }

    fn suggestion(&self, lacking: &Lacking) -> String {
        let mut steps = Vec::new();
        let keys: Vec<&str> = lacking
            .missing_evidence
            .iter()
            .chain(&lacking.expired_evidence)
            .map(String::as_str)
            .collect();
        if !keys.is_empty() {
            steps.push(format!(
                "record the evidence {} for this session over the Helio SDK (mark_evidence)",
                keys.join(", ")
            ));
        }
        if !lacking.missing_dependencies.is_empty() {
            let how = if self.requires_success {
                " successfully"
            } else {
                ""
            };
            steps.push(format!(
                "call {}{how} in this session first",
                lacking.missing_dependencies.join(", ")
            ));
        }
        let mut text = steps.join(" and ");
        if let Some(first) = text.get(..1) {
            text.replace_range(..1, &first.to_ascii_uppercase());
        }
        format!("{text}, then retry this call.")
    }

    fn completion_words(&self) -> &'static str {
        if self.requires_success {
            "have completed successfully"
        } else {
            "have been called"
        }
    }
}

/// The explanation's tail: what is lacking.
fn explain(lacking: &Lacking) -> String {
    let parts = [
        ("missing evidence", &lacking.missing_evidence),
        ("expired evidence", &lacking.expired_evidence),
        ("missing dependencies", &lacking.missing_dependencies),
    ];
    parts
        .iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(what, items)| format!("{what}: {}", items.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A gated rule matched a call without a session identity.
fn unresolved(label: &Label, session: &SessionPolicy) -> Verdict {
    let explanation = format!(
        "{}; no session identity for evidence/dependency checks",
        label.matched()
    );
    let extra = JsonObject::new()
        .string("policy_reason", &explanation)
        .bool("session_unresolved", true)
        .string("tried", &session.tried)
        .finish();
    Verdict::Deny(
        label.decision("deny", explanation),
        Feedback {
            reason: "policy_denied".into(),
            message: format!(
                "Blocked: rule \"{}\" checks evidence or earlier calls in this session, so a session identity is required for evidence/dependency checks, and none was resolved (tried: {})",
                label.quoted(),
                session.tried
            ),
            suggestion: Some(SessionPolicy::SUGGESTION.into()),
            retry_allowed: true,
            extra_json: Some(extra),
        },
    )
}
