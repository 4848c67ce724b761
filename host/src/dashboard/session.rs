//! Who may use the operator API, and browser sign-in (the original's
//! contract, spec §10.2).
//!
//! A request is admitted by `Authorization: Bearer <api_secret>` (scripts),
//! by a `helio_session` cookie from `POST /api/auth/session` (the UI), or by
//! nothing at all in open mode. A cookie-authenticated request that changes
//! something must also carry the session's CSRF token in `x-helio-csrf`:
//! the cookie is sent by the browser on any request to this origin, the
//! token only by the page that signed in. Sessions live in memory (a
//! restart signs everyone out) for eight hours.
//!
//! Failed sign-ins are counted per client address (the connection's, never
//! a forwarded header a client could forge); after [`MAX_FAILURES`] within
//! [`FAILURE_WINDOW_MS`] the address is refused until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::header::{COOKIE, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Operator;
use crate::auth::{generate_token, BearerSecret};
use crate::serve::Peer;
use crate::state::now_ms;
use crate::time::iso_utc;

pub const COOKIE_NAME: &str = "helio_session";
pub const CSRF_HEADER: &str = "x-helio-csrf";
const SESSION_TTL_MS: u64 = 8 * 60 * 60 * 1000;
/// Signed-in browsers kept at once; beyond it the oldest is signed out.
const MAX_SESSIONS: usize = 1024;
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Client addresses whose failures are remembered at once.
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// How a request was admitted; handlers read it (an approval records the
/// credential that resolved it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open mode: no secret configured.
    Open,
    Bearer,
    Session,
}

impl Access {
    pub fn credential(self) -> &'static str {
        match self {
            Access::Open => "open_mode",
            Access::Bearer => "api_secret",
            Access::Session => "session",
        }
    }
}

struct Session {
    expires_ms: u64,
    csrf: String,
}

struct Failures {
    count: u32,
    since_ms: u64,
}

/// The secret, the signed-in browsers and the failed sign-ins.
pub struct Gate {
    /// `None` only in explicit open mode on a loopback host.
    secret: Option<BearerSecret>,
    /// By the SHA-256 of the cookie's token: the tokens themselves are kept
    /// nowhere.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Gate {
    pub fn new(secret: Option<&str>) -> Self {
        Self {
            secret: secret.map(BearerSecret::new),
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.secret.is_none()
    }

    /// How `headers` are admitted, if they are; with a session, its entry.
    fn admit(&self, headers: &HeaderMap, now: u64) -> Option<(Access, Option<SessionView>)> {
        let Some(secret) = &self.secret else {
            return Some((Access::Open, None));
        };
        if secret.admits(headers) {
            return Some((Access::Bearer, None));
        }
        self.session(headers, now)
            .map(|view| (Access::Session, Some(view)))
    }

    fn session(&self, headers: &HeaderMap, now: u64) -> Option<SessionView> {
        let digest = digest(cookie_token(headers)?);
        let mut sessions = lock(&self.sessions);
        match sessions.get(&digest) {
            Some(session) if session.expires_ms > now => Some(SessionView {
                expires_ms: session.expires_ms,
                csrf: session.csrf.clone(),
            }),
            Some(_) => {
                sessions.remove(&digest);
                None
            }
            None => None,
        }
    }

    /// A new session for a browser that presented the secret: its cookie
    /// token and its view.
    fn open_session(&self, now: u64) -> Result<(String, SessionView), getrandom::Error> {
        let token = generate_token()?;
        let csrf = generate_token()?;
        let expires_ms = now + SESSION_TTL_MS;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires_ms > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            digest(&token),
            Session {
                expires_ms,
                csrf: csrf.clone(),
            },
        );
        Ok((token, SessionView { expires_ms, csrf }))
    }

    fn close_session(&self, headers: &HeaderMap) {
        if let Some(token) = cookie_token(headers) {
            lock(&self.sessions).remove(&digest(token));
        }
    }

    /// When `client` may try again, if it has failed too often.
    fn throttled_until(&self, client: Option<IpAddr>, now: u64) -> Option<u64> {
        let failures = lock(&self.failures);
        let entry = failures.get(&client?)?;
        let until = entry.since_ms + FAILURE_WINDOW_MS;
        (entry.count >= MAX_FAILURES && until > now).then_some(until)
    }

    fn record_failure(&self, client: Option<IpAddr>, now: u64) {
        let Some(client) = client else {
            return;
        };
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED_ADDRESSES {
            failures.retain(|_, f| f.since_ms + FAILURE_WINDOW_MS > now);
        }
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&client) {
            // Still full of fresh entries: the oldest makes room.
            let oldest = failures
                .iter()
                .min_by_key(|(_, f)| f.since_ms)
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(client).or_insert(Failures {
            count: 0,
            since_ms: now,
        });
        if entry.since_ms + FAILURE_WINDOW_MS <= now {
            *entry = Failures {
                count: 0,
                since_ms: now,
            };
        }
        entry.count += 1;
    }

    fn forget_failures(&self, client: Option<IpAddr>) {
        if let Some(client) = client {
            lock(&self.failures).remove(&client);
        }
    }

    fn presented_secret_matches(&self, presented: &str) -> bool {
        self.secret.as_ref().is_some_and(|s| s.matches(presented))
    }
}

struct SessionView {
    expires_ms: u64,
    csrf: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `helio_session` cookie's value, from any `Cookie` header.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/auth/session", get(state).post(sign_in))
        .route("/api/auth/logout", post(sign_out))
}

/// The middleware before every protected route: admits the request or
/// answers 401 (no credential) / 403 (a cookie without its CSRF token on a
/// request that changes something).
pub(super) async fn require_access(
    State(op): State<Arc<Operator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some((access, session)) = op.gate.admit(request.headers(), now_ms()) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "Unauthorized" })),
        )
            .into_response();
    };
    if let Some(session) = session {
        if changes_something(request.method()) && !csrf_matches(request.headers(), &session.csrf) {
            return super::error(StatusCode::FORBIDDEN, "Invalid CSRF token");
        }
    }
    request.extensions_mut().insert(access);
    next.run(request).await
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn csrf_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|v| v.as_bytes().ct_eq(expected.as_bytes()).into())
}

/// `GET /api/auth/session`.
async fn state(State(op): State<Arc<Operator>>, headers: HeaderMap) -> Response {
    let now = now_ms();
    let body = match op.gate.admit(&headers, now) {
        Some((Access::Open, _)) => open_state(),
        Some((_, Some(session))) => signed_in(&session),
        Some((_, None)) => json!({
            "auth_required": true, "authenticated": true,
            "expires_at": null, "csrf_token": null,
        }),
        None => json!({
            "auth_required": true, "authenticated": false,
            "expires_at": null, "csrf_token": null,
        }),
    };
    Json(body).into_response()
}

fn open_state() -> Value {
    json!({ "auth_required": false, "authenticated": true, "expires_at": null, "csrf_token": null })
}

fn signed_in(session: &SessionView) -> Value {
    json!({
        "auth_required": true,
        "authenticated": true,
        "expires_at": iso_utc(session.expires_ms),
        "csrf_token": session.csrf,
    })
}

/// `POST /api/auth/session {secret}`.
async fn sign_in(
    State(op): State<Arc<Operator>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if op.gate.is_open() {
        return Json(open_state()).into_response();
    }
    let body = match super::approvals::read(&body, &[("secret", true)]) {
        Ok(body) => body,
        Err(error) => return super::approvals::bad_request(error),
    };
    let client = peer.map(|p| p.0 .0.ip());
    let now = now_ms();
    if let Some(until) = op.gate.throttled_until(client, now) {
        let wait_s = until.saturating_sub(now).div_ceil(1000);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, wait_s.to_string())],
            Json(json!({
                "error": "Too many failed sign-in attempts; try again later",
                "retry_after_seconds": wait_s,
            })),
        )
            .into_response();
    }
    let presented = body.get("secret").and_then(Value::as_str).unwrap_or("");
    if !op.gate.presented_secret_matches(presented) {
        op.gate.record_failure(client, now);
        tracing::warn!(client = ?client, "operator sign-in failed: wrong secret");
        return super::error(StatusCode::UNAUTHORIZED, "Invalid secret");
    }
    op.gate.forget_failures(client);
    let (token, session) = match op.gate.open_session(now) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(%error, "operator sign-in: no randomness for a session token");
            return super::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
    };
    let cookie = format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        if is_https(&headers) { "; Secure" } else { "" }
    );
    let mut response = Json(signed_in(&session)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// `POST /api/auth/logout`: the session (if any) ends, the cookie is
/// cleared.
async fn sign_out(State(op): State<Arc<Operator>>, headers: HeaderMap) -> Response {
    op.gate.close_session(&headers);
    let cookie = format!(
        "{COOKIE_NAME}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{}",
        if is_https(&headers) { "; Secure" } else { "" }
    );
    let mut response = Json(json!({ "ok": true })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// Whether the browser reached Helio over https: directly, or through a
/// proxy that terminated TLS and says so.
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("other=1; {COOKIE_NAME}={token}");
        h.insert(COOKIE, HeaderValue::from_str(&value).expect("header"));
        h
    }

    #[test]
    fn a_session_admits_until_it_expires_or_is_closed() {
        let gate = Gate::new(Some("s3cret-s3cret"));
        let (token, view) = gate.open_session(1_000).expect("session");
        let headers = cookie(&token);
        let (access, session) = gate.admit(&headers, 2_000).expect("admitted");
        assert_eq!(access, Access::Session);
        assert_eq!(session.expect("view").csrf, view.csrf);
        assert!(gate.admit(&cookie("forged"), 2_000).is_none());
        assert!(gate.admit(&headers, 1_000 + SESSION_TTL_MS).is_none());
        let (token, _) = gate.open_session(1_000).expect("session");
        gate.close_session(&cookie(&token));
        assert!(gate.admit(&cookie(&token), 2_000).is_none());
    }

    #[test]
    fn failures_throttle_one_address_for_the_window() {
        let gate = Gate::new(Some("s3cret-s3cret"));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..MAX_FAILURES {
            assert_eq!(gate.throttled_until(Some(a), 10), None);
            gate.record_failure(Some(a), 10);
        }
        assert_eq!(
            gate.throttled_until(Some(a), 20),
            Some(10 + FAILURE_WINDOW_MS)
        );
        assert_eq!(gate.throttled_until(Some(b), 20), None);
        assert_eq!(gate.throttled_until(Some(a), 10 + FAILURE_WINDOW_MS), None);
    }

    #[test]
    fn open_mode_admits_everything() {
        let gate = Gate::new(None);
        assert_eq!(
            gate.admit(&HeaderMap::new(), 0).map(|a| a.0),
            Some(Access::Open)
        );
    }
}
