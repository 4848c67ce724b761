//! What Helio learns from the upstream's answer to a relayed request: a
//! `tools/list` page teaches the tools' definitions (and shows drift); a forwarded
//! `tools/call`'s answer goes to the governance core, which settles its
//! state and completes its record.

use std::sync::Arc;

use http::StatusCode;

use crate::govern::{Answer, Forwarded, Unanswered};
use crate::state::CallOutcome;

use super::upstream::UpstreamError;
use crate::tools::ToolCatalog;
use crate::traces::TraceHeaders;

pub(super) enum Observer {
    ToolList(Arc<ToolCatalog>),
    ToolCall {
        call: Box<Forwarded>,
        /// The upstream's HTTP status, once its response head arrived.
        status: Option<u16>,
    },
}

impl Observer {
    pub fn tool_call(call: Box<Forwarded>) -> Self {
        Observer::ToolCall { call, status: None }
    }

    /// A forwarded call is being sent now: the trace context to send with
    /// it, when it is traced.
    pub fn sending(&mut self) -> Option<TraceHeaders> {
        match self {
            Observer::ToolCall { call, .. } => call.sending(),
            Observer::ToolList(_) => None,
        }
    }

    /// The upstream's response head arrived.
    pub fn head(&mut self, head_status: StatusCode) {
        match self {
            Observer::ToolCall { status, .. } => *status = Some(head_status.as_u16()),
            Observer::ToolList(_) => {}
        }
    }

    /// The final JSON-RPC response to the request.
    pub fn response(self, message: &[u8]) {
        match self {
            Observer::ToolList(catalog) => {
                catalog.observe(message);
            }
            Observer::ToolCall { call, status } => call.answered(status, message),
        }
    }

    /// A whole non-streamed reply. A 4xx the upstream sent without a
    /// JSON-RPC body (an expired session, a rejected request) means the
    /// call did not run.
    pub fn buffered(self, status: StatusCode, body: &[u8]) {
        let refused =
            status.is_client_error() && Answer::read(body).outcome == CallOutcome::Unknown;
        match (self, refused) {
            (Observer::ToolCall { call, status }, true) => call.refused(status, body),
            (Observer::ToolList(_), true) => {}
            (observer, false) => observer.response(body),
        }
    }

    /// No answer came. Unreachable means never delivered, so the call did
    /// not happen; anything else leaves the outcome unknown.
    pub fn no_response(self, error: &UpstreamError) {
        let unanswered = match error {
            UpstreamError::Unreachable { .. } => Unanswered::Undelivered,
            UpstreamError::Timeout(_) | UpstreamError::Broken(_) => Unanswered::Unknown,
        };
        match self {
            Observer::ToolCall { call, .. } => call.unanswered(unanswered, &error.to_string()),
            Observer::ToolList(_) => {}
        }
    }
}
