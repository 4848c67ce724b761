//! A writer thread that persists items in batches, off the request path:
//! the governance state and the audit trail both use one.
//!
//! Items go through a queue that allocates as it fills (an empty writer
//! holds no buffer) and never makes a sender wait: a send happens where
//! waiting would stall every connection on a worker thread (at the end of a
//! call, in a drop). Back-pressure is applied where waiting is cheap, before
//! work starts: the relay awaits [`Room::ready`] before it governs a new
//! call, and a queue past its capacity holds new calls there (counted) until
//! the writer catches up. So a burst slows callers down rather than losing
//! records, and memory stays bounded by the capacity plus the calls already
//! in flight. The thread sleeps a moment after the first item so that what
//! arrives meanwhile is written in the same transaction;
//! [`BatchWriter::flush`] waits until everything sent before it is written,
//! and dropping the writer drains the queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Where a batch goes.
pub trait Sink: Send + 'static {
    type Item: Send + 'static;
    /// Writes one batch (one transaction). An error is logged by the caller
    /// and reported to flush waiters.
    fn write(&mut self, batch: Vec<Self::Item>) -> Result<(), String>;
    /// Called when the queue has been empty for a while (e.g. checkpoints).
    fn idle(&mut self) {}
}

/// How a [`BatchWriter`] gathers items.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Items the queue holds before new calls wait for room.
    pub capacity: usize,
    /// How long to gather after the first item before writing.
    pub gather: Duration,
    /// The most items in one batch.
    pub max_batch: usize,
    /// How long the queue may stay empty before [`Sink::idle`].
    pub idle_after: Duration,
}

enum Message<T> {
    Item(T),
    Flush(mpsc::SyncSender<Result<(), String>>),
}

#[derive(Debug, thiserror::Error)]
#[error("the {0} writer has stopped")]
pub struct Stopped(pub &'static str);

pub struct BatchWriter<T> {
    name: &'static str,
    /// Taken (closing the queue) only when the writer is dropped.
    queue: Option<mpsc::Sender<Message<T>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    room: Arc<Room>,
}

/// How full a writer's queue is, for the callers that must wait for room.
pub struct Room {
    queued: AtomicUsize,
    capacity: usize,
    drained: tokio::sync::Notify,
    full_waits: AtomicU64,
}

impl Room {
    fn new(capacity: usize) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            capacity,
            drained: tokio::sync::Notify::new(),
            full_waits: AtomicU64::new(0),
        }
    }

    /// Waits (without blocking the thread) while the queue is past its
    /// capacity; counts the waits.
    pub async fn ready(&self) {
        if !self.is_full() {
            return;
        }
        self.full_waits.fetch_add(1, Ordering::Relaxed);
        loop {
            let drained = self.drained.notified();
            if !self.is_full() {
                return;
            }
            drained.await;
        }
    }

    fn is_full(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= self.capacity
    }

    /// How many calls had to wait for room.
    pub fn full_waits(&self) -> u64 {
        self.full_waits.load(Ordering::Relaxed)
    }

    fn written(&self, count: usize) {
        self.queued.fetch_sub(count, Ordering::Relaxed);
        self.drained.notify_waiters();
    }
}

impl<T: Send + 'static> BatchWriter<T> {
    pub fn start<S: Sink<Item = T>>(
        name: &'static str,
        sink: S,
        batching: Batching,
    ) -> std::io::Result<Self> {
        let (queue, inbox) = mpsc::channel();
        let room = Arc::new(Room::new(batching.capacity));
        let thread = {
            let room = room.clone();
            std::thread::Builder::new()
                .name(format!("helio-{name}-writer"))
                .spawn(move || run(name, sink, &inbox, batching, &room))?
        };
        Ok(Self {
            name,
            queue: Some(queue),
            thread: Some(thread),
            room,
        })
    }

    /// Queues an item. Never waits: callers that can wait for room do so
    /// before their work starts ([`Room::ready`]).
    pub fn send(&self, item: T) -> Result<(), Stopped> {
        self.room.queued.fetch_add(1, Ordering::Relaxed);
        self.message(Message::Item(item)).inspect_err(|_| {
            self.room.queued.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Waits until everything sent so far is written.
    pub fn flush(&self) -> Result<(), String> {
        let (done, wait) = mpsc::sync_channel(1);
        self.message(Message::Flush(done))
            .map_err(|e| e.to_string())?;
        wait.recv()
            .unwrap_or_else(|_| Err(Stopped(self.name).to_string()))
    }

    /// The queue's fill, for callers that wait for room.
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    fn message(&self, message: Message<T>) -> Result<(), Stopped> {
        let queue = self.queue.as_ref().ok_or(Stopped(self.name))?;
        queue.send(message).map_err(|_| Stopped(self.name))
    }
}

impl<T> Drop for BatchWriter<T> {
    /// Closes the queue and waits for the thread to drain it.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run<S: Sink>(
    name: &'static str,
    mut sink: S,
    inbox: &mpsc::Receiver<Message<S::Item>>,
    batching: Batching,
    room: &Room,
) {
    loop {
        let first = match inbox.recv_timeout(batching.idle_after) {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                sink.idle();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Sleeping (rather than waiting on the queue) while items gather
        // means senders never have to wake this thread.
        if matches!(first, Message::Item(_)) && !batching.gather.is_zero() {
            std::thread::sleep(batching.gather);
        }
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Item(item) => batch.push(item),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < batching.max_batch {
                next = inbox.try_recv().ok();
            }
        }
        let count = batch.len();
        let started = std::time::Instant::now();
        let written = if batch.is_empty() {
            Ok(())
        } else {
            sink.write(batch)
        };
        if let Err(error) = &written {
            tracing::error!(writer = name, %error, items = count, "a batch could not be written");
        }
        room.written(count);
        if count > 0 {
            let queued = room.queued.load(Ordering::Relaxed);
            crate::metrics::get().batch(name, started.elapsed(), written.is_err(), queued);
        }
        for done in flushes {
            let _ = done.send(written.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Collect(Arc<Mutex<Vec<Vec<u32>>>>);

    impl Sink for Collect {
        type Item = u32;
        fn write(&mut self, batch: Vec<u32>) -> Result<(), String> {
            self.0.lock().map_err(|e| e.to_string())?.push(batch);
            Ok(())
        }
    }

    fn batching(capacity: usize) -> Batching {
        Batching {
            capacity,
            gather: Duration::from_millis(20),
            max_batch: 1000,
            idle_after: Duration::from_secs(1),
        }
    }

    #[test]
    fn items_sent_together_are_written_together_and_drop_drains() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let writer =
            BatchWriter::start("test", Collect(seen.clone()), batching(100)).expect("start");
        for i in 0..50 {
            writer.send(i).expect("send");
        }
        writer.flush().expect("flush");
        for i in 50..60 {
            writer.send(i).expect("send");
        }
        drop(writer);
        let batches = seen.lock().expect("lock").clone();
        let all: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(all, (0..60).collect::<Vec<_>>(), "in order, none lost");
        assert!(
            batches.len() <= 3,
            "gathered into few batches: {}",
            batches.len()
        );
    }

    #[test]
    fn a_full_queue_holds_new_work_until_the_writer_catches_up() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let writer = BatchWriter::start("test", Collect(seen.clone()), batching(4)).expect("start");
        // Sends never wait, even past the capacity.
        for i in 0..40 {
            writer.send(i).expect("send");
        }
        let room = writer.room().clone();
        assert!(room.is_full());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), room.ready())
                .await
                .expect("room once the batch is written");
        });
        assert_eq!(room.full_waits(), 1);
        assert!(!room.is_full());
        writer.flush().expect("flush");
        assert_eq!(seen.lock().expect("lock").iter().flatten().count(), 40);
        // An empty queue keeps no buffer around: nothing was preallocated.
        runtime.block_on(room.ready());
        assert_eq!(room.full_waits(), 1, "no wait when there is room");
    }
}
