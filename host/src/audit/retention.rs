//! `audit.retention`: records older than the retention period are deleted
//! by a periodic sweep, in small transactions on a connection of its own,
//! so the writer waits at most one small delete. Each transaction takes
//! its records out of the rollups and the search index too.

use std::path::Path;
use std::time::Duration;

use super::store::AuditError;

/// Rows deleted per transaction.
const CHUNK: i64 = 1000;

/// Deletes records created before `cutoff` (ISO-8601); returns how many.
pub fn sweep(path: &Path, cutoff: &str) -> Result<usize, AuditError> {
    let db = crate::database::open(path)?;
    db.execute_batch("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")?;
    let mut deleted = 0;
    loop {
        let tx = super::derived::write_transaction(&db)?;
        tx.execute("DELETE FROM temp.doomed", [])?;
        tx.execute(
            "INSERT INTO temp.doomed
             SELECT rowid FROM audit_records WHERE created_at < ?1 LIMIT ?2",
            rusqlite::params![cutoff, CHUNK],
        )?;
        super::derived::unindex_rows(&tx)?;
        let n = tx.execute(
            "DELETE FROM audit_records WHERE rowid IN (SELECT id FROM temp.doomed)",
            [],
        )?;
        tx.commit()?;
        deleted += n;
        if (n as i64) < CHUNK {
            return Ok(deleted);
        }
    }
}

/// Sweeps at start and then every `every`, for as long as the process runs.
pub fn spawn(path: std::path::PathBuf, retention: Duration, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let path = path.clone();
            let cutoff_ms = crate::state::now_ms()
                .saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
            let cutoff = crate::time::iso_utc(cutoff_ms);
            match tokio::task::spawn_blocking(move || sweep(&path, &cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(deleted = n, "audit retention: old records deleted"),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "audit retention sweep failed; retrying later")
                }
                Err(error) => {
                    tracing::warn!(%error, "audit retention sweep failed; retrying later")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn deletes_only_what_is_older_than_the_cutoff_in_chunks() {
        let dir = std::env::temp_dir().join(format!("helio-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("audit.db");
        let db = Connection::open(&path).expect("open");
        super::super::schema::create(&db).expect("schema");
        let insert = |id: usize, created: &str| {
            db.execute(
                "INSERT INTO audit_records (id, timestamp, tool_name, tool_input, policy_decision,
                    total_duration_ms, proxy_compute_ms, created_at)
                 VALUES (?1, ?2, 't', '{}', 'allow', 1, 1, ?2)",
                rusqlite::params![id.to_string(), created],
            )
            .expect("insert");
        };
        for i in 0..2500 {
            insert(i, "2026-01-01T00:00:00.000Z");
        }
        for i in 2500..2510 {
            insert(i, "2026-06-01T00:00:00.000Z");
        }
        assert_eq!(
            sweep(&path, "2026-03-01T00:00:00.000Z").expect("sweep"),
            2500
        );
        let left: i64 = db
            .query_row("SELECT COUNT(*) FROM audit_records", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 10);
    }
}
