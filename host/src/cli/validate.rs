use std::path::Path;

use crate::plugins::contract::SUPPORTED;
use crate::plugins::Runtime;
use crate::reload;
use crate::state::LocalStore;

/// Loads and checks the file, compiles every policy stage it names and runs
/// their `configure`: what start would do, short of binding ports.
pub fn run(path: &Path) -> anyhow::Result<()> {
    // Validation touches no database: stages get a throwaway state.
    let runtime = Runtime::new(LocalStore::in_memory())?;
    let (config, pipeline, warnings) = reload::load(path, &runtime).map_err(anyhow::Error::msg)?;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut summary = format!(
        "{}, {}",
        plural(config.policies.rules.len(), "policy rule"),
        plural(config.budgets.len(), "budget")
    );
    if !config.plugins.is_empty() {
        summary.push_str(&format!(", {}", plural(config.plugins.len(), "plugin")));
    }
    if let Some(router) = &config.approval.router {
        summary.push_str(&format!(", approval router {}", router.path.display()));
    }
    eprintln!("Config is valid: {} ({summary})", path.display());
    // Which contract each component speaks: an operator planning an
    // upgrade sees what still targets an older one.
    let router = std::iter::once(("approval router", pipeline.router().version()));
    for (name, version) in pipeline.stage_versions().chain(router) {
        let older = match version == *SUPPORTED.last().unwrap_or(&version) {
            true => "",
            false => " (an older contract, still loaded; see docs/wit-changelog.md)",
        };
        eprintln!("  {name}: helio:governance@{version}{older}");
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
