//! Compiled match conditions and how they are tested against a call.

use policy_match::{inputs_match, Glob, InputCondition};
use regex_lite::Regex;

use super::{Annotations, CallView};

/// A rule's `match`: every present condition must hold.
#[derive(Debug)]
pub(crate) struct Conditions {
    pub tool: Option<Glob>,
    pub environment: Option<String>,
    pub annotations: AnnotationConditions,
    /// `Some` when the rule has a `match.input` key (even an empty one): the
    /// call must then carry arguments.
    pub input: Option<Vec<InputCondition>>,
    pub metadata: Vec<MetadataCondition>,
}

impl Conditions {
    /// Whether every present condition holds: the plain walk's test, which
    /// the engine's tool index must agree with.
    #[cfg(test)]
    pub fn matches(&self, call: &impl CallView) -> bool {
        self.tool
            .as_ref()
            .is_none_or(|glob| glob.matches(call.tool()))
            && self.match_beyond_tool(call)
    }

    /// Whether every present condition but `tool` holds: the engine's tool
    /// index has already chosen this rule for the call's tool. Cheap
    /// conditions (environment, annotations) are tested before those that
    /// ask the host for argument or metadata values.
    pub fn match_beyond_tool(&self, call: &impl CallView) -> bool {
        if let Some(env) = &self.environment {
            if call.environment() != Some(env.as_str()) {
                return false;
            }
        }
        if !self.annotations.is_empty() && !self.annotations.matches(call.annotations()) {
            return false;
        }
        if let Some(input) = &self.input {
            if !inputs_match(input, call) {
                return false;
            }
        }
        self.metadata
            .iter()
            .all(|c| c.matches(call.metadata(&c.key).as_deref()))
    }
}

/// `match.annotations`: each listed hint must equal the call's.
#[derive(Debug, Default)]
pub(crate) struct AnnotationConditions {
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

impl AnnotationConditions {
    fn is_empty(&self) -> bool {
        self.read_only_hint.is_none()
            && self.destructive_hint.is_none()
            && self.idempotent_hint.is_none()
            && self.open_world_hint.is_none()
    }

    fn matches(&self, a: Annotations) -> bool {
        fn ok(want: Option<bool>, have: bool) -> bool {
            want.is_none_or(|w| w == have)
        }
        ok(self.read_only_hint, a.read_only_hint)
            && ok(self.destructive_hint, a.destructive_hint)
            && ok(self.idempotent_hint, a.idempotent_hint)
            && ok(self.open_world_hint, a.open_world_hint)
    }
}

/// `match.metadata.<key>`: string operators on an adapter-supplied value.
#[derive(Debug)]
pub(crate) struct MetadataCondition {
    pub key: String,
    pub eq: Option<String>,
    pub neq: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<Regex>,
}

impl MetadataCondition {
    /// Every operator is false on an absent value (always the case on the
    /// MCP path, so rules with metadata conditions never match there).
    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        self.eq.as_deref().is_none_or(|e| value == e)
            && self.neq.as_deref().is_none_or(|n| value != n)
            && self.contains.as_deref().is_none_or(|c| value.contains(c))
            && self.regex.as_ref().is_none_or(|re| re.is_match(value))
    }
}
