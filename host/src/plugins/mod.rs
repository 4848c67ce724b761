//! The plugin runtime: loads WebAssembly components built against
//! `helio:governance` (built-in or third-party, through the same path), and
//! runs their `evaluate` in a sandbox bounded in time and memory.
//!
//! - One `Engine` for the process, with epoch interruption; a ticker thread
//!   advances the epoch every [`TICK`], and each call gets a deadline.
//! - Components are compiled at load (cached by content hash, so a reload
//!   that did not change a plugin does not recompile it), never per call.
//! - Instances are created lazily per thread and reused; a call that traps,
//!   times out or runs out of memory discards its instance.
//! - Plugins get no ambient authority: the host imports in `wit/` and
//!   nothing else. A component built for `wasm32-wasip2` imports WASI
//!   interfaces it does not use; those are linked to functions that trap.
//! - Components built against any released contract version load
//!   ([`contract`]): one binding per version, the older delegating to the
//!   newer.

mod bindings;
pub mod builtin;
mod cache;
mod call;
pub mod checks;
pub mod contract;
mod extractor;
pub mod families;
mod host_impl;
mod host_v1;
mod router;
mod ticker;
mod verdict;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};

pub use call::{Annotations, ToolCall};
pub use checks::Check;
pub use extractor::{Extractor, Extractors, Spend};
pub use router::{Asked, Delivery, Router};
pub use verdict::{Decision, Feedback, Verdict};

use contract::{StageExports, StagePre, Version};

use crate::state::{Hold, StateBackend, StateError, StateStore};

use families::{Families, FamilyIndex};
use ticker::{Ticker, TICK};
/// Core instances one plugin instance may hold: a component built from
/// Python (CPython's modules, componentize-py's WASI stubs) has dozens; a
/// Rust one, a few.
const MAX_INSTANCES: usize = 64;
/// Most waiting (on state, on extractors) given back to one call beyond
/// its own time limit.
const MAX_GIVEN_BACK: Duration = Duration::from_secs(10);
/// Budget for `configure`, which may compile patterns.
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a plugin's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Compiled into the binary.
    Builtin(&'static [u8]),
    /// A file named in helio.yaml, optionally pinned by SHA-256.
    File {
        path: PathBuf,
        sha256: Option<[u8; 32]>,
    },
}

/// Everything needed to load one stage.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    pub source: Source,
    /// The stage's configuration, as JSON, for `configure`.
    pub config_json: String,
    pub timeout: Duration,
    pub memory_bytes: usize,
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sha256 mismatch: the file is {actual}, the pin says {expected}")]
    PinMismatch { expected: String, actual: String },
    #[error("not a WebAssembly file (it does not start with the \\0asm magic bytes)")]
    NotWasm,
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("{0}")]
    Imports(String),
    #[error("{0}")]
    Version(String),
    #[error("does not implement the {0} world: {1}")]
    World(&'static str, String),
    #[error("configure failed: {0}")]
    Trap(String),
    #[error("rejected its configuration")]
    Config(Vec<(String, String)>),
}

/// Why a call could not get a verdict from a plugin. Every one of these
/// blocks the call (`plugin_error`): a gateway whose check fails open on
/// error is no gateway.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("trapped: {0}")]
    Trap(String),
    #[error("exceeded its time limit of {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("exceeded its memory limit of {} MiB", .0 >> 20)]
    OutOfMemory(usize),
    #[error("returned a malformed verdict: {0}")]
    Malformed(String),
    #[error("could not be started: {0}")]
    Instantiate(String),
    /// The stage answered a `stage-error` (0.2): it could not decide.
    #[error("reported an error: {0}")]
    StageError(String),
    /// Governance state could not be read or written during the stage.
    #[error("could not reach governance state ({0})")]
    StateUnavailable(StateError),
}

impl Failure {
    /// How the stage failed, without what it said: a trap's text or a
    /// malformed verdict's details are the operator's (logged, recorded),
    /// never the agent's.
    pub fn kind(&self) -> String {
        match self {
            Failure::Trap(_) => "it trapped".into(),
            Failure::Timeout(_) | Failure::OutOfMemory(_) => self.to_string(),
            Failure::Malformed(_) => "it returned a malformed verdict".into(),
            Failure::Instantiate(_) => "it could not be started".into(),
            Failure::StageError(_) => "it could not decide".into(),
            Failure::StateUnavailable(_) => "it could not reach governance state".into(),
        }
    }
}

/// A loaded stage: compiled, linked, and known to accept its configuration.
pub struct Stage {
    id: u64,
    pub name: Arc<str>,
    /// What the stage described of its keys at `configure`.
    pub families: Families,
    pre: StagePre,
    config_json: Arc<str>,
    timeout: Duration,
    memory_bytes: usize,
}

impl Stage {
    /// The contract version the stage's component is built against.
    pub fn version(&self) -> Version {
        self.pre.version()
    }
}

/// What a plugin's store holds: the call resources, its limits, and the
/// governance state it reaches through the `state` imports.
pub struct StoreState {
    table: ResourceTable,
    limits: StoreLimits,
    plugin: Arc<str>,
    /// The session of the call under evaluation (or observation): the only
    /// one 0.2's `evidence` and `completed` read.
    session: Option<Arc<str>>,
    state: Arc<dyn StateStore>,
    /// Set when a `state` import failed: the stage traps, and the call is
    /// refused `state_unavailable` rather than as a stage failure.
    state_failure: Option<StateError>,
    /// The stage's key families, for labelling what it checks.
    families: Families,
    /// What the stage described during `configure`, not yet kept.
    described: Option<FamilyIndex>,
    /// Whether state operations may wait on I/O ([`StateStore::may_block`]).
    state_may_block: bool,
    /// Time spent waiting on state (or an extractor) since the deadline was
    /// last moved: not the stage's own, so it does not count against the
    /// stage's time limit.
    state_waited: Duration,
    /// Waiting given back to the call under evaluation so far.
    given_back: Duration,
    /// `tool-call.spend` asks during the call under evaluation.
    spends: u32,
    /// Slots and amounts taken during the current `evaluate`.
    holds: Vec<Hold>,
    /// What the call under evaluation read or took, for the audit trail.
    checks: Vec<Check>,
    /// Its state operations, timed (only with traces on).
    state_ops: Vec<crate::traces::StateOp>,
}

pub struct Runtime {
    engine: Engine,
    ticker: Ticker,
    /// Compiled components kept across starts (none when no safe place).
    disk: Option<cache::DiskCache>,
    linker: Linker<StoreState>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    state: Arc<dyn StateBackend>,
}

/// A stage's verdict and what it took from governance state on the way.
/// The holds must be committed or released by the caller.
pub struct Evaluated {
    pub verdict: Verdict,
    pub holds: Vec<Hold>,
    pub checks: Vec<Check>,
    /// Its state operations, timed (only with traces on).
    pub state_ops: Vec<crate::traces::StateOp>,
}

static NEXT_STAGE_ID: AtomicU64 = AtomicU64::new(1);

impl Runtime {
    /// `state` is the governance state every stage shares.
    pub fn new(state: Arc<dyn StateBackend>) -> anyhow::Result<Arc<Self>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        type Data = wasmtime::component::HasSelf<StoreState>;
        bindings::v1::StatefulPolicyStage::add_to_linker::<StoreState, Data>(&mut linker, |s| s)?;
        bindings::v2::ObservingPolicyStage::add_to_linker::<StoreState, Data>(&mut linker, |s| s)?;
        let ticker = Ticker::start(&engine)?;
        Ok(Arc::new(Self {
            disk: cache::DiskCache::open(&engine),
            engine,
            ticker,
            linker,
            compiled: Mutex::default(),
            state,
        }))
    }

    pub fn state(&self) -> &Arc<dyn StateBackend> {
        &self.state
    }

    /// Compiles (or reuses) the component, links it, and runs `configure`
    /// once so a bad configuration is reported now, not on the first call.
    pub fn load(&self, spec: &StageSpec) -> Result<Arc<Stage>, LoadError> {
        let (pre, version) = self.link(spec)?;
        let pre = StagePre::new(pre, version)?;
        let stage = Arc::new(Stage {
            id: NEXT_STAGE_ID.fetch_add(1, Ordering::Relaxed),
            name: spec.name.as_str().into(),
            pre,
            config_json: spec.config_json.as_str().into(),
            timeout: spec.timeout,
            memory_bytes: spec.memory_bytes,
            families: Families::default(),
        });
        self.instantiate(&stage).map_err(|e| match e {
            Instantiated::Config(issues) => LoadError::Config(issues),
            Instantiated::Failed(failure) => LoadError::Trap(failure.to_string()),
        })?;
        Ok(stage)
    }

    /// What a component is, as far as its interfaces say: what it exports
    /// and imports, by name and version (for `helio plugin check`).
    pub fn inspect(&self, source: &Source) -> Result<Inspection, LoadError> {
        let component = self.compile(&read(source)?)?;
        let ty = component.component_type();
        let exports = ty.exports(&self.engine).map(|(name, _)| name.to_owned());
        let exports = exports.collect();
        let imports = ty.imports(&self.engine).map(|(name, _)| name.to_owned());
        let imports = imports.collect();
        Ok(Inspection { exports, imports })
    }

    /// Reads (checking the pin), compiles and links a plugin's component:
    /// host imports only, WASI stubbed.
    fn link(
        &self,
        spec: &StageSpec,
    ) -> Result<(wasmtime::component::InstancePre<StoreState>, Version), LoadError> {
        let component = self.compile(&read(&spec.source)?)?;
        let version = contract::check(&component, &self.engine)?;
        let mut linker = self.linker.clone();
        provide_hash_seed(&mut linker, &component, &self.engine)?;
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
        Ok((pre, version))
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        // Checked here so the error never quotes the file's first bytes
        // (wasmtime's own message does: a mistyped path could be a secret).
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        let key: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(component) = self.compiled.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(component);
        }
        let cached = self
            .disk
            .as_ref()
            .and_then(|disk| disk.load(&self.engine, &key));
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, bytes)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                if let Some(disk) = &self.disk {
                    disk.store(&key, &component);
                }
                component
            }
        };
        if let Ok(mut cache) = self.compiled.lock() {
            cache.insert(key, component.clone());
        }
        Ok(component)
    }

    /// A store for one instance of plugin `name`, bounded in memory; its
    /// time is bounded by the deadline each caller sets.
    fn store(
        &self,
        name: &Arc<str>,
        memory_bytes: usize,
        families: &Families,
    ) -> Store<StoreState> {
        let state = StoreState {
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .instances(MAX_INSTANCES)
                .tables(8)
                .memories(4)
                .build(),
            plugin: name.clone(),
            session: None,
            families: families.clone(),
            described: None,
            state_may_block: self.state.may_block(),
            state: self.state.clone(),
            state_failure: None,
            state_waited: Duration::ZERO,
            given_back: Duration::ZERO,
            spends: 0,
            holds: Vec::new(),
            checks: Vec::new(),
            state_ops: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // At the deadline, time the stage spent waiting on the store is given
        // back; only its own running time is bounded.
        // Only whole ticks are given back (the rest carries to the next
        // deadline), and at most MAX_GIVEN_BACK per call: a stage that
        // spends its time in cheap imports cannot keep moving its deadline.
        store.epoch_deadline_callback(|mut context| {
            let data = context.data_mut();
            let whole = data.state_waited.as_micros() / TICK.as_micros();
            let room = MAX_GIVEN_BACK.saturating_sub(data.given_back);
            let grant = (TICK * whole as u32).min(room);
            if grant < TICK {
                return Ok(UpdateDeadline::Interrupt);
            }
            data.state_waited = data.state_waited.saturating_sub(TICK * whole as u32);
            data.given_back += grant;
            Ok(UpdateDeadline::Continue(
                (grant.as_micros() / TICK.as_micros()) as u64,
            ))
        });
        store
    }

    /// Creates and configures a fresh instance of `stage`.
    fn instantiate(&self, stage: &Arc<Stage>) -> Result<Instance, Instantiated> {
        let mut store = self.store(&stage.name, stage.memory_bytes, &stage.families);
        let _busy = self.ticker.busy();
        store.set_epoch_deadline(ticks(CONFIGURE_TIMEOUT));
        let failed = |e| Instantiated::Failed(classify(e, CONFIGURE_TIMEOUT, stage.memory_bytes));
        let bindings = stage.pre.instantiate(&mut store).map_err(failed)?;
        bindings
            .configure(&mut store, &stage.config_json)
            .map_err(failed)?
            .map_err(Instantiated::Config)?;
        // Every instance of a stage is configured alike: the first to
        // describe its keys speaks for all.
        if let Some(described) = store.data_mut().described.take() {
            let _ = stage.families.set(described);
        }
        Ok(Instance {
            stage: Arc::downgrade(stage),
            id: stage.id,
            store,
            bindings,
        })
    }

    /// Runs `stage` on `call` on this thread's instance of it. On failure,
    /// whatever the stage took is already given back.
    pub fn evaluate(&self, stage: &Arc<Stage>, call: ToolCall) -> Result<Evaluated, Failure> {
        self.on_pooled(
            &INSTANCES,
            stage.id,
            || self.instantiate(stage),
            |instance| instance.evaluate(call, stage),
        )
    }

    /// Tells `stage` how a call it asked to observe ended, on this thread's
    /// instance of it. What it takes from governance state is committed at
    /// once (there is no call left to settle); a failure is logged and
    /// changes nothing, since the call is over.
    pub fn observe(&self, stage: &Arc<Stage>, call: ToolCall, outcome: &Outcome) {
        let observed = self.on_pooled(
            &INSTANCES,
            stage.id,
            || self.instantiate(stage),
            |instance| instance.observe(call, stage, outcome),
        );
        if let Err(failure) = observed {
            tracing::warn!(plugin = %stage.name, %failure, "observing a call's outcome failed");
        }
    }

    /// Runs `run` on this thread's instance `id` from `pool`, creating it
    /// with `create` when there is none. An instance that failed is not
    /// reused (its state is unknown) — unless it reported a stage error,
    /// which it returned normally.
    fn on_pooled<I: Pooled, T>(
        &self,
        pool: &'static std::thread::LocalKey<RefCell<Vec<I>>>,
        id: u64,
        create: impl FnOnce() -> Result<I, Instantiated>,
        run: impl FnOnce(&mut I) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        pool.with(|cell| {
            let mut instances = cell.borrow_mut();
            instances.retain(Pooled::is_live);
            let index = match instances.iter().position(|i| i.id() == id) {
                Some(index) => index,
                None => {
                    instances.push(create().map_err(Instantiated::into_failure)?);
                    instances.len() - 1
                }
            };
            let outcome = {
                let _busy = self.ticker.busy();
                run(&mut instances[index])
            };
            if matches!(&outcome, Err(failure) if !matches!(failure, Failure::StageError(_))) {
                instances.swap_remove(index);
            }
            outcome
        })
    }
}

/// An instance kept per thread for reuse, while what it runs is loaded.
trait Pooled {
    fn id(&self) -> u64;
    fn is_live(&self) -> bool;
}

impl Pooled for Instance {
    fn id(&self) -> u64 {
        self.id
    }

    fn is_live(&self) -> bool {
        self.stage.strong_count() > 0
    }
}

/// How a forwarded call ended, for the stages that asked to observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub ending: Ending,
    /// From forwarding the call to its answer.
    pub took: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    ToolError,
    ProtocolError,
    NoAnswer,
}

thread_local! {
    static INSTANCES: RefCell<Vec<Instance>> = const { RefCell::new(Vec::new()) };
}

struct Instance {
    stage: Weak<Stage>,
    id: u64,
    store: Store<StoreState>,
    bindings: StageExports,
}

enum Instantiated {
    Config(Vec<(String, String)>),
    Failed(Failure),
}

impl Instantiated {
    /// An instance created for a call that could not be: the call's failure.
    fn into_failure(self) -> Failure {
        match self {
            Instantiated::Failed(failure) => failure,
            Instantiated::Config(issues) => {
                Failure::Instantiate(format!("configure rejected its configuration: {issues:?}"))
            }
        }
    }
}

impl Instance {
    /// Runs `run` with `call` lent to the stage as its `tool-call`, the
    /// per-call bookkeeping reset and the stage's deadline set.
    fn lend<T>(
        &mut self,
        call: ToolCall,
        timeout: Duration,
        run: impl FnOnce(&StageExports, &mut Store<StoreState>, Resource<ToolCall>) -> T,
    ) -> Result<T, Failure> {
        let session = call.session.clone();
        let resource = self
            .store
            .data_mut()
            .table
            .push(call)
            .map_err(|e| Failure::Instantiate(e.to_string()))?;
        let handle = Resource::<ToolCall>::new_borrow(resource.rep());
        let data = self.store.data_mut();
        data.state_waited = Duration::ZERO;
        data.given_back = Duration::ZERO;
        data.spends = 0;
        data.session = session;
        self.store.set_epoch_deadline(ticks(timeout));
        let result = run(&self.bindings, &mut self.store, handle);
        let data = self.store.data_mut();
        data.session = None;
        let _ = data.table.delete(resource);
        Ok(result)
    }

    fn evaluate(&mut self, call: ToolCall, stage: &Stage) -> Result<Evaluated, Failure> {
        let result = self.lend(call, stage.timeout, |bindings, store, call| {
            bindings.evaluate(store, call)
        })?;
        let data = self.store.data_mut();
        let holds = std::mem::take(&mut data.holds);
        let checks = std::mem::take(&mut data.checks);
        let state_ops = std::mem::take(&mut data.state_ops);
        let state_failure = data.state_failure.take();
        let verdict = match (result, state_failure) {
            (_, Some(failure)) => Err(Failure::StateUnavailable(failure)),
            (Ok(verdict), None) => verdict,
            (Err(error), None) => Err(classify(error, stage.timeout, stage.memory_bytes)),
        };
        match verdict {
            Ok(verdict) => Ok(Evaluated {
                verdict,
                holds,
                checks,
                state_ops,
            }),
            Err(failure) => {
                data.state.release(&holds);
                Err(failure)
            }
        }
    }
}

impl Instance {
    /// Runs the stage's `observe` on `call`. What it took from state is
    /// committed when it returns, given back when it fails.
    fn observe(&mut self, call: ToolCall, stage: &Stage, outcome: &Outcome) -> Result<(), Failure> {
        let result = self.lend(call, stage.timeout, |bindings, store, call| {
            bindings.observe(store, call, outcome)
        })?;
        let data = self.store.data_mut();
        let holds = std::mem::take(&mut data.holds);
        data.checks.clear();
        data.state_ops.clear();
        let failed = match (result, data.state_failure.take()) {
            (_, Some(failure)) => Failure::StateUnavailable(failure),
            (None | Some(Ok(())), None) => {
                return data.state.commit(&holds).map_err(Failure::StateUnavailable);
            }
            (Some(Err(error)), None) => classify(error, stage.timeout, stage.memory_bytes),
        };
        data.state.release(&holds);
        Err(failed)
    }
}

/// A component's bytes, checked against its pin.
fn read(source: &Source) -> Result<std::borrow::Cow<'static, [u8]>, LoadError> {
    let (path, sha256) = match source {
        Source::Builtin(bytes) => return Ok(std::borrow::Cow::Borrowed(*bytes)),
        Source::File { path, sha256 } => (path, sha256),
    };
    let bytes = crate::files::read_regular(path, MAX_COMPONENT_BYTES).map_err(|source| {
        LoadError::Read {
            path: path.clone(),
            source,
        }
    })?;
    if let Some(expected) = sha256 {
        let actual: [u8; 32] = Sha256::digest(&bytes).into();
        if &actual != expected {
            return Err(LoadError::PinMismatch {
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
    }
    Ok(std::borrow::Cow::Owned(bytes))
}

/// A component's interfaces, by name (`helio:governance/stage@0.1.0`,
/// `wasi:cli/environment@0.2.6`, …).
#[derive(Debug, Clone)]
pub struct Inspection {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

impl Inspection {
    /// The `helio:governance` world it implements and the contract version,
    /// read from its exports and imports; none for anything else.
    pub fn world(&self) -> Option<(&'static str, &str)> {
        let export = |interface: &str| {
            self.exports.iter().find_map(|name| {
                name.strip_prefix("helio:governance/")?
                    .strip_prefix(interface)?
                    .strip_prefix('@')
            })
        };
        if let Some(version) = export("stage") {
            let stateful = self
                .imports
                .iter()
                .any(|name| name.starts_with("helio:governance/state@"));
            let world = match (export("observer").is_some(), stateful) {
                (true, _) => "observing-policy-stage",
                (false, true) => "stateful-policy-stage",
                (false, false) => "policy-stage",
            };
            return Some((world, version));
        }
        if let Some(version) = export("approval-router") {
            return Some(("approval-router-plugin", version));
        }
        export("spend-extractor").map(|version| ("spend-extractor-plugin", version))
    }

    /// The imports Helio provides (its own interfaces), and the WASI ones
    /// (linked to functions that trap).
    pub fn provided_and_stubbed(&self) -> (Vec<&str>, Vec<&str>) {
        self.imports
            .iter()
            .map(String::as_str)
            .partition(|name| !name.starts_with("wasi:"))
    }
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

fn classify(error: wasmtime::Error, timeout: Duration, memory_bytes: usize) -> Failure {
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return Failure::Timeout(timeout);
    }
    let text = format!("{error:#}");
    if text.contains("forcing trap when growing memory")
        || text.contains("memory allocation failed")
    {
        return Failure::OutOfMemory(memory_bytes);
    }
    // The first line of a trap is "error while executing at wasm backtrace";
    // the cause (e.g. "wasm `unreachable` instruction executed") is what helps.
    Failure::Trap(error.root_cause().to_string())
}

/// Rust's standard library seeds `HashMap` from `wasi:random/insecure-seed`
/// (regex engines use one). That import alone is given a real answer, a
/// fresh random seed: it grants no authority and keeps hash maps usable.
fn provide_hash_seed(
    linker: &mut Linker<StoreState>,
    component: &Component,
    engine: &Engine,
) -> Result<(), LoadError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if !name.starts_with("wasi:random/insecure-seed@") {
            continue;
        }
        linker
            .instance(name)
            .and_then(|mut instance| {
                instance.func_wrap("insecure-seed", |_, (): ()| {
                    let mut bytes = [0u8; 16];
                    getrandom::fill(&mut bytes).map_err(|e| wasmtime::Error::msg(e.to_string()))?;
                    let (a, b) = bytes.split_at(8);
                    let seed =
                        |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
                    Ok(((seed(a), seed(b)),))
                })
            })
            .map_err(|e| LoadError::Imports(format!("{e:#}")))?;
    }
    Ok(())
}

/// Largest component file loaded.
const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The SHA-256 pin format of helio.yaml: 64 hex digits.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Resolves a plugin path from helio.yaml against the file's directory.
pub fn resolve_path(config_file: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_owned();
    }
    config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(path)
}
