//! Install-time policy (`policies.install`, spec §4): whether an agent may
//! install a package, asked through the adapter API's
//! `POST /install-scan`. Rules match the package's `name` (a glob), its
//! `source` (exactly) and the adapter's `metadata` (conditions), first
//! match wins, `action: deny_install | allow`; no match means
//! `policies.install.default`. Every scan is audited (`record_kind:
//! install_scan`), allowed or not.

use regex_lite::Regex;
use serde_json::{Map, Value};

use crate::config::{DefaultDecision, Feedback, Install, InstallRule, MetadataCondition};

/// The package a scan asks about.
pub struct Package<'a> {
    pub name: &'a str,
    pub source: Option<&'a str>,
}

/// What install policy says of a package.
#[derive(Debug)]
pub struct Verdict {
    pub allowed: bool,
    pub rule: Option<String>,
    pub rule_index: Option<u32>,
    pub feedback: Option<Feedback>,
    /// Why, in a word, for the answer's `reason` when allowed.
    pub note: &'static str,
}

pub fn scan(
    policy: &Install,
    package: &Package<'_>,
    metadata: Option<&Map<String, Value>>,
) -> Verdict {
    let matched = policy
        .rules
        .iter()
        .enumerate()
        .find(|(_, rule)| matches(rule, package, metadata));
    match matched {
        Some((index, rule)) => Verdict {
            allowed: !rule.deny,
            rule: rule.name.clone(),
            rule_index: u32::try_from(index).ok(),
            feedback: rule.feedback.clone(),
            note: "matched_rule",
        },
        None => Verdict {
            allowed: policy.default == DefaultDecision::Allow,
            rule: None,
            rule_index: None,
            feedback: None,
            note: if policy.rules.is_empty() {
                "no install-time rules defined"
            } else {
                "default"
            },
        },
    }
}

fn matches(
    rule: &InstallRule,
    package: &Package<'_>,
    metadata: Option<&Map<String, Value>>,
) -> bool {
    let name = rule
        .package_name
        .as_deref()
        .is_none_or(|glob| glob_match::glob_match(glob, package.name));
    let source = rule
        .source
        .as_deref()
        .is_none_or(|want| package.source == Some(want));
    name && source
        && rule
            .metadata
            .iter()
            .all(|(key, condition)| holds(condition, metadata.and_then(|m| m.get(key))))
}

/// A metadata condition on one value (text as is; other JSON as its text).
fn holds(condition: &MetadataCondition, value: Option<&Value>) -> bool {
    let text = value.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let text = text.as_deref();
    condition.eq.as_deref().is_none_or(|eq| text == Some(eq))
        && condition.neq.as_deref().is_none_or(|neq| text != Some(neq))
        && condition
            .contains
            .as_deref()
            .is_none_or(|part| text.is_some_and(|t| t.contains(part)))
        && condition.regex.as_deref().is_none_or(|source| {
            // Checked when the configuration was read; a pattern that will
            // not compile here matches nothing (fails closed for allows,
            // and a deny rule then falls to the next rule or the default).
            Regex::new(source)
                .ok()
                .zip(text)
                .is_some_and(|(re, t)| re.is_match(t))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, glob: Option<&str>, source: Option<&str>, deny: bool) -> InstallRule {
        InstallRule {
            name: Some(name.into()),
            package_name: glob.map(str::to_owned),
            source: source.map(str::to_owned),
            metadata: Vec::new(),
            deny,
            feedback: None,
        }
    }

    #[test]
    fn first_match_wins_then_the_default() {
        let mut policy = Install {
            default: DefaultDecision::Allow,
            rules: vec![
                rule("trusted-left-pad", Some("left-pad"), Some("npm"), false),
                rule("no-pads", Some("*-pad"), None, true),
            ],
        };
        let pkg = |name, source| Package { name, source };
        let verdict = scan(&policy, &pkg("left-pad", Some("npm")), None);
        assert!(verdict.allowed && verdict.rule_index == Some(0));
        let verdict = scan(&policy, &pkg("left-pad", Some("pypi")), None);
        assert!(!verdict.allowed && verdict.rule.as_deref() == Some("no-pads"));
        assert!(scan(&policy, &pkg("requests", None), None).allowed);
        policy.default = DefaultDecision::Deny;
        let verdict = scan(&policy, &pkg("requests", None), None);
        assert!(!verdict.allowed && verdict.rule.is_none() && verdict.note == "default");
        policy.rules.clear();
        assert_eq!(
            scan(&policy, &pkg("x", None), None).note,
            "no install-time rules defined"
        );
    }

    #[test]
    fn metadata_conditions_all_hold() {
        let mut deny = rule("prod-only-vetted", None, None, true);
        deny.metadata = vec![
            (
                "env".into(),
                MetadataCondition {
                    eq: Some("prod".into()),
                    ..Default::default()
                },
            ),
            (
                "team".into(),
                MetadataCondition {
                    regex: Some("^pay".into()),
                    ..Default::default()
                },
            ),
        ];
        let policy = Install {
            default: DefaultDecision::Allow,
            rules: vec![deny],
        };
        let pkg = Package {
            name: "x",
            source: None,
        };
        let meta = |v: Value| v.as_object().cloned();
        assert!(
            !scan(
                &policy,
                &pkg,
                meta(json!({"env": "prod", "team": "payments"})).as_ref()
            )
            .allowed
        );
        assert!(
            scan(
                &policy,
                &pkg,
                meta(json!({"env": "prod", "team": "search"})).as_ref()
            )
            .allowed
        );
        assert!(
            scan(&policy, &pkg, None).allowed,
            "a condition on a missing key does not hold"
        );
    }
}
