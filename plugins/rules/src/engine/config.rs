//! Parsing and compiling the stage configuration. The host has already
//! validated helio.yaml strictly; this still checks everything it reads, so
//! whatever it cannot compile (a regex regex-lite rejects, a broken glob, an
//! unknown action) is reported with its path instead of silently ignored.
//! Paths are relative to `policies`; a key set to null counts as absent, as
//! in the host (except the `eq`/`neq` operators, where null is a value).

use serde_json::{Map, Value as Json};

use super::conditions::{
    AnnotationConditions, Conditions, Expected, Glob, InputCondition, MetadataCondition, Operators,
    Rule,
};
use super::verdicts::{self, Action, RuleSpec};
use super::{ConfigError, DefaultPolicy, Engine, FlagDestructive};

const POLICY_ACTIONS: &[&str] = &[
    "allow",
    "deny",
    "require_approval",
    "rate_limit",
    "spend_limit",
    "dry_run",
];

pub(super) fn compile(config_json: &str) -> Result<Engine, Vec<ConfigError>> {
    let root: Json = serde_json::from_str(config_json).map_err(|e| {
        vec![ConfigError {
            path: String::new(),
            message: format!("stage configuration is not valid JSON: {e}"),
        }]
    })?;
    let mut p = Parser::default();
    let Json::Object(root) = &root else {
        p.error(
            "",
            format!(
                "stage configuration must be a JSON object, found {}",
                kind(&root)
            ),
        );
        return Err(p.errors);
    };
    let environment = match present(root, "environment") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => {
            p.error(
                "",
                format!(
                    "environment must be a string or null, found {}",
                    kind(other)
                ),
            );
            None
        }
    };
    let empty = Map::new();
    let policies = match present(root, "policies") {
        None => &empty,
        Some(Json::Object(m)) => m,
        Some(other) => {
            p.error(
                "",
                format!("policies: expected a mapping, found {}", kind(other)),
            );
            &empty
        }
    };

    // Other keys of `policies` (on_tool_drift, tool_revalidation, hot_reload,
    // install) belong to other parts of Helio and are ignored here.
    let default = match present(policies, "default") {
        None => DefaultPolicy::Allow,
        Some(v) => match p.choice(v, "default", &["allow", "deny"]) {
            Some("deny") => DefaultPolicy::Deny,
            _ => DefaultPolicy::Allow,
        },
    };
    let flag_destructive = present(policies, "flag_destructive").and_then(|v| {
        match p.choice(v, "flag_destructive", &["log", "require_approval"])? {
            "log" => Some(FlagDestructive::Log),
            _ => Some(FlagDestructive::RequireApproval),
        }
    });
    let dry_run = present(policies, "dry_run")
        .and_then(|v| p.bool(v, "dry_run"))
        .unwrap_or(false);

    let mut rules = Vec::new();
    match present(policies, "rules") {
        None => {}
        Some(Json::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if let Some(rule) = p.rule(item, index, dry_run) {
                    rules.push(rule);
                }
            }
        }
        Some(other) => p.error("rules", format!("expected a list, found {}", kind(other))),
    }

    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    Ok(Engine {
        rules,
        default,
        flag_destructive,
        dry_run,
        environment,
        default_verdict: verdicts::default_verdict(default, dry_run),
        flagged_verdict: verdicts::flagged_destructive_verdict(dry_run),
    })
}

/// The value at `key`, treating null as absent.
fn present<'v>(obj: &'v Map<String, Json>, key: &str) -> Option<&'v Json> {
    obj.get(key).filter(|v| !v.is_null())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

#[derive(Default)]
struct Parser {
    errors: Vec<ConfigError>,
}

impl Parser {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Opens a mapping, reporting keys not in `known`.
    fn object<'v>(
        &mut self,
        value: &'v Json,
        path: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Json>> {
        let Json::Object(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.error(path, format!("unknown key \"{key}\""));
            }
        }
        Some(map)
    }

    fn string(&mut self, value: &Json, path: &str) -> Option<String> {
        match value {
            Json::String(s) => Some(s.clone()),
            other => {
                self.error(path, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    /// Booleans; "true"/"false" strings are accepted as the host accepts
    /// them (so `${VAR}` works).
    fn bool(&mut self, value: &Json, path: &str) -> Option<bool> {
        match value {
            Json::Bool(b) => Some(*b),
            Json::String(s) if s == "true" => Some(true),
            Json::String(s) if s == "false" => Some(false),
            other => {
                self.error(
                    path,
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn number(&mut self, value: &Json, path: &str) -> Option<f64> {
        match value.as_f64() {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.error(path, format!("expected a number, found {}", kind(value)));
                None
            }
        }
    }

    fn choice(
        &mut self,
        value: &Json,
        path: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let text = self.string(value, path)?;
        if let Some(found) = choices.iter().find(|c| **c == text) {
            return Some(found);
        }
        self.error(
            path,
            format!(
                "invalid value \"{text}\" (expected one of: {})",
                choices.join(", ")
            ),
        );
        None
    }

    fn string_list(&mut self, value: &Json, path: &str) -> Option<Vec<String>> {
        let Json::Array(items) = value else {
            self.error(path, format!("expected a list, found {}", kind(value)));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.string(item, &format!("{path}[{i}]"))?);
        }
        Some(out)
    }

    fn duration_ms(&mut self, value: &Json, path: &str) -> Option<u64> {
        let text = self.string(value, path)?;
        match parse_duration_ms(&text) {
            Some(ms) => Some(ms),
            None => {
                self.error(
                    path,
                    format!("invalid duration \"{text}\" (expected a whole number followed by s, m, h or d, e.g. \"30s\", \"5m\", \"1h\", \"2d\")"),
                );
                None
            }
        }
    }

    fn regex(&mut self, value: &Json, path: &str) -> Option<regex_lite::Regex> {
        let source = self.string(value, path)?;
        match regex_lite::Regex::new(&source) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(path, format!("invalid regex \"{source}\": {e}"));
                None
            }
        }
    }

    fn rule(&mut self, value: &Json, index: usize, dry_run: bool) -> Option<Rule> {
        let path = format!("rules[{index}]");
        let before = self.errors.len();
        let obj = self.object(
            value,
            &path,
            &[
                "name",
                "match",
                "action",
                "approval",
                "evidence",
                "requires",
                "requires_success",
                "limits",
                "feedback",
            ],
        )?;
        let name = present(obj, "name").and_then(|v| self.string(v, &join(&path, "name")));
        let action = match present(obj, "action") {
            Some(v) => self
                .choice(v, &join(&path, "action"), POLICY_ACTIONS)
                .and_then(Action::from_name),
            None => {
                self.error(&join(&path, "action"), "missing required key");
                None
            }
        };
        let conditions = match present(obj, "match") {
            Some(v) => self.rule_match(v, &join(&path, "match")),
            None => {
                self.error(&join(&path, "match"), "missing required key");
                None
            }
        };

        let mut spec = RuleSpec {
            index,
            name,
            action: action.unwrap_or(Action::Deny),
            ..RuleSpec::default()
        };
        if let Some(v) = present(obj, "approval") {
            self.approval(v, &join(&path, "approval"), &mut spec);
        }
        if let Some(v) = present(obj, "evidence") {
            let epath = join(&path, "evidence");
            if let Some(e) = self.object(v, &epath, &["requires"]) {
                match present(e, "requires") {
                    Some(r) => {
                        spec.evidence = self
                            .string_list(r, &join(&epath, "requires"))
                            .unwrap_or_default();
                    }
                    None => self.error(&join(&epath, "requires"), "missing required key"),
                }
            }
        }
        if let Some(v) = present(obj, "requires") {
            spec.requires = self
                .string_list(v, &join(&path, "requires"))
                .unwrap_or_default();
        }
        if let Some(v) = present(obj, "requires_success") {
            self.bool(v, &join(&path, "requires_success"));
        }
        // `limits` configures rate_limit / spend_limit, which this stage
        // cannot enforce (it has no state import); only its shape is checked.
        if let Some(v) = present(obj, "limits") {
            self.object(
                v,
                &join(&path, "limits"),
                &["max_calls", "window", "key", "max_spend"],
            );
        }
        if let Some(v) = present(obj, "feedback") {
            let fpath = join(&path, "feedback");
            if let Some(f) = self.object(v, &fpath, &["message", "suggestion"]) {
                match present(f, "message") {
                    Some(m) => spec.feedback_message = self.string(m, &join(&fpath, "message")),
                    None => self.error(&join(&fpath, "message"), "missing required key"),
                }
                spec.feedback_suggestion = present(f, "suggestion")
                    .and_then(|s| self.string(s, &join(&fpath, "suggestion")));
            }
        }

        if self.errors.len() > before {
            return None;
        }
        action?;
        Some(Rule {
            conditions: conditions?,
            verdict: verdicts::rule_verdict(&spec, dry_run),
        })
    }

    fn approval(&mut self, value: &Json, path: &str, spec: &mut RuleSpec) {
        let Some(obj) = self.object(
            value,
            path,
            &["channel", "timeout", "delegates", "escalation_after"],
        ) else {
            return;
        };
        match present(obj, "channel") {
            Some(v) => spec.approval_channel = self.string(v, &join(path, "channel")),
            None => self.error(&join(path, "channel"), "missing required key"),
        }
        spec.approval_timeout_ms =
            present(obj, "timeout").and_then(|v| self.duration_ms(v, &join(path, "timeout")));
        // Delegates and escalation are the approval router's business; they
        // are checked here only so a typo fails the load.
        if let Some(v) = present(obj, "delegates") {
            self.string_list(v, &join(path, "delegates"));
        }
        if let Some(v) = present(obj, "escalation_after") {
            self.duration_ms(v, &join(path, "escalation_after"));
        }
    }

    fn rule_match(&mut self, value: &Json, path: &str) -> Option<Conditions> {
        let obj = self.object(
            value,
            path,
            &["tool", "annotations", "input", "environment", "metadata"],
        )?;
        let tool = present(obj, "tool").and_then(|v| {
            let tpath = join(path, "tool");
            let glob = self.string(v, &tpath)?;
            Glob::compile(&glob)
                .map_err(|message| self.error(&tpath, message))
                .ok()
        });
        let environment =
            present(obj, "environment").and_then(|v| self.string(v, &join(path, "environment")));
        let annotations = present(obj, "annotations")
            .and_then(|v| self.annotations(v, &join(path, "annotations")))
            .unwrap_or_default();
        let input = present(obj, "input").map(|v| self.input(v, &join(path, "input")));
        let metadata = present(obj, "metadata")
            .map(|v| self.metadata(v, &join(path, "metadata")))
            .unwrap_or_default();
        Some(Conditions {
            tool,
            environment,
            annotations,
            input,
            metadata,
        })
    }

    fn annotations(&mut self, value: &Json, path: &str) -> Option<AnnotationConditions> {
        let obj = self.object(
            value,
            path,
            &[
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ],
        )?;
        let mut hint = |key: &str| present(obj, key).and_then(|v| self.bool(v, &join(path, key)));
        Some(AnnotationConditions {
            read_only_hint: hint("readOnlyHint"),
            destructive_hint: hint("destructiveHint"),
            idempotent_hint: hint("idempotentHint"),
            open_world_hint: hint("openWorldHint"),
        })
    }

    fn input(&mut self, value: &Json, path: &str) -> Vec<InputCondition> {
        let Json::Object(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (arg_path, ops) in map {
            let opath = join(path, arg_path);
            if let Some(ops) = self.operators(ops, &opath) {
                out.push(InputCondition {
                    path: arg_path.clone(),
                    ops,
                });
            }
        }
        out
    }

    fn operators(&mut self, value: &Json, path: &str) -> Option<Operators> {
        let before = self.errors.len();
        let obj = self.object(
            value,
            path,
            &["eq", "neq", "gt", "gte", "lt", "lte", "contains", "regex"],
        )?;
        // `eq: null` / `neq: null` compare against JSON null.
        let ops = Operators {
            eq: obj.get("eq").map(Expected::from_json),
            neq: obj.get("neq").map(Expected::from_json),
            gt: present(obj, "gt").and_then(|v| self.number(v, &join(path, "gt"))),
            gte: present(obj, "gte").and_then(|v| self.number(v, &join(path, "gte"))),
            lt: present(obj, "lt").and_then(|v| self.number(v, &join(path, "lt"))),
            lte: present(obj, "lte").and_then(|v| self.number(v, &join(path, "lte"))),
            contains: present(obj, "contains")
                .and_then(|v| self.string(v, &join(path, "contains"))),
            regex: present(obj, "regex").and_then(|v| self.regex(v, &join(path, "regex"))),
        };
        let any = obj.contains_key("eq")
            || obj.contains_key("neq")
            || ["gt", "gte", "lt", "lte", "contains", "regex"]
                .iter()
                .any(|k| present(obj, k).is_some());
        if !any {
            // An unknown key already explains an empty operator set.
            if self.errors.len() > before {
                return None;
            }
            self.error(
                path,
                "at least one condition operator is required (eq, neq, gt, gte, lt, lte, contains, regex)",
            );
            return None;
        }
        Some(ops)
    }

    fn metadata(&mut self, value: &Json, path: &str) -> Vec<MetadataCondition> {
        let Json::Object(map) = value else {
            self.error(path, format!("expected a mapping, found {}", kind(value)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (key, condition) in map {
            let cpath = join(path, key);
            let condition = match condition {
                Json::Null => continue,
                Json::String(s) => MetadataCondition {
                    key: key.clone(),
                    eq: Some(s.clone()),
                    neq: None,
                    contains: None,
                    regex: None,
                },
                other => {
                    let before = self.errors.len();
                    let Some(obj) = self.object(other, &cpath, &["eq", "neq", "contains", "regex"])
                    else {
                        continue;
                    };
                    let mut text =
                        |op: &str| present(obj, op).and_then(|v| self.string(v, &join(&cpath, op)));
                    let (eq, neq, contains) = (text("eq"), text("neq"), text("contains"));
                    let regex =
                        present(obj, "regex").and_then(|v| self.regex(v, &join(&cpath, "regex")));
                    if ["eq", "neq", "contains", "regex"]
                        .iter()
                        .all(|k| present(obj, k).is_none())
                    {
                        if self.errors.len() > before {
                            continue;
                        }
                        self.error(
                            &cpath,
                            "at least one metadata condition operator is required (eq, neq, contains, regex)",
                        );
                        continue;
                    }
                    MetadataCondition {
                        key: key.clone(),
                        eq,
                        neq,
                        contains,
                        regex,
                    }
                }
            };
            out.push(condition);
        }
        out
    }
}

/// helio.yaml's duration grammar, `^\d+[smhd]$`, in milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let per_unit: u64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(per_unit)
}
