use std::path::Path;

use serde_json::json;

use super::*;
use crate::scratch::Scratch;
use crate::state::LocalStore;

fn config(dir: &Path) -> crate::config::Config {
    let text = format!(
        "version: \"1\"\nupstream:\n  url: http://127.0.0.1:9/mcp\ndashboard:\n  enabled: false\naudit:\n  path: {}\n",
        dir.join("audit.db").display()
    );
    match crate::config::parse(&text, Path::new("helio.yaml"), &|_| None) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("{}", e.report()),
    }
}

fn page(tools: Value) -> Vec<u8> {
    json!({"jsonrpc":"2.0","id":1,"result":{"tools":tools}})
        .to_string()
        .into_bytes()
}

fn records(rx: &mut tokio::sync::broadcast::Receiver<Arc<str>>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(record) = rx.try_recv() {
        out.push(serde_json::from_str(&record).expect("record json"));
    }
    out
}

const READ: &str = r#"{"name":"read","description":"Reads","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true,"destructiveHint":false}}"#;

fn read(description: &str, read_only: bool) -> Value {
    let mut tool: Value = serde_json::from_str(READ).expect("json");
    tool["description"] = description.into();
    tool["annotations"]["readOnlyHint"] = read_only.into();
    tool
}

#[test]
fn policy_keeps_the_baseline_and_drift_and_revert_are_recorded() {
    let scratch = Scratch::new("tools-drift");
    let config = config(&scratch.0);
    let audit = Audit::open(&config).expect("audit");
    let mut rx = audit.subscribe();
    let catalog = ToolCatalog::restore(&config.upstream, LocalStore::in_memory(), audit.clone());

    let cursor = catalog.observe(
        json!({"jsonrpc":"2.0","id":1,"result":{"tools":[read("Reads", true)],"nextCursor":"p2"}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(cursor.as_deref(), Some("p2"));
    assert_eq!(catalog.view("read").drift, None);
    assert!(catalog.view("read").annotations.read_only_hint);
    assert_eq!(catalog.view("unseen").annotations, Annotations::UNKNOWN);

    // The server re-declares the tool as not read-only, with a new text.
    catalog.observe(&page(json!([read("Reads, and deletes", false)])));
    let view = catalog.view("read");
    assert!(
        view.annotations.read_only_hint,
        "policy keeps reading the baseline"
    );
    let drift = view.drift.expect("drifted");
    assert_eq!(drift.aspects(), ["annotations", "description"]);
    assert!(!drift.current_annotations().read_only_hint);
    // The same drift listed again is not a new event.
    catalog.observe(&page(json!([read("Reads, and deletes", false)])));
    catalog.observe(&page(json!([read("Reads", true)])));
    assert_eq!(catalog.view("read").drift, None);

    audit.flush().expect("flush");
    let kinds: Vec<_> = records(&mut rx)
        .into_iter()
        .map(|r| {
            assert_eq!(r["record_kind"], "drift_event");
            assert_eq!(r["tool_name"], "read");
            (
                r["policy_decision"].as_str().unwrap_or_default().to_owned(),
                r["evidence_chain"]["tool_drift"]["changes"][1]["current"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("tool_drift".to_owned(), json!("Reads, and deletes")),
            ("tool_drift_reverted".to_owned(), Value::Null)
        ]
    );
}

#[test]
fn a_tool_listed_twice_fails_closed_and_cannot_be_accepted() {
    let scratch = Scratch::new("tools-duplicate");
    let config = config(&scratch.0);
    let audit = Audit::open(&config).expect("audit");
    let catalog = ToolCatalog::restore(&config.upstream, LocalStore::in_memory(), audit);
    catalog.observe(&page(json!([read("Reads", true), read("Other", true)])));
    let view = catalog.view("read");
    let drift = view.drift.expect("duplicate is drift");
    assert_eq!(drift.aspects(), ["duplicate"]);
    assert_eq!(drift.current_annotations(), Annotations::UNKNOWN);
    assert_eq!(
        catalog.accept(&["read".into()], "alice"),
        Err(AcceptError::Duplicate("read".into()))
    );
    assert_eq!(
        catalog.accept(&["nope".into()], "alice"),
        Err(AcceptError::Unknown("nope".into()))
    );
}

#[test]
fn baselines_and_acceptances_survive_a_restart() {
    let scratch = Scratch::new("tools-persist");
    let config = config(&scratch.0);
    let db = scratch.0.join("state.db");
    let audit = Audit::open(&config).expect("audit");
    {
        let store = LocalStore::open(&db, now_ms()).expect("db");
        let catalog = ToolCatalog::restore(&config.upstream, store.clone(), audit.clone());
        catalog.observe(&page(json!([read("Reads", true), {"name":"other"}])));
        catalog.observe(&page(json!([read("Reads v2", true)])));
        assert_eq!(catalog.accept(&[], "alice"), Ok(vec!["read".to_owned()]));
        assert_eq!(catalog.view("read").drift, None);
        store.flush().expect("flush");
    }
    let store = LocalStore::open(&db, now_ms()).expect("db");
    let catalog = ToolCatalog::restore(&config.upstream, store.clone(), audit.clone());
    assert_eq!(catalog.count(), 2);
    // Changed while Helio was down: caught against the stored baseline.
    catalog.observe(&page(json!([read("Reads", true), {"name":"other"}])));
    assert_eq!(
        catalog.view("read").drift.map(|d| d.aspects()),
        Some(vec!["description"])
    );
    assert_eq!(catalog.view("other").drift, None);
    let described = catalog.describe();
    assert_eq!(described[1]["name"], "read");
    assert_eq!(described[1]["accepted_by"], "alice");
    // Another upstream has baselines of its own.
    let mut elsewhere = config.upstream.clone();
    elsewhere.url = "http://127.0.0.1:10/mcp".into();
    assert_eq!(ToolCatalog::restore(&elsewhere, store, audit).count(), 0);
}

#[test]
fn adapters_have_catalogs_of_their_own_bounded_and_kept() {
    let scratch = Scratch::new("tools-adapters");
    let config = config(&scratch.0);
    let audit = Audit::open(&config).expect("audit");
    let mut rx = audit.subscribe();
    let store = LocalStore::in_memory();
    let adapters = AdapterTools::new(store.clone(), audit.clone());
    let catalog = adapters.catalog("openclaw");
    assert!(adapters.get("other").is_none());

    let view = catalog
        .learn("read", read("Reads", true))
        .expect("baselined");
    assert!(view.annotations.read_only_hint && view.drift.is_none());
    let view = catalog.learn("read", read("Reads", false)).expect("known");
    assert!(
        view.annotations.read_only_hint,
        "the baseline's annotations"
    );
    assert_eq!(view.drift.expect("drifted").aspects(), ["annotations"]);
    // The upstream's catalog knows nothing of it.
    let upstream = ToolCatalog::restore(&config.upstream, store.clone(), audit.clone());
    assert_eq!(upstream.count(), 0);

    for i in 1..MAX_ADAPTER_TOOLS {
        catalog
            .learn(&format!("t{i}"), json!({ "name": format!("t{i}") }))
            .expect("room");
    }
    assert_eq!(
        catalog.learn("one-more", json!({ "name": "one-more" })),
        Err(CatalogFull(MAX_ADAPTER_TOOLS))
    );

    audit.flush().expect("flush");
    let drift: Vec<Value> = records(&mut rx)
        .into_iter()
        .filter(|r| r["policy_decision"] == "tool_drift")
        .collect();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["origin"], "openclaw");
}
