//! Keys Helio accepts (so a configuration written for the original loads
//! unchanged) but whose behaviour is not built yet. Each one is reported at
//! start by name. A key that would have *blocked* calls fails closed instead:
//! every `tools/call` is refused until the behaviour exists, because silently
//! allowing what the operator meant to restrict is the one thing a
//! governance gateway must never do.

use super::model::*;

/// One accepted-but-not-yet-enforced key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotYetEnforced {
    /// The YAML key, e.g. `policies.rules`.
    pub key: &'static str,
    /// True when ignoring the key could let through a call the operator meant
    /// to block; such keys make Helio refuse every `tools/call`.
    pub blocks_tool_calls: bool,
}

/// Keys whose behaviour arrives in a later release. A key is reported when
/// the file sets it explicitly *and* to a value that asks for something
/// (`rules: []` or `dry_run: false` ask for nothing missing). `restrictive`
/// says whether the requested behaviour could block or hold a call.
struct Pending {
    key: &'static str,
    requested: fn(&Config) -> bool,
    restrictive: fn(&Config) -> bool,
}

const fn pending(key: &'static str) -> Pending {
    Pending {
        key,
        requested: |_| true,
        restrictive: |_| false,
    }
}

const PENDING: &[Pending] = &[
    Pending {
        key: "upstream.protocol_version",
        requested: |c| c.upstream.protocol_version != "auto",
        restrictive: |_| false,
    },
    Pending {
        key: "policies.on_tool_drift",
        requested: |_| true,
        // Blocking or holding drifted tools is a restriction: until drift
        // detection exists, asking for it refuses every call.
        restrictive: |c| c.policies.on_tool_drift != OnToolDrift::Log,
    },
    pending("policies.tool_revalidation"),
    pending("policies.install"),
    pending("sdk.evaluation_ttl"),
];

/// The accepted-but-not-yet-enforced keys this configuration sets.
pub fn not_yet_enforced(config: &Config) -> Vec<NotYetEnforced> {
    PENDING
        .iter()
        .filter(|p| is_set(config, p.key) && (p.requested)(config))
        .map(|p| NotYetEnforced {
            key: p.key,
            blocks_tool_calls: (p.restrictive)(config),
        })
        .collect()
}

fn is_set(config: &Config, key: &str) -> bool {
    config.explicit_keys.iter().any(|k| {
        k == key
            || k.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}
