//! Keys Helio accepts (so a configuration written for the original loads
//! unchanged) but whose behaviour is not built yet. Each one is reported at
//! start by name. None of them can block or hold a call; a key that could
//! would have to refuse every `tools/call` until its behaviour exists,
//! because silently allowing what the operator meant to restrict is the one
//! thing a governance gateway must never do.

use super::model::*;

/// Keys whose behaviour arrives in a later release (the adapter API's
/// install scans).
const PENDING: [&str; 1] = ["policies.install"];

/// The accepted-but-not-yet-enforced keys this configuration sets.
pub fn not_yet_enforced(config: &Config) -> Vec<&'static str> {
    PENDING
        .into_iter()
        .filter(|key| is_set(config, key))
        .collect()
}

fn is_set(config: &Config, key: &str) -> bool {
    config.explicit_keys.iter().any(|k| {
        k == key
            || k.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}
