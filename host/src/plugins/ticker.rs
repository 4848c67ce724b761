//! The epoch ticker: advances the engine's epoch every [`TICK`] while some
//! stage may be running, so call deadlines (counted in ticks) can fire; and
//! sleeps while none is, so an idle Helio does not wake 100 times a second.
//!
//! A call marks itself busy ([`Ticker::busy`]) before it enters a component;
//! the first busy call after a pause wakes the thread. The flags are
//! sequentially consistent, so a call that starts while the ticker decides
//! to sleep either is seen by it or sees it asleep and wakes it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// How often the epoch advances; call deadlines are counted in ticks.
pub const TICK: Duration = Duration::from_millis(10);
/// Ticks with nothing running before the ticker sleeps.
const IDLE_TICKS: u32 = 50;

#[derive(Default)]
struct Shared {
    running: AtomicUsize,
    asleep: AtomicBool,
    stopped: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

pub struct Ticker(Arc<Shared>);

/// Held while a component runs: the ticker keeps ticking.
pub struct Busy<'a>(&'a Shared);

impl Ticker {
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let handle = {
            let (shared, engine) = (shared.clone(), engine.weak());
            std::thread::Builder::new()
                .name("helio-epoch".into())
                .spawn(move || run(&shared, &engine))?
        };
        let _ = shared.thread.set(handle.thread().clone());
        Ok(Self(shared))
    }

    /// Marks a component call as running until the guard drops.
    pub fn busy(&self) -> Busy<'_> {
        self.0.running.fetch_add(1, SeqCst);
        if self.0.asleep.load(SeqCst) {
            wake(&self.0);
        }
        Busy(&self.0)
    }

    /// Whether the ticker is asleep (for tests).
    #[cfg(test)]
    pub fn asleep(&self) -> bool {
        self.0.asleep.load(SeqCst)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, SeqCst);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.stopped.store(true, SeqCst);
        wake(&self.0);
    }
}

fn wake(shared: &Shared) {
    if let Some(thread) = shared.thread.get() {
        thread.unpark();
    }
}

fn run(shared: &Shared, engine: &EngineWeak) {
    let mut idle = 0;
    while !shared.stopped.load(SeqCst) {
        std::thread::sleep(TICK);
        match engine.upgrade() {
            Some(engine) => engine.increment_epoch(),
            None => return,
        }
        idle = if shared.running.load(SeqCst) == 0 {
            idle + 1
        } else {
            0
        };
        if idle >= IDLE_TICKS {
            shared.asleep.store(true, SeqCst);
            // Spurious wake-ups only cost one more loop.
            while shared.running.load(SeqCst) == 0 && !shared.stopped.load(SeqCst) {
                std::thread::park();
            }
            shared.asleep.store(false, SeqCst);
            idle = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_when_idle_and_ticks_again_for_a_call() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("engine");
        let ticker = Ticker::start(&engine).expect("ticker");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ticker.asleep() {
            assert!(std::time::Instant::now() < deadline, "never went to sleep");
            std::thread::sleep(TICK);
        }
        // A busy call wakes it: the epoch advances while the call runs, so
        // a store's deadline would fire.
        let mut store = wasmtime::Store::new(&engine, ());
        store.set_epoch_deadline(1);
        let _busy = ticker.busy();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while ticker.asleep() {
            assert!(std::time::Instant::now() < deadline, "did not wake");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
