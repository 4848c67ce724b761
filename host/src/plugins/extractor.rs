//! Spend extractors: components of the `spend-extractor-plugin` world that
//! read the amount a call spends where a field path is not enough (minor
//! units, line items, a currency in another field). helio.yaml names them
//! under `extractors`; a stage asks for one's reading of the call under
//! evaluation through `tool-call.spend`.
//!
//! An extractor runs inside the asking stage's host import, on the same
//! thread: its instances live in their own thread-local list (the stage's
//! own instance is borrowed while it runs), and its time is its own limit's,
//! given back to the stage like a wait on state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime::Store;

use super::bindings::v2::extractor::{SpendExtractorPlugin, SpendExtractorPluginPre};
use super::contract::Version;
use super::families::Families;
use super::{
    classify, ticks, Failure, Instantiated, LoadError, Pooled, Runtime, StageSpec, StoreState,
    ToolCall, CONFIGURE_TIMEOUT, NEXT_STAGE_ID,
};
use crate::state::Decimal;

/// A loaded extractor: compiled, linked, and known to accept its
/// configuration.
pub struct Extractor {
    id: u64,
    pub name: Arc<str>,
    pre: SpendExtractorPluginPre<StoreState>,
    config_json: Arc<str>,
    timeout: Duration,
    memory_bytes: usize,
}

/// What an extractor read: an exact amount and the currency the call states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// Normalised non-negative decimal (`12.5`).
    pub amount: String,
    pub currency: Option<String>,
}

/// The extractors of one configuration, by name, with the runtime that
/// runs them: what a call carries for its stages' `tool-call.spend`.
pub struct Extractors {
    runtime: Arc<Runtime>,
    by_name: HashMap<String, Arc<Extractor>>,
}

impl Extractors {
    pub fn new(runtime: Arc<Runtime>, extractors: Vec<Arc<Extractor>>) -> Self {
        let by_name = extractors
            .into_iter()
            .map(|e| (e.name.to_string(), e))
            .collect();
        Self { runtime, by_name }
    }

    /// The amount extractor `name` reads from `call`; the error is the
    /// stage's to block the call on (and the operator's to read).
    pub fn extract(&self, name: &str, call: ToolCall) -> Result<Option<Spend>, String> {
        let Some(extractor) = self.by_name.get(name) else {
            return Err(format!("no spend extractor named \"{name}\" is configured"));
        };
        let read = self.runtime.extract(extractor, call).map_err(|failure| {
            tracing::error!(extractor = name, %failure, "spend extractor failed");
            format!("the spend extractor \"{name}\" failed: {failure}")
        })?;
        match read {
            Ok(None) => Ok(None),
            Ok(Some(spend)) => {
                let amount = Decimal::from_str(spend.amount.trim())
                    .ok()
                    .filter(|d| !d.is_sign_negative() || d.is_zero())
                    .ok_or_else(|| {
                        format!(
                            "the spend extractor \"{name}\" returned \"{}\", not a non-negative decimal",
                            spend.amount
                        )
                    })?;
                Ok(Some(Spend {
                    amount: amount.normalize().to_string(),
                    currency: spend.currency,
                }))
            }
            Err(unusable) => Err(format!(
                "the spend extractor \"{name}\" found the amount unusable: {unusable}"
            )),
        }
    }
}

impl std::fmt::Debug for Extractors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Runtime {
    /// Loads an extractor and runs its `configure` once, so a bad
    /// configuration is reported now. Contract 0.2 only: no earlier Helio
    /// loaded this world.
    pub fn load_extractor(&self, spec: &StageSpec) -> Result<Arc<Extractor>, LoadError> {
        let (pre, version) = self.link(spec)?;
        super::contract::without_state(&pre, &self.engine, "spend-extractor-plugin")?;
        if version != Version::V0_2 {
            return Err(LoadError::Version(format!(
                "a spend extractor must be built against helio:governance@{} (it is built against {version})",
                Version::V0_2
            )));
        }
        let pre = SpendExtractorPluginPre::new(pre)
            .map_err(|e| LoadError::World("spend-extractor-plugin", format!("{e:#}")))?;
        let extractor = Arc::new(Extractor {
            id: NEXT_STAGE_ID.fetch_add(1, Ordering::Relaxed),
            name: spec.name.as_str().into(),
            pre,
            config_json: spec.config_json.as_str().into(),
            timeout: spec.timeout,
            memory_bytes: spec.memory_bytes,
        });
        self.extractor_instance(&extractor).map_err(|e| match e {
            Instantiated::Config(issues) => LoadError::Config(issues),
            Instantiated::Failed(failure) => LoadError::Trap(failure.to_string()),
        })?;
        Ok(extractor)
    }

    /// A fresh, configured instance.
    fn extractor_instance(
        &self,
        extractor: &Arc<Extractor>,
    ) -> Result<ExtractorInstance, Instantiated> {
        let mut store = self.store(
            &extractor.name,
            extractor.memory_bytes,
            &Families::default(),
        );
        let _busy = self.ticker.busy();
        store.set_epoch_deadline(ticks(CONFIGURE_TIMEOUT));
        let failed =
            |e| Instantiated::Failed(classify(e, CONFIGURE_TIMEOUT, extractor.memory_bytes));
        let bindings = extractor.pre.instantiate(&mut store).map_err(failed)?;
        bindings
            .helio_governance_spend_extractor()
            .call_configure(&mut store, &extractor.config_json)
            .map_err(failed)?
            .map_err(|errors| {
                Instantiated::Config(errors.into_iter().map(|e| (e.path, e.message)).collect())
            })?;
        Ok(ExtractorInstance {
            extractor: Arc::downgrade(extractor),
            id: extractor.id,
            store,
            bindings,
        })
    }

    /// Runs `extractor` on `call` on this thread's instance of it.
    fn extract(
        &self,
        extractor: &Arc<Extractor>,
        call: ToolCall,
    ) -> Result<Result<Option<Spend>, String>, Failure> {
        self.on_pooled(
            &EXTRACTORS,
            extractor.id,
            || self.extractor_instance(extractor),
            |instance| instance.extract(call, extractor),
        )
    }
}

thread_local! {
    static EXTRACTORS: RefCell<Vec<ExtractorInstance>> = const { RefCell::new(Vec::new()) };
}

struct ExtractorInstance {
    extractor: Weak<Extractor>,
    id: u64,
    store: Store<StoreState>,
    bindings: SpendExtractorPlugin,
}

impl Pooled for ExtractorInstance {
    fn id(&self) -> u64 {
        self.id
    }

    fn is_live(&self) -> bool {
        self.extractor.strong_count() > 0
    }
}

impl ExtractorInstance {
    fn extract(
        &mut self,
        call: ToolCall,
        extractor: &Extractor,
    ) -> Result<Result<Option<Spend>, String>, Failure> {
        // An extractor cannot ask another (or itself) for the amount.
        let call = ToolCall {
            extractors: None,
            ..call
        };
        let resource = self
            .store
            .data_mut()
            .table
            .push(call)
            .map_err(|e| Failure::Instantiate(e.to_string()))?;
        let handle = Resource::<ToolCall>::new_borrow(resource.rep());
        self.store.set_epoch_deadline(ticks(extractor.timeout));
        let read = self
            .bindings
            .helio_governance_spend_extractor()
            .call_extract(&mut self.store, handle);
        let _ = self.store.data_mut().table.delete(resource);
        let read = read.map_err(|e| classify(e, extractor.timeout, extractor.memory_bytes))?;
        Ok(read.map(|spend| {
            spend.map(|s| Spend {
                amount: s.amount,
                currency: s.currency,
            })
        }))
    }
}
