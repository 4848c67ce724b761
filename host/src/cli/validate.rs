use std::path::Path;

use crate::plugins::Runtime;
use crate::reload;

/// Loads and checks the file, compiles every policy stage it names and runs
/// their `configure`: what start would do, short of binding ports.
pub fn run(path: &Path) -> anyhow::Result<()> {
    let runtime = Runtime::new()?;
    let (config, _pipeline, warnings) = reload::load(path, &runtime).map_err(anyhow::Error::msg)?;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut summary = format!(
        "{}, {}",
        plural(config.policies.rules.len(), "policy rule"),
        plural(config.budgets.len(), "budget")
    );
    if !config.plugins.is_empty() {
        summary.push_str(&format!(", {}", plural(config.plugins.len(), "plugin")));
    }
    eprintln!("Config is valid: {} ({summary})", path.display());
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
