//! Many clients, one server connection: the multiplexer between the
//! clients' MCP sessions and one upstream that speaks JSON-RPC messages on
//! a single channel (a stdio child's stdin/stdout).
//!
//! - Every client request gets an id unique on the upstream (Helio's
//!   counter), mapped back on the response; a client's `progressToken` is
//!   rewritten the same way, so two clients using the same ids or tokens
//!   never see each other's replies or progress.
//! - A response ends the request's event stream; progress notifications go
//!   to the request whose token they carry.
//! - What the server sends on its own is routed only where it is known to
//!   belong: a server-to-client request (sampling, elicitation, roots) or a
//!   log message goes to the one client with requests in flight; when
//!   several have, Helio cannot tell whose it is, so a request is refused
//!   (a JSON-RPC error to the server) and a log message is dropped, never
//!   shown to the wrong client. List-changed and resource-updated
//!   notifications concern every client and go to each session's `GET`
//!   stream.
//! - The upstream's `initialize` is run once by Helio; each client's
//!   `initialize` is answered with that result and gets a session of its
//!   own.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};

/// A message's top-level fields, each kept as its raw JSON text: only `id`
/// (and a request's progress token) is rewritten; everything else passes
/// byte for byte.
pub type Message = BTreeMap<String, Box<RawValue>>;

/// Events of one client request's stream (SSE frames) or of a session's
/// `GET` stream.
pub type Events = mpsc::Sender<Bytes>;

/// Frames buffered per stream before a slow client holds the server's
/// messages back.
pub const STREAM_FRAMES: usize = 64;

/// Whether the upstream link is up: initialized and accepting messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Starting or restarting; why the last attempt failed, if one did.
    Down(Option<String>),
    /// Initialized: the upstream's `initialize` result.
    Up(Arc<str>),
    /// Gave up restarting; the reason.
    Dead(String),
}

pub struct Mux {
    state: Mutex<State>,
    /// Messages to the upstream, one JSON text per message.
    outbox: mpsc::UnboundedSender<String>,
    link: watch::Sender<Link>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    sessions: HashMap<String, Session>,
    /// Requests the upstream has not answered, by the id it was sent with.
    pending: HashMap<u64, Pending>,
    /// Rewritten progress tokens → the request (upstream id) they belong to.
    tokens: HashMap<String, u64>,
    /// Requests the upstream sent to a client, by their id's JSON text, to
    /// the session that got them.
    asked: HashMap<String, String>,
}

struct Session {
    /// The session's `GET` stream, when it has one open.
    listening: Option<Events>,
    last_used: Instant,
}

impl Session {
    fn new() -> Self {
        Self {
            listening: None,
            last_used: Instant::now(),
        }
    }
}

/// A session nobody used for this long, with no stream open and nothing in
/// flight, is forgotten (its client gets `404` and initializes again, as
/// the transport expects): clients that never send `DELETE` cannot grow
/// the table without bound.
const SESSION_IDLE: Duration = Duration::from_secs(60 * 60);

enum Pending {
    Client {
        session: String,
        /// The id as the client sent it.
        id: Box<RawValue>,
        /// The client's progress token, when the request carried one.
        token: Option<(String, Box<RawValue>)>,
        events: Events,
        /// A 2026-07-28 client's request on a session of its own
        /// ([`Mux::request_sessionless`]): its method, whose result the
        /// handshake-era server leaves incomplete for that client.
        sessionless: Option<String>,
    },
    /// Helio's own request (its `initialize`).
    Own(oneshot::Sender<Message>),
}

/// Why a client's message was not sent upstream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("unknown or expired MCP session; send initialize again")]
    NoSession,
    #[error("the message is not a JSON-RPC object: {0}")]
    Malformed(String),
}

impl Mux {
    /// A multiplexer whose messages to the upstream go to `outbox`.
    pub fn new(outbox: mpsc::UnboundedSender<String>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            outbox,
            link: watch::channel(Link::Down(None)).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }

    /// A new client session, answered with the upstream's `initialize`.
    pub fn open_session(&self) -> String {
        // 128 random bits: a client cannot guess another's session.
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            bytes = uuid::Uuid::now_v7().into_bytes();
        }
        let id = hex::encode(bytes);
        let mut state = self.lock();
        let busy: Vec<String> = state
            .pending
            .values()
            .filter_map(|p| match p {
                Pending::Client { session, .. } => Some(session.clone()),
                Pending::Own(_) => None,
            })
            .collect();
        state.sessions.retain(|id, s| {
            s.last_used.elapsed() < SESSION_IDLE
                || s.listening.as_ref().is_some_and(|l| !l.is_closed())
                || busy.contains(id)
        });
        state.sessions.insert(id.clone(), Session::new());
        id
    }

    pub fn close_session(&self, session: &str) -> bool {
        let mut state = self.lock();
        state.asked.retain(|_, s| s != session);
        state.sessions.remove(session).is_some()
    }

    /// Whether the session exists; marks it used.
    pub fn has_session(&self, session: &str) -> bool {
        match self.lock().sessions.get_mut(session) {
            Some(entry) => {
                entry.last_used = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Registers the session's `GET` stream (replacing an earlier one).
    pub fn listen(&self, session: &str, events: Events) -> Result<(), Refused> {
        let mut state = self.lock();
        let entry = state.sessions.get_mut(session).ok_or(Refused::NoSession)?;
        entry.listening = Some(events);
        Ok(())
    }

    /// Sends a client's request upstream under a fresh id; its response and
    /// the progress it is sent come on `events`.
    pub fn request(&self, session: &str, message: Message, events: Events) -> Result<(), Refused> {
        self.send_request(session, message, events, None)
    }

    /// A 2026-07-28 client's request, which comes without a session: sent
    /// under a session of its own that ends with its response, whose result
    /// gains the `resultType` that revision's clients expect.
    pub fn request_sessionless(&self, message: Message, events: Events) -> Result<(), Refused> {
        let method = method_of(&message).unwrap_or_default();
        let session = self.open_session();
        let sent = self.send_request(&session, message, events, Some(method));
        if sent.is_err() {
            self.close_session(&session);
        }
        sent
    }

    fn send_request(
        &self,
        session: &str,
        mut message: Message,
        events: Events,
        sessionless: Option<String>,
    ) -> Result<(), Refused> {
        let mut state = self.lock();
        let Some(entry) = state.sessions.get_mut(session) else {
            return Err(Refused::NoSession);
        };
        entry.last_used = Instant::now();
        state.next_id += 1;
        let upstream_id = state.next_id;
        let client_id = message
            .insert("id".into(), raw(&upstream_id.to_string()))
            .ok_or_else(|| Refused::Malformed("a request without an id".into()))?;
        if sessionless.is_some() {
            strip_envelope(&mut message)?;
        }
        let token = rewrite_token(&mut message, upstream_id)?;
        if let Some((rewritten, _)) = &token {
            state.tokens.insert(rewritten.clone(), upstream_id);
        }
        state.pending.insert(
            upstream_id,
            Pending::Client {
                session: session.to_owned(),
                id: client_id,
                token,
                events,
                sessionless,
            },
        );
        drop(state);
        self.send(&message);
        Ok(())
    }

    /// Helio's own request (its `initialize`): the id is Helio's.
    pub fn own_request(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> oneshot::Receiver<Message> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.pending.insert(id, Pending::Own(tx));
        drop(state);
        let text =
            json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
        let _ = self.outbox.send(text);
        rx
    }

    /// Helio's own notification (`notifications/initialized`).
    pub fn notify_own(&self, method: &str) {
        let text = json!({ "jsonrpc": "2.0", "method": method }).to_string();
        let _ = self.outbox.send(text);
    }

    /// A client's notification. `notifications/cancelled` names the request
    /// by the client's id: rewritten to the upstream's.
    pub fn notify(&self, session: &str, mut message: Message) -> Result<(), Refused> {
        if !self.has_session(session) {
            return Err(Refused::NoSession);
        }
        if method_of(&message).as_deref() == Some("notifications/cancelled") {
            let Some(upstream_id) = self.cancelled_request(session, &message) else {
                // Nothing of this client's is pending: nothing to cancel.
                return Ok(());
            };
            rewrite_param(&mut message, "requestId", &upstream_id.to_string())?;
        }
        self.send(&message);
        Ok(())
    }

    /// A client's answer to a request the upstream sent it: passed on only
    /// if that request was sent to this session.
    pub fn answer(&self, session: &str, message: Message) -> Result<(), Refused> {
        let id = message
            .get("id")
            .map(|id| id.get().to_owned())
            .unwrap_or_default();
        let mut state = self.lock();
        match state.asked.get(&id) {
            Some(asked) if asked == session => {
                state.asked.remove(&id);
            }
            // Not a request sent to this client: dropped, as a client
            // cannot answer for another.
            _ => return Ok(()),
        }
        drop(state);
        self.send(&message);
        Ok(())
    }

    /// A message from the upstream.
    pub fn received(&self, text: &str) {
        let message: Message = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "the upstream wrote a line that is not a JSON-RPC object; ignored");
                return;
            }
        };
        let has_method = message.contains_key("method");
        match (has_method, message.contains_key("id")) {
            (false, true) => self.response(message),
            (true, true) => self.server_request(message),
            (true, false) => self.server_notification(message),
            (false, false) => {
                tracing::warn!("the upstream wrote a JSON object that is neither a request, a response nor a notification; ignored");
            }
        }
    }

    fn response(&self, mut message: Message) {
        let Some(id) = message
            .get("id")
            .and_then(|id| id.get().parse::<u64>().ok())
        else {
            tracing::warn!("the upstream answered an id Helio never sent; ignored");
            return;
        };
        let mut state = self.lock();
        let Some(pending) = state.pending.remove(&id) else {
            return;
        };
        match pending {
            Pending::Own(reply) => {
                drop(state);
                let _ = reply.send(message);
            }
            Pending::Client {
                session,
                id: client_id,
                token,
                events,
                sessionless,
            } => {
                if let Some((rewritten, _)) = token {
                    state.tokens.remove(&rewritten);
                }
                if sessionless.is_some() {
                    state.sessions.remove(&session);
                }
                drop(state);
                if let Some(method) = &sessionless {
                    let init = match &*self.link.borrow() {
                        Link::Up(init) => Some(init.clone()),
                        Link::Down(_) | Link::Dead(_) => None,
                    };
                    complete(&mut message, method, init.as_deref());
                }
                message.insert("id".into(), client_id);
                // The last event of the request's stream; dropping the
                // sender ends it.
                deliver(events, event(&message));
            }
        }
    }

    fn server_request(&self, message: Message) {
        let id = message
            .get("id")
            .map(|id| id.get().to_owned())
            .unwrap_or_default();
        let mut state = self.lock();
        let target = only_client_in_flight(&state);
        let Some((session, upstream_id)) = target else {
            let in_flight = sessions_in_flight(&state);
            drop(state);
            let method = method_of(&message).unwrap_or_default();
            tracing::warn!(%method, in_flight, "the upstream sent a request Helio cannot route to one client; refused");
            let error = json!({
                "jsonrpc": "2.0",
                "id": serde_json::from_str::<serde_json::Value>(&id).unwrap_or_default(),
                "error": {
                    "code": -32603,
                    "message": format!(
                        "Helio cannot tell which client this {method} is for: {in_flight} clients have requests in flight on this shared stdio server"
                    ),
                },
            });
            let _ = self.outbox.send(error.to_string());
            return;
        };
        state.asked.insert(id, session);
        let events = match state.pending.get(&upstream_id) {
            Some(Pending::Client { events, .. }) => events.clone(),
            Some(Pending::Own(_)) | None => return,
        };
        drop(state);
        deliver(events, event(&message));
    }

    fn server_notification(&self, mut message: Message) {
        let method = method_of(&message).unwrap_or_default();
        let state = self.lock();
        match method.as_str() {
            "notifications/progress" => {
                let Some(token) = param(&message, "progressToken") else {
                    return;
                };
                let Some(upstream_id) = state.tokens.get(token.get()).copied() else {
                    return;
                };
                let Some(Pending::Client {
                    token: Some((_, original)),
                    events,
                    ..
                }) = state.pending.get(&upstream_id)
                else {
                    return;
                };
                let (original, events) = (original.clone(), events.clone());
                drop(state);
                if rewrite_param(&mut message, "progressToken", original.get()).is_ok() {
                    let _ = events.try_send(event(&message));
                }
            }
            "notifications/message" => {
                let Some((_, upstream_id)) = only_client_in_flight(&state) else {
                    tracing::debug!("a log message from the upstream could not be tied to one client; not relayed");
                    return;
                };
                if let Some(Pending::Client { events, .. }) = state.pending.get(&upstream_id) {
                    let _ = events.try_send(event(&message));
                }
            }
            _ => {
                // List changes, resource updates: every client's concern.
                let frame = event(&message);
                for session in state.sessions.values() {
                    if let Some(listening) = &session.listening {
                        let _ = listening.try_send(frame.clone());
                    }
                }
            }
        }
    }

    /// The upstream went away: every request in flight gets an error under
    /// its own id, and the link is down until it is back.
    pub fn lost(&self, why: &str) {
        let pending: Vec<Pending> = {
            let mut state = self.lock();
            state.tokens.clear();
            state.asked.clear();
            let pending: Vec<Pending> = state.pending.drain().map(|(_, p)| p).collect();
            for p in &pending {
                if let Pending::Client {
                    session,
                    sessionless: Some(_),
                    ..
                } = p
                {
                    state.sessions.remove(session);
                }
            }
            pending
        };
        for pending in pending {
            if let Pending::Client { id, events, .. } = pending {
                let mut error: Message = BTreeMap::new();
                error.insert("jsonrpc".into(), raw("\"2.0\""));
                error.insert("id".into(), id);
                let body = json!({
                    "code": -32603,
                    "message": format!("the upstream MCP server stopped before answering ({why})"),
                    "data": { "failure_class": "upstream_forward_error", "failure_reason": "connection_error" },
                });
                error.insert("error".into(), raw(&body.to_string()));
                deliver(events, event(&error));
            }
        }
    }

    pub fn set_link(&self, link: Link) {
        self.link.send_replace(link);
    }

    fn send(&self, message: &Message) {
        match serde_json::to_string(message) {
            Ok(text) => {
                let _ = self.outbox.send(text);
            }
            Err(error) => tracing::warn!(%error, "a message could not be written upstream"),
        }
    }

    /// The upstream id of this session's request a `notifications/cancelled`
    /// names.
    fn cancelled_request(&self, session: &str, message: &Message) -> Option<u64> {
        let named = param(message, "requestId")?;
        let state = self.lock();
        state
            .pending
            .iter()
            .find_map(|(upstream_id, pending)| match pending {
                Pending::Client {
                    session: owner, id, ..
                } if owner == session && id.get() == named.get() => Some(*upstream_id),
                Pending::Client { .. } | Pending::Own(_) => None,
            })
    }
}

/// The session and request when exactly one session has requests in flight
/// (its newest request).
fn only_client_in_flight(state: &State) -> Option<(String, u64)> {
    let mut found: Option<(&str, u64)> = None;
    for (upstream_id, pending) in &state.pending {
        if let Pending::Client { session, .. } = pending {
            match found {
                Some((other, _)) if other != session => return None,
                Some((_, newest)) if newest > *upstream_id => {}
                _ => found = Some((session, *upstream_id)),
            }
        }
    }
    found.map(|(session, id)| (session.to_owned(), id))
}

fn sessions_in_flight(state: &State) -> usize {
    let mut sessions: Vec<&str> = state
        .pending
        .values()
        .filter_map(|p| match p {
            Pending::Client { session, .. } => Some(session.as_str()),
            Pending::Own(_) => None,
        })
        .collect();
    sessions.sort_unstable();
    sessions.dedup();
    sessions.len()
}

/// Queues a frame that must not be lost (a response, a request to the
/// client): at once when there is room, else as soon as the client reads.
/// Progress and log frames are dropped instead when a client falls behind.
fn deliver(events: Events, frame: Bytes) {
    if let Err(mpsc::error::TrySendError::Full(frame)) = events.try_send(frame) {
        tokio::spawn(async move {
            let _ = events.send(frame).await;
        });
    }
}

/// Completes a handshake-era server's result to `method` for a 2026-07-28
/// client ([`crate::era::complete`]); `init` is the server's `initialize`
/// result.
fn complete(message: &mut Message, method: &str, init: Option<&str>) {
    let Some(result) = message.get("result") else {
        return;
    };
    let Ok(mut result) = serde_json::from_str::<serde_json::Value>(result.get()) else {
        return;
    };
    let server_info = init
        .and_then(|init| serde_json::from_str::<serde_json::Value>(init).ok())
        .and_then(|init| init.get("serverInfo").cloned());
    crate::era::complete(&mut result, method, server_info.as_ref());
    if let Ok(text) = serde_json::to_string(&result) {
        message.insert("result".into(), raw(&text));
    }
}

/// An SSE `message` event carrying `message`.
pub fn event(message: &Message) -> Bytes {
    let text = serde_json::to_string(message).unwrap_or_default();
    Bytes::from(format!("event: message\ndata: {text}\n\n"))
}

pub fn method_of(message: &Message) -> Option<String> {
    serde_json::from_str(message.get("method")?.get()).ok()
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).unwrap_or_default())
}

/// `params.<key>`, raw.
fn param(message: &Message, key: &str) -> Option<Box<RawValue>> {
    let params: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(message.get("params")?.get()).ok()?;
    params.get(key).cloned()
}

/// Sets `params.<key>` to the JSON text `value`.
fn rewrite_param(message: &mut Message, key: &str, value: &str) -> Result<(), Refused> {
    let Some(params) = message.get("params") else {
        return Ok(());
    };
    let mut params: BTreeMap<String, Box<RawValue>> = serde_json::from_str(params.get())
        .map_err(|e| Refused::Malformed(format!("params: {e}")))?;
    params.insert(key.into(), raw(value));
    let text = serde_json::to_string(&params).map_err(|e| Refused::Malformed(e.to_string()))?;
    message.insert("params".into(), raw(&text));
    Ok(())
}

/// Replaces a request's `params._meta.progressToken` with one unique on the
/// upstream; the rewritten token (as JSON text) and the client's.
/// Takes the 2026-07-28 envelope out of a request's `_meta`, for a server
/// that Helio initialized in the handshake era.
fn strip_envelope(message: &mut Message) -> Result<(), Refused> {
    let Some(params) = message.get("params") else {
        return Ok(());
    };
    let Ok(mut params) = serde_json::from_str::<serde_json::Value>(params.get()) else {
        return Ok(());
    };
    crate::era::strip_envelope(&mut params);
    let params = serde_json::to_string(&params).map_err(|e| Refused::Malformed(e.to_string()))?;
    message.insert("params".into(), raw(&params));
    Ok(())
}

fn rewrite_token(
    message: &mut Message,
    upstream_id: u64,
) -> Result<Option<(String, Box<RawValue>)>, Refused> {
    let Some(params) = message.get("params") else {
        return Ok(None);
    };
    let Ok(mut params) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(params.get())
    else {
        return Ok(None);
    };
    let Some(meta) = params.get("_meta") else {
        return Ok(None);
    };
    let Ok(mut meta) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(meta.get()) else {
        return Ok(None);
    };
    let rewritten = format!("\"helio-{upstream_id}\"");
    let Some(original) = meta.insert("progressToken".into(), raw(&rewritten)) else {
        return Ok(None);
    };
    let meta = serde_json::to_string(&meta).map_err(|e| Refused::Malformed(e.to_string()))?;
    params.insert("_meta".into(), raw(&meta));
    let params = serde_json::to_string(&params).map_err(|e| Refused::Malformed(e.to_string()))?;
    message.insert("params".into(), raw(&params));
    Ok(Some((rewritten, original)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        serde_json::from_str(text).expect("a JSON object")
    }

    fn setup() -> (Arc<Mux>, mpsc::UnboundedReceiver<String>) {
        let (outbox, sent) = mpsc::unbounded_channel();
        (Mux::new(outbox), sent)
    }

    fn sent_json(sent: &mut mpsc::UnboundedReceiver<String>) -> serde_json::Value {
        serde_json::from_str(&sent.try_recv().expect("a message upstream")).expect("JSON")
    }

    fn frame_json(frames: &mut mpsc::Receiver<Bytes>) -> serde_json::Value {
        let frame = frames.try_recv().expect("a frame");
        let text = std::str::from_utf8(&frame).expect("UTF-8");
        let data = text
            .strip_prefix("event: message\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .expect("an SSE message event");
        serde_json::from_str(data).expect("JSON")
    }

    #[tokio::test]
    async fn colliding_ids_and_tokens_are_rewritten_and_mapped_back() {
        let (mux, mut sent) = setup();
        let (a, b) = (mux.open_session(), mux.open_session());
        let (a_events, mut a_frames) = mpsc::channel(8);
        let (b_events, mut b_frames) = mpsc::channel(8);
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"p","_meta":{"progressToken":7}}}"#;
        mux.request(&a, message(call), a_events).expect("sent");
        mux.request(&b, message(call), b_events).expect("sent");
        let (to_a, to_b) = (sent_json(&mut sent), sent_json(&mut sent));
        assert_ne!(to_a["id"], to_b["id"], "unique on the upstream");
        assert_ne!(
            to_a["params"]["_meta"]["progressToken"],
            to_b["params"]["_meta"]["progressToken"]
        );
        assert_eq!(to_a["params"]["name"], "p");
        // B's progress, then B's answer, then A's: each to its own client,
        // under the client's own id and token.
        let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": to_b["params"]["_meta"]["progressToken"],"progress":1}});
        mux.received(&progress.to_string());
        mux.received(&json!({"jsonrpc":"2.0","id": to_b["id"],"result":{"who":"b"}}).to_string());
        mux.received(&json!({"jsonrpc":"2.0","id": to_a["id"],"result":{"who":"a"}}).to_string());
        let b_progress = frame_json(&mut b_frames);
        assert_eq!(b_progress["params"]["progressToken"], 7);
        let b_answer = frame_json(&mut b_frames);
        assert_eq!(
            (b_answer["id"].clone(), b_answer["result"]["who"].clone()),
            (json!(1), json!("b"))
        );
        let a_answer = frame_json(&mut a_frames);
        assert_eq!(
            (a_answer["id"].clone(), a_answer["result"]["who"].clone()),
            (json!(1), json!("a"))
        );
        assert!(a_frames.try_recv().is_err(), "A saw nothing of B's");
    }

    #[tokio::test]
    async fn a_sessionless_request_loses_its_envelope_and_its_result_is_completed() {
        let (mux, mut sent) = setup();
        let (events, mut frames) = mpsc::channel(8);
        let list = r#"{"jsonrpc":"2.0","id":"l","method":"tools/list","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"keep":1}}}"#;
        mux.request_sessionless(message(list), events)
            .expect("sent");
        let upstream = sent_json(&mut sent);
        assert_eq!(upstream["params"]["_meta"], json!({"keep": 1}));
        assert_eq!(mux.lock().sessions.len(), 1, "a session for the request");
        mux.received(
            &json!({"jsonrpc":"2.0","id": upstream["id"],"result":{"tools":[]}}).to_string(),
        );
        let answer = frame_json(&mut frames);
        assert_eq!(answer["id"], "l");
        assert_eq!(
            answer["result"],
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        assert!(
            mux.lock().sessions.is_empty(),
            "the session ends with its response"
        );
    }

    #[tokio::test]
    async fn server_requests_go_to_the_one_client_in_flight_or_are_refused() {
        let (mux, mut sent) = setup();
        let (a, b) = (mux.open_session(), mux.open_session());
        let (a_events, mut a_frames) = mpsc::channel(8);
        mux.request(
            &a,
            message(r#"{"jsonrpc":"2.0","id":"x","method":"tools/call"}"#),
            a_events,
        )
        .expect("sent");
        let _ = sent_json(&mut sent);
        mux.received(r#"{"jsonrpc":"2.0","id":90,"method":"sampling/createMessage","params":{}}"#);
        assert_eq!(
            frame_json(&mut a_frames)["method"],
            "sampling/createMessage"
        );
        // Only A may answer it.
        mux.answer(
            &b,
            message(r#"{"jsonrpc":"2.0","id":90,"result":{"forged":true}}"#),
        )
        .expect("ok");
        assert!(sent.try_recv().is_err(), "B's answer is dropped");
        mux.answer(&a, message(r#"{"jsonrpc":"2.0","id":90,"result":{}}"#))
            .expect("ok");
        assert_eq!(sent_json(&mut sent)["id"], 90);
        // Two clients in flight: refused to the server, shown to no one.
        let (b_events, mut b_frames) = mpsc::channel(8);
        mux.request(
            &b,
            message(r#"{"jsonrpc":"2.0","id":"y","method":"tools/call"}"#),
            b_events,
        )
        .expect("sent");
        let _ = sent_json(&mut sent);
        mux.received(r#"{"jsonrpc":"2.0","id":91,"method":"elicitation/create","params":{}}"#);
        let refusal = sent_json(&mut sent);
        assert_eq!(
            (refusal["id"].clone(), refusal["error"]["code"].clone()),
            (json!(91), json!(-32603))
        );
        assert!(a_frames.try_recv().is_err() && b_frames.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_lost_upstream_answers_every_request_in_flight_and_cancels_map_to_its_ids() {
        let (mux, mut sent) = setup();
        let a = mux.open_session();
        let (events, mut frames) = mpsc::channel(8);
        mux.request(
            &a,
            message(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call"}"#),
            events,
        )
        .expect("sent");
        let upstream_id = sent_json(&mut sent)["id"].clone();
        mux.notify(
            &a,
            message(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#,
            ),
        )
        .expect("sent");
        assert_eq!(sent_json(&mut sent)["params"]["requestId"], upstream_id);
        mux.lost("the server exited");
        let error = frame_json(&mut frames);
        assert_eq!(error["id"], 5);
        assert!(error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the server exited"));
        assert_eq!(
            mux.request(
                "nope",
                message(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#),
                mpsc::channel(1).0
            ),
            Err(Refused::NoSession)
        );
    }
}
