//! A few read-only connections to one database file, kept for reuse:
//! opening a connection costs more than most dashboard queries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// Idle connections kept; a burst beyond this opens extra ones and closes
/// them afterwards.
const MAX_IDLE: usize = 4;
/// Readers in WAL mode rarely wait, but opening a database while the writer
/// recovers or checkpoints it can briefly report it busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on a connection when `table` exists; `empty` when the
    /// file or the table does not exist yet. A read still running at
    /// `deadline` is interrupted (its error is `OperationInterrupted`). The
    /// connection goes back to the pool afterwards, unless the read failed
    /// (it may be the connection that is broken).
    pub fn with_table<T>(
        &self,
        table: &str,
        empty: T,
        limit: Duration,
        read: impl FnOnce(&Connection, &Deadline) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        let Some(mut db) = self.take()? else {
            return Ok(empty);
        };
        let deadline = Deadline::new(limit);
        let passed = deadline.clone();
        // Asked every few thousand steps of SQLite's virtual machine.
        db.progress_handler(4096, Some(move || passed.passed()))?;
        let outcome = if crate::database::has_table(&db, table)? {
            read(&db, &deadline)
        } else {
            Ok(empty)
        };
        db.progress_handler(0, None::<fn() -> bool>)?;
        if outcome.is_ok() {
            self.give_back(db);
        }
        outcome
    }

    /// A pooled connection, or a fresh one; none if the file is missing.
    pub fn take(&self) -> Result<Option<Connection>, rusqlite::Error> {
        if let Some(db) = self.lock().pop() {
            return Ok(Some(db));
        }
        // Read-only opening never creates the file; check first so a missing
        // database reads as empty rather than as "unable to open".
        if !self.path.is_file() {
            return Ok(None);
        }
        let db = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Some(db))
    }

    pub fn give_back(&self, db: Connection) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(db);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding the lock leaves a valid Vec behind.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// When a read is stopped; a part of it can be given less time
/// ([`Deadline::within`]).
#[derive(Clone)]
pub struct Deadline {
    started: Instant,
    /// Microseconds after `started`.
    at_us: Arc<AtomicU64>,
}

impl Deadline {
    fn new(limit: Duration) -> Self {
        Self {
            started: Instant::now(),
            at_us: Arc::new(AtomicU64::new(micros(limit))),
        }
    }

    fn passed(&self) -> bool {
        micros(self.started.elapsed()) > self.at_us.load(Ordering::Relaxed)
    }

    /// Runs `read` with at most `limit` of the time left; `None` if that
    /// ran out (the whole read's deadline passing is still an error).
    pub fn within<T>(
        &self,
        limit: Duration,
        read: impl FnOnce() -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        let whole = self.at_us.load(Ordering::Relaxed);
        let part = micros(self.started.elapsed() + limit).min(whole);
        self.at_us.store(part, Ordering::Relaxed);
        let outcome = read();
        self.at_us.store(whole, Ordering::Relaxed);
        match outcome {
            Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
                    && !self.passed() =>
            {
                Ok(None)
            }
            other => other.map(Some),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
