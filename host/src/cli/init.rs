use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use crate::auth::generate_token;
use crate::config::scaffold;

/// Writes the scaffold with a fresh `dashboard.api_secret` and prints the
/// secret once. The file holds a secret, so it is created owner-only, and
/// written to a temporary file first so a failure never leaves half a config.
pub fn run(output: &Path, force: bool) -> anyhow::Result<()> {
    if output.exists() && !force {
        bail!(
            "{} already exists (use --force to overwrite)",
            output.display()
        );
    }
    let secret = generate_token().context("cannot generate a random secret")?;
    let text = scaffold(&secret);
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = output
        .file_name()
        .with_context(|| format!("{} is not a file path", output.display()))?;
    let temp = dir.join(format!(".{}.tmp", file_name.to_string_lossy()));
    write_private(&temp, text.as_bytes())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    if let Err(error) = std::fs::rename(&temp, output) {
        let _ = std::fs::remove_file(&temp);
        return Err(error).with_context(|| format!("cannot write {}", output.display()));
    }
    eprintln!("Wrote {}", output.display());
    eprintln!("Generated dashboard.api_secret (shown once; it is also in the file):");
    eprintln!("  {secret}");
    eprintln!(
        "Next: point upstream.url at your MCP server, then run `helio start -c {}`",
        output.display()
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
