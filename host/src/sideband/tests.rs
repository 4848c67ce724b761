//! The sideband router served on loopback and driven over real HTTP.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::*;
use crate::state::{Evidence, EvidenceStatus, LocalStore, SessionState};
use crate::time;

const TOKEN: &str = "test-token";

struct Harness {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    store: Arc<LocalStore>,
    keys: Arc<RwLock<Arc<BTreeSet<String>>>>,
}

impl Harness {
    async fn start(keys: &[&str]) -> Self {
        let store = LocalStore::in_memory();
        Self::with_store(keys, store.clone(), store).await
    }

    async fn with_store(
        keys: &[&str],
        store: Arc<LocalStore>,
        state: Arc<dyn crate::state::StateBackend>,
    ) -> Self {
        let keys = Arc::new(RwLock::new(Arc::new(
            keys.iter()
                .map(|k| (*k).to_owned())
                .collect::<BTreeSet<_>>(),
        )));
        let read = keys.clone();
        let allowlist: Allowlist = Arc::new(move || read.read().expect("lock").clone());
        let router = build(TOKEN, Sideband::new(state, allowlist), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test harness");
        let base = format!("http://{}", listener.local_addr().expect("test harness"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            store,
            keys,
        }
    }

    fn set_keys(&self, keys: &[&str]) {
        *self.keys.write().expect("lock") =
            Arc::new(keys.iter().map(|k| (*k).to_owned()).collect());
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(body.into())).expect("test harness"))
            .await
            .expect("test harness");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("test harness")
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{path}: non-JSON answer {bytes:?} ({status})"));
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(path, body.to_string()).await
    }

    async fn post_raw(&self, path: &str, body: impl Into<Bytes>) -> (StatusCode, Value) {
        let auth = format!("Bearer {TOKEN}");
        self.send(
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let auth = format!("Bearer {TOKEN}");
        self.send("GET", path, &[("authorization", &auth)], Bytes::new())
            .await
    }
}

fn evidence(session: &str, key: &str) -> Value {
    json!({
        "session_id": session,
        "tool_name": "lookup_ticket",
        "evidence_key": key,
        "evidence_data": {"ticket": 42},
        "ttl_seconds": 60,
    })
}

#[tokio::test]
async fn evidence_is_stored_and_listed_in_the_sdk_shape() {
    let h = Harness::start(&["ticket_verified"]).await;
    let before = crate::state::now_ms();
    let (status, body) = h
        .post("/evidence", evidence("  s1 ", "ticket_verified"))
        .await;
    assert_eq!((status, body), (StatusCode::CREATED, json!({"ok": true})));
    let after = crate::state::now_ms();

    // Stored under the trimmed id, which the path is trimmed to as well.
    for path in ["/session/s1/state", "/session/%20s1%20/state"] {
        let (status, state) = h.get(path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(state["session_id"], "s1");
        let entry = &state["evidence"]["ticket_verified"];
        let fields: BTreeSet<&str> = entry
            .as_object()
            .expect("an object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "data",
                "evidence_key",
                "expires_at",
                "timestamp",
                "tool_name"
            ])
        );
        assert_eq!(entry["evidence_key"], "ticket_verified");
        assert_eq!(entry["data"], json!({"ticket": 42}));
        assert_eq!(entry["tool_name"], "lookup_ticket");
        let expires = entry["expires_at"].as_u64().expect("an integer");
        assert!((before + 60_000..=after + 60_000).contains(&expires));
        let stamp = entry["timestamp"].as_str().expect("a string");
        assert_eq!(stamp, time::iso_utc(expires - 60_000));
        assert_eq!(state["context"], json!({}));
        assert_eq!(state["completed_tools"], json!([]));
    }
    assert_eq!(
        h.store.evidence_status("s1", "ticket_verified", after),
        EvidenceStatus::Present
    );
    assert_eq!(
        h.store.evidence_status("  s1 ", "ticket_verified", after),
        EvidenceStatus::Missing
    );
}

#[tokio::test]
async fn default_ttl_is_five_minutes_and_null_data_is_evidence() {
    let h = Harness::start(&["k"]).await;
    let mut body = evidence("s", "k");
    body.as_object_mut()
        .expect("an object")
        .remove("ttl_seconds");
    body["evidence_data"] = Value::Null;
    assert_eq!(h.post("/evidence", body).await.0, StatusCode::CREATED);
    let (_, state) = h.get("/session/s/state").await;
    let entry = &state["evidence"]["k"];
    assert_eq!(entry["data"], Value::Null);
    let recorded = time_of(entry["timestamp"].as_str().expect("a string"));
    assert_eq!(
        entry["expires_at"].as_u64().expect("an integer") / 1000,
        recorded + 300
    );
}

/// Seconds since the epoch of an ISO timestamp whose date is today (enough
/// to compare with `expires_at`).
fn time_of(stamp: &str) -> u64 {
    let now = crate::state::now_ms();
    let midnight = now / 86_400_000 * 86_400;
    let clock = &stamp[11..19];
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().expect("test harness"))
        .collect();
    assert_eq!(&stamp[..10], &time::iso_utc(now)[..10], "crossed midnight");
    midnight + parts[0] * 3600 + parts[1] * 60 + parts[2]
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = Harness::start(&["k"]).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"tool_name": "t", "evidence_key": "k", "evidence_data": 1}),
            "session_id",
            "session_id is required",
        ),
        (
            json!({"session_id": 5, "tool_name": "t", "evidence_key": "k", "evidence_data": 1}),
            "session_id",
            "must be a string",
        ),
        (
            json!({"session_id": "   ", "tool_name": "t", "evidence_key": "k", "evidence_data": 1}),
            "session_id",
            "non-empty",
        ),
        (
            json!({"session_id": "x".repeat(257), "tool_name": "t", "evidence_key": "k", "evidence_data": 1}),
            "session_id",
            "at most 256",
        ),
        (
            json!({"session_id": "s", "evidence_key": "k", "evidence_data": 1}),
            "tool_name",
            "tool_name is required",
        ),
        (
            json!({"session_id": "s", "tool_name": "", "evidence_key": "k", "evidence_data": 1}),
            "tool_name",
            "non-empty",
        ),
        (
            json!({"session_id": "s", "tool_name": "t", "evidence_data": 1}),
            "evidence_key",
            "evidence_key is required",
        ),
        (
            json!({"session_id": "s", "tool_name": "t", "evidence_key": 3, "evidence_data": 1}),
            "evidence_key",
            "must be a string",
        ),
        (
            json!({"session_id": "s", "tool_name": "t", "evidence_key": "k"}),
            "evidence_data",
            "evidence_data is required",
        ),
        (
            json!({"session_id": "s", "tool_name": "t", "evidence_key": "k", "evidence_data": 1, "ttl_seconds": 0}),
            "ttl_seconds",
            "positive integer",
        ),
        (
            json!({"session_id": "s", "tool_name": "t", "evidence_key": "k", "evidence_data": 1, "ttl_seconds": 604_801}),
            "ttl_seconds",
            "7 days",
        ),
    ];
    for (body, field, needle) in cases {
        let (status, answer) = h.post("/evidence", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert_eq!(answer["code"], "validation_error");
        assert!(
            answer["error"].as_str().expect("a string").contains(needle),
            "{body}: {answer}"
        );
    }
    for raw in [
        "{not json",
        "[]",
        "",
        // Read two ways by different parsers: refused, never guessed.
        r#"{"session_id":"a","session_id":"b","evidence_key":"k"}"#,
        r#"{"session_id":"a\ud800","evidence_key":"k"}"#,
    ] {
        let (status, answer) = h.post_raw("/evidence", raw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
        assert_eq!(answer["code"], "invalid_json", "{raw}");
    }
    let (status, answer) = h
        .post("/context", json!({"session_id": "s", "key": "k"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "value");
    let (status, answer) = h
        .post(
            "/context",
            json!({"session_id": "s", "key": "", "value": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "key");
    let (status, answer) = h.get("/session/%20%20/state").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "session_id");
    assert_eq!(h.store.session_state("s", 0), SessionState::default());
}

#[tokio::test]
async fn keys_outside_the_allowlist_are_refused_with_a_preview() {
    let keys: Vec<String> = (0..25).map(|i| format!("key.{i:02}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let h = Harness::start(&refs).await;
    for _ in 0..2 {
        let (status, answer) = h.post("/evidence", evidence("s", "nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["code"], "evidence_key_not_in_policy_allowlist");
        assert_eq!(answer["key"], "nope");
        assert_eq!(answer["allowed_key_count"], 25);
        assert_eq!(answer["truncated"], true);
        assert_eq!(answer["allowed_keys"], json!(refs[..20]));
        assert!(answer["error"].is_string());
    }
    assert_eq!(
        h.store.evidence_status("s", "nope", 0),
        EvidenceStatus::Missing
    );

    // The allowlist is read per request: a reload applies at once.
    h.set_keys(&["nope"]);
    assert_eq!(
        h.post("/evidence", evidence("s", "nope")).await.0,
        StatusCode::CREATED
    );
    h.set_keys(&[]);
    let (status, answer) = h.post("/evidence", evidence("s", "nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["allowed_keys"], json!([]));
    assert_eq!(answer["allowed_key_count"], 0);
    assert_eq!(answer["truncated"], false);
}

#[tokio::test]
async fn sessions_are_isolated_and_carry_context_and_completions() {
    let h = Harness::start(&["k"]).await;
    assert_eq!(
        h.post("/evidence", evidence("a", "k")).await.0,
        StatusCode::CREATED
    );
    let (status, body) = h
        .post(
            "/context",
            json!({"session_id": " a", "key": "customer", "value": {"id": 7}}),
        )
        .await;
    assert_eq!((status, body), (StatusCode::CREATED, json!({"ok": true})));
    assert_eq!(
        h.post(
            "/context",
            json!({"session_id": "a", "key": "nothing", "value": null})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    h.store.record_completion("a", "verify", false, 1_000);
    h.store.record_completion("a", "verify", true, 2_000);

    let (_, a) = h.get("/session/a/state").await;
    assert_eq!(
        a["context"],
        json!({"customer": {"id": 7}, "nothing": null})
    );
    assert_eq!(
        a["completed_tools"],
        json!([{"tool_name": "verify", "timestamp": "1970-01-01T00:00:02.000Z", "succeeded": true}])
    );
    assert!(a["evidence"]["k"].is_object());

    let (status, b) = h.get("/session/b/state").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        b,
        json!({"session_id": "b", "evidence": {}, "context": {}, "completed_tools": []})
    );
}

#[tokio::test]
async fn expired_evidence_is_not_listed() {
    let h = Harness::start(&["k"]).await;
    let now = crate::state::now_ms();
    h.store
        .record_evidence(
            "s",
            Evidence {
                key: "k".into(),
                data: json!(1),
                tool_name: "t".into(),
                recorded_ms: now - 10_000,
                expires_ms: now - 1,
            },
        )
        .expect("test harness");
    let (_, state) = h.get("/session/s/state").await;
    assert_eq!(state["evidence"], json!({}));
}

#[tokio::test]
async fn token_origin_limits_and_fallbacks_answer_json() {
    let h = Harness::start(&["k"]).await;
    let body = evidence("s", "k").to_string();
    let (status, answer) = h.send("POST", "/evidence", &[], body.clone()).await;
    assert_eq!(
        (status, answer),
        (StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized"}))
    );
    let wrong = [("authorization", "Bearer not-the-token")];
    assert_eq!(
        h.send("GET", "/session/s/state", &wrong, "").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, answer) = h.send("GET", "/healthz", &[], "").await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"status": "ok"})));

    let auth = format!("Bearer {TOKEN}");
    let origin = [("authorization", auth.as_str()), ("origin", "null")];
    let (status, answer) = h.send("POST", "/evidence", &origin, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "Cross-origin requests are not allowed");

    let big = json!({
        "session_id": "s", "tool_name": "t", "evidence_key": "k",
        "evidence_data": "x".repeat(MAX_BODY_BYTES),
    });
    let (status, answer) = h.post("/evidence", big).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "request_body_too_large"})
        )
    );

    let (status, answer) = h.get("/nowhere").await;
    assert_eq!(
        (status, answer),
        (StatusCode::NOT_FOUND, json!({"error": "Not found"}))
    );
    let (status, answer) = h.get("/evidence").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer["error"].is_string());
}

#[tokio::test]
async fn a_failed_write_is_a_json_500() {
    let store = LocalStore::in_memory();
    let h = Harness::with_store(
        &["k"],
        store.clone(),
        crate::state::TestStore::failing_writes(store),
    )
    .await;
    let (status, answer) = h.post("/evidence", evidence("s", "k")).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "state_write_failed"})
        )
    );
    let (status, answer) = h
        .post(
            "/context",
            json!({"session_id": "s", "key": "k", "value": 1}),
        )
        .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "state_write_failed"})
        )
    );
}
