use std::path::Path;

use crate::config;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let loaded = config::load(path).map_err(|e| anyhow::anyhow!(e.report()))?;
    let c = &loaded.config;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "Config is valid: {} ({}, {})",
        path.display(),
        plural(c.policies.rules.len(), "policy rule"),
        plural(c.budgets.len(), "budget")
    );
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
