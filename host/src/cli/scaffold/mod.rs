//! `helio plugin new`: a new stage's project, ready to build and test, in
//! Rust, Python or JavaScript. Every project carries the contract this
//! binary loads (`wit/`, or the SDK's copy), so it builds against exactly
//! what the Helio that created it runs.
//!
//! A Rust stage is written on the Rust SDK (`helio-plugin`). The SDK is not
//! on a registry yet, so the project gets the SDK this binary was built
//! with (its sources, its contract, and the argument-path reader it shares
//! with the host), under `helio-plugin/` — the exact contract this Helio
//! loads, and a project that builds wherever the binary is — unless
//! `--sdk-path` names an SDK checkout to depend on instead.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The languages a stage can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// The SDK's files, as this binary was built with them: (path in the
/// vendored copy, contents).
const SDK: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../../../plugins/sdk/README.md"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/call.rs",
        include_str!("../../../../plugins/sdk/src/call.rs"),
    ),
    (
        "src/config.rs",
        include_str!("../../../../plugins/sdk/src/config.rs"),
    ),
    (
        "src/host.rs",
        include_str!("../../../../plugins/sdk/src/host.rs"),
    ),
    (
        "src/state.rs",
        include_str!("../../../../plugins/sdk/src/state.rs"),
    ),
    (
        "src/verdict.rs",
        include_str!("../../../../plugins/sdk/src/verdict.rs"),
    ),
    (
        "wit/governance.wit",
        include_str!("../../../../wit/governance.wit"),
    ),
    (
        "helio-syntax/Cargo.toml",
        include_str!("../../../../crates/helio-syntax/Cargo.toml"),
    ),
    (
        "helio-syntax/src/lib.rs",
        include_str!("../../../../crates/helio-syntax/src/lib.rs"),
    ),
    (
        "helio-syntax/src/argpath.rs",
        include_str!("../../../../crates/helio-syntax/src/argpath.rs"),
    ),
    (
        "helio-syntax/src/duration.rs",
        include_str!("../../../../crates/helio-syntax/src/duration.rs"),
    ),
    (
        "helio-syntax/src/suggest.rs",
        include_str!("../../../../crates/helio-syntax/src/suggest.rs"),
    ),
];

/// The SDK's manifest; its path to helio-syntax is made the vendored one.
const SDK_MANIFEST: &str = include_str!("../../../../plugins/sdk/Cargo.toml");
const SYNTAX_IN_REPOSITORY: &str = "../../crates/helio-syntax";

const CONTRACT: &str = include_str!("../../../../wit/governance.wit");

const RUST_MANIFEST: &str = include_str!("rust/Cargo.toml.tmpl");
const RUST_LIB: &str = include_str!("rust/lib.rs.tmpl");
const RUST_README: &str = include_str!("rust/README.md.tmpl");

/// A Python stage: (path in the project, template).
const PYTHON: &[(&str, &str)] = &[
    ("policy.py", include_str!("python/policy.py.tmpl")),
    ("app.py", include_str!("python/app.py.tmpl")),
    (
        "tests/test_policy.py",
        include_str!("python/test_policy.py.tmpl"),
    ),
    ("build.sh", include_str!("python/build.sh.tmpl")),
    ("README.md", include_str!("python/README.md.tmpl")),
    (
        "requirements.txt",
        include_str!("../../../../examples/python-stage/requirements.txt"),
    ),
    (".gitignore", ".venv/\n__pycache__/\n*.wasm\n"),
];

/// A JavaScript stage: (path in the project, template). The test hooks are
/// the js-stage example's: node loads the stage with the host stood in.
const JS: &[(&str, &str)] = &[
    ("stage.js", include_str!("js/stage.js.tmpl")),
    (
        "test/stage.test.mjs",
        include_str!("js/stage.test.mjs.tmpl"),
    ),
    (
        "test/register.mjs",
        include_str!("../../../../examples/js-stage/test/register.mjs"),
    ),
    (
        "test/resolve.mjs",
        include_str!("../../../../examples/js-stage/test/resolve.mjs"),
    ),
    (
        "test/host.mjs",
        include_str!("../../../../examples/js-stage/test/host.mjs"),
    ),
    ("build.mjs", include_str!("js/build.mjs.tmpl")),
    ("package.json", include_str!("js/package.json.tmpl")),
    ("README.md", include_str!("js/README.md.tmpl")),
    (".gitignore", "node_modules/\n*.wasm\n"),
];

/// Writes a new stage's project `name` under `parent`; its directory.
pub fn new(
    lang: Lang,
    name: &str,
    parent: &Path,
    sdk_path: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or directory",
            dir.display()
        );
    }
    match lang {
        Lang::Rust => rust(name, &dir, sdk_path)?,
        Lang::Python | Lang::Js => {
            if sdk_path.is_some() {
                bail!("--sdk-path is for --lang rust (the Rust SDK)");
            }
            let files = if lang == Lang::Python { PYTHON } else { JS };
            let fill = |template: &str| {
                template
                    .replace("{{name}}", name)
                    .replace("{{file}}", &name.replace('-', "_"))
                    .replace("{{dir}}", &dir.display().to_string())
            };
            for (path, template) in files {
                write(&dir.join(path), &fill(template))?;
            }
            write(&dir.join("wit/governance.wit"), CONTRACT)?;
            if lang == Lang::Python {
                make_executable(&dir.join("build.sh"))?;
            }
        }
    }
    Ok(dir)
}

/// What to run next in a new project of `lang`.
pub fn next_steps(lang: Lang, name: &str) -> Vec<String> {
    let file = name.replace('-', "_");
    match lang {
        Lang::Rust => vec![
            "rustup target add wasm32-wasip2   # once".into(),
            "cargo test && cargo build --target wasm32-wasip2 --release".into(),
            format!("helio plugin check target/wasm32-wasip2/release/{file}.wasm"),
        ],
        Lang::Python => vec![
            "./build.sh   # tests policy.py, builds with componentize-py".into(),
            format!("helio plugin check {file}.wasm"),
        ],
        Lang::Js => vec![
            "npm install && npm test && npm run build".into(),
            format!("helio plugin check {file}.wasm"),
        ],
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// A crate name that is also a good plugin name: lower case, digits, `-`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("NAME must be 1 to 64 lower-case letters, digits and '-', starting with a letter (it names the crate and the plugin): {name:?}");
    }
    // Cargo refuses keywords as package names; Python and JS projects are
    // named the same way, so one rule for all.
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
        "type", "unsafe", "use", "where", "while", "test", "core", "std",
    ];
    if KEYWORDS.contains(&name) {
        bail!("NAME {name:?} is a reserved word in Rust or Cargo; choose another");
    }
    Ok(())
}

fn rust(name: &str, dir: &Path, sdk_path: Option<&Path>) -> anyhow::Result<()> {
    let sdk = match sdk_path {
        Some(path) => {
            let path = std::path::absolute(path)
                .with_context(|| format!("--sdk-path {}", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!(
                    "--sdk-path {}: no Cargo.toml there (expected Helio's plugins/sdk)",
                    path.display()
                );
            }
            path.display().to_string()
        }
        None => {
            vendor_sdk(&dir.join("helio-plugin"))?;
            "helio-plugin".to_owned()
        }
    };
    let camel: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    // `Stage` at the end keeps it apart from the SDK's names (`Config`,
    // `Call`, `State`, …) and from keywords.
    let type_name = match camel.ends_with("Stage") && camel != "Stage" {
        true => camel,
        false => format!("{camel}Stage"),
    };
    let sdk_note = match sdk_path {
        Some(_) => format!("The SDK is the one at `{sdk}`."),
        None => "`helio-plugin/` is the Rust SDK of the Helio that created this project \
                 (its contract is the one that Helio loads); keep it with the project."
            .to_owned(),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{type}}", &type_name)
            .replace("{{file}}", &name.replace('-', "_"))
            .replace("{{dir}}", &dir.display().to_string())
            .replace("{{sdk}}", &sdk)
            .replace("{{sdk_note}}", &sdk_note)
    };
    write(&dir.join("Cargo.toml"), &fill(RUST_MANIFEST))?;
    write(&dir.join("src/lib.rs"), &fill(RUST_LIB))?;
    write(&dir.join("README.md"), &fill(RUST_README))?;
    write(&dir.join(".gitignore"), "target/\n")?;
    Ok(())
}

fn vendor_sdk(at: &Path) -> anyhow::Result<()> {
    let manifest = SDK_MANIFEST.replace(SYNTAX_IN_REPOSITORY, "helio-syntax");
    write(&at.join("Cargo.toml"), &manifest)?;
    for (path, contents) in SDK {
        write(&at.join(path), contents)?;
    }
    Ok(())
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_sdk_points_at_its_vendored_syntax_crate() {
        assert!(SDK_MANIFEST.contains(SYNTAX_IN_REPOSITORY));
        let dir = std::env::temp_dir().join(format!("helio-scaffold-{}", std::process::id()));
        let project = new(Lang::Rust, "my-stage", &dir, None).expect("scaffold");
        let manifest =
            std::fs::read_to_string(project.join("helio-plugin/Cargo.toml")).expect("sdk");
        assert!(manifest.contains("path = \"helio-syntax\"") && !manifest.contains("../"));
        let lib = std::fs::read_to_string(project.join("src/lib.rs")).expect("lib");
        assert!(lib.contains("pub struct MyStage") && !lib.contains("{{"));
        let config = new(Lang::Rust, "config", &dir, None).expect("scaffold");
        let lib = std::fs::read_to_string(config.join("src/lib.rs")).expect("lib");
        assert!(
            lib.contains("pub struct ConfigStage"),
            "no clash with `Config`"
        );
        assert!(new(Lang::Rust, "self", &dir, None).is_err());
        assert!(
            new(Lang::Rust, "my-stage", &dir, None).is_err(),
            "never overwrites"
        );
        assert!(new(Lang::Rust, "My Stage", &dir, None).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn python_and_js_projects_carry_the_contract_and_no_placeholders() {
        let dir = std::env::temp_dir().join(format!("helio-scaffold-lang-{}", std::process::id()));
        for (lang, entry) in [(Lang::Python, "app.py"), (Lang::Js, "stage.js")] {
            let name = format!("gate-{lang:?}").to_lowercase();
            let project = new(lang, &name, &dir, None).expect("scaffold");
            let contract =
                std::fs::read_to_string(project.join("wit/governance.wit")).expect("wit");
            assert!(contract.contains("package helio:governance@0.2.0;"));
            let code = std::fs::read_to_string(project.join(entry)).expect("entry");
            assert!(code.contains(&name) && !code.contains("{{"), "{code}");
            let other = format!("{name}-sdk");
            let refused = new(lang, &other, &dir, Some(Path::new("."))).expect_err("--sdk-path");
            assert!(refused.to_string().contains("--lang rust"), "{refused}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
