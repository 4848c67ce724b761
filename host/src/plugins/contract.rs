//! The versions of `helio:governance` Helio loads, and what differs between
//! them at the component's edge: which interfaces a component may import,
//! how its `stage` exports are called, and how their answers read. Every
//! version's imports are served by one implementation (`host_impl`, with
//! `host_v1` delegating to it), so the rest of the runtime does not know
//! which version a stage speaks.

use wasmtime::component::{Component, InstancePre, Resource};
use wasmtime::{Engine, Store};

use super::bindings::{v1, v2};
use super::{Failure, LoadError, StoreState, ToolCall, Verdict};

use v2::exports::helio::governance::observer as v2_observer;
use v2::exports::helio::governance::stage as v2_stage;

/// A contract version Helio loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `helio:governance@0.1.0`, frozen in `wit/since_v0.1.0/`.
    V0_1,
    /// `helio:governance@0.2.0`, `wit/`.
    V0_2,
}

/// Every version Helio loads, oldest first.
pub const SUPPORTED: [Version; 2] = [Version::V0_1, Version::V0_2];

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        SUPPORTED.into_iter().find(|v| v.as_str() == text)
    }

    /// The Helio interfaces a component of this version may import.
    fn provided(self) -> &'static [&'static str] {
        match self {
            Version::V0_1 => &[
                "helio:governance/types@0.1.0",
                "helio:governance/host@0.1.0",
                "helio:governance/state@0.1.0",
            ],
            Version::V0_2 => &[
                "helio:governance/types@0.2.0",
                "helio:governance/host@0.2.0",
                "helio:governance/state@0.2.0",
            ],
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The versions Helio loads, for messages: `0.1.0 and 0.2.0`.
pub fn supported_list() -> String {
    let names: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The contract version `component` is built against, read from the
/// `helio:governance` interfaces it imports and exports, after checking
/// that it needs nothing Helio does not provide. One version per
/// component: a component mixing two is refused.
pub fn check(component: &Component, engine: &Engine) -> Result<Version, LoadError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let mut versions: Vec<&str> = imports
        .iter()
        .chain(&exports)
        .filter_map(|name| contract_version(name))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let version = match versions.as_slice() {
        [] => {
            return Err(LoadError::Version(format!(
                "it uses no helio:governance interface; Helio loads components built against helio:governance {}",
                supported_list()
            )))
        }
        [one] => Version::parse(one).ok_or_else(|| {
            LoadError::Version(format!(
                "it is built against helio:governance@{one}; this version of Helio loads components built against {} (see docs/wit-changelog.md)",
                supported_list()
            ))
        })?,
        many => {
            return Err(LoadError::Version(format!(
                "it mixes helio:governance versions {}; a component is built against one",
                many.join(" and ")
            )))
        }
    };
    let missing: Vec<&str> = imports
        .iter()
        .map(String::as_str)
        .filter(|name| !name.starts_with("wasi:") && !version.provided().contains(name))
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::Imports(format!(
            "imports interfaces this version of Helio does not provide: {}",
            missing.join(", ")
        )));
    }
    Ok(version)
}

/// The version in a `helio:governance/<interface>@<version>` name.
fn contract_version(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("helio:governance/")?;
    Some(rest.split_once('@').map_or("", |(_, version)| version))
}

/// The 0.2 observer export's name.
const OBSERVER: &str = "helio:governance/observer@0.2.0";

/// Routers and extractors have no governance state (their worlds import
/// `host` and `types` only): one of theirs that imports `state` is refused,
/// since nothing would settle what it took.
pub(super) fn without_state(
    pre: &InstancePre<StoreState>,
    engine: &Engine,
    world: &'static str,
) -> Result<(), LoadError> {
    let ty = pre.component().component_type();
    let mut imports = ty.imports(engine);
    if imports.any(|(name, _)| name.starts_with("helio:governance/state@")) {
        return Err(LoadError::World(
            world,
            "it imports helio:governance/state, which this world does not have".into(),
        ));
    }
    Ok(())
}

/// A stage's component, linked and checked against its version's world.
pub(super) enum StagePre {
    V0_1(v1::StatefulPolicyStagePre<StoreState>),
    V0_2 {
        pre: InstancePre<StoreState>,
        stage: v2_stage::GuestIndices,
        observer: Option<v2_observer::GuestIndices>,
    },
}

/// One instance's `stage` (and `observer`) exports.
pub(super) enum StageExports {
    V0_1(v1::StatefulPolicyStage),
    V0_2 {
        stage: v2_stage::Guest,
        observer: Option<v2_observer::Guest>,
    },
}

impl StagePre {
    pub fn new(pre: InstancePre<StoreState>, version: Version) -> Result<Self, LoadError> {
        let world = |e: wasmtime::Error| LoadError::World("policy-stage", format!("{e:#}"));
        Ok(match version {
            Version::V0_1 => StagePre::V0_1(v1::StatefulPolicyStagePre::new(pre).map_err(world)?),
            Version::V0_2 => {
                // Optional: only a stage that observes exports it — but one
                // that exports it wrong is refused, not taken for one that
                // does not observe.
                let observer = match v2_observer::GuestIndices::new(&pre) {
                    Ok(observer) => Some(observer),
                    Err(_) if pre.component().get_export_index(None, OBSERVER).is_none() => None,
                    Err(error) => return Err(world(error)),
                };
                StagePre::V0_2 {
                    stage: v2_stage::GuestIndices::new(&pre).map_err(world)?,
                    observer,
                    pre,
                }
            }
        })
    }

    pub fn version(&self) -> Version {
        match self {
            StagePre::V0_1(_) => Version::V0_1,
            StagePre::V0_2 { .. } => Version::V0_2,
        }
    }

    pub fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<StageExports> {
        Ok(match self {
            StagePre::V0_1(pre) => StageExports::V0_1(pre.instantiate(store)?),
            StagePre::V0_2 {
                pre,
                stage,
                observer,
            } => {
                let instance = pre.instantiate(&mut *store)?;
                StageExports::V0_2 {
                    stage: stage.load(&mut *store, &instance)?,
                    observer: match observer {
                        Some(observer) => Some(observer.load(&mut *store, &instance)?),
                        None => None,
                    },
                }
            }
        })
    }
}

/// What `configure` answered: accepted, or each error by path.
pub(super) type Configured = Result<(), Vec<(String, String)>>;

impl StageExports {
    pub fn configure(
        &self,
        store: &mut Store<StoreState>,
        config_json: &str,
    ) -> wasmtime::Result<Configured> {
        Ok(match self {
            StageExports::V0_1(bindings) => bindings
                .helio_governance_stage()
                .call_configure(store, config_json)?
                .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect()),
            StageExports::V0_2 { stage, .. } => stage
                .call_configure(store, config_json)?
                .map_err(|errors| errors.into_iter().map(|e| (e.path, e.message)).collect()),
        })
    }

    /// The stage's verdict on `call`: a trap is the outer error; a verdict
    /// that does not read, or a stage error, the inner one.
    pub fn evaluate(
        &self,
        store: &mut Store<StoreState>,
        call: Resource<ToolCall>,
    ) -> wasmtime::Result<Result<Verdict, Failure>> {
        Ok(match self {
            StageExports::V0_1(bindings) => {
                let verdict = bindings
                    .helio_governance_stage()
                    .call_evaluate(store, call)?;
                Verdict::try_from(verdict).map_err(Failure::Malformed)
            }
            StageExports::V0_2 { stage, observer } => match stage.call_evaluate(store, call)? {
                Ok(verdict) => {
                    let verdict = Verdict::try_from(verdict).map_err(Failure::Malformed)?;
                    if verdict.decision().observe && observer.is_none() {
                        return Ok(Err(Failure::Malformed(
                            "it asked to observe the call but does not export helio:governance/observer"
                                .into(),
                        )));
                    }
                    Ok(verdict)
                }
                Err(error) => Err(Failure::StageError(error.message)),
            },
        })
    }

    /// Tells the stage how `call` ended; none when it does not observe.
    pub fn observe(
        &self,
        store: &mut Store<StoreState>,
        call: Resource<ToolCall>,
        outcome: &super::Outcome,
    ) -> Option<wasmtime::Result<()>> {
        let StageExports::V0_2 {
            observer: Some(observer),
            ..
        } = self
        else {
            return None;
        };
        use super::Ending;
        use v2_observer::Ending as Wit;
        let outcome = v2_observer::Outcome {
            ending: match outcome.ending {
                Ending::Succeeded => Wit::Succeeded,
                Ending::ToolError => Wit::ToolError,
                Ending::ProtocolError => Wit::ProtocolError,
                Ending::NoAnswer => Wit::NoAnswer,
            },
            took_ms: u64::try_from(outcome.took.as_millis()).unwrap_or(u64::MAX),
        };
        Some(observer.call_observe(store, call, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_from_interface_names() {
        assert_eq!(
            contract_version("helio:governance/stage@0.2.0"),
            Some("0.2.0")
        );
        assert_eq!(contract_version("helio:governance/types"), Some(""));
        assert_eq!(contract_version("wasi:cli/environment@0.2.6"), None);
        assert_eq!(Version::parse("0.1.0"), Some(Version::V0_1));
        assert_eq!(Version::parse("0.3.0"), None);
        assert_eq!(supported_list(), "0.1.0 and 0.2.0");
        // Each version may import only its own interfaces.
        assert!(Version::V0_2
            .provided()
            .iter()
            .all(|name| name.ends_with("@0.2.0")));
    }
}
