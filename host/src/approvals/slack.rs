//! The Slack channel: a Block Kit message per ticket with Approve and Deny
//! buttons (`chat.postMessage`), updated once the ticket ends
//! (`chat.update`), and the verification of Slack's signed callbacks for
//! those buttons (`POST /slack/actions`, served on the MCP port).
//!
//! Everything a caller controls (tool name, arguments, rule, session) is
//! shown as sanitised text: no mrkdwn markup, links or mentions survive,
//! inline values are capped and the arguments are cut safely at a
//! character boundary.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use slack_morphism::prelude::*;
use subtle::ConstantTimeEq;

use super::{Status, Ticket};

/// `action_id` prefixes of the message's buttons.
pub const APPROVE: &str = "helio_approve:";
pub const DENY: &str = "helio_deny:";

/// `callback_id` of the dialog asking a denier why.
pub const DENY_DIALOG: &str = "helio_deny_reason";
/// The dialog's reason input (its block and action id).
const REASON: &str = "reason";
/// Longest reason Slack lets the denier type (the agent reads it).
const REASON_CHARS: u64 = 500;

/// How old a callback's timestamp may be (Slack's own guidance).
pub const CALLBACK_WINDOW: Duration = Duration::from_secs(5 * 60);

const INLINE_CHARS: usize = 64;
const INPUT_CHARS: usize = 200;
/// Breached budgets listed one per line in a message; more are counted.
const BUDGET_LINES: usize = 10;

/// The `chat.postMessage` body for a ticket.
pub fn request_message(channel: &str, ticket: &Ticket, escalated: bool) -> Value {
    let mut blocks = vec![
        SlackBlock::from(SlackHeaderBlock::new(
            if escalated {
                "Approval required (escalated)"
            } else {
                "Approval required"
            }
            .into(),
        )),
        SlackSectionBlock::new()
            .with_fields(vec![
                md!(format!("*Tool*\n`{}`", inline(&ticket.tool_name))),
                md!(format!(
                    "*Rule*\n{}",
                    inline(ticket.matched_rule.as_deref().unwrap_or("—"))
                )),
                md!(format!(
                    "*Session*\n{}",
                    inline(ticket.session_id.as_deref().unwrap_or("—"))
                )),
                md!(format!(
                    "*Agent*\n{}",
                    inline(ticket.agent_id.as_deref().unwrap_or("—"))
                )),
            ])
            .into(),
        SlackSectionBlock::new()
            .with_text(md!(format!(
                "*Arguments*\n```{}```",
                code(&ticket.tool_input.to_string())
            )))
            .into(),
    ];
    if let Some(budgets) = &ticket.breached_budgets {
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md!(breached_budgets(budgets)))
                .into(),
        );
    }
    blocks.push(
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new(format!(
                "Ticket {} · expires {}",
                inline(&ticket.id),
                inline(&ticket.timeout_at)
            )),
        )])
        .into(),
    );
    blocks.push(
        SlackActionsBlock::new(vec![
            SlackActionBlockElement::Button(
                SlackBlockButtonElement::new("Approve".into())
                    .with_action_id(format!("{APPROVE}{}", ticket.id).into())
                    .with_style(SlackBlockButtonStyle::Primary),
            ),
            SlackActionBlockElement::Button(
                SlackBlockButtonElement::new("Deny".into())
                    .with_action_id(format!("{DENY}{}", ticket.id).into())
                    .with_style(SlackBlockButtonStyle::Danger),
            ),
        ])
        .into(),
    );
    let request = SlackApiChatPostMessageRequest::new(
        channel.into(),
        SlackMessageContent::new()
            .with_text(format!(
                "Approval required: {} (ticket {})",
                inline(&ticket.tool_name),
                ticket.id
            ))
            .with_blocks(blocks),
    );
    serde_json::to_value(&request).unwrap_or(Value::Null)
}

/// Budgets a call would exceed, one line each (the first
/// [`BUDGET_LINES`], then how many more), all values sanitised.
fn breached_budgets(budgets: &[Value]) -> String {
    let text = |budget: &Value, key: &str| match budget.get(key) {
        Some(Value::String(s)) => inline(s),
        Some(Value::Null) | None => "?".into(),
        Some(other) => inline(&other.to_string()),
    };
    let mut out = String::from("*Budgets exceeded*");
    for budget in budgets.iter().take(BUDGET_LINES) {
        out.push_str(&format!(
            "\n• {}: {} of {} {} spent ({}), this call needs {}",
            text(budget, "name"),
            text(budget, "spent"),
            text(budget, "limit"),
            text(budget, "currency"),
            text(budget, "window"),
            text(budget, "attempted_amount"),
        ));
    }
    if budgets.len() > BUDGET_LINES {
        out.push_str(&format!(
            "\n…and {} more (see the ticket)",
            budgets.len() - BUDGET_LINES
        ));
    }
    out
}

/// Once the ticket ended: the outcome, no buttons. With the `ts` of the
/// message the ticket was posted as, a `chat.update` body for it; without
/// (the first post never got through), a `chat.postMessage` body.
pub fn resolved_message(channel: &str, ts: Option<&str>, ticket: &Ticket) -> Value {
    let by = ticket
        .resolved_by
        .as_deref()
        .map(|name| format!(" by {}", inline(name)))
        .unwrap_or_default();
    let outcome = match ticket.status {
        Status::Approved => format!("Approved{by}"),
        Status::BreakGlass => format!("Approved (break-glass){by}"),
        Status::Denied => match &ticket.denial_reason {
            Some(reason) => format!("Denied{by}: {}", inline(reason)),
            None => format!("Denied{by}"),
        },
        Status::Timeout => "Timed out: nobody decided in time".into(),
        Status::ClientDisconnected => "Withdrawn: the agent went away".into(),
        Status::ShutdownCancelled => "Cancelled: Helio shut down".into(),
        Status::Pending => "Pending".into(),
    };
    let text = format!(
        "{} · `{}` · ticket {}",
        outcome,
        inline(&ticket.tool_name),
        ticket.id
    );
    let content = SlackMessageContent::new()
        .with_text(text.clone())
        .with_blocks(vec![SlackSectionBlock::new().with_text(md!(text)).into()]);
    let request = match ts {
        Some(ts) => serde_json::to_value(SlackApiChatUpdateRequest::new(
            channel.into(),
            content,
            ts.into(),
        )),
        None => serde_json::to_value(SlackApiChatPostMessageRequest::new(channel.into(), content)),
    };
    request.unwrap_or(Value::Null)
}

/// Whether `signature` (`x-slack-signature`) is Slack's v0 signature of
/// `timestamp` and `body` under `secret`, compared in constant time.
pub fn signed_by(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    expected.as_bytes().ct_eq(signature.as_bytes()).into()
}

/// A value shown inline: markup, links and mentions cannot survive, and it
/// is capped.
fn inline(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, '`' | '*' | '_' | '~' | '<' | '>' | '|' | '!' | '&'))
        .filter(|c| !c.is_control())
        .take(INLINE_CHARS)
        .collect();
    if text.chars().count() > INLINE_CHARS {
        format!("{clean}…")
    } else {
        clean
    }
}

/// The arguments in a code block: cut at a character boundary, no fence
/// can close the block early, no link or mention is formed.
fn code(text: &str) -> String {
    let cut: String = text.chars().take(INPUT_CHARS).collect();
    let clean = cut
        .replace("```", "'''")
        .replace('<', "‹")
        .replace('>', "›")
        .replace('&', "＆");
    if text.chars().count() > INPUT_CHARS {
        format!("{clean}…")
    } else {
        clean
    }
}

/// The `views.open` body for a denier of `ticket`: a dialog with an
/// optional reason (what the agent is told), submitted as `Deny`.
pub fn deny_dialog(trigger_id: &str, ticket: &Ticket) -> Value {
    let view = SlackModalView::new(
        "Deny this call".into(),
        vec![
            SlackSectionBlock::new()
                .with_text(md!(format!(
                    "Deny `{}` (ticket {})?",
                    inline(&ticket.tool_name),
                    inline(&ticket.id)
                )))
                .into(),
            SlackInputBlock::new(
                "Reason (the agent is told)".into(),
                SlackInputBlockElement::PlainTextInput(
                    SlackBlockPlainTextInputElement::new()
                        .with_action_id(REASON.into())
                        .with_multiline(true)
                        .with_max_length(REASON_CHARS),
                ),
            )
            .with_block_id(REASON.into())
            .with_optional(true)
            .into(),
        ],
    )
    .with_submit("Deny".into())
    .with_close("Cancel".into())
    .with_private_metadata(ticket.id.clone())
    .with_callback_id(DENY_DIALOG.into());
    let request = SlackApiViewsOpenRequest::new(trigger_id.into(), SlackView::Modal(view));
    serde_json::to_value(&request).unwrap_or(Value::Null)
}

/// What a Slack callback says someone did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// Pressed Approve or Deny on a ticket's message.
    Pressed {
        ticket: String,
        approve: bool,
        user: SlackUser,
        /// For a dialog opened in answer (valid for three seconds).
        trigger_id: String,
    },
    /// Submitted the deny dialog, with or without a reason.
    DenyReason {
        ticket: String,
        reason: Option<String>,
        user: SlackUser,
    },
}

/// Who acted in Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackUser {
    pub id: String,
    pub name: Option<String>,
}

/// What a callback's payload says was done, if it is something Helio acts
/// on.
pub fn interaction(payload: &Value) -> Option<Interaction> {
    let event: SlackInteractionEvent = serde_json::from_value(payload.clone()).ok()?;
    match event {
        SlackInteractionEvent::BlockActions(actions) => {
            let user = actions.user?;
            let action = actions.actions?.into_iter().next()?;
            let id = action.action_id.to_string();
            let (ticket, approve) = match (id.strip_prefix(APPROVE), id.strip_prefix(DENY)) {
                (Some(ticket), _) => (ticket.to_owned(), true),
                (None, Some(ticket)) => (ticket.to_owned(), false),
                (None, None) => return None,
            };
            Some(Interaction::Pressed {
                ticket,
                approve,
                user: SlackUser {
                    id: user.id.to_string(),
                    name: user.username,
                },
                trigger_id: actions.trigger_id.to_string(),
            })
        }
        SlackInteractionEvent::ViewSubmission(submission) => {
            let SlackView::Modal(modal) = &submission.view.view else {
                return None;
            };
            if modal.callback_id.as_ref().map(|c| c.to_string()).as_deref() != Some(DENY_DIALOG) {
                return None;
            }
            let ticket = modal.private_metadata.clone()?;
            let reason = submission
                .view
                .state_params
                .state
                .as_ref()
                .and_then(|state| state.values.get(&REASON.into()))
                .and_then(|block| block.get(&REASON.into()))
                .and_then(|input| input.value.as_deref())
                .map(str::trim)
                .filter(|reason| !reason.is_empty())
                .map(str::to_owned);
            Some(Interaction::DenyReason {
                ticket,
                reason,
                user: SlackUser {
                    id: submission.user.id.to_string(),
                    name: submission.user.username,
                },
            })
        }
        _ => None,
    }
}

/// The `payload` JSON of Slack's form-encoded callback.
pub fn callback_payload(body: &[u8]) -> Option<Value> {
    let payload = url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())?;
    serde_json::from_str(&payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_values_cannot_carry_markup_links_or_mentions() {
        assert_eq!(inline("<@U123|boss> *bold* `x`"), "@U123boss bold x");
        assert_eq!(inline(&"a".repeat(100)).chars().count(), INLINE_CHARS + 1);
        assert_eq!(code("```}<!channel>"), "'''}‹!channel›");
        assert_eq!(code(&"é".repeat(300)).chars().count(), INPUT_CHARS + 1);
    }

    #[test]
    fn breached_budgets_are_listed_sanitised_and_capped() {
        let budget = |name: &str| serde_json::json!({ "name": name, "limit": 100, "spent": "90", "currency": "EUR", "window": "1h", "attempted_amount": 20.5 });
        let mut budgets = vec![budget("<!channel> *pot*")];
        let one = breached_budgets(&budgets);
        assert_eq!(
            one,
            "*Budgets exceeded*\n• channel pot: 90 of 100 EUR spent (1h), this call needs 20.5"
        );
        budgets.extend((0..12).map(|i| budget(&format!("b{i}"))));
        let many = breached_budgets(&budgets);
        assert_eq!(many.lines().count(), 1 + BUDGET_LINES + 1);
        assert!(many.ends_with("…and 3 more (see the ticket)"), "{many}");
    }

    #[test]
    fn slack_signatures() {
        // Slack's documented example.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(signed_by(secret, "1531420618", body, signature));
        assert!(!signed_by(secret, "1531420619", body, signature));
        assert!(!signed_by("other", "1531420618", body, signature));
    }
}
