//! The derived tables agree with the records after the writer's batches,
//! retention sweeps, restarts and an upgrade's catch-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::*;
use crate::audit::record::AuditRecord;
use crate::audit::store::AuditStore;
use crate::audit::testing::Rng;
use crate::batch::Sink;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("helio-derived-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("audit.db")
}

const TOOLS: &[&str] = &["send_email", "stripe.refund", "read_file", "db_delete"];
const WORDS: &[&str] = &["alice", "bob", "refund", "urgent", "ledger"];

fn record(rng: &mut Rng, n: u64) -> AuditRecord {
    let blocked = rng.below(4) == 0;
    AuditRecord {
        id: format!("rec-{n:06}"),
        timestamp: "2026-01-01T00:00:00.000Z".into(),
        session_id: Some(format!("s{}", rng.below(5))),
        agent_id: Some(format!("agent-{}", rng.below(3))),
        tool_name: rng.pick(TOOLS).into(),
        tool_input: format!(
            r#"{{"note":"{} {}","n":{n}}}"#,
            rng.pick(WORDS),
            rng.pick(WORDS)
        ),
        policy_decision: if blocked { "deny" } else { "allow" }.into(),
        block_reason: blocked.then(|| "policy_denied".into()),
        matched_rule: Some(rng.pick(&["no-mail", "refund-limit"]).into()),
        approval_status: (rng.below(5) == 0).then_some("approved"),
        upstream_error: (rng.below(7) == 0).then(|| "timeout".into()),
        evidence_chain: match rng.below(4) {
            0 => Some(r#"{"budgets":[{"name":"pay","amount":"5.00","allowed":true},{"name":"ops","amount":"1","allowed":false}]}"#.into()),
            1 => Some(r#"{"budgets":[{"name":"pay","amount":"2.50","allowed":true}]}"#.into()),
            2 => Some("not json, \"budgets\"".into()),
            _ => None,
        },
        dry_run: rng.below(9) == 0,
        record_kind: "tool_call",
        origin: if rng.below(3) == 0 {
            "adapter-x"
        } else {
            "mcp"
        }
        .into(),
        ..Default::default()
    }
}

/// Inserts records with chosen `created_at`s as the writer would, the
/// derived tables included, in one transaction.
fn insert_at(db: &Connection, records: &[(AuditRecord, String)]) {
    let tx = db.unchecked_transaction().expect("tx");
    let first: i64 = tx
        .query_row(
            "SELECT coalesce(max(rowid), 0) + 1 FROM audit_records",
            [],
            |r| r.get(0),
        )
        .expect("first");
    for (r, at) in records {
        insert_plain(&tx, r, at);
    }
    index_rows(&tx, first, first + records.len() as i64).expect("index");
    tx.commit().expect("commit");
}

/// Inserts a record into the table alone (as a version before the derived
/// tables did).
fn insert_plain(db: &Connection, r: &AuditRecord, at: &str) {
    db.execute(
        "INSERT INTO audit_records (id, timestamp, session_id, agent_id, tool_name, tool_input,
             policy_decision, block_reason, matched_rule, approval_status, upstream_error,
             total_duration_ms, proxy_compute_ms, dry_run, record_kind, origin, created_at,
             evidence_chain)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, 1, ?12, ?13, ?14, ?15, ?16)",
        rusqlite::params![
            r.id,
            r.timestamp,
            r.session_id,
            r.agent_id,
            r.tool_name,
            r.tool_input,
            r.policy_decision,
            r.block_reason,
            r.matched_rule,
            r.approval_status,
            r.upstream_error,
            r.dry_run,
            r.record_kind,
            &*r.origin,
            at,
            r.evidence_chain
        ],
    )
    .expect("insert");
}

/// Records spread over three days, a few per minute.
fn spread(rng: &mut Rng, from: u64, n: u64) -> Vec<(AuditRecord, String)> {
    (from..from + n)
        .map(|i| {
            let at = crate::time::iso_utc(1_767_225_600_000 + i * 23_456);
            (record(rng, i), at)
        })
        .collect()
}

type Key = (String, String, String, String, String, String, i64, String);

/// Asserts every rollup, the names and the search index describe exactly
/// the records in the table.
fn assert_consistent(db: &Connection) {
    for (table, width) in ROLLUPS {
        let read = |sql: &str| -> BTreeMap<Key, i64> {
            let mut statement = db.prepare(sql).expect("prepare");
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        (
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ),
                        r.get(8)?,
                    ))
                })
                .expect("query");
            rows.collect::<Result<_, _>>().expect("rows")
        };
        let rolled = read(&format!(
            "SELECT period, policy_decision, block_reason, tool_name, record_kind, origin,
                    dry_run, approval_status, count FROM {table} WHERE count != 0"
        ));
        let counted = read(&format!(
            "SELECT substr(created_at, 1, {width}), policy_decision, coalesce(block_reason, ''),
                    tool_name, record_kind, origin, dry_run, coalesce(approval_status, ''),
                    count(*)
               FROM audit_records GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
        ));
        assert_eq!(rolled, counted, "{table} agrees with the records");
    }
    let names: BTreeSet<(String, String)> = db
        .prepare("SELECT kind, name FROM audit_names")
        .expect("names")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let used: BTreeSet<(String, String)> = db
        .prepare(
            "SELECT DISTINCT 'tool', tool_name FROM audit_records
             UNION SELECT DISTINCT 'origin', origin FROM audit_records",
        )
        .expect("used")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(used.is_subset(&names), "every name in use is listed");
    let charges = |sql: &str| -> BTreeSet<(String, i64, i64)> {
        db.prepare(sql)
            .expect("charges")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(
        charges("SELECT budget, record, entry FROM audit_charges"),
        charges(
            "SELECT b.value ->> '$.name', r.rowid, b.key FROM audit_records r,
                    json_each(r.evidence_chain, '$.budgets') b
              WHERE json_valid(r.evidence_chain) AND r.block_reason IS NULL AND r.dry_run = 0"
        ),
        "every budget's charges are listed"
    );
    let counted: BTreeMap<String, i64> = db
        .prepare("SELECT budget, count FROM audit_charge_counts WHERE count != 0")
        .expect("counts")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let listed: BTreeMap<String, i64> = db
        .prepare("SELECT budget, count(*) FROM audit_charges GROUP BY budget")
        .expect("listed")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(counted, listed, "each budget's count of charges");
    for word in WORDS
        .iter()
        .chain(["timeout", "adapter", "s3", "agent", "no"].iter())
    {
        let found: BTreeSet<i64> = db
            .prepare("SELECT rowid FROM audit_search WHERE audit_search MATCH ?1")
            .expect("search")
            .query_map([format!("\"{word}\"")], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let mut statement = db
            .prepare(
                "SELECT rowid, tool_name, tool_input, matched_rule, block_reason, session_id,
                        agent_id, upstream_error FROM audit_records",
            )
            .expect("records");
        let holding: BTreeSet<i64> = statement
            .query_map([], |r| {
                let mut text = String::new();
                for i in 1..8 {
                    if let Some(t) = r.get::<_, Option<String>>(i)? {
                        text.push_str(&t);
                        text.push(' ');
                    }
                }
                Ok((r.get::<_, i64>(0)?, text))
            })
            .expect("query")
            .filter_map(Result::ok)
            .filter(|(_, text)| {
                text.split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.eq_ignore_ascii_case(word))
            })
            .map(|(rowid, _)| rowid)
            .collect();
        assert_eq!(
            found, holding,
            "the search finds {word:?} exactly where it is"
        );
    }
}

fn open(path: &Path) -> Connection {
    crate::database::open(path).expect("open")
}

#[test]
fn the_writer_retention_and_restarts_keep_the_derived_tables_exact() {
    let path = scratch("writer");
    let mut rng = Rng(0x5eed);
    let mut store = AuditStore::open(&path, tokio::sync::broadcast::channel(4).0).expect("store");
    for batch in 0..5 {
        let records = (0..200)
            .map(|i| record(&mut rng, batch * 200 + i))
            .collect();
        store.write(records).expect("batch");
    }
    // A record written twice (a retried batch) is counted once.
    store
        .write(vec![record(&mut Rng(0x5eed), 0)])
        .expect("again");
    let db = open(&path);
    assert_eq!(readiness(&db).expect("ready"), Readiness::Ready);
    assert_consistent(&db);
    drop(store);

    // Records over three days, then retention sweeps across them.
    insert_at(&db, &spread(&mut rng, 10_000, 3000));
    assert_consistent(&db);
    for cutoff in ["2026-01-01T06:00:00.000Z", "2026-01-02T00:00:30.500Z"] {
        crate::audit::retention::sweep(&path, cutoff).expect("sweep");
        assert_consistent(&db);
    }
    // A restart: the same database opened again, and written to.
    let mut store = AuditStore::open(&path, tokio::sync::broadcast::channel(4).0).expect("reopen");
    store
        .write((0..300).map(|i| record(&mut rng, 20_000 + i)).collect())
        .expect("batch");
    assert_consistent(&db);
}

#[test]
fn an_upgrade_catches_up_in_slices_while_calls_and_retention_go_on() {
    let path = scratch("upgrade");
    let mut rng = Rng(42);
    let db = open(&path);
    // As a version before the derived tables left it.
    db.execute_batch(crate::audit::schema::SCHEMA)
        .expect("old schema");
    db.execute_batch("CREATE INDEX audit_policy_decision ON audit_records (policy_decision)")
        .expect("old index");
    for (record, at) in spread(&mut rng, 0, 3 * SLICE_ROWS as u64 + 17) {
        insert_plain(&db, &record, &at);
    }
    create(&db).expect("upgrade");
    assert_eq!(readiness(&db).expect("readiness"), Readiness::Records);
    let mut slices = 0;
    loop {
        // New calls arrive and the oldest records expire meanwhile.
        insert_at(&db, &spread(&mut rng, 100_000 + slices * 10, 10));
        crate::audit::retention::sweep(&path, "2026-01-01T02:00:00.000Z").expect("sweep");
        slices += 1;
        if catch_up(&db).expect("slice") == CatchUp::Done {
            break;
        }
    }
    assert!(slices >= 4, "indexed a slice at a time ({slices})");
    assert_eq!(readiness(&db).expect("readiness"), Readiness::Ready);
    assert_consistent(&db);
    let indexes: BTreeSet<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index'")
        .expect("indexes")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(indexes.contains("audit_tool_created"), "{indexes:?}");
    assert!(!indexes.contains("audit_policy_decision"), "{indexes:?}");
}
