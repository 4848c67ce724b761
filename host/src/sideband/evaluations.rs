//! The adapter API's memory: evaluations waiting for their caller's report
//! (each holding what its stages reserved), the outcome of finished ones
//! (so a replayed report is answered the same way, and a conflicting one
//! refused), and which adapters (origins) have been seen.
//!
//! Everything is bounded: pending evaluations ([`MAX_PENDING`]), the
//! finished ones remembered ([`MAX_FINISHED`], each for one TTL), origins
//! ([`MAX_ORIGINS`]). A pending evaluation not reported within
//! `sdk.evaluation_ttl` expires: at the next sweep or the next access,
//! whichever comes first, its reservations are given back and its record
//! says it expired unreported.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::govern::Pending;
use crate::state::now_ms;
use crate::time::iso_utc;

/// Evaluations waiting for a report at once.
pub const MAX_PENDING: usize = 10_000;
/// Finished evaluations remembered for replays.
const MAX_FINISHED: usize = 100_000;
/// Distinct adapters (origins).
pub const MAX_ORIGINS: usize = 32;

/// A pending evaluation and what its report needs.
pub struct Waiting {
    pub pending: Box<Pending>,
    pub session: Option<String>,
    /// The tool evaluated (reported evidence is attributed to it).
    pub tool: String,
    pub deadline: Instant,
}

/// How an evaluation ended, as a replay is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Blocked or simulated at `/evaluate`: nothing to report.
    ByEvaluate,
    /// Reported; `digest` is the report's (a replay must match it).
    Reported {
        digest: [u8; 32],
        record_id: String,
        answer: Value,
    },
    Expired,
}

/// What a report finds under an evaluation id.
pub enum Found {
    Waiting(Waiting),
    Finished(Finished),
    Unknown,
}

#[derive(Debug, Clone)]
struct Origin {
    adapter_version: Option<String>,
    first_seen_ms: u64,
    last_seen_ms: u64,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Waiting>,
    finished: HashMap<String, (Finished, Instant)>,
    origins: BTreeMap<String, Origin>,
}

pub struct Evaluations {
    inner: Mutex<Inner>,
    ttl: Duration,
}

/// Why an evaluation could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// [`MAX_ORIGINS`] adapters are known; this is a new one.
    TooManyOrigins,
    /// [`MAX_PENDING`] evaluations wait for reports.
    BacklogFull,
}

impl Evaluations {
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses an evaluation while [`MAX_PENDING`] wait for reports
    /// (checked before the stages run, so nothing is reserved for an
    /// evaluation that cannot be kept).
    pub fn room(&self) -> Result<(), Refusal> {
        if self.lock().pending.len() >= MAX_PENDING {
            return Err(Refusal::BacklogFull);
        }
        Ok(())
    }

    /// Notes an adapter's visit; refuses a new one past [`MAX_ORIGINS`].
    pub fn admit(&self, origin: &str, adapter_version: Option<&str>) -> Result<(), Refusal> {
        let mut inner = self.lock();
        let now = now_ms();
        let known = inner.origins.len();
        match inner.origins.get_mut(origin) {
            Some(seen) => {
                seen.last_seen_ms = now;
                if adapter_version.is_some() {
                    seen.adapter_version = adapter_version.map(str::to_owned);
                }
            }
            None if known >= MAX_ORIGINS => return Err(Refusal::TooManyOrigins),
            None => {
                inner.origins.insert(
                    origin.to_owned(),
                    Origin {
                        adapter_version: adapter_version.map(str::to_owned),
                        first_seen_ms: now,
                        last_seen_ms: now,
                    },
                );
            }
        }
        Ok(())
    }

    /// Keeps an allowed evaluation until its report; its id is its record's.
    pub fn wait(&self, pending: Box<Pending>, session: Option<String>, tool: String) -> String {
        let id = pending.record_id().to_owned();
        let waiting = Waiting {
            pending,
            session,
            tool,
            deadline: Instant::now() + self.ttl,
        };
        self.lock().pending.insert(id.clone(), waiting);
        id
    }

    /// Remembers an evaluation that ended at `/evaluate`.
    pub fn finished(&self, id: String, how: Finished) {
        let mut inner = self.lock();
        if inner.finished.len() >= MAX_FINISHED {
            let now = Instant::now();
            inner.finished.retain(|_, (_, until)| *until > now);
            if inner.finished.len() >= MAX_FINISHED {
                // Still full of fresh ones: forget the oldest.
                if let Some(oldest) = inner
                    .finished
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(id, _)| id.clone())
                {
                    inner.finished.remove(&oldest);
                }
            }
        }
        inner.finished.insert(id, (how, Instant::now() + self.ttl));
    }

    /// Takes a pending evaluation for its report (an expired one is settled
    /// as expired on the way), or says how it finished.
    pub fn take(&self, id: &str) -> Found {
        let expired = {
            let mut inner = self.lock();
            match inner.pending.remove(id) {
                Some(waiting) if waiting.deadline > Instant::now() => {
                    return Found::Waiting(waiting)
                }
                Some(waiting) => waiting,
                None => {
                    return match inner.finished.get(id) {
                        Some((how, _)) => Found::Finished(how.clone()),
                        None => Found::Unknown,
                    }
                }
            }
        };
        // Dropped outside the lock: it writes its record.
        drop(expired);
        self.finished(id.to_owned(), Finished::Expired);
        Found::Finished(Finished::Expired)
    }

    /// Settles every evaluation past its deadline (the 30 s sweep).
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<(String, Waiting)> = {
            let mut inner = self.lock();
            let ids: Vec<String> = inner
                .pending
                .iter()
                .filter(|(_, w)| w.deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            let taken = ids
                .into_iter()
                .filter_map(|id| inner.pending.remove(&id).map(|w| (id, w)))
                .collect();
            inner.finished.retain(|_, (_, until)| *until > now);
            taken
        };
        for (id, waiting) in expired {
            drop(waiting);
            self.finished(id, Finished::Expired);
        }
    }

    /// Gives every pending evaluation's reservations back (at shutdown),
    /// recording each as expired.
    pub fn expire_all(&self) {
        let all: Vec<(String, Waiting)> = self.lock().pending.drain().collect();
        for (id, waiting) in all {
            drop(waiting);
            self.finished(id, Finished::Expired);
        }
    }

    /// `GET /api/adapters`: `{adapters: [{origin, adapter_version,
    /// first_seen, last_seen}]}`.
    pub fn adapters_json(&self) -> Value {
        let inner = self.lock();
        let adapters: Vec<Value> = inner
            .origins
            .iter()
            .map(|(origin, seen)| {
                json!({
                    "origin": origin,
                    "adapter_version": seen.adapter_version,
                    "first_seen": iso_utc(seen.first_seen_ms),
                    "last_seen": iso_utc(seen.last_seen_ms),
                })
            })
            .collect();
        json!({ "adapters": adapters })
    }
}
