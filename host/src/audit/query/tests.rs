//! The read side against real SQLite files filled with rows inserted
//! directly (as the writer would leave them).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::{json, Value};

use super::analytics::{Request, MAX_BUCKETS};
use super::params::{Bounds, MAX_TEXT};
use super::*;
use crate::audit::schema::COLUMNS;

// ---------------------------------------------------------------- helpers

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("helio-audit-query-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("audit.db")
}

/// A database with the audit table, in WAL mode like the writer's.
fn database(name: &str) -> (PathBuf, Connection) {
    let path = scratch(name);
    let db = Connection::open(&path).expect("open");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    crate::audit::schema::create(&db).expect("schema");
    (path, db)
}

/// Inserts a record: `fields` over sensible defaults.
fn insert(db: &Connection, fields: Value) {
    let mut row = json!({
        "timestamp": "2025-03-01T10:00:00.000Z",
        "tool_name": "echo",
        "tool_input": {},
        "policy_decision": "allow",
        "total_duration_ms": 1.5,
        "proxy_compute_ms": 0.5,
        "created_at": "2025-03-01T10:00:00.000Z",
    });
    for (key, value) in fields.as_object().expect("object") {
        row[key] = value.clone();
    }
    let object = row.as_object().expect("object");
    let names: Vec<&str> = object.keys().map(String::as_str).collect();
    let values: Vec<SqlValue> = object
        .iter()
        .map(|(column, value)| to_sql(column, value))
        .collect();
    let sql = format!(
        "INSERT INTO audit_records ({}) VALUES ({})",
        names.join(", "),
        vec!["?"; names.len()].join(", ")
    );
    db.execute(&sql, rusqlite::params_from_iter(values))
        .expect("insert");
    // As the writer does in the same transaction.
    let rowid = db.last_insert_rowid();
    crate::audit::derived::index_rows(db, rowid, rowid + 1).expect("index");
}

fn to_sql(column: &str, value: &Value) -> SqlValue {
    if crate::audit::schema::JSON_COLUMNS.contains(&column) && !value.is_null() {
        return SqlValue::Text(value.to_string());
    }
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) if n.is_i64() => SqlValue::Integer(n.as_i64().unwrap_or(0)),
        Value::Number(n) => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// `n` records a minute apart from 2025-03-01T00:00, ids `r0000`….
fn fill(db: &Connection, n: usize) {
    for i in 0..n {
        let at = crate::time::iso_utc(1_740_787_200_000 + i as u64 * 60_000);
        insert(
            db,
            json!({ "id": format!("r{i:04}"), "created_at": at, "timestamp": at }),
        );
    }
}

fn params(query: &str) -> Params {
    Params::from_query(Some(query)).expect("query")
}

fn filter(query: &str) -> Filter {
    let mut p = params(query);
    let f = Filter::take(&mut p).expect("filter");
    p.finish().expect("all taken");
    f
}

fn filter_error(query: &str) -> ParamError {
    let mut p = match Params::from_query(Some(query)) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match Filter::take(&mut p).and_then(|_| Page::take(&mut p, LIST_BOUNDS)) {
        Ok(_) => p.finish().expect_err(query),
        Err(e) => e,
    }
}

fn ids(records: &[Record]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("?"))
        .collect()
}

fn list(reader: &AuditReader, query: &str) -> Listing {
    let mut p = params(query);
    let f = Filter::take(&mut p).expect("filter");
    let page = Page::take(&mut p, LIST_BOUNDS).expect("page");
    let cursor = Cursor::take(&mut p, page).expect("cursor");
    reader.list(&f, page, cursor.as_ref()).expect("list")
}

// --------------------------------------------------------- parameter parsing

#[test]
fn every_filter_parameter_is_parsed() {
    let f = filter(
        "tool=send_&decision=deny&reason=rate_limited&blocked=true&session=s%201&agent=a1\
         &from=2025-01-31&to=2025-01-31T12:30&q=card&origin=mcp&record_kind=tool_call\
         &dry_run=false&destructive=1&upstream_status_min=200&upstream_status_max=499",
    );
    assert_eq!(
        f,
        Filter {
            tool: Some("send_".into()),
            decision: Some("deny".into()),
            reason: Some("rate_limited".into()),
            blocked: Some(true),
            session: Some("s 1".into()),
            agent: Some("a1".into()),
            from_ms: Some(1_738_281_600_000),
            to_ms: Some(1_738_326_659_999),
            text: Some("card".into()),
            origin: Some("mcp".into()),
            record_kind: Some("tool_call".into()),
            dry_run: Some(false),
            destructive: Some(true),
            status_min: Some(200),
            status_max: Some(499),
        }
    );
}

#[test]
fn empty_values_mean_not_given() {
    assert_eq!(filter("tool=&decision=&blocked=&from="), Filter::default());
    let mut p = params("limit=&offset=");
    assert_eq!(
        Page::take(&mut p, LIST_BOUNDS),
        Ok(Page {
            limit: 50,
            offset: 0
        })
    );
}

#[test]
fn bad_parameters_are_errors_that_name_them() {
    let long = "x".repeat(MAX_TEXT + 1);
    let cases: Vec<(String, &str, &str)> = vec![
        ("limit=0".into(), "limit", "from 1 to 1000"),
        ("limit=1001".into(), "limit", "from 1 to 1000, got \"1001\""),
        ("limit=abc".into(), "limit", "whole number"),
        ("limit=1e3".into(), "limit", "whole number"),
        ("limit=-5".into(), "limit", "whole number"),
        ("limit=%2B5".into(), "limit", "whole number"),
        (
            "limit=99999999999999999999999".into(),
            "limit",
            "whole number",
        ),
        ("offset=-1".into(), "offset", "whole number"),
        ("offset=1.5".into(), "offset", "whole number"),
        ("blocked=yes".into(), "blocked", "true or false"),
        ("dry_run=2".into(), "dry_run", "true or false"),
        ("destructive=TRUE".into(), "destructive", "true or false"),
        ("from=2025-13-01".into(), "from", "ISO-8601"),
        ("from=2025-02-29".into(), "from", "ISO-8601"),
        ("to=yesterday".into(), "to", "got \"yesterday\""),
        ("to=2025-01-01T24:00".into(), "to", "ISO-8601"),
        ("to=2025-01-01T10:00+25:00".into(), "to", "ISO-8601"),
        (
            "from=2025-02-01&to=2025-01-31".into(),
            "from",
            "is after to",
        ),
        (
            "upstream_status_min=99".into(),
            "upstream_status_min",
            "from 100 to 599",
        ),
        (
            "upstream_status_max=600".into(),
            "upstream_status_max",
            "from 100 to 599",
        ),
        (
            "upstream_status_min=500&upstream_status_max=400".into(),
            "upstream_status_min",
            "greater than",
        ),
        ("decision=a%20b".into(), "decision", "not a valid value"),
        ("reason=%3Cscript%3E".into(), "reason", "not a valid value"),
        (
            format!("record_kind={}", "k".repeat(129)),
            "record_kind",
            "at most 128",
        ),
        (format!("tool={long}"), "tool", "longer than 1024"),
        (format!("q={long}"), "q", "longer than 1024"),
        (
            "tol=send".into(),
            "tol",
            "unknown parameter; accepted: tool, decision",
        ),
        ("tool=a&tool=b".into(), "tool", "given more than once"),
    ];
    for (query, parameter, fragment) in cases {
        let error = filter_error(&query);
        assert_eq!(error.parameter, parameter, "{query}: {error}");
        assert!(
            error.to_string().contains(fragment),
            "{query}: {error:?} lacks {fragment:?}"
        );
    }
}

#[test]
fn export_and_analytics_parameters() {
    let mut p = params("format=csv&limit=100000&bucket=minute&top=3");
    assert_eq!(ExportFormat::take(&mut p), Ok(ExportFormat::Csv));
    assert_eq!(take_limit(&mut p, EXPORT_BOUNDS), Ok(100_000));
    assert_eq!(
        Request::take(&mut p),
        Ok(Request {
            bucket: Bucket::Minute,
            top: 3
        })
    );
    assert_eq!(p.finish(), Ok(()));
    let defaults = Request::take(&mut params("")).expect("defaults");
    assert_eq!((defaults.bucket, defaults.top), (Bucket::Hour, 10));
    assert_eq!(ExportFormat::take(&mut params("")), Ok(ExportFormat::Json));
    assert_eq!(take_limit(&mut params(""), EXPORT_BOUNDS), Ok(10_000));
    let bad = [
        (
            ExportFormat::take(&mut params("format=xml")).err(),
            "format",
        ),
        (
            take_limit(&mut params("limit=100001"), EXPORT_BOUNDS).err(),
            "limit",
        ),
        (Bucket::take(&mut params("bucket=day")).err(), "bucket"),
        (Request::take(&mut params("top=0")).err(), "top"),
        (Request::take(&mut params("top=101")).err(), "top"),
    ];
    for (error, parameter) in bad {
        assert_eq!(error.map(|e| e.parameter).as_deref(), Some(parameter));
    }
}

#[test]
fn routes_without_parameters_say_so() {
    let error = params("x=1").finish().expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "x: unknown parameter; this route takes none"
    );
}

#[test]
fn errors_name_command_line_flags() {
    let error = ParamError::new("upstream_status_min", "is wrong").as_flag();
    assert_eq!(error.to_string(), "--upstream-status-min: is wrong");
}

#[test]
fn pagination_bounds() {
    let bounds = |q: &str, b: Bounds| Page::take(&mut params(q), b);
    assert_eq!(bounds("limit=1", LIST_BOUNDS).map(|p| p.limit), Ok(1));
    assert_eq!(bounds("limit=1000", LIST_BOUNDS).map(|p| p.limit), Ok(1000));
    assert!(bounds("limit=1001", LIST_BOUNDS).is_err());
    assert_eq!(bounds("limit=200", FEED_BOUNDS).map(|p| p.limit), Ok(200));
    assert!(bounds("limit=201", FEED_BOUNDS).is_err());
    assert_eq!(
        bounds("offset=9223372036854775807", LIST_BOUNDS).map(|p| p.offset),
        Ok(i64::MAX as u64)
    );
    assert!(bounds("offset=9223372036854775808", LIST_BOUNDS).is_err());
}

// ---------------------------------------------------------------- times

#[test]
fn times_name_spans_and_normalise_to_the_stored_form() {
    let span = |t: &str| {
        when::parse(t).map(|s| (when::stored_form(s.first_ms), when::stored_form(s.last_ms)))
    };
    let pair = |a: &str, b: &str| Ok((a.to_owned(), b.to_owned()));
    assert_eq!(
        span("2024-02-29"),
        pair("2024-02-29T00:00:00.000Z", "2024-02-29T23:59:59.999Z")
    );
    assert_eq!(
        span("2025-01-31T09:30"),
        pair("2025-01-31T09:30:00.000Z", "2025-01-31T09:30:59.999Z")
    );
    assert_eq!(
        span("2025-01-31t09:30:15z"),
        pair("2025-01-31T09:30:15.000Z", "2025-01-31T09:30:15.999Z")
    );
    assert_eq!(
        span("2025-01-31T09:30:15.2"),
        pair("2025-01-31T09:30:15.200Z", "2025-01-31T09:30:15.299Z")
    );
    assert_eq!(
        span("2025-01-31T09:30:15.123456Z"),
        pair("2025-01-31T09:30:15.123Z", "2025-01-31T09:30:15.123Z")
    );
    // Offsets, including a `+` that arrived as a space from an unencoded URL.
    for zoned in [
        "2025-01-31T11:30:00+02:00",
        "2025-01-31T11:30:00 02:00",
        "2025-01-31T11:30:00+0200",
    ] {
        assert_eq!(
            span(zoned).map(|s| s.0),
            Ok("2025-01-31T09:30:00.000Z".into()),
            "{zoned}"
        );
    }
    assert_eq!(
        span("2025-01-01T00:30:00-01:00").map(|s| s.0),
        Ok("2025-01-01T01:30:00.000Z".into())
    );
    // Before the epoch clamps to it; a date-time crossing into year 10000 stays within 9999.
    assert_eq!(
        span("1900-01-01").map(|s| s.0),
        Ok("1970-01-01T00:00:00.000Z".into())
    );
    assert_eq!(
        span("9999-12-31T23:59-01:00").map(|s| s.1),
        Ok("9999-12-31T23:59:59.999Z".into())
    );
    for bad in [
        "",
        "2025",
        "2025-1-31",
        "2025-01-31T",
        "2025-01-31T9:30",
        "2025-01-31T09:60",
        "2025-01-31T09:30:61",
        "2025-01-31T09:30:00.",
        "2025-01-31T09:30:00.1234567890",
        "2025-01-31T09:30:00+2",
        "2025-01-31T09:30:00Zjunk",
        "2025-01-31 junk",
        "2023-02-29",
        "２０２５-01-31",
        "1738281600000",
    ] {
        assert!(when::parse(bad).is_err(), "{bad:?} accepted");
    }
}

// ---------------------------------------------------------------- listing

#[test]
fn pages_are_newest_first_with_totals() {
    let (path, db) = database("pages");
    fill(&db, 120);
    let reader = AuditReader::new(&path);
    let page = list(&reader, "");
    assert_eq!(
        (page.total, page.limit, page.offset, page.data.len()),
        (120, 50, 0, 50)
    );
    assert_eq!(ids(&page.data)[..2], ["r0119", "r0118"]);
    let last = list(&reader, "limit=50&offset=100");
    assert_eq!(last.data.len(), 20);
    assert_eq!(ids(&last.data).last(), Some(&"r0000"));
    let beyond = list(&reader, "offset=500");
    assert_eq!((beyond.total, beyond.data.len()), (120, 0));
    assert_eq!(
        list(&reader, "limit=1&offset=3").to_json()["data"][0]["id"],
        json!("r0116")
    );
}

#[test]
fn records_read_back_with_json_and_booleans() {
    let (path, db) = database("shape");
    insert(
        &db,
        json!({
            "id": "one",
            "tool_input": {"to": "a@b.c", "n": [1, 2]},
            "evidence_chain": {"blocked": true},
            "flagged_destructive": true,
            "dry_run": false,
            "response_truncated": true,
            "upstream_http_status": 200,
            "upstream_latency_ms": 12.25,
            "plugins": ["rules"],
            "metadata": null,
        }),
    );
    // JSON text that is not JSON still reads, as a string.
    insert(&db, json!({ "id": "two" }));
    db.execute(
        "UPDATE audit_records SET tool_input = '{broken' WHERE id = 'two'",
        [],
    )
    .expect("update");
    let reader = AuditReader::new(&path);
    let one = reader.get("one").expect("get").expect("found");
    assert_eq!(one.len(), COLUMNS.len());
    assert_eq!(one["tool_input"], json!({"to": "a@b.c", "n": [1, 2]}));
    assert_eq!(one["evidence_chain"], json!({"blocked": true}));
    assert_eq!(one["plugins"], json!(["rules"]));
    assert_eq!(
        (
            &one["flagged_destructive"],
            &one["dry_run"],
            &one["response_truncated"]
        ),
        (&json!(true), &json!(false), &json!(true))
    );
    assert_eq!(
        (&one["upstream_http_status"], &one["upstream_latency_ms"]),
        (&json!(200), &json!(12.25))
    );
    assert_eq!(
        (&one["metadata"], &one["session_id"]),
        (&Value::Null, &Value::Null)
    );
    let two = reader.get("two").expect("get").expect("found");
    assert_eq!(two["tool_input"], json!("{broken"));
    assert_eq!(reader.get("three").expect("get"), None);
}

#[test]
fn every_filter_selects_what_it_says() {
    let (path, db) = database("filters");
    let rows = [
        json!({"id": "a", "tool_name": "send_email", "session_id": "s1", "created_at": "2025-03-01T10:00:00.000Z",
               "upstream_http_status": 200, "tool_input": {"to": "ops@example.com"}, "agent_id": "bot"}),
        json!({"id": "b", "tool_name": "sendXemail", "policy_decision": "deny", "block_reason": "policy_denied",
               "matched_rule": "no-mail", "created_at": "2025-03-01T10:00:00.001Z", "flagged_destructive": true}),
        json!({"id": "c", "tool_name": "read_file", "policy_decision": "rate_limit", "block_reason": "rate_limited",
               "session_id": "s2", "created_at": "2025-03-02T00:00:00.000Z", "origin": "adapter-slack"}),
        json!({"id": "d", "tool_name": "pay", "policy_decision": "dry_run", "dry_run": true,
               "upstream_error": "Upstream Timeout 100%", "created_at": "2025-03-02T23:59:59.999Z",
               "upstream_http_status": 504, "record_kind": "drift_event"}),
    ];
    for row in rows {
        insert(&db, row);
    }
    let reader = AuditReader::new(&path);
    let cases = [
        ("", vec!["d", "c", "b", "a"]),
        // Substring, with `_` taken literally (not LIKE's any-character).
        ("tool=send_", vec!["a"]),
        ("tool=SEND", vec!["b", "a"]),
        ("decision=deny", vec!["b"]),
        ("reason=rate_limited", vec!["c"]),
        ("blocked=true", vec!["c", "b"]),
        ("blocked=false", vec!["d", "a"]),
        ("session=s1", vec!["a"]),
        ("session=s", vec![]),
        ("agent=bot", vec!["a"]),
        // Inclusive at both ends, to the millisecond.
        ("from=2025-03-01T10:00:00.001Z", vec!["d", "c", "b"]),
        ("to=2025-03-01T10:00:00.000Z", vec!["a"]),
        ("to=2025-03-01T10:00:00Z", vec!["b", "a"]),
        ("from=2025-03-02&to=2025-03-02", vec!["d", "c"]),
        ("from=2025-03-02T01:00:00%2B01:00", vec!["d", "c"]),
        ("q=ops@example", vec!["a"]),
        ("q=no-mail", vec!["b"]),
        ("q=rate_lim*", vec!["c"]),
        ("q=rate_lim", vec![]),
        ("q=timeout%20100%25", vec!["d"]),
        // Words and the starts of words, in any order and case.
        ("q=100%25%25", vec!["d"]),
        ("q=send*", vec!["b", "a"]),
        ("q=send", vec!["a"]),
        ("q=mail", vec!["b"]),
        ("q=email%20SEND", vec!["a"]),
        ("q=s2", vec!["c"]),
        ("q=bot", vec!["a"]),
        ("q=fund", vec![]),
        ("origin=slack", vec!["c"]),
        ("origin=mcp", vec!["d", "b", "a"]),
        ("record_kind=drift_event", vec!["d"]),
        ("dry_run=true", vec!["d"]),
        ("destructive=true", vec!["b"]),
        ("destructive=false", vec!["d", "c", "a"]),
        ("upstream_status_min=500", vec!["d"]),
        ("upstream_status_max=299", vec!["a"]),
        (
            "upstream_status_min=200&upstream_status_max=504",
            vec!["d", "a"],
        ),
        ("tool=send&decision=deny&destructive=true", vec!["b"]),
    ];
    for (query, want) in &cases {
        let got = list(&reader, query);
        assert_eq!(ids(&got.data), *want, "{query}");
        assert_eq!(got.total, want.len() as u64, "{query}");
        assert!(got.total_exact, "{query}");
        assert_eq!(
            reader.count(&filter(query)).expect("count"),
            (want.len() as u64, true)
        );
    }
    // The same from the records alone, as while an upgrade catches up
    // (where a search still matches substrings).
    db.execute(
        "UPDATE audit_meta SET value = 1 WHERE key = 'pending_below'",
        [],
    )
    .expect("mark pending");
    for (query, want) in cases.iter().filter(|(q, _)| !q.starts_with("q=")) {
        let got = list(&reader, query);
        assert_eq!(ids(&got.data), *want, "{query} (from the records)");
        assert_eq!(got.total, want.len() as u64, "{query} (from the records)");
    }
}

#[test]
fn a_missing_file_or_table_reads_as_empty() {
    let missing = AuditReader::new(scratch("missing"));
    let bare_path = scratch("bare");
    Connection::open(&bare_path)
        .and_then(|db| db.execute_batch("CREATE TABLE other (x)"))
        .expect("bare database");
    let bare = AuditReader::new(&bare_path);
    for reader in [missing, bare] {
        let page = list(&reader, "");
        assert_eq!((page.total, page.data.len()), (0, 0));
        assert_eq!(reader.get("x").expect("get"), None);
        assert_eq!(reader.count(&Filter::default()).expect("count"), (0, true));
        let summary = reader
            .analytics(
                &Filter::default(),
                Request {
                    bucket: Bucket::Hour,
                    top: 10,
                },
                7_200_000,
            )
            .expect("analytics");
        assert_eq!((summary.total, summary.series.len()), (0, 3));
        assert_eq!(
            ExportCursor::new(Arc::new(reader), &Filter::default(), 10).count(),
            0
        );
    }
}

#[test]
fn readers_see_committed_rows_while_the_writer_holds_a_transaction() {
    let (path, mut db) = database("concurrent");
    fill(&db, 3);
    let reader = AuditReader::new(&path);
    let tx = db.transaction().expect("begin");
    tx.execute(
        "INSERT INTO audit_records (id, timestamp, tool_name, tool_input, policy_decision,
         total_duration_ms, proxy_compute_ms, created_at)
         VALUES ('new', 't', 'x', '{}', 'allow', 1, 1, '2030-01-01T00:00:00.000Z')",
        [],
    )
    .expect("insert");
    // The writer's uncommitted row is invisible and does not block the read.
    assert_eq!(list(&reader, "").total, 3);
    tx.commit().expect("commit");
    assert_eq!(ids(&list(&reader, "limit=1").data), ["new"]);
}

// ---------------------------------------------------------------- export

fn export_all(reader: &Arc<AuditReader>, query: &str, limit: u64) -> Vec<Record> {
    let cursor = ExportCursor::new(reader.clone(), &filter(query), limit);
    let chunks: Vec<Vec<Record>> = cursor.collect::<Result<_, _>>().expect("export");
    assert!(chunks
        .iter()
        .all(|c| !c.is_empty() && c.len() as u64 <= CHUNK_ROWS));
    chunks.into_iter().flatten().collect()
}

#[test]
fn exports_are_oldest_first_across_chunks_and_ties() {
    let (path, db) = database("export");
    fill(&db, 1203);
    // A batch written at once shares one created_at: the order written
    // breaks the tie.
    for id in ["t3", "t1", "t2"] {
        insert(
            &db,
            json!({ "id": id, "created_at": "2025-03-01T00:00:30.000Z" }),
        );
    }
    let reader = Arc::new(AuditReader::new(&path));
    let all = export_all(&reader, "", 100_000);
    assert_eq!(all.len(), 1206);
    assert_eq!(ids(&all)[..5], ["r0000", "t3", "t1", "t2", "r0001"]);
    assert_eq!(ids(&all).last(), Some(&"r1202"));
    let mut seen: Vec<&str> = ids(&all);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 1206, "no record twice");
    assert_eq!(export_all(&reader, "", 1001).len(), 1001);
    assert_eq!(export_all(&reader, "", 500).len(), 500);
    let window = export_all(
        &reader,
        "from=2025-03-01T01:00&to=2025-03-01T01:59",
        100_000,
    );
    assert_eq!((window.len(), ids(&window)[0]), (60, "r0060"));
}

#[test]
fn json_exports_parse_back() {
    let (path, db) = database("json");
    fill(&db, 3);
    let reader = Arc::new(AuditReader::new(&path));
    let records = export_all(&reader, "", 10);
    let mut out = ExportFormat::Json.start(COLUMNS);
    ExportFormat::Json.write(&mut out, COLUMNS, &records[..2], true);
    ExportFormat::Json.write(&mut out, COLUMNS, &records[2..], false);
    out.extend(ExportFormat::Json.end(true));
    let parsed: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(3));
    assert_eq!(parsed[2]["id"], json!("r0002"));
    let mut empty = ExportFormat::Json.start(COLUMNS);
    empty.extend(ExportFormat::Json.end(false));
    assert_eq!(
        serde_json::from_slice::<Value>(&empty).expect("json"),
        json!([])
    );
}

// ---------------------------------------------------------------- CSV

fn csv_line(columns: &[&str], record: Value) -> String {
    let mut out = Vec::new();
    let record = record.as_object().cloned().unwrap_or_default();
    csv::write_records(&mut out, columns, rows::kind, &[record]);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn csv_quotes_per_rfc_4180() {
    let columns = ["id", "tool_name", "matched_rule", "block_reason"];
    let line = csv_line(
        &columns,
        json!({"id": "plain", "tool_name": "a,b", "matched_rule": "say \"hi\"", "block_reason": "two\nlines"}),
    );
    assert_eq!(line, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
    assert_eq!(
        csv_line(&["id"], json!({"id": "cr\rhere"})),
        "\"cr\rhere\"\r\n"
    );
    assert_eq!(
        csv_line(&["id"], json!({"id": "ünïcødé ✓"})),
        "ünïcødé ✓\r\n"
    );
}

#[test]
fn csv_neutralises_formulas_in_text_only() {
    for (text, want) in [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "\"'\rx\""),
        (
            "=HYPERLINK(\"http://x\",\"y\")",
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
        ),
        ("a=1", "a=1"),
    ] {
        assert_eq!(
            csv_line(&["tool_name"], json!({ "tool_name": text })),
            format!("{want}\r\n"),
            "{text:?}"
        );
    }
    // Numbers are numbers, not formulas; JSON columns are text.
    assert_eq!(
        csv_line(
            &["upstream_latency_ms", "matched_rule_index", "tool_input"],
            json!({
                "upstream_latency_ms": -1.5, "matched_rule_index": 3, "tool_input": -1
            })
        ),
        "-1.5,3,'-1\r\n"
    );
}

#[test]
fn csv_cells_nulls_booleans_and_json() {
    let line = csv_line(
        &[
            "session_id",
            "dry_run",
            "flagged_destructive",
            "tool_input",
            "plugins",
            "upstream_http_status",
        ],
        json!({
            "session_id": null, "dry_run": true, "flagged_destructive": false,
            "tool_input": {"a": 1, "b": "x,y"}, "plugins": ["rules", "budgets"], "upstream_http_status": 200
        }),
    );
    assert_eq!(
        line,
        ",true,false,\"{\"\"a\"\":1,\"\"b\"\":\"\"x,y\"\"}\",\"[\"\"rules\"\",\"\"budgets\"\"]\",200\r\n"
    );
}

#[test]
fn csv_exports_have_every_column_in_order() {
    let (path, db) = database("csv");
    insert(
        &db,
        json!({ "id": "only", "tool_input": {"q": "=cmd|' /C calc'!A0"} }),
    );
    let reader = Arc::new(AuditReader::new(&path));
    let records = export_all(&reader, "", 10);
    let mut out = ExportFormat::Csv.start(COLUMNS);
    ExportFormat::Csv.write(&mut out, COLUMNS, &records, true);
    out.extend(ExportFormat::Csv.end(true));
    let text = String::from_utf8(out).expect("utf-8");
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
    let row = lines.next().expect("row");
    assert!(row.starts_with("only,2025-03-01T10:00:00.000Z,,,echo,\"{\"\"q\"\":\"\"=cmd|' /C calc'!A0\"\"}\",allow,"), "{row}");
    assert!(row.ends_with(",mcp,,,,,false"), "{row}");
    assert_eq!((lines.next(), lines.next()), (Some(""), None));
}

// ---------------------------------------------------------------- analytics

#[test]
fn analytics_buckets_counts_and_ranks() {
    let (path, db) = database("analytics");
    let rows = [
        (
            "a",
            "2025-03-01T10:00:00.000Z",
            "send",
            "allow",
            None,
            false,
            "tool_call",
        ),
        (
            "b",
            "2025-03-01T10:00:59.999Z",
            "send",
            "deny",
            Some("policy_denied"),
            false,
            "tool_call",
        ),
        (
            "c",
            "2025-03-01T10:01:00.000Z",
            "read",
            "allow",
            None,
            false,
            "tool_call",
        ),
        (
            "d",
            "2025-03-01T10:59:00.000Z",
            "pay",
            "dry_run",
            None,
            true,
            "tool_call",
        ),
        (
            "e",
            "2025-03-01T11:00:00.000Z",
            "<nameless>",
            "rejected",
            Some("missing_tool_name"),
            false,
            "tool_call",
        ),
        (
            "f",
            "2025-03-01T12:30:00.000Z",
            "send",
            "rate_limit",
            Some("rate_limited"),
            false,
            "tool_call",
        ),
        (
            "g",
            "2025-03-01T12:31:00.000Z",
            "read",
            "tool_drift",
            None,
            false,
            "drift_event",
        ),
        (
            "h",
            "2025-03-02T00:00:00.000Z",
            "send",
            "allow",
            None,
            false,
            "tool_call",
        ),
    ];
    for (id, at, tool, decision, reason, dry_run, kind) in rows {
        insert(
            &db,
            json!({
                "id": id, "created_at": at, "tool_name": tool, "policy_decision": decision,
                "block_reason": reason, "dry_run": dry_run, "record_kind": kind,
            }),
        );
    }
    let reader = AuditReader::new(&path);
    let range = filter("from=2025-03-01T10:00&to=2025-03-01T12:59");
    let hourly = reader
        .analytics(
            &range,
            Request {
                bucket: Bucket::Hour,
                top: 2,
            },
            0,
        )
        .expect("analytics");
    assert_eq!(
        (
            hourly.total,
            hourly.allowed_total,
            hourly.blocked_total,
            hourly.dry_run_total
        ),
        (7, 2, 3, 1)
    );
    let series: Vec<(&str, u64)> = hourly
        .series
        .iter()
        .map(|(b, n)| (b.as_str(), *n))
        .collect();
    assert_eq!(
        series,
        [
            ("2025-03-01T10:00:00.000Z", 4),
            ("2025-03-01T11:00:00.000Z", 1),
            ("2025-03-01T12:00:00.000Z", 2),
        ]
    );
    assert_eq!(hourly.by_decision[0], ("allow".to_owned(), 2));
    assert_eq!(hourly.by_decision.len(), 6);
    assert_eq!(
        hourly.by_block_reason,
        [
            ("missing_tool_name".to_owned(), 1),
            ("policy_denied".to_owned(), 1),
            ("rate_limited".to_owned(), 1)
        ]
    );
    // Tool calls only (no drift events or nameless rejections), top 2.
    assert_eq!(
        hourly.top_tools,
        [("send".to_owned(), 3), ("pay".to_owned(), 1)]
    );

    let minutes = reader
        .analytics(
            &filter("from=2025-03-01T10:00&to=2025-03-01T10:02:30"),
            Request {
                bucket: Bucket::Minute,
                top: 10,
            },
            0,
        )
        .expect("analytics");
    let counts: Vec<u64> = minutes.series.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [2, 1, 0]);
    let json = minutes.to_json();
    assert_eq!(
        json["series"][1],
        json!({"bucket": "2025-03-01T10:01:00.000Z", "count": 1})
    );
    assert_eq!(
        (&json["bucket"], &json["from"]),
        (&json!("minute"), &json!("2025-03-01T10:00:00.000Z"))
    );
    assert_eq!(
        json["top_tools"][0],
        json!({"tool_name": "send", "count": 2})
    );
}

#[test]
fn analytics_defaults_to_the_last_day_and_bounds_its_series() {
    let now = 1_740_830_400_000; // 2025-03-01T12:00:00Z
    let reader = AuditReader::new(scratch("analytics-empty"));
    let day = reader
        .analytics(
            &Filter::default(),
            Request {
                bucket: Bucket::Hour,
                top: 10,
            },
            now,
        )
        .expect("analytics");
    assert_eq!(day.to_json()["from"], json!("2025-02-28T12:00:00.000Z"));
    assert_eq!(day.series.len(), 25);
    let week_of_minutes = filter("from=2025-03-01&to=2025-03-07");
    assert!(reader
        .analytics(
            &week_of_minutes,
            Request {
                bucket: Bucket::Minute,
                top: 10
            },
            now
        )
        .is_ok());
    let too_long = filter("from=2025-03-01&to=2025-03-08T00:00");
    match reader.analytics(
        &too_long,
        Request {
            bucket: Bucket::Minute,
            top: 10,
        },
        now,
    ) {
        Err(QueryError::Param(e)) => {
            assert_eq!(e.parameter, "bucket");
            assert!(e.problem.contains(&MAX_BUCKETS.to_string()), "{e}");
        }
        other => panic!("expected a bad bucket, got {other:?}"),
    }
}

// ---------------------------------------------------------------- budget ledger

#[test]
fn a_budgets_ledger_is_the_charges_of_forwarded_calls_newest_first() {
    let (path, db) = database("ledger");
    let chain = |entries: Value| json!({ "budgets": entries });
    let charge = |name: &str, bucket: &str, amount: Value, allowed: bool| {
        json!({"name": name, "stage": "budgets", "bucket": bucket, "amount": amount,
               "allowed": allowed, "spent": 1, "limit": 100, "window_ms": null, "reset_at_ms": null})
    };
    insert(
        &db,
        json!({"id": "a", "tool_name": "pay", "created_at": "2025-03-01T10:00:01.000Z",
        "timestamp": "2025-03-01T10:00:00.500Z",
        "evidence_chain": chain(json!([charge("pay", "global", json!(10.50), true),
                                       charge("payroll", "global", json!(99), true)]))}),
    );
    insert(
        &db,
        json!({"id": "b", "tool_name": "pay", "created_at": "2025-03-01T10:00:02.000Z",
        "evidence_chain": chain(json!([charge("pay", "session:s-1", json!(0.1), false)]))}),
    );
    // Not charges: a blocked call, a dry run, a record without budgets.
    insert(
        &db,
        json!({"id": "c", "created_at": "2025-03-01T10:00:03.000Z",
        "block_reason": "budget_exceeded", "policy_decision": "deny",
        "evidence_chain": chain(json!([charge("pay", "global", json!(5), false)]))}),
    );
    insert(
        &db,
        json!({"id": "d", "created_at": "2025-03-01T10:00:04.000Z", "dry_run": true,
        "evidence_chain": chain(json!([charge("pay", "global", json!(5), true)]))}),
    );
    insert(
        &db,
        json!({"id": "e", "created_at": "2025-03-01T10:00:05.000Z"}),
    );
    let reader = AuditReader::new(&path);
    let all = Page {
        limit: 10,
        offset: 0,
    };
    let (rows, total) = reader
        .budget_ledger("pay", Some("USD"), all)
        .expect("ledger");
    assert_eq!(total, 2);
    assert_eq!(
        Value::Object(rows[0].clone()),
        json!({"id": "b:0", "budget_name": "pay", "bucket_key": "session:s-1",
               "kind": "approved_overage", "amount": 0.1, "currency": "USD", "tool_name": "pay",
               "origin": "mcp", "audit_record_id": "b", "timestamp": "2025-03-01T10:00:00.000Z",
               "timestamp_ms": 1_740_823_200_000_i64, "created_at": "2025-03-01T10:00:02.000Z"})
    );
    assert_eq!(rows[1]["id"], "a:0");
    assert_eq!(rows[1]["kind"], "spend");
    assert_eq!(rows[1]["amount"], json!(10.5));
    assert_eq!(rows[1]["timestamp_ms"], 1_740_823_200_500_i64);
    let second = Page {
        limit: 1,
        offset: 1,
    };
    let (page, total) = reader.budget_ledger("pay", None, second).expect("page");
    assert_eq!((page.len(), total), (1, 2));
    assert_eq!(page[0]["id"], "a:0");
    assert_eq!(page[0]["currency"], Value::Null);
    let (rows, total) = reader.budget_ledger("payroll", None, all).expect("other");
    assert_eq!((rows.len(), total), (1, 1));
    let (rows, total) = reader.budget_ledger("pa", None, all).expect("prefix");
    assert_eq!(
        (rows.len(), total),
        (0, 0),
        "names match whole, not by prefix"
    );
    for bad in ["", "a:b", "x%", &"n".repeat(65)] {
        assert!(
            matches!(
                reader.budget_ledger(bad, None, all),
                Err(QueryError::Param(_))
            ),
            "{bad:?}"
        );
    }
}

// ------------------------------------------------ rollups against records

use crate::audit::testing::Rng;

/// `n` records over about three days, several per minute and some sharing
/// an instant, with a mix of tools, decisions and origins.
fn varied(db: &Connection, n: u64, rng: &mut Rng) {
    let mut at = 1_740_787_200_000u64;
    for i in 0..n {
        // Mostly seconds apart, sometimes the same instant, sometimes hours.
        at += match rng.below(20) {
            0 => 0,
            1 => 3_600_000 + rng.below(3_600_000),
            _ => rng.below(40_000),
        };
        let stamp = crate::time::iso_utc(at);
        let decision =
            ["allow", "allow", "allow", "deny", "rate_limit", "dry_run"][rng.below(6) as usize];
        let blocked = matches!(decision, "deny" | "rate_limit");
        let tool = ["send_email", "read_file", "stripe.refund", "db_delete"][rng.below(4) as usize];
        insert(
            db,
            json!({
                "id": format!("v{i:05}"),
                "created_at": stamp,
                "timestamp": stamp,
                "tool_name": tool,
                "policy_decision": decision,
                "block_reason": if blocked { json!(format!("{decision}ed")) } else { Value::Null },
                "dry_run": decision == "dry_run",
                "origin": if rng.below(4) == 0 { "adapter-x" } else { "mcp" },
                "approval_status": if rng.below(10) == 0 { json!("approved") } else { Value::Null },
                "record_kind": if rng.below(30) == 0 { "drift_event" } else { "tool_call" },
            }),
        );
    }
}

/// Sets whether readers may use the derived tables (as during an upgrade's
/// catch-up, they may not).
fn derived_ready(db: &Connection, ready: bool) {
    db.execute(
        "UPDATE audit_meta SET value = ?1 WHERE key = 'pending_below'",
        [i64::from(!ready)],
    )
    .expect("mark");
}

#[test]
fn rollups_answer_exactly_as_the_records_do() {
    let (path, db) = database("rollups");
    let mut rng = Rng(0x0dd5);
    varied(&db, 4000, &mut rng);
    let reader = AuditReader::new(&path);
    let first_ms = 1_740_787_200_000i64;
    for round in 0..60 {
        // A random range (often cutting minutes and hours), filters the
        // rollups answer, and an offset.
        let from = first_ms + rng.below(3 * 86_400_000) as i64;
        let to = from + rng.below(2 * 86_400_000) as i64;
        let mut query = vec![];
        if rng.below(3) > 0 {
            query.push(format!("from={}", crate::time::iso_utc(from as u64)));
        }
        if rng.below(3) > 0 {
            query.push(format!("to={}", crate::time::iso_utc(to as u64)));
        }
        for (name, values) in [
            ("tool", &["send", "READ", "e", "nothing"][..]),
            ("decision", &["allow", "deny"][..]),
            ("blocked", &["true", "false"][..]),
            ("origin", &["adapter", "mcp"][..]),
            ("dry_run", &["true", "false"][..]),
            ("record_kind", &["drift_event"][..]),
        ] {
            if rng.below(4) == 0 {
                query.push(format!(
                    "{name}={}",
                    values[rng.below(values.len() as u64) as usize]
                ));
            }
        }
        let total = {
            derived_ready(&db, false);
            list(&reader, &query.join("&")).total
        };
        query.push(format!("offset={}", rng.below(total + 5)));
        let query = query.join("&");
        derived_ready(&db, false);
        let from_records = list(&reader, &query);
        let summary_records = analytics(&reader, &query.replace("offset=", "top="), round);
        derived_ready(&db, true);
        let from_rollups = list(&reader, &query);
        let summary_rollups = analytics(&reader, &query.replace("offset=", "top="), round);
        assert_eq!(ids(&from_rollups.data), ids(&from_records.data), "{query}");
        assert_eq!(from_rollups.total, from_records.total, "{query}");
        assert_eq!(summary_rollups, summary_records, "{query}");
    }
}

/// Analytics for `query` (its `top` kept to 1..=100), by hour or minute.
fn analytics(reader: &AuditReader, query: &str, round: u64) -> Option<Value> {
    let query: String = query
        .split('&')
        .filter(|p| !p.starts_with("top="))
        .collect::<Vec<_>>()
        .join("&");
    let f = filter(&query);
    let bucket = if round.is_multiple_of(2) {
        Bucket::Hour
    } else {
        Bucket::Minute
    };
    reader
        .analytics(&f, Request { bucket, top: 5 }, 1_741_046_400_000)
        .ok()
        .map(|a| a.to_json())
}

#[test]
fn cursors_page_without_duplicates_or_gaps_while_records_are_written() {
    let (path, db) = database("cursor");
    let mut rng = Rng(7);
    varied(&db, 1500, &mut rng);
    let before: Vec<String> = {
        let reader = Arc::new(AuditReader::new(&path));
        export_all(&reader, "", 100_000)
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let db = Connection::open(&path).expect("writer");
            db.busy_timeout(std::time::Duration::from_secs(5))
                .expect("busy");
            for i in 0..300 {
                // Newer than everything: the writer never stamps earlier.
                let at = crate::time::iso_utc(1_750_000_000_000 + i * 10);
                insert(&db, json!({ "id": format!("new{i:04}"), "created_at": at }));
            }
        })
    };
    let reader = AuditReader::new(&path);
    let mut seen = Vec::new();
    let mut query = "limit=37".to_owned();
    loop {
        let page = list(&reader, &query);
        seen.extend(ids(&page.data).into_iter().map(str::to_owned));
        match page.next_cursor {
            Some(cursor) => query = format!("limit=37&cursor={}", cursor.to_text()),
            None => break,
        }
    }
    writer.join().expect("writer thread");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice");
    let missing: Vec<&String> = before.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "no record skipped: {missing:?}");
    // Newest first throughout.
    let order: Vec<&String> = before.iter().rev().collect();
    let old_seen: Vec<&String> = seen.iter().filter(|id| id.starts_with('v')).collect();
    assert_eq!(old_seen, order);
}

#[test]
fn cursors_are_checked() {
    let (path, db) = database("cursor-errors");
    fill(&db, 3);
    let reader = AuditReader::new(&path);
    let page = list(&reader, "limit=2");
    let cursor = page.next_cursor.expect("a full page has a next cursor");
    let next = list(&reader, &format!("limit=2&cursor={}", cursor.to_text()));
    assert_eq!((ids(&next.data), next.next_cursor), (vec!["r0000"], None));
    for bad in [
        "x",
        "2025-03-01~1",
        "2025-03-01T00:00:00.000Z~-1",
        "2025-03-01T00:00:00.000Z~",
    ] {
        let mut p = params(&format!("cursor={bad}"));
        let page = Page::take(&mut p, LIST_BOUNDS).expect("page");
        let error = Cursor::take(&mut p, page).expect_err(bad);
        assert_eq!(error.parameter, "cursor", "{bad}");
    }
    let mut p = params(&format!("offset=2&cursor={}", cursor.to_text()));
    let page = Page::take(&mut p, LIST_BOUNDS).expect("page");
    assert!(Cursor::take(&mut p, page)
        .expect_err("both")
        .problem
        .contains("offset"));
}

#[test]
fn searches_in_any_script_are_answered_or_refused_by_name() {
    let (path, db) = database("scripts");
    insert(
        &db,
        json!({ "id": "hi", "tool_input": { "note": "कार 〈Ⓐbc〉 naïve" } }),
    );
    let reader = AuditReader::new(&path);
    for q in ["कार", "naïve", "naive", "Ⓐbc", "aⒶb", "〈", "k̈a"] {
        let mut p = Params::from_query(Some(&format!("q={}", url_encode(q)))).expect("query");
        match Filter::take(&mut p) {
            Ok(f) => match reader.list(
                &f,
                Page {
                    limit: 10,
                    offset: 0,
                },
                None,
            ) {
                Ok(_) => {}
                Err(QueryError::Param(e)) => assert_eq!(e.parameter, "q", "{q}"),
                Err(other) => panic!("{q}: {other}"),
            },
            Err(e) => assert_eq!(e.parameter, "q", "{q}"),
        }
    }
    assert_eq!(ids(&list(&reader, "q=naive").data), ["hi"]);
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
