//! Rate limits (`action: rate_limit`) and spend limits (`action:
//! spend_limit`), counted in the host's state.
//!
//! State keys are `rate:<rule>:<fp>:<bucket>` and `spend:<rule>:<fp>:<bucket>`:
//! `<rule>` is the rule's name (or `#<index>` when unnamed), `<fp>` a
//! fingerprint of the rule's `limits` block, so editing other rules keeps a
//! rule's counts and changing its limits starts afresh.

use policy_match::text::{self, JsonObject};
use policy_match::{Amount, AmountSource, SessionPolicy};

use super::rule::Label;
use super::{CallView, Feedback, SpendWindow, State, Verdict};

/// What a limit counts per (`limits.key`, `limits.max_spend.key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitKey {
    /// One bucket per tool (the default; also `agent`, which the rules
    /// stage cannot read).
    Tool,
    /// One bucket per sender, as an adapter names it (`metadata.sender_id`);
    /// per tool for a call without one (the MCP door's).
    Sender,
    /// One bucket per session identity.
    Session,
    /// One bucket for everything the rule matches.
    Global,
}

impl LimitKey {
    /// The bucket a call counts in; none when it needs a session identity
    /// that did not resolve and `on_unresolved` is `deny`.
    fn bucket(self, call: &impl CallView, session: &SessionPolicy) -> Option<String> {
        match self {
            LimitKey::Tool => Some(format!("tool:{}", call.tool())),
            LimitKey::Sender => Some(match call.metadata("sender_id") {
                Some(sender) => format!("sender:{sender}"),
                None => format!("tool:{}", call.tool()),
            }),
            LimitKey::Global => Some("global".into()),
            LimitKey::Session => session.bucket(call.session()),
        }
    }
}

/// A compiled `rate_limit`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    pub max_calls: u64,
    pub window_ms: u64,
    pub key: LimitKey,
    /// `rate:<rule>:<fp>:`.
    pub prefix: String,
}

impl RateLimit {
    /// Takes a slot for the call, or denies it. The host releases the slot
    /// if the call is not forwarded after all.
    pub fn enforce(
        &self,
        label: &Label,
        call: &impl CallView,
        state: &mut impl State,
        session: &SessionPolicy,
    ) -> Verdict {
        let Some(bucket) = self.key.bucket(call, session) else {
            return session_unresolved(label, "rate_limit", "calls", session);
        };
        let key = text::state_key(format!("{}{bucket}", self.prefix));
        let window = state.rate_take(&key, self.max_calls, self.window_ms);
        let usage = format!(
            "{} of {} calls in {}s for {bucket}",
            window.current,
            self.max_calls,
            self.window_ms / 1_000
        );
        if window.allowed {
            return Verdict::Allow(
                label.decision("rate_limit", format!("{}; {usage}", label.matched())),
            );
        }
        let reset_at = text::iso_utc(window.reset_at_ms);
        let wait = text::seconds_until(state.now_ms(), window.reset_at_ms);
        let extra = JsonObject::new()
            .u64("current_calls", window.current)
            .u64("max_calls", self.max_calls)
            .u64("window_seconds", self.window_ms / 1_000)
            .string("reset_at", &reset_at)
            .finish();
        Verdict::Deny(
            label.decision(
                "rate_limit",
                format!("{}; rate limit exceeded: {usage}", label.matched()),
            ),
            Feedback {
                reason: "rate_limited".into(),
                message: label.message(|| format!("Rate limit exceeded for {bucket}")),
                suggestion: label.suggestion(|| {
                    format!("Wait {wait}s (until {reset_at}) before retrying this call.")
                }),
                retry_allowed: true,
                extra_json: Some(extra),
            },
        )
    }
}

/// A compiled `spend_limit` (`limits.max_spend`).
#[derive(Debug)]
pub(crate) struct SpendLimit {
    /// Where the amount is read: an argument path or a spend extractor.
    pub source: AmountSource,
    /// The limit as an exact decimal.
    pub limit: String,
    pub currency: String,
    pub window_ms: u64,
    pub key: LimitKey,
    /// `spend:<rule>:<fp>:`.
    pub prefix: String,
}

impl SpendLimit {
    /// Reserves the call's amount, or denies it. The host releases the
    /// reservation if the call is not forwarded after all.
    pub fn enforce(
        &self,
        label: &Label,
        call: &impl CallView,
        state: &mut impl State,
        session: &SessionPolicy,
    ) -> Verdict {
        let amount = match self.source.read(call, &self.currency) {
            Amount::Spends(amount) => amount,
            Amount::Invalid(why) => return self.invalid_amount(label, why.as_deref()),
            // Nothing to count: the limit has nothing to say about this call.
            Amount::Nothing => {
                return Verdict::Allow(label.decision(
                    "spend_limit",
                    format!(
                        "{}; spends nothing ({})",
                        label.matched(),
                        self.source.describe()
                    ),
                ))
            }
        };
        let Some(bucket) = self.key.bucket(call, session) else {
            return session_unresolved(label, "spend_limit", "spend", session);
        };
        let key = text::state_key(format!("{}{bucket}", self.prefix));
        match state.spend_reserve(&key, &amount, &self.limit, Some(self.window_ms)) {
            Err(error) => self.invalid_amount(label, Some(&error)),
            Ok(window) if window.allowed => Verdict::Allow(label.decision(
                "spend_limit",
                format!(
                    "{}; {} of {} {} spent in {}s for {bucket}",
                    label.matched(),
                    window.spent,
                    window.limit,
                    self.currency,
                    self.window_ms / 1_000
                ),
            )),
            Ok(window) => self.exceeded(label, &bucket, &amount, &window, state.now_ms()),
        }
    }

    fn exceeded(
        &self,
        label: &Label,
        bucket: &str,
        amount: &str,
        window: &SpendWindow,
        now_ms: u64,
    ) -> Verdict {
        let reset_at = window.reset_at_ms.map(text::iso_utc);
        let extra = JsonObject::new()
            .decimal("current_spend", &window.spent)
            .decimal("max_spend", &window.limit)
            .string("currency", &self.currency)
            .u64("window_seconds", self.window_ms / 1_000)
            .opt_string("reset_at", reset_at.as_deref())
            .finish();
        let (spent, limit, currency) = (&window.spent, &window.limit, &self.currency);
        let left = text::decimal_saturating_sub(limit, spent).unwrap_or_else(|| "0".into());
        let suggestion = || {
            match (&reset_at, window.reset_at_ms) {
            (Some(at), Some(ms)) => format!(
                "At most {left} {currency} can be spent now: reduce the amount, or wait {}s (until {at}) for earlier spend to leave the window.",
                text::seconds_until(now_ms, ms)
            ),
            _ => format!("At most {left} {currency} can be spent now: reduce the amount."),
        }
        };
        Verdict::Deny(
            label.decision(
                "spend_limit",
                format!(
                    "{}; spend limit exceeded for {bucket}: {spent} of {limit} {currency} spent, this call needs {amount}",
                    label.matched()
                ),
            ),
            Feedback {
                reason: "spend_limited".into(),
                message: label.message(|| format!(
                    "Spend limit exceeded for {bucket}: {spent} of {limit} {currency} spent, this call needs {amount}"
                )),
                suggestion: label.suggestion(suggestion),
                retry_allowed: true,
                extra_json: Some(extra),
            },
        )
    }

    /// The amount is missing, not a JSON number, negative or non-finite (or
    /// the host or the extractor refused it, `host_error`, which only the
    /// record keeps). The message is fixed, as in the original: it is about
    /// the call, not the rule.
    fn invalid_amount(&self, label: &Label, host_error: Option<&str>) -> Verdict {
        let source = self.source.describe();
        let mut explanation = format!("{}; invalid amount for {source}", label.matched());
        if let Some(error) = host_error {
            explanation.push_str(&format!(" ({error})"));
        }
        let extra = JsonObject::new()
            .bool("invalid_amount", true)
            .string(self.source.data().0, self.source.data().1)
            .decimal("max_spend", &self.limit)
            .string("currency", &self.currency)
            .finish();
        Verdict::Deny(
            label.decision("spend_limit", explanation),
            Feedback {
                reason: "spend_limited".into(),
                message: format!("Spend limit denied: invalid amount for {source}"),
                suggestion: label.suggestion(|| self.source.invalid_suggestion()),
                retry_allowed: true,
                extra_json: Some(extra),
            },
        )
    }
}

/// A per-session limit matched a call without a session identity, and
/// `on_unresolved` is `deny`.
fn session_unresolved(
    label: &Label,
    control: &str,
    counted: &str,
    session: &SessionPolicy,
) -> Verdict {
    let extra = JsonObject::new()
        .string("control", control)
        .string("tried", &session.tried)
        .finish();
    Verdict::Deny(
        label.decision(
            control,
            format!("{}; no session identity for a per-session limit", label.matched()),
        ),
        Feedback {
            reason: "session_unresolved".into(),
            message: format!(
                "Blocked: rule \"{}\" limits {counted} per session, and no session identity was resolved (tried: {})",
                label.quoted(),
                session.tried
            ),
            suggestion: Some(SessionPolicy::SUGGESTION.into()),
            retry_allowed: true,
            extra_json: Some(extra),
        },
    )
}
