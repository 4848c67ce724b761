//! Builds the built-in policy stages (`plugins/`, a workspace of its own) as
//! WebAssembly components for `wasm32-wasip2` and leaves them in `OUT_DIR`
//! for `include_bytes!`. The nested cargo gets its own target directory
//! (sharing the outer one deadlocks on its lock) and a scrubbed environment,
//! so the host's flags, features and wrappers (clippy) do not leak into it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const STAGES: &[&str] = &["helio_rules", "helio_budgets", "helio_approval_router"];

fn main() {
    let host =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = host
        .parent()
        .expect("host/ lives in the workspace root")
        .to_owned();
    let plugins = root.join("plugins");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");

    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        "sdk/Cargo.toml",
        "sdk/src",
        "policy-match/Cargo.toml",
        "policy-match/src",
        "rules/Cargo.toml",
        "rules/src",
        "budgets/Cargo.toml",
        "budgets/src",
        "approval-router/Cargo.toml",
        "approval-router/src",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    embed_ui(&host.join("ui"), &out.join("ui_assets.rs"));

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    scrub(&mut command);
    let status = command
        .status()
        .expect("cannot run cargo to build the built-in plugins");
    if !status.success() {
        panic!(
            "building the built-in plugins for wasm32-wasip2 failed (see above). \
             If the target is missing, install it with: rustup target add wasm32-wasip2"
        );
    }
    for stage in STAGES {
        let built = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{stage}.wasm"));
        copy(&built, &out.join(format!("{stage}.wasm")));
    }
}

/// Removes what cargo sets for this build script and the host build, so the
/// nested build is a plain release build for wasm32-wasip2.
fn scrub(command: &mut Command) {
    const PREFIXES: &[&str] = &[
        "CARGO_FEATURE_",
        "CARGO_CFG_",
        "CARGO_PROFILE_",
        "CARGO_PKG_",
        "CARGO_BUILD_",
        "CARGO_TARGET_",
        "CARGO_MANIFEST_",
        "CARGO_ENCODED_",
        "DEP_",
    ];
    const NAMES: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    for (key, _) in env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        if PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name) {
            command.env_remove(name);
        }
    }
}

/// The file kinds the dashboard serves; anything else under `host/ui/`
/// (notes for its tests) stays out of the binary.
const UI_EXTENSIONS: &[&str] = &["html", "css", "js", "svg", "png", "ico", "json"];

/// Writes `ASSETS: &[(path, bytes)]` for the dashboard's files under `ui`,
/// sorted by their path relative to it (`/` separated).
fn embed_ui(ui: &Path, generated: &Path) {
    println!("cargo:rerun-if-changed={}", ui.display());
    let mut files = Vec::new();
    collect(ui, ui, &mut files);
    files.sort();
    let mut text = String::from("pub const ASSETS: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in files {
        text.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    text.push_str("];\n");
    if let Err(error) = std::fs::write(generated, text) {
        panic!("cannot write {}: {error}", generated.display());
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        let served = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| UI_EXTENSIONS.contains(&e));
        if !served {
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .expect("collected under the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push((relative, path));
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(error) = std::fs::copy(from, to) {
        panic!(
            "cannot copy {} to {}: {error}",
            from.display(),
            to.display()
        );
    }
}
