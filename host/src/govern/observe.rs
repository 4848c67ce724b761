//! Stages that asked to observe a call (`decision.observe`) learn how it
//! ended: once, after the answer, off the call's path. Only a forwarded
//! call is observed; one blocked, simulated or never sent is not.

use std::sync::Arc;
use std::time::Instant;

use crate::plugins::{Ending, Outcome, Runtime, Stage, ToolCall};
use crate::state::CallOutcome;

use super::answer::Answer;

/// The stages that asked, and the call as they read it; not yet forwarded.
pub(super) struct Observers {
    pub runtime: Arc<Runtime>,
    pub stages: Vec<Arc<Stage>>,
    pub call: ToolCall,
}

impl Observers {
    /// The call is going out now: from here on it has an ending to tell.
    pub fn forwarded(self) -> Watch {
        Watch {
            observers: Some(self),
            since: Instant::now(),
        }
    }
}

/// A forwarded call its observers wait on. Dropped without an ending (the
/// client went away, the answer never came), it tells them `no-answer`.
pub(super) struct Watch {
    observers: Option<Observers>,
    since: Instant,
}

impl Watch {
    /// The upstream answered `answer`.
    pub fn answered(self, answer: &Answer) {
        let ending = match answer.outcome {
            _ if answer.rpc_error => Ending::ProtocolError,
            CallOutcome::Succeeded => Ending::Succeeded,
            CallOutcome::Failed => Ending::ToolError,
            CallOutcome::Unknown => Ending::NoAnswer,
        };
        self.ended(ending);
    }

    /// Its caller ran it and reported `outcome` (the adapter API), and how
    /// long it ran, if it said.
    pub fn ran(mut self, outcome: CallOutcome, took: Option<std::time::Duration>) {
        let ending = match outcome {
            CallOutcome::Succeeded => Ending::Succeeded,
            CallOutcome::Failed => Ending::ToolError,
            CallOutcome::Unknown => Ending::NoAnswer,
        };
        self.tell(ending, took);
    }

    pub fn ended(mut self, ending: Ending) {
        self.tell(ending, None);
    }

    /// `took`: how long the call ran, when its caller said; else since it
    /// was forwarded.
    fn tell(&mut self, ending: Ending, took: Option<std::time::Duration>) {
        let Some(Observers {
            runtime,
            stages,
            call,
        }) = self.observers.take()
        else {
            return;
        };
        let outcome = Outcome {
            ending,
            took: took.unwrap_or_else(|| self.since.elapsed()),
        };
        let observe = move || {
            for stage in &stages {
                runtime.observe(stage, call.clone(), &outcome);
            }
        };
        // Plugins run on blocking threads, never on a connection's worker.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(observe)),
            Err(_) => observe(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.tell(Ending::NoAnswer, None);
    }
}
