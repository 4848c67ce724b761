//! One compiled budget, and what charging a call to it found.

use policy_match::{
    inputs_match, AmountSource, CallView, Glob, InputCondition, SessionPolicy, State,
};

/// `window`: a sliding duration, or the session's lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Window {
    /// Spend leaves the pot `ms` after it was made; `text` as written (`1h`).
    Sliding { ms: u64, text: String },
    /// A pot that never replenishes (the host collects idle ones).
    Session,
}

impl Window {
    /// The ledger window; none for a pot that never replenishes.
    pub fn ms(&self) -> Option<u64> {
        match self {
            Window::Sliding { ms, .. } => Some(*ms),
            Window::Session => None,
        }
    }

    /// As configured: `1h`, or `session`.
    pub fn text(&self) -> &str {
        match self {
            Window::Sliding { text, .. } => text,
            Window::Session => "session",
        }
    }
}

/// `key`: whose pot a call draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BudgetKey {
    /// One pot for every call (the default).
    Global,
    /// One pot per session identity.
    Session,
    /// One pot per adapter sender; absent on the MCP path, so the global pot.
    SenderId,
}

impl BudgetKey {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKey::Global => "global",
            BudgetKey::Session => "session",
            BudgetKey::SenderId => "sender_id",
        }
    }
}

/// `on_exceed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnExceed {
    Deny,
    RequireApproval,
}

impl OnExceed {
    pub fn as_str(self) -> &'static str {
        match self {
            OnExceed::Deny => "deny",
            OnExceed::RequireApproval => "require_approval",
        }
    }
}

/// A budget's `approval` block (what the approval request carries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Approval {
    pub channel: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// A contributor: which calls draw from the budget, and where their amount is.
#[derive(Debug)]
pub(crate) struct Contributor {
    pub tool: Glob,
    /// `Some` when `match.input` is given (even empty): the call must then
    /// carry arguments that satisfy it.
    pub input: Option<Vec<InputCondition>>,
    /// Where the amount is read: an argument path or a spend extractor.
    pub source: AmountSource,
}

impl Contributor {
    #[cfg(test)]
    fn matches(&self, call: &impl CallView) -> bool {
        self.tool.matches(call.tool()) && self.match_beyond_tool(call)
    }

    /// Whether the `input` conditions hold: the engine's tool index has
    /// already chosen this contributor for the call's tool.
    pub fn match_beyond_tool(&self, call: &impl CallView) -> bool {
        self.input
            .as_ref()
            .is_none_or(|input| inputs_match(input, call))
    }
}

/// A compiled budget.
#[derive(Debug)]
pub(crate) struct Budget {
    pub name: String,
    /// The limit as an exact decimal.
    pub limit: String,
    pub currency: String,
    pub window: Window,
    pub key: BudgetKey,
    pub on_exceed: OnExceed,
    pub approval: Option<Approval>,
    pub contributors: Vec<Contributor>,
    /// `budget:<name>:<fp>:`, where `<fp>` fingerprints the limit, currency,
    /// window and key: changing any of them starts a fresh pot, editing
    /// contributors keeps the spend.
    pub prefix: String,
    /// `idle_ttl`: how long a per-session pot may sit idle before the host
    /// collects it.
    pub idle_ttl_ms: Option<u64>,
}

/// What charging one budget found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The amount fits and is reserved.
    Charged,
    /// `spent + amount > limit`: nothing reserved.
    Exceeded,
    /// The amount is missing, not a number, negative, or refused by the host.
    Invalid,
}

/// One budget's charge for the call under evaluation.
#[derive(Debug)]
pub(crate) struct Charge<'a> {
    pub budget: &'a Budget,
    /// Where the amount was read.
    pub source: &'a AmountSource,
    pub bucket: String,
    /// The amount as an exact decimal; none when invalid.
    pub amount: Option<String>,
    pub outcome: Outcome,
    /// Spent in the pot (after reserving, if reserved); none if unknown.
    pub spent: Option<String>,
    /// When the oldest spend leaves the window, if it will.
    pub reset_at_ms: Option<u64>,
    /// Why the host refused the amount, if it did.
    pub error: Option<String>,
}

impl Budget {
    /// Where the first contributor that matches the call reads its amount;
    /// none when the call does not contribute to this budget. The plain
    /// walk the engine's index must agree with.
    #[cfg(test)]
    pub fn source_for(&self, call: &impl CallView) -> Option<&AmountSource> {
        self.contributors
            .iter()
            .find(|c| c.matches(call))
            .map(|c| &c.source)
    }

    /// The pot `call` draws from; none when it needs a session identity
    /// that did not resolve and `on_unresolved` is `deny`. A `sender_id`
    /// pot is the sender's an adapter names (`metadata.sender_id`); a call
    /// without one (the MCP door's) draws from the global pot.
    pub fn bucket(&self, call: &impl CallView, policy: &SessionPolicy) -> Option<String> {
        match self.key {
            BudgetKey::Global => Some("global".into()),
            BudgetKey::SenderId => Some(match call.metadata("sender_id") {
                Some(sender) => format!("sender:{sender}"),
                None => "global".into(),
            }),
            BudgetKey::Session => policy.bucket(call.session()),
        }
    }

    /// Reserves `amount` in pot `bucket`; an amount of none is invalid
    /// (`why`, when the source said more than that).
    pub fn charge<'a>(
        &'a self,
        state: &mut impl State,
        bucket: &str,
        source: &'a AmountSource,
        amount: Option<String>,
        why: Option<String>,
    ) -> Charge<'a> {
        let key = policy_match::text::state_key(format!("{}{bucket}", self.prefix));
        let mut charge = Charge {
            budget: self,
            source,
            bucket: bucket.to_owned(),
            amount: None,
            outcome: Outcome::Invalid,
            spent: None,
            reset_at_ms: None,
            error: None,
        };
        let reserved = amount
            .as_ref()
            .map(|a| state.spend_reserve(&key, a, &self.limit, self.window.ms()));
        match reserved {
            Some(Ok(window)) => {
                charge.amount = amount;
                charge.outcome = if window.allowed {
                    Outcome::Charged
                } else {
                    Outcome::Exceeded
                };
                charge.spent = Some(window.spent);
                charge.reset_at_ms = window.reset_at_ms;
            }
            // An invalid amount reserves nothing. The ledger has no read
            // without a reservation, and a reservation of zero changes
            // nothing (and is released with the blocked call), so it tells
            // the agent what is left.
            Some(Err(_)) | None => {
                charge.error = reserved.and_then(Result::err).or(why);
                if let Ok(window) = state.spend_reserve(&key, "0", &self.limit, self.window.ms()) {
                    // In an empty pot the oldest entry is this zero: nothing
                    // is waiting to leave the window.
                    let empty = window.spent.bytes().all(|b| b == b'0' || b == b'.');
                    charge.reset_at_ms = window.reset_at_ms.filter(|_| !empty);
                    charge.spent = Some(window.spent);
                }
            }
        }
        charge
    }
}
