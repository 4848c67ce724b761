use std::str::FromStr;
use std::sync::Barrier;

use super::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("helio-state-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("state.db")
}

#[test]
fn rate_window_slides_and_blocked_calls_do_not_consume() {
    let store = LocalStore::in_memory();
    for i in 0..3 {
        let (w, hold) = store.rate_take("k", 3, 1000, 100 + i);
        assert!(w.allowed && hold.is_some(), "call {i}");
        assert_eq!(w.current, i + 1);
    }
    let (w, hold) = store.rate_take("k", 3, 1000, 500);
    assert!(!w.allowed && hold.is_none());
    assert_eq!((w.current, w.reset_at_ms), (3, 1100));
    // Denied takes left nothing behind: still three in the window.
    assert_eq!(store.rate_peek("k", 3, 1000, 600).current, 3);
    // The first slot leaves the window at 1100.
    assert!(store.rate_take("k", 3, 1000, 1100).0.allowed);
    assert!(!store.rate_take("k", 3, 1000, 1100).0.allowed);
}

#[test]
fn a_repeated_completion_is_rewritten_once_a_second_and_in_full_at_shutdown() {
    let path = temp_db("completion-rewrites");
    let written = |path: &std::path::Path| {
        let loaded = super::super::persist::Persist::open(path)
            .and_then(|db| db.load(10_000))
            .expect("load");
        match loaded.completed.as_slice() {
            [(session, tool, completion)] if session == "s1" && tool == "lookup" => *completion,
            other => panic!("one completion expected on disk, found {}", other.len()),
        }
    };
    {
        let store = LocalStore::open(&path, 0).expect("open");
        store.record_completion("s1", "lookup", false, 1_000);
        store.record_completion("s1", "lookup", false, 1_500);
        store.wait_written().expect("written");
        // Same outcome within a second: the disk keeps the first time.
        assert_eq!(
            written(&path),
            Completion {
                succeeded: false,
                at_ms: 1_000
            }
        );
        // A changed outcome is written at once.
        store.record_completion("s1", "lookup", true, 1_600);
        store.wait_written().expect("written");
        assert_eq!(written(&path).at_ms, 1_600);
        // A second after the last write, the time is rewritten.
        store.record_completion("s1", "lookup", false, 2_000);
        store.record_completion("s1", "lookup", false, 2_700);
        store.wait_written().expect("written");
        let on_disk = written(&path);
        assert!(on_disk.succeeded, "success is sticky");
        assert_eq!(on_disk.at_ms, 2_700);
        store.record_completion("s1", "lookup", false, 2_900);
        store.wait_written().expect("written");
        assert_eq!(written(&path).at_ms, 2_700);
        // Shutdown writes what was held back.
        store.flush().expect("flush");
    }
    assert_eq!(written(&path).at_ms, 2_900);
}

#[test]
fn released_holds_are_given_back() {
    let store = LocalStore::in_memory();
    let (_, hold) = store.rate_take("k", 1, 1000, 0);
    let hold = hold.expect("slot");
    assert!(!store.rate_take("k", 1, 1000, 1).0.allowed);
    store.release(&[hold]);
    assert!(store.rate_take("k", 1, 1000, 2).0.allowed);
}

#[test]
fn exactly_one_of_64_racing_calls_gets_the_last_slot() {
    let store = LocalStore::in_memory();
    for _ in 0..9 {
        store.rate_take("k", 10, 60_000, 1);
    }
    let barrier = Arc::new(Barrier::new(64));
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    usize::from(store.rate_take("k", 10, 60_000, 2).0.allowed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    assert_eq!(admitted, 1);
}

#[test]
fn ten_thousand_concurrent_calls_admit_exactly_the_limit() {
    let store = LocalStore::in_memory();
    let admitted = std::sync::atomic::AtomicUsize::new(0);
    let spent = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                for _ in 0..625 {
                    if store.rate_take("rate", 1000, 60_000, 5).0.allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    let (w, hold) =
                        store.spend_reserve("spend", dec("0.10"), dec("250"), Some(60_000), 5);
                    if let Some(hold) = hold {
                        assert!(w.spent <= dec("250"));
                        store.commit(&[hold]).expect("commit");
                        spent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 1000);
    assert_eq!(spent.into_inner(), 2500);
    let (w, _) = store.spend_reserve("spend", dec("0.01"), dec("250"), Some(60_000), 6);
    assert_eq!(w.spent, dec("250.00"));
    assert!(!w.allowed);
}

#[test]
fn spend_is_exact_decimal() {
    let store = LocalStore::in_memory();
    // 0.1 + 0.2 + 0.7 is exactly 1.0: in binary floating point it is not.
    for amount in ["0.1", "0.2", "0.7"] {
        let (w, hold) = store.spend_reserve("s", dec(amount), dec("1"), Some(1000), 0);
        assert!(w.allowed && hold.is_some(), "{amount}");
    }
    let (w, hold) = store.spend_reserve("s", dec("0.01"), dec("1"), Some(1000), 0);
    assert!(!w.allowed && hold.is_none());
    assert_eq!(w.spent, dec("1.0"));
    assert_eq!(w.reset_at_ms, Some(1000));
    // A pot without a window never replenishes.
    store.spend_reserve("pot", dec("5"), dec("5"), None, 0);
    let (w, _) = store.spend_reserve("pot", dec("1"), dec("5"), None, u64::MAX / 2);
    assert!(!w.allowed);
    assert_eq!(w.reset_at_ms, None);
}

#[test]
fn committed_state_survives_reopening_and_holds_do_not() {
    let path = temp_db("reopen");
    {
        let store = LocalStore::open(&path, 0).expect("open");
        let (_, a) = store.spend_reserve("budget", dec("40.25"), dec("100"), None, 10);
        let (_, b) = store.rate_take("rate", 5, 60_000, 10);
        store
            .commit(&[a.expect("a"), b.expect("b")])
            .expect("commit");
        // Held but never committed: a blocked call.
        let (_, c) = store.spend_reserve("budget", dec("50"), dec("100"), None, 11);
        assert!(c.is_some());
        // Committed, then refunded: an upstream failure.
        let (_, d) = store.spend_reserve("budget", dec("9"), dec("100"), None, 12);
        let d = d.expect("d");
        store.commit(std::slice::from_ref(&d)).expect("commit");
        store.release(&[d]);
        store
            .record_evidence(
                "s1",
                Evidence {
                    key: "ticket".into(),
                    data: serde_json::json!({"id": 7}),
                    tool_name: "lookup".into(),
                    recorded_ms: 10,
                    expires_ms: 100_000,
                },
            )
            .expect("evidence");
        store.record_completion("s1", "lookup_order", true, 10);
        store.record_completion("s1", "lookup_order", false, 2_000);
        // On disk: the two commits; not the bare hold, not the refund.
        store.flush().expect("flush");
        let rows = super::super::persist::ledger_rows(&path).expect("count");
        assert_eq!(rows, 2);
    }
    let store = LocalStore::open(&path, 1000).expect("reopen");
    let (w, _) = store.spend_reserve("budget", dec("60"), dec("100"), None, 1000);
    assert_eq!(w.spent, dec("40.25"));
    assert!(!w.allowed, "40.25 + 60 > 100");
    assert_eq!(store.rate_peek("rate", 5, 60_000, 1000).current, 1);
    assert_eq!(
        store.evidence_status("s1", "ticket", 1000),
        EvidenceStatus::Present
    );
    assert_eq!(
        store.evidence_status("s2", "ticket", 1000),
        EvidenceStatus::Missing
    );
    let done = store.completed("s1", "lookup_order").expect("completion");
    assert!(done.succeeded, "success is sticky");
    assert_eq!(done.at_ms, 2_000);
    // Out of its window, the rate slot is gone after a restart too.
    let store = LocalStore::open(&path, 70_000).expect("reopen later");
    assert_eq!(store.rate_peek("rate", 5, 60_000, 70_000).current, 0);
}

#[test]
fn evidence_expires_then_is_forgotten() {
    let store = LocalStore::in_memory();
    let evidence = Evidence {
        key: "k".into(),
        data: serde_json::Value::Null,
        tool_name: "t".into(),
        recorded_ms: 0,
        expires_ms: 300_000,
    };
    store.record_evidence("s", evidence).expect("record");
    assert_eq!(
        store.evidence_status("s", "k", 299_999),
        EvidenceStatus::Present
    );
    assert_eq!(
        store.evidence_status("s", "k", 300_000),
        EvidenceStatus::Expired
    );
    assert_eq!(store.session_state("s", 300_000).evidence, vec![]);
    store.sweep(300_000 + EXPIRED_EVIDENCE_KEPT_MS);
    assert_eq!(
        store.evidence_status("s", "k", 300_000 + EXPIRED_EVIDENCE_KEPT_MS),
        EvidenceStatus::Missing
    );
}

#[test]
fn busy_pots_keep_exact_totals_and_recent_refunds() {
    let store = LocalStore::in_memory();
    let mut last = None;
    for i in 0..(UNFOLDED_ENTRIES as u64 + 500) {
        let (w, hold) = store.spend_reserve("pot", dec("0.01"), dec("1000"), None, i);
        assert!(w.allowed);
        let hold = hold.expect("held");
        store.commit(std::slice::from_ref(&hold)).expect("commit");
        last = Some(hold);
    }
    let (w, _) = store.spend_reserve("pot", dec("0"), dec("1000"), None, 0);
    assert_eq!(w.spent, dec("45.96"));
    // The newest charge is refundable even after older ones were folded.
    store.release(&[last.expect("a hold")]);
    let (w, _) = store.spend_reserve("pot", dec("0"), dec("1000"), None, 0);
    assert_eq!(w.spent, dec("45.95"));
}

#[test]
fn idle_sessions_are_forgotten_with_their_completed_calls_and_context() {
    let path = temp_db("idle");
    let store = LocalStore::open(&path, 0).expect("open");
    store.record_completion("idle", "lookup_order", true, 1_000);
    store
        .set_context("idle", "ticket", serde_json::json!("T-1"), 2_000)
        .expect("context");
    store.record_completion("busy", "lookup_order", true, 1_000);
    store.record_completion("busy", "lookup_order", true, SESSION_IDLE_MS);
    // Idle, but holding evidence that has not expired: kept.
    store
        .record_evidence(
            "grounded",
            Evidence {
                key: "ticket".into(),
                data: serde_json::Value::Null,
                tool_name: "t".into(),
                recorded_ms: 0,
                expires_ms: 10 * SESSION_IDLE_MS,
            },
        )
        .expect("evidence");
    store.record_completion("grounded", "lookup_order", true, 0);

    store.sweep(2_000 + SESSION_IDLE_MS - 1);
    assert!(store.completed("idle", "lookup_order").is_some());

    let later = 2_000 + SESSION_IDLE_MS;
    store.sweep(later);
    assert_eq!(store.completed("idle", "lookup_order"), None);
    assert_eq!(store.session_state("idle", later), SessionState::default());
    assert!(store.completed("busy", "lookup_order").is_some());
    assert!(store.completed("grounded", "lookup_order").is_some());
    store.flush().expect("flush");
    drop(store);

    // Forgotten on disk too.
    let store = LocalStore::open(&path, later).expect("reopen");
    assert_eq!(store.completed("idle", "lookup_order"), None);
    assert_eq!(store.session_state("idle", later), SessionState::default());
    assert!(store.completed("busy", "lookup_order").is_some());
    // A session active again starts a new idle period.
    store.record_completion("idle", "lookup_order", false, later);
    store.sweep(later + SESSION_IDLE_MS - 1);
    assert!(store.completed("idle", "lookup_order").is_some());
}

#[test]
fn idle_pots_are_collected_in_memory_and_on_disk() {
    let path = temp_db("pots");
    let idle = "budgets/budget:trip:fp:session:idle";
    let held = "budgets/budget:trip:fp:session:held";
    let global = "budgets/budget:trip:fp:global";
    let idle_after = |key: &str| key.contains(":session:").then_some(10_000);
    {
        let store = LocalStore::open(&path, 0).expect("open");
        for key in [idle, held, global] {
            let (_, hold) = store.spend_reserve(key, dec("30"), dec("100"), None, 1_000);
            store.commit(&[hold.expect("hold")]).expect("commit");
        }
        // A call is in flight on `held`: its pot is not collected under it.
        let (_, in_flight) = store.spend_reserve(held, dec("1"), dec("100"), None, 1_000);
        assert!(in_flight.is_some());

        assert_eq!(store.forget_idle_pots(10_999, &idle_after), 0);
        assert_eq!(store.forget_idle_pots(11_000, &idle_after), 1);
        let (w, _) = store.spend_reserve(idle, dec("0"), dec("100"), None, 11_000);
        assert_eq!(w.spent, dec("0"), "a returning session starts a fresh pot");
        store.flush().expect("flush");
    }
    let store = LocalStore::open(&path, 11_000).expect("reopen");
    let spent = |key: &str| {
        store
            .spend_reserve(key, dec("0"), dec("100"), None, 11_000)
            .0
            .spent
    };
    assert_eq!(spent(idle), dec("0"), "gone from disk too");
    assert_eq!(spent(held), dec("30"));
    assert_eq!(spent(global), dec("30"), "no idle rule for it: kept");
}

#[test]
fn committed_spend_is_journaled_at_once_and_a_restart_restores_it() {
    let path = temp_db("journal");
    {
        let store = LocalStore::open(&path, 0).expect("open");
        let (_, rate) = store.rate_take("rate", 5, 60_000, 1);
        store.commit(&[rate.expect("slot")]).expect("commit rate");
        assert!(
            super::super::journal::Journal::replay(&path)
                .expect("replay")
                .is_empty(),
            "rate slots are only written behind"
        );
        let (_, spend) = store.spend_reserve("ledger", dec("12.5"), dec("100"), None, 2);
        store
            .commit(&[spend.expect("spend")])
            .expect("commit spend");
        // On disk the moment commit returns, before the database writer.
        let journaled = super::super::journal::Journal::replay(&path).expect("replay");
        assert_eq!(journaled.len(), 1);
        assert_eq!(journaled[0].amount, dec("12.5"));
    }
    // A crash: the database lacks an entry the journal holds.
    let journal = super::super::journal::Journal::open(&path).expect("journal");
    let lost = super::persist::Row {
        key: "ledger".into(),
        id: 99,
        at_ms: 3,
        window_ms: None,
        amount: dec("7.25"),
    };
    journal
        .append(&super::super::journal::lines(&[lost]), |_| ())
        .expect("append");
    drop(journal);
    let store = LocalStore::open(&path, 4).expect("reopen");
    let (w, _) = store.spend_reserve("ledger", dec("0"), dec("100"), None, 4);
    assert_eq!(
        w.spent,
        dec("19.75"),
        "12.5 written, 7.25 restored from the journal"
    );
    assert!(super::super::journal::Journal::replay(&path)
        .expect("replay")
        .is_empty());
    // Ids continue past the restored entry.
    let (_, next) = store.spend_reserve("ledger", dec("1"), dec("100"), None, 5);
    assert!(next.expect("fits").id > 99);
}
