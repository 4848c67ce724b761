//! The spend journal: committed spend made durable before its call is
//! forwarded, for a few microseconds instead of a SQLite transaction.
//!
//! Every committed spend entry is appended to a small file beside the
//! database (one `write`, no `fsync`: like SQLite's `synchronous=NORMAL`, it
//! survives a crash of the process, not a power cut) before the call goes
//! out, and queued for the database as usual. When the writer has put an
//! entry in the database, the journal no longer needs it. At start, entries
//! the journal holds that the database lacks are written to it first.
//!
//! Two files take turns so the journal stays small under a steady load: the
//! active one takes appends until it passes [`ROTATE_BYTES`], then the other
//! one does, and the retired one is emptied once everything appended to it
//! is in the database. An append and the queueing of its change happen
//! under one lock, so the database receives changes in journal order.
//!
//! Replay can only add: an entry refunded after it was journaled, or a pot
//! collected since, may come back after a crash (the ledger then counts a
//! charge too many — the safe side), never the other way round.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use rust_decimal::Decimal;

use super::persist::Row;

/// A journal file is retired once it holds this much.
const ROTATE_BYTES: u64 = 1 << 20;
/// Largest journal file read at start.
const MAX_FILE_BYTES: u64 = 256 << 20;

pub(super) struct Journal {
    inner: Mutex<Inner>,
}

struct Inner {
    files: [File; 2],
    active: usize,
    /// Bytes in the active file.
    bytes: u64,
    /// Sequence number of the last append.
    appended: u64,
    /// The retired file holds appends up to this one; it is emptied once
    /// they are in the database.
    retiring: Option<u64>,
}

/// The two files of the journal of the database at `database`.
pub(super) fn paths(database: &Path) -> [PathBuf; 2] {
    let name = |n: u8| {
        let mut path = database.as_os_str().to_owned();
        path.push(format!("-spend{n}.journal"));
        PathBuf::from(path)
    };
    [name(0), name(1)]
}

impl Journal {
    /// Opens (creating `0600`) the journal files, which must be empty (see
    /// [`Journal::replay`] and [`Journal::clear`]).
    pub fn open(database: &Path) -> io::Result<Self> {
        let [a, b] = paths(database);
        let open = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
        };
        Ok(Self {
            inner: Mutex::new(Inner {
                files: [open(&a)?, open(&b)?],
                active: 0,
                bytes: 0,
                appended: 0,
                retiring: None,
            }),
        })
    }

    /// The entries the journal files of `database` hold (a torn last line
    /// from a crash mid-write is skipped).
    pub fn replay(database: &Path) -> io::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for path in paths(database) {
            let mut text = String::new();
            match File::open(&path) {
                Ok(file) => {
                    file.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            }
            rows.extend(text.lines().filter_map(parse_line));
        }
        Ok(rows)
    }

    /// Empties the journal files of `database` (their entries are in the
    /// database).
    pub fn clear(database: &Path) -> io::Result<()> {
        for path in paths(database) {
            match OpenOptions::new().write(true).open(&path) {
                Ok(file) => file.set_len(0)?,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Appends `text` ([`lines`]), then runs `queue` with the append's
    /// sequence number (under the same lock, so changes reach the database
    /// in journal order). On a failed append nothing is queued.
    pub fn append<T>(&self, text: &str, queue: impl FnOnce(u64) -> T) -> io::Result<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let active = inner.active;
        inner.files[active].write_all(text.as_bytes())?;
        inner.bytes += text.len() as u64;
        inner.appended += 1;
        let seq = inner.appended;
        if inner.bytes >= ROTATE_BYTES && inner.retiring.is_none() {
            inner.retiring = Some(seq);
            inner.active = 1 - active;
            inner.bytes = 0;
        }
        Ok(queue(seq))
    }

    /// Everything appended up to `seq` is in the database: empty what no
    /// longer holds anything else.
    pub fn persisted(&self, seq: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let retired = 1 - inner.active;
        if inner.retiring.is_some_and(|upto| seq >= upto) && empty(&inner.files[retired]) {
            inner.retiring = None;
        }
        if seq >= inner.appended && inner.bytes > 0 {
            let active = inner.active;
            if empty(&inner.files[active]) {
                inner.bytes = 0;
            }
        }
    }
}

/// `rows` as journal lines: `[key, id, at_ms, window_ms, "amount"]`.
pub(super) fn lines(rows: &[Row]) -> String {
    let mut text = String::new();
    for row in rows {
        let line = serde_json::json!([
            row.key,
            row.id,
            row.at_ms,
            row.window_ms,
            row.amount.to_string()
        ]);
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

/// Truncates a journal file; a failure leaves entries to replay (harmless).
fn empty(file: &File) -> bool {
    match file.set_len(0) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "could not empty the spend journal; its entries will be replayed at the next start");
            false
        }
    }
}

fn parse_line(line: &str) -> Option<Row> {
    let (key, id, at_ms, window_ms, amount): (String, u64, u64, Option<u64>, String) =
        serde_json::from_str(line).ok()?;
    Some(Row {
        key,
        id,
        at_ms,
        window_ms,
        amount: Decimal::from_str(&amount).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64) -> Row {
        Row {
            key: "rules/spend:cap:fp:tool:charge\n\"quoted\"".into(),
            id,
            at_ms: 1000 + id,
            window_ms: Some(86_400_000),
            amount: Decimal::from_str("12.50").expect("decimal"),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("helio-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("helio.db")
    }

    #[test]
    fn appended_rows_replay_until_persisted() {
        let db = scratch("replay");
        let journal = Journal::open(&db).expect("open");
        let seq = journal
            .append(&lines(&[row(1), row(2)]), |seq| seq)
            .expect("append");
        assert_eq!(seq, 1);
        journal.append(&lines(&[row(3)]), |_| ()).expect("append");
        assert_eq!(
            Journal::replay(&db).expect("replay"),
            vec![row(1), row(2), row(3)]
        );
        // The database has the first append only: nothing is emptied yet.
        journal.persisted(1);
        assert_eq!(Journal::replay(&db).expect("replay").len(), 3);
        journal.persisted(2);
        assert!(Journal::replay(&db).expect("replay").is_empty());
        // A torn last line (a crash mid-write) is skipped.
        let [first, _] = paths(&db);
        std::fs::write(&first, "[\"k\",1,2,null,\"3\"]\n[\"k\",2,").expect("write");
        let replayed = Journal::replay(&db).expect("replay");
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].window_ms, None);
        Journal::clear(&db).expect("clear");
        assert!(Journal::replay(&db).expect("replay").is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn files_take_turns_and_stay_small_under_a_steady_load() {
        let db = scratch("rotate");
        let journal = Journal::open(&db).expect("open");
        let big = lines(&(0..2000).map(row).collect::<Vec<_>>());
        let mut last = 0;
        for _ in 0..40 {
            // Always one append ahead of the database: the active file is
            // never caught up, yet retired files are emptied.
            last = journal.append(&big, |seq| seq).expect("append");
            journal.persisted(last - 1);
        }
        let [a, b] = paths(&db);
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(
            size(&a) + size(&b) < 4 * ROTATE_BYTES,
            "{} + {}",
            size(&a),
            size(&b)
        );
        journal.persisted(last);
        assert!(Journal::replay(&db).expect("replay").is_empty());
    }
}
