use super::*;
use serde_json::Value;

fn ticket(id: &str) -> Ticket {
    let call = Call {
        id: id.into(),
        tool_name: "send_email".into(),
        tool_input: json!({"to": "a@b"}),
        session_id: Some("s1".into()),
        agent_id: None,
        origin: "mcp".into(),
        arguments_digest: arguments_digest(None),
        policy_version: "v".into(),
    };
    Ticket::pending(
        id.into(),
        call,
        Some("approve-mail".into()),
        Some(0),
        "dashboard".into(),
        1000,
    )
}

fn operator(name: &str) -> Resolver {
    Resolver {
        name: name.into(),
        credential: "api_secret".into(),
    }
}

#[test]
fn a_ticket_is_resolved_once_and_its_call_learns_by_whom() {
    let approvals = Arc::new(Approvals::default());
    let mut events = approvals.subscribe();
    let mut waiter = approvals.open(ticket("t1"));
    assert_eq!(events.try_recv().map(|e| e.0), Ok("approval_requested"));
    assert_eq!(
        approvals.open_ticket_of("t1").map(|t| t.id),
        Some("t1".into())
    );
    approvals
        .resolve("t1", Resolution::Approved, operator("alice"))
        .expect("resolve");
    assert_eq!(approvals.open_ticket_of("t1"), None, "no longer open");
    let decided = waiter.try_recv().expect("decided");
    assert_eq!(decided.resolution, Resolution::Approved);
    assert_eq!(decided.by, operator("alice"));
    let stored = approvals.get("t1").expect("ticket");
    assert_eq!(stored.status, Status::Approved);
    assert_eq!(stored.resolved_by.as_deref(), Some("alice"));
    assert_eq!(stored.resolved_via.as_deref(), Some("api_secret"));
    assert_eq!(events.try_recv().map(|e| e.0), Ok("approval_resolved"));
    // Once only: a second decision, or a timeout, finds it resolved.
    assert_eq!(
        approvals.resolve("t1", Resolution::Denied { reason: None }, operator("bob")),
        Err(ResolveError::AlreadyResolved(Status::Approved))
    );
    assert!(!approvals.close("t1", Status::Timeout));
    assert_eq!(
        approvals.resolve("nope", Resolution::Approved, operator("bob")),
        Err(ResolveError::NotFound)
    );
}

#[test]
fn closing_and_shutdown_end_pending_tickets_without_a_decision() {
    let approvals = Arc::new(Approvals::default());
    let mut timed_out = approvals.open(ticket("t1"));
    let mut cancelled = approvals.open(ticket("t2"));
    assert!(approvals.close("t1", Status::Timeout));
    approvals.cancel_all();
    assert!(timed_out.try_recv().is_err());
    assert!(cancelled.try_recv().is_err());
    assert_eq!(approvals.open_ticket_of("t1"), None);
    assert_eq!(approvals.open_ticket_of("t2"), None);
    assert_eq!(approvals.get("t1").map(|t| t.status), Some(Status::Timeout));
    assert_eq!(
        approvals.get("t2").map(|t| t.status),
        Some(Status::ShutdownCancelled)
    );
    assert_eq!(
        approvals.resolve("t2", Resolution::Approved, operator("alice")),
        Err(ResolveError::AlreadyResolved(Status::ShutdownCancelled))
    );
}

#[test]
fn lists_newest_first_by_status_with_a_total() {
    let approvals = Arc::new(Approvals::default());
    for i in 0..5 {
        drop(approvals.open(ticket(&format!("t{i}"))));
    }
    approvals
        .resolve(
            "t1",
            Resolution::Denied {
                reason: Some("no".into()),
            },
            operator("alice"),
        )
        .expect("deny");
    let (page, total) = approvals.list(None, 2, 0);
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t4", "t3"]
    );
    let (pending, total) = approvals.list(Some(Status::Pending), 10, 1);
    assert_eq!(total, 4);
    assert_eq!(
        pending.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t3", "t2", "t0"]
    );
    let denied = approvals.get("t1").expect("t1");
    assert_eq!(denied.denial_reason.as_deref(), Some("no"));
}

#[test]
fn the_arguments_digest_does_not_depend_on_key_order() {
    let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[3]}}"#).expect("a");
    let b: Value = serde_json::from_str(r#"{"a":{"x":[3],"y":2},"b":1}"#).expect("b");
    assert_eq!(arguments_digest(Some(&a)), arguments_digest(Some(&b)));
    assert_ne!(arguments_digest(Some(&a)), arguments_digest(None));
}

#[test]
fn tickets_survive_a_restart_and_a_pending_one_comes_back_cancelled() {
    use crate::state::LocalStore;
    let dir = std::env::temp_dir().join(format!("helio-tickets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("state.db");
    {
        let store = LocalStore::open(&path, now_ms()).expect("open");
        let approvals = Arc::new(Approvals::restore(store.clone()));
        drop(approvals.open(ticket("approved")));
        approvals
            .resolve("approved", Resolution::Approved, operator("alice"))
            .expect("approve");
        let mut old = ticket("old");
        old.requested_ms = 1_000;
        drop(approvals.open(old));
        approvals.close("old", Status::Timeout);
        // The process dies with this one pending.
        drop(approvals.open(ticket("pending")));
        store.flush().expect("flush");
    }
    let store = LocalStore::open(&path, now_ms()).expect("reopen");
    let approvals = Arc::new(Approvals::restore(store.clone()));
    let status = |id: &str| approvals.get(id).map(|t| t.status);
    assert_eq!(status("approved"), Some(Status::Approved));
    assert_eq!(
        approvals.get("approved").and_then(|t| t.resolved_via),
        Some("api_secret".to_owned())
    );
    assert_eq!(status("pending"), Some(Status::ShutdownCancelled));
    assert_eq!(status("old"), Some(Status::Timeout));
    let (all, total) = approvals.list(None, 10, 0);
    assert_eq!(total, 3);
    assert_eq!(all[0].id, "pending", "newest first, as before the restart");
    // Retention: what was requested before the cutoff goes, on disk too.
    approvals.forget_before(10_000);
    assert_eq!(status("old"), None);
    store.flush().expect("flush");
    drop(approvals);
    let again = Approvals::restore(LocalStore::open(&path, now_ms()).expect("reopen"));
    assert!(again.get("old").is_none());
    assert_eq!(
        again.get("pending").map(|t| t.status),
        Some(Status::ShutdownCancelled),
        "the cancellation itself was saved"
    );
}

#[test]
fn webhook_signatures_are_hmac_sha256_of_the_body() {
    // RFC 4231, test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?").as_deref(),
        Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
}
