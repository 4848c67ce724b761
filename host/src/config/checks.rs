//! Checks that span sections: approval routing, secrets the features need,
//! and keys that only make sense together. Run at validate, start and reload.

use std::collections::HashMap;

use super::model::*;
use super::reader::{Path, Reader};

pub fn cross_field(r: &mut Reader, c: &Config) {
    secrets(r, c);
    identity_stays_home(r, c);
    let channels = channel_registry(r, c);
    rules(r, c, &channels);
    budgets(r, c, &channels);

    if c.approval
        .channels
        .iter()
        .any(|ch| matches!(ch, Channel::Webhook { .. }))
        && !c.dashboard.enabled
    {
        r.error(
            &Path::root().key("dashboard").key("enabled"),
            "dashboard.enabled must be true when approval.channels includes a webhook channel (webhook approvals are resolved through the dashboard API)",
        );
    }
    if !c.dashboard.enabled {
        if c.policies.flag_destructive == Some(FlagDestructive::RequireApproval) {
            r.error(
                &Path::root().key("policies").key("flag_destructive"),
                "require_approval routes tickets to the dashboard, but dashboard.enabled is false; the tickets could never be resolved",
            );
        }
        if c.policies.on_tool_drift == OnToolDrift::RequireApproval {
            r.error(
                &Path::root().key("policies").key("on_tool_drift"),
                "require_approval routes tickets to the dashboard, but dashboard.enabled is false; the tickets could never be resolved",
            );
        }
    }
}

/// The governance identity is Helio's business, never the upstream's: a
/// header it is read from may not be forwarded.
fn identity_stays_home(r: &mut Reader, c: &Config) {
    let identity_headers: Vec<&str> = c
        .session
        .identity
        .iter()
        .filter_map(|source| match source {
            IdentitySource::Header(name) => Some(name.as_str()),
            IdentitySource::Meta | IdentitySource::LegacyHeader => None,
        })
        .chain([DEFAULT_IDENTITY_HEADER])
        .collect();
    for (i, name) in c.upstream.forward_headers.iter().enumerate() {
        if identity_headers.contains(&name.as_str()) {
            r.error(
                &Path::root()
                    .key("upstream")
                    .key("forward_headers")
                    .index(i),
                format!("\"{name}\" carries the governance session identity, which is never sent upstream; remove it from forward_headers"),
            );
        }
    }
}

/// Fewest characters in `dashboard.api_secret`.
const MIN_SECRET_CHARS: usize = 32;
/// Least entropy `dashboard.api_secret` must show, estimated from its own
/// characters (Shannon entropy of their distribution times its length): a
/// random 32-character alphanumeric secret shows about 150 bits, 64 random
/// hex digits about 250, 32 copies of "ab" 64.
const MIN_SECRET_BITS: f64 = 100.0;

/// An estimate of a secret's entropy in bits, from the distribution of its
/// characters. Patterns it cannot see (a word repeated) make it generous,
/// never strict: it refuses what is weak on its face.
fn estimated_bits(secret: &str) -> f64 {
    let mut counts = HashMap::new();
    let mut total = 0usize;
    for c in secret.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        total += 1;
    }
    let n = total as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

fn secrets(r: &mut Reader, c: &Config) {
    let secret_path = Path::root().key("dashboard").key("api_secret");
    let has_secret = c.dashboard.api_secret.is_some();
    if let Some(secret) = &c.dashboard.api_secret {
        let secret = secret.expose();
        let chars = secret.chars().count();
        let bits = estimated_bits(secret);
        if chars < MIN_SECRET_CHARS || bits < MIN_SECRET_BITS {
            r.error(
                &secret_path,
                format!(
                    "too weak ({chars} characters, about {bits:.0} bits of entropy; at least {MIN_SECRET_CHARS} random characters and {MIN_SECRET_BITS:.0} bits are required): generate one with `openssl rand -hex 32`, or run `helio init`"
                ),
            );
        }
    }
    let approvals_used = c.policies.flag_destructive == Some(FlagDestructive::RequireApproval)
        || c.policies.on_tool_drift == OnToolDrift::RequireApproval
        || c.policies
            .rules
            .iter()
            .any(|rule| rule.action == Some(Action::RequireApproval))
        || c.budgets
            .iter()
            .any(|b| b.on_exceed == OnExceed::RequireApproval);
    if approvals_used && !has_secret {
        r.error(
            &secret_path,
            "dashboard.api_secret is required when any rule uses require_approval, any budget uses on_exceed: require_approval, or policies.flag_destructive / policies.on_tool_drift is require_approval; generate one with `openssl rand -hex 32`",
        );
        return;
    }
    if c.dashboard.enabled && !has_secret {
        if !c.dashboard.allow_open_mode {
            r.error(
                &secret_path,
                "dashboard.api_secret is required when the dashboard is enabled, unless dashboard.allow_open_mode is true on a loopback host; generate one with `openssl rand -hex 32`",
            );
        } else if !is_loopback_host(&c.dashboard.host) {
            r.error(
                &Path::root().key("dashboard").key("host"),
                "dashboard.host must be a loopback address (127.0.0.1, localhost or ::1) when allow_open_mode is true and no api_secret is set",
            );
        }
    }
}

/// Channel key → channel type, as the approval router will register them:
/// the built-in `dashboard`, then each channel under `name`, else its type.
fn channel_registry(r: &mut Reader, c: &Config) -> HashMap<String, &'static str> {
    let mut registry = HashMap::from([("dashboard".to_owned(), "dashboard")]);
    let base = Path::root().key("approval").key("channels");
    for (i, channel) in c.approval.channels.iter().enumerate() {
        let key = channel.key();
        let at = base.index(i).key(if channel.name().is_some() {
            "name"
        } else {
            "type"
        });
        if key == "dashboard" && channel.kind() != "dashboard" {
            r.error(&at, "the channel key \"dashboard\" is reserved for the built-in dashboard channel; pick a different name");
            continue;
        }
        if registry.contains_key(key) && !(key == "dashboard" && channel.kind() == "dashboard") {
            r.error(&at, format!("duplicate approval channel key \"{key}\"; channels register under name (or type), so give each a unique name"));
            continue;
        }
        registry.insert(key.to_owned(), channel.kind());
    }
    registry
}

fn check_route(
    r: &mut Reader,
    route: Option<&ApprovalRoute>,
    at: &Path,
    channels: &HashMap<String, &'static str>,
    dashboard_enabled: bool,
    global_timeout: std::time::Duration,
    what: &str,
) {
    let Some(route) = route else {
        if !dashboard_enabled {
            r.error(at, format!("this {what} routes approvals to the dashboard channel, but dashboard.enabled is false; the ticket could never be resolved"));
        }
        return;
    };
    let channel_path = at.key("channel");
    match channels.get(&route.channel) {
        None => r.error(
            &channel_path,
            format!("unknown approval channel \"{}\"; add it to approval.channels (by type or name), or use \"dashboard\"", route.channel),
        ),
        Some(&"dashboard") if !dashboard_enabled => r.error(
            &channel_path,
            format!("this {what} routes approvals to the dashboard channel, but dashboard.enabled is false; the ticket could never be resolved"),
        ),
        Some(_) => {}
    }
    let timeout = route.timeout.unwrap_or(global_timeout);
    let escalation_can_fire = route
        .escalation_after
        .is_some_and(|after| !after.is_zero() && after < timeout);
    for (i, delegate) in route.delegates.iter().enumerate() {
        let dpath = at.key("delegates").index(i);
        match channels.get(delegate) {
            None => r.error(&dpath, format!("unknown delegate channel \"{delegate}\"; delegates must name configured approval channels")),
            Some(&"dashboard") if escalation_can_fire && !dashboard_enabled => r.error(
                &dpath,
                format!("this {what} escalates to a dashboard channel, but dashboard.enabled is false"),
            ),
            Some(_) => {}
        }
    }
}

fn rules(r: &mut Reader, c: &Config, channels: &HashMap<String, &'static str>) {
    let base = Path::root().key("policies").key("rules");
    for (i, rule) in c.policies.rules.iter().enumerate() {
        let at = base.index(i);
        if let Some(env) = &rule.match_environment {
            if c.environment.is_none() {
                r.error(
                    &at.key("match").key("environment"),
                    format!("rule sets match.environment=\"{env}\" but top-level `environment` is not configured"),
                );
            }
        }
        if !c.sdk.enabled {
            if rule.limits_key == Some(LimitKey::SenderId) {
                r.error(&at.key("limits").key("key"), "limits.key \"sender_id\" requires the SDK sideband (sdk.enabled: true); sender_id is absent on the MCP path");
            }
            if rule.max_spend_key == Some(LimitKey::SenderId) {
                r.error(&at.key("limits").key("max_spend").key("key"), "limits.max_spend.key \"sender_id\" requires the SDK sideband (sdk.enabled: true); sender_id is absent on the MCP path");
            }
        }
        if let Some(name) = &rule.max_spend_extractor {
            extractor_named(
                r,
                c,
                name,
                &at.key("limits").key("max_spend").key("extractor"),
            );
        }
        match (&rule.approval, rule.action) {
            (Some(_), _) => check_route(
                r,
                rule.approval.as_ref(),
                &at.key("approval"),
                channels,
                c.dashboard.enabled || rule.gated_by_metadata,
                c.approval.timeout,
                "rule",
            ),
            // Metadata-gated rules only match on the sideband, whose tickets
            // are resolved by the adapter, not a channel.
            (None, Some(Action::RequireApproval)) if !rule.gated_by_metadata => check_route(
                r,
                None,
                &at.key("action"),
                channels,
                c.dashboard.enabled,
                c.approval.timeout,
                "rule",
            ),
            _ => {}
        }
    }
}

fn budgets(r: &mut Reader, c: &Config, channels: &HashMap<String, &'static str>) {
    let base = Path::root().key("budgets");
    for (i, budget) in c.budgets.iter().enumerate() {
        let at = base.index(i);
        for (index, name) in &budget.contributor_extractors {
            let at = at.key("contributors").index(*index).key("extractor");
            extractor_named(r, c, name, &at);
        }
        if budget.key == BudgetKey::SenderId && !c.sdk.enabled {
            r.error(&at.key("key"), "budget key \"sender_id\" requires the SDK sideband (sdk.enabled: true); sender_id is absent on the MCP path");
        }
        if budget.on_exceed == OnExceed::RequireApproval {
            let at_route = if budget.approval.is_some() {
                at.key("approval")
            } else {
                at.key("on_exceed")
            };
            check_route(
                r,
                budget.approval.as_ref(),
                &at_route,
                channels,
                c.dashboard.enabled,
                c.approval.timeout,
                "budget",
            );
        }
    }
}

/// A rule or budget names a spend extractor that `extractors` defines.
fn extractor_named(r: &mut Reader, c: &Config, name: &str, at: &Path) {
    if !c.extractors.iter().any(|e| e.name == name) {
        let known: Vec<&str> = c.extractors.iter().map(|e| e.name.as_str()).collect();
        let known = match known.is_empty() {
            true => "none are defined".to_owned(),
            false => format!("defined: {}", known.join(", ")),
        };
        r.error(
            at,
            format!("no spend extractor named \"{name}\" in `extractors` ({known})"),
        );
    }
}

/// What a reloaded file's rules and budgets route approvals to that the
/// running channels do not have (`approval` takes effect only at start):
/// `(YAML path, channel)`. Such a reload is refused, as in the original,
/// rather than open tickets nobody is told about.
pub fn unroutable_on_reload(running: &Config, reloaded: &Config) -> Vec<(String, String)> {
    let known: std::collections::HashSet<&str> = std::iter::once("dashboard")
        .chain(running.approval.channels.iter().map(|c| c.key()))
        .collect();
    let rules = reloaded
        .policies
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| {
            let at = Path::root()
                .key("policies")
                .key("rules")
                .index(i)
                .key("approval");
            rule.approval.as_ref().map(|route| (at, route))
        });
    let budgets = reloaded
        .budgets
        .iter()
        .enumerate()
        .filter_map(|(i, budget)| {
            let at = Path::root().key("budgets").index(i).key("approval");
            budget.approval.as_ref().map(|route| (at, route))
        });
    let mut unknown = Vec::new();
    for (at, route) in rules.chain(budgets) {
        if !known.contains(route.channel.as_str()) {
            unknown.push((at.key("channel").to_string(), route.channel.clone()));
        }
        for (d, delegate) in route.delegates.iter().enumerate() {
            if !known.contains(delegate.as_str()) {
                unknown.push((at.key("delegates").index(d).to_string(), delegate.clone()));
            }
        }
    }
    unknown
}
