//! The SQLite file at `audit.path`, shared by the governance state and the
//! audit trail: how its connections are opened, and how its write-ahead log
//! is kept short without stalling the writers.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

/// Pages of 16 KiB hold ten 1 KiB audit records each instead of two or
/// three, so a batch touches fewer pages and splits fewer: measured +25 %
/// writer throughput over the 4 KiB default. Only a new file takes it; an
/// existing file keeps the page size it was created with.
const PAGE_SIZE: u32 = 16 * 1024;

/// After a checkpoint resets the log, a log file larger than this is cut
/// back, so one burst does not leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Page cache of each writing connection, in KiB. SQLite's default (2 MiB:
/// 125 of our 16 KiB pages) cannot hold the hot pages of the audit table
/// and its six indexes, so every batch read index pages back from the OS
/// (`pread` and a copy per page: the largest item in the audit writer's
/// profile). With 8 MiB the audit writer went from 10.6 % to 8.2 % and the
/// state writer from 6.4 % to 4.6 % of Helio's CPU under sequential load
/// (`perf`); the cache fills only as the writers touch pages.
const CACHE_KIB: i64 = 8 * 1024;

/// A read-write connection with the settings every writer of the file uses:
/// WAL (readers never block the writer), `synchronous=NORMAL` (no fsync per
/// transaction; a power cut can lose the last transactions, never corrupt
/// the file), and a busy timeout instead of immediate `SQLITE_BUSY`.
/// A new file is private to its owner (see [`create_private`]).
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    create_private(path).map_err(|error| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot create {}: {error}", path.display())),
        )
    })?;
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    // Must precede WAL mode and the first table to take effect.
    db.pragma_update(None, "page_size", PAGE_SIZE)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    db.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(db)
}

/// Whether `table` exists in the database.
pub fn has_table(db: &Connection, table: &str) -> Result<bool, rusqlite::Error> {
    let mut statement =
        db.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
    statement.exists([table])
}

/// The file holds tool arguments, upstream responses and governance state:
/// a new one is created readable by its owner only (0600), in a directory
/// created 0700 if it does not exist yet. SQLite gives the `-wal` and `-shm`
/// files it creates beside it the database file's own mode. An existing
/// file keeps the mode the operator gave it; one that others can read is
/// named in a warning.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "the audit/state database is readable by other users; it holds tool arguments and responses (chmod 600 it and its -wal/-shm files)"
                );
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Copies the write-ahead log back into the database file on a thread of
/// its own, so the writer thread does not (checkpoints were ~40 % of the
/// audit writer's time when it ran them itself).
///
/// A checkpoint that runs beside a busy writer never quite catches up, and
/// the log is only rewound by a writer after a complete checkpoint; so once
/// the log is long, this thread raises [`Checkpointer::catch_up`] and the
/// writer finishes the checkpoint between two batches: by then only the
/// last few frames are left to copy.
pub struct Checkpointer {
    catch_up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the checkpointer looks at the log. Each checkpoint copies the
/// pages written since the last one and syncs the file; the audit's hot
/// pages (the tables' and indexes' last leaves) change in every batch, so
/// checkpointing 4× a second instead of 20× copies them a fifth as often
/// (the checkpoint thread went from ~5 % of Helio's CPU under sequential
/// load to ~2 %, measured with `perf`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Log frames (pages) above which the writer is asked to finish a
/// checkpoint: 16 MiB with 16 KiB pages.
const CATCH_UP_FRAMES: i64 = 1024;

impl Checkpointer {
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let catch_up = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (catch_up, stop, path) = (catch_up.clone(), stop.clone(), path.to_owned());
            std::thread::Builder::new()
                .name("helio-checkpoint".into())
                .spawn(move || run(&path, &catch_up, &stop))?
        };
        Ok(Self {
            catch_up,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the writer should finish a checkpoint now (clears the request).
    pub fn catch_up(&self) -> bool {
        self.catch_up.swap(false, Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(path: &Path, catch_up: &AtomicBool, stop: &AtomicBool) {
    let db = match open(path) {
        Ok(db) => db,
        Err(error) => {
            // The writer's own automatic checkpoints still bound the log.
            tracing::error!(%error, "cannot open the database for checkpoints");
            return;
        }
    };
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        match checkpoint(&db) {
            Ok(frames) => {
                failing = false;
                if frames > CATCH_UP_FRAMES {
                    catch_up.store(true, Ordering::Relaxed);
                }
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "database checkpoint failed; retrying");
            }
            Err(_) => {}
        }
    }
}

/// A PASSIVE checkpoint (never waits for readers or the writer); returns
/// the log's length in frames.
pub fn checkpoint(db: &Connection) -> rusqlite::Result<i64> {
    db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("helio-database-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_new_file_and_its_logs_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("private");
        let nested = dir.join("made").join("by-helio");
        let path = nested.join("helio.db");
        let db = open(&path).expect("open");
        db.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            .expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        for log in ["helio.db-wal", "helio.db-shm"] {
            assert_eq!(mode(&nested.join(log)), 0o600, "{log}");
        }
        assert_eq!(mode(&nested), 0o700);
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_new_file_gets_large_pages_and_an_existing_one_keeps_its_own() {
        let dir = scratch("pages");
        let fresh = dir.join("fresh.db");
        let db = open(&fresh).expect("open");
        db.execute_batch("CREATE TABLE t (x)").expect("table");
        let size: u32 = db
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        assert_eq!(size, PAGE_SIZE);

        let old = dir.join("old.db");
        Connection::open(&old)
            .and_then(|db| db.execute_batch("CREATE TABLE t (x)"))
            .expect("old file");
        let db = open(&old).expect("reopen");
        let size: u32 = db
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        assert_eq!(size, 4096);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_checkpointer_asks_for_a_catch_up_once_the_log_is_long() {
        let dir = scratch("wal");
        let path = dir.join("wal.db");
        let mut db = open(&path).expect("open");
        db.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no automatic checkpoints");
        db.execute_batch("CREATE TABLE t (x BLOB)").expect("table");
        let checkpointer = Checkpointer::start(&path).expect("start");
        let tx = db.transaction().expect("tx");
        for _ in 0..(CATCH_UP_FRAMES + 100) {
            tx.execute("INSERT INTO t VALUES (zeroblob(16000))", [])
                .expect("insert");
        }
        tx.commit().expect("commit");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !checkpointer.catch_up() {
            assert!(std::time::Instant::now() < deadline, "no catch-up request");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The writer finishes the checkpoint; its next write rewinds the log.
        checkpoint(&db).expect("catch up");
        db.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        let frames = checkpoint(&db).expect("checkpoint");
        assert!(frames < 10, "the log was not rewound: {frames} frames");
        drop(checkpointer);
        let _ = std::fs::remove_dir_all(dir);
    }
}
