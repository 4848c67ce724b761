//! The adapter API's memory: evaluations held for an approval, those
//! waiting for their caller's report (each holding what its stages
//! reserved), the outcome of finished ones (so a replayed report is
//! answered the same way, and a conflicting one refused), and which
//! adapters (origins) have been seen.
//!
//! Everything is bounded: held and pending evaluations together
//! ([`MAX_PENDING`]), the finished ones remembered ([`MAX_FINISHED`], each
//! for one TTL), origins ([`MAX_ORIGINS`]). A held evaluation ends with its
//! tickets (their timeouts bound it). A pending evaluation not reported
//! within `sdk.evaluation_ttl` expires: at the next sweep or the next
//! access, whichever comes first, its reservations are given back and its
//! record says it expired unreported.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::govern::Pending;
use crate::state::now_ms;
use crate::time::iso_utc;

/// Evaluations held or waiting for a report at once.
pub const MAX_PENDING: usize = 10_000;
/// The request bytes they were made from, at most.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// Finished evaluations remembered for replays.
const MAX_FINISHED: usize = 100_000;
/// Distinct adapters (origins).
pub const MAX_ORIGINS: usize = 32;

/// What an evaluation's report needs besides the evaluation itself.
pub struct Subject {
    pub session: Option<String>,
    /// The tool evaluated (reported evidence is attributed to it).
    pub tool: String,
    /// The size of the request it came in (what keeping it costs, roughly:
    /// its record holds the arguments and metadata).
    pub bytes: usize,
}

/// A pending evaluation and what its report needs.
pub struct Waiting {
    pub pending: Box<Pending>,
    pub subject: Subject,
    pub deadline: Instant,
    /// What the evaluation answered (`allow`).
    answer: Value,
}

/// An evaluation waiting for its approvals.
struct Held {
    subject: Subject,
    /// What `/evaluate` answered (`require_approval`).
    answer: Value,
}

/// How an evaluation ended, as a replay is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Ended without running: blocked or simulated at `/evaluate`, or
    /// blocked while held for an approval. Nothing to report; `answer` is
    /// the evaluation's final answer.
    Unrun {
        by: Ending,
        answer: Value,
    },
    /// Reported; `digest` is the report's (a replay must match it).
    Reported {
        digest: [u8; 32],
        record_id: String,
        answer: Value,
    },
    Expired,
}

/// Where an unrun evaluation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Evaluate,
    Approval,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Evaluate => "evaluate",
            Ending::Approval => "approval",
        }
    }
}

/// What a report finds under an evaluation id.
pub enum Found {
    Waiting(Waiting),
    /// Still waiting for its approvals: nothing may be reported yet.
    Held,
    Finished(Finished),
    Unknown,
}

/// Where an evaluation stands, as `GET /evaluation/:id` tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// Waiting for its approvals; its `/evaluate` answer.
    Held(Value),
    /// Allowed, waiting for its report; the answer that allowed it.
    Allowed(Value),
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
    held: HashMap<String, Held>,
    pending: HashMap<String, Waiting>,
    /// The `bytes` of the held and pending ones.
    bytes: usize,
    finished: HashMap<String, (Finished, Instant)>,
    origins: BTreeMap<String, Origin>,
}

impl Inner {
    fn put_pending(&mut self, id: String, waiting: Waiting) {
        self.bytes += waiting.subject.bytes;
        self.pending.insert(id, waiting);
    }

    fn take_pending(&mut self, id: &str) -> Option<Waiting> {
        let waiting = self.pending.remove(id)?;
        self.bytes = self.bytes.saturating_sub(waiting.subject.bytes);
        Some(waiting)
    }

    fn put_held(&mut self, id: String, held: Held) {
        self.bytes += held.subject.bytes;
        self.held.insert(id, held);
    }

    fn take_held(&mut self, id: &str) -> Option<Held> {
        let held = self.held.remove(id)?;
        self.bytes = self.bytes.saturating_sub(held.subject.bytes);
        Some(held)
    }
}

pub struct Evaluations {
    inner: Mutex<Inner>,
    ttl: Duration,
    /// Woken whenever a held evaluation ends its wait.
    changed: Notify,
    /// The tasks waiting on held evaluations' tickets.
    waits: TaskTracker,
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
            changed: Notify::new(),
            waits: TaskTracker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses an evaluation from a request of `bytes` while
    /// [`MAX_PENDING`] are held or wait for reports, or they were made from
    /// [`MAX_PENDING_BYTES`] (checked before the stages run, so nothing is
    /// reserved for an evaluation that cannot be kept).
    pub fn room(&self, bytes: usize) -> Result<(), Refusal> {
        let inner = self.lock();
        if inner.pending.len() + inner.held.len() >= MAX_PENDING
            || inner.bytes + bytes > MAX_PENDING_BYTES
        {
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

    /// Keeps an allowed evaluation `id` (its record's) until its report.
    pub fn wait(&self, id: String, pending: Box<Pending>, subject: Subject, answer: Value) {
        let waiting = Waiting {
            pending,
            subject,
            deadline: Instant::now() + self.ttl,
            answer,
        };
        self.lock().put_pending(id, waiting);
    }

    /// Keeps an evaluation held for approvals while `wait` (which ends it
    /// with [`Evaluations::approved`] or [`Evaluations::finished`]) runs.
    pub fn hold(
        &self,
        id: String,
        subject: Subject,
        answer: Value,
        wait: impl Future<Output = ()> + Send + 'static,
    ) {
        self.lock().put_held(id, Held { subject, answer });
        self.waits.spawn(wait);
    }

    /// A held evaluation was approved: it waits for its report from now.
    pub fn approved(&self, id: &str, pending: Box<Pending>, answer: Value) {
        let held = self.lock().take_held(id);
        if let Some(held) = held {
            self.wait(id.to_owned(), pending, held.subject, answer);
        }
        self.changed.notify_waiters();
    }

    /// Remembers an evaluation that ended without a report to wait for.
    pub fn finished(&self, id: String, how: Finished) {
        let mut inner = self.lock();
        inner.take_held(&id);
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
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Remembers an evaluation that ended without running, where `by` says,
    /// with its final `answer`.
    pub fn unrun(&self, id: String, by: Ending, answer: Value) {
        self.finished(id, Finished::Unrun { by, answer });
    }

    /// Where evaluation `id` stands.
    pub fn standing(&self, id: &str) -> Standing {
        let inner = self.lock();
        if let Some(held) = inner.held.get(id) {
            return Standing::Held(held.answer.clone());
        }
        if let Some(waiting) = inner.pending.get(id) {
            if waiting.deadline > Instant::now() {
                return Standing::Allowed(waiting.answer.clone());
            }
            return Standing::Finished(Finished::Expired);
        }
        match inner.finished.get(id) {
            Some((how, _)) => Standing::Finished(how.clone()),
            None => Standing::Unknown,
        }
    }

    /// Resolves when a held evaluation may have ended its wait (armed
    /// before the caller looks, so no change is missed in between).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Waits (at most `grace`) for held evaluations to end their wait, as
    /// they do once their tickets are closed at shutdown.
    pub async fn settle_held(&self, grace: Duration) {
        self.waits.close();
        if tokio::time::timeout(grace, self.waits.wait())
            .await
            .is_err()
        {
            tracing::warn!("held adapter evaluations did not end within the shutdown grace");
        }
    }

    /// Takes a pending evaluation for its report (an expired one is settled
    /// as expired on the way), or says how it finished.
    pub fn take(&self, id: &str) -> Found {
        let expired = {
            let mut inner = self.lock();
            if inner.held.contains_key(id) {
                return Found::Held;
            }
            match inner.take_pending(id) {
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

    /// Whether pending evaluation `id` holds spend (none: it is not
    /// pending).
    pub fn holds_spend(&self, id: &str) -> Option<bool> {
        self.lock().pending.get(id).map(|w| w.pending.holds_spend())
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
                .filter_map(|id| inner.take_pending(&id).map(|w| (id, w)))
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
        let all: Vec<(String, Waiting)> = {
            let mut inner = self.lock();
            inner.bytes = inner.held.values().map(|h| h.subject.bytes).sum();
            inner.pending.drain().collect()
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(bytes: usize) -> Subject {
        Subject {
            session: None,
            tool: "t".into(),
            bytes,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn what_is_kept_is_bounded_by_the_bytes_it_came_from() {
        let evaluations = Evaluations::new(Duration::from_secs(60));
        assert_eq!(evaluations.room(MAX_PENDING_BYTES), Ok(()));
        assert_eq!(
            evaluations.room(MAX_PENDING_BYTES + 1),
            Err(Refusal::BacklogFull)
        );
        evaluations.hold(
            "e1".into(),
            subject(MAX_PENDING_BYTES - 10),
            json!({}),
            async {},
        );
        assert_eq!(evaluations.room(10), Ok(()));
        assert_eq!(evaluations.room(11), Err(Refusal::BacklogFull));
        assert!(matches!(evaluations.standing("e1"), Standing::Held(_)));
        assert!(matches!(evaluations.take("e1"), Found::Held));
        let unrun = Finished::Unrun {
            by: Ending::Approval,
            answer: json!({ "decision": "deny" }),
        };
        evaluations.finished("e1".into(), unrun.clone());
        assert_eq!(evaluations.room(MAX_PENDING_BYTES), Ok(()));
        assert_eq!(evaluations.standing("e1"), Standing::Finished(unrun));
        evaluations.settle_held(Duration::from_secs(1)).await;
    }
}
