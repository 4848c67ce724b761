//! `helio plugin new` (see `scaffold`), and `helio plugin check` and
//! `helio plugin eval`: a component tried offline,
//! loaded exactly as `helio start` loads it (same runtime, sandbox, limits
//! and host imports), without a proxy, an upstream or a configuration file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::config::DEFAULT_PLUGIN_LIMITS;
use crate::govern::{Door, Era};
use crate::plugins::checks::evidence_chain;
use crate::plugins::{
    Annotations, Extractors, Feedback, Inspection, LoadError, Runtime, Source, StageSpec, ToolCall,
    Verdict,
};
use crate::state::LocalStore;

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Start a new policy stage: a project that builds a component for
    /// this Helio's contract, with a unit test and a README.
    New {
        /// The stage's name (lower case, digits, '-'): its directory, crate
        /// and plugin name.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::scaffold::Lang,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Depend on this Rust SDK (a Helio checkout's plugins/sdk) instead
        /// of writing the SDK this binary carries into the project.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Load a component as `helio start` would and say what it is: the
    /// world and contract version it implements, what it imports, and what
    /// its `configure` makes of a configuration.
    Check {
        /// The component (`.wasm`).
        path: PathBuf,
        /// The configuration its `configure` receives (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
    },
    /// Run one evaluation offline and print the verdict as JSON (with what
    /// the stage read or took from governance state, which starts empty).
    Eval {
        /// The component (`.wasm`).
        path: PathBuf,
        /// The configuration its `configure` receives (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        /// The call: `{"tool": NAME, "arguments": {…}, "annotations":
        /// {"readOnlyHint": …}, "session": ID, "environment": LABEL}`;
        /// only `tool` is required.
        #[arg(long)]
        call: String,
        /// Its time limit per call (`limits.timeout_ms` in helio.yaml).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Its memory limit (`limits.memory_mb` in helio.yaml).
        #[arg(long)]
        memory_mb: Option<usize>,
        /// Also run the call this many more times on the warm instance and
        /// print the per-call time (p50, p99, mean): a stage's cost per call.
        #[arg(long, default_value_t = 0)]
        repeat: u32,
    },
}

pub fn run(command: PluginCommand) -> anyhow::Result<()> {
    // What the plugin logs (and a panic's message) goes to stderr, as it
    // would go to Helio's log.
    super::init_logging()?;
    match command {
        PluginCommand::New {
            name,
            lang,
            dir,
            sdk_path,
        } => {
            let project = super::scaffold::new(lang, &name, &dir, sdk_path.as_deref())?;
            println!("Created {}. Next:", project.display());
            println!("  cd {}", project.display());
            for step in super::scaffold::next_steps(lang, &name) {
                println!("  {step}");
            }
            Ok(())
        }
        PluginCommand::Check { path, config } => check(&path, &config),
        PluginCommand::Eval {
            path,
            config,
            call,
            timeout_ms,
            memory_mb,
            repeat,
        } => {
            let limits = (
                timeout_ms.map_or(DEFAULT_PLUGIN_LIMITS.0, Duration::from_millis),
                memory_mb.map_or(DEFAULT_PLUGIN_LIMITS.1, |mb| mb << 20),
            );
            eval(&path, &config, &call, limits, repeat)
        }
    }
}

fn runtime() -> anyhow::Result<Arc<Runtime>> {
    Runtime::new(LocalStore::in_memory())
}

/// The stage as helio.yaml would name it: the file's stem.
fn spec(path: &Path, config: &str, (timeout, memory_bytes): (Duration, usize)) -> StageSpec {
    StageSpec {
        name: path
            .file_stem()
            .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into()),
        source: Source::File {
            path: path.to_owned(),
            sha256: None,
        },
        config_json: config.to_owned(),
        timeout,
        memory_bytes,
    }
}

/// `--config` as JSON, named in the error when it is not.
fn config_json(text: &str) -> anyhow::Result<String> {
    let value: Value = serde_json::from_str(text).context("--config is not JSON")?;
    Ok(value.to_string())
}

fn check(path: &Path, config: &str) -> anyhow::Result<()> {
    let config = config_json(config)?;
    let runtime = runtime()?;
    let source = spec(path, &config, DEFAULT_PLUGIN_LIMITS).source;
    let inspection = runtime
        .inspect(&source)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Some((world, version)) = inspection.world() else {
        bail!(
            "{}: not a Helio plugin: it exports none of helio:governance's stage, approval-router or spend-extractor interfaces (exports: {})",
            path.display(),
            list(&inspection.exports)
        );
    };
    println!("{}", path.display());
    println!("  world:    helio:governance@{version} {world}");
    print_imports(&inspection);
    let loaded = match world {
        "policy-stage" | "stateful-policy-stage" | "observing-policy-stage" => runtime
            .load(&spec(path, &config, DEFAULT_PLUGIN_LIMITS))
            .map(|stage| {
                let families = stage.families.get().map(|index| index.all());
                if let Some(families) = families.filter(|f| !f.is_empty()) {
                    println!("  key families (state.describe):");
                    for family in families {
                        println!(
                            "    {}*  {} \"{}\"",
                            family.prefix, family.kind, family.name
                        );
                    }
                }
            }),
        "approval-router-plugin" => runtime
            .load_router(&spec(path, &config, DEFAULT_PLUGIN_LIMITS))
            .map(|_| ()),
        "spend-extractor-plugin" => runtime
            .load_extractor(&spec(path, &config, DEFAULT_PLUGIN_LIMITS))
            .map(|_| ()),
        _ => {
            println!("  configure: not run (Helio does not load this world)");
            return Ok(());
        }
    };
    match loaded {
        Ok(()) => {
            println!("  configure({config}): accepted");
            Ok(())
        }
        Err(LoadError::Config(issues)) => {
            for (at, message) in &issues {
                let at = if at.is_empty() { "(whole)" } else { at };
                eprintln!("  config.{at}: {message}");
            }
            bail!("{}: rejected its configuration", path.display())
        }
        Err(error) => bail!("{}: {error}", path.display()),
    }
}

fn print_imports(inspection: &Inspection) {
    let (provided, wasi) = inspection.provided_and_stubbed();
    println!("  imports:  {}", list(&provided));
    let (seed, stubbed): (Vec<&str>, Vec<&str>) = wasi
        .into_iter()
        .partition(|name| name.starts_with("wasi:random/insecure-seed@"));
    if !stubbed.is_empty() {
        println!(
            "  WASI:     {} (linked to functions that trap: plugins get no ambient authority)",
            list(&stubbed)
        );
    }
    if !seed.is_empty() {
        println!(
            "  seeded:   {} (a random hash seed, nothing else)",
            list(&seed)
        );
    }
}

fn list(names: &[impl AsRef<str>]) -> String {
    match names.is_empty() {
        true => "none".into(),
        false => names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn eval(
    path: &Path,
    config: &str,
    call: &str,
    limits: (Duration, usize),
    repeat: u32,
) -> anyhow::Result<()> {
    let config = config_json(config)?;
    let call = read_call(call)?;
    let runtime = runtime()?;
    let spec = spec(path, &config, limits);
    let inspection = runtime
        .inspect(&spec.source)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if inspection.world().map(|(world, _)| world) == Some("spend-extractor-plugin") {
        return extract(&runtime, &spec, call);
    }
    let stage = runtime.load(&spec).map_err(|error| match error {
        LoadError::Config(issues) => anyhow::anyhow!(
            "{}: rejected its configuration: {}",
            path.display(),
            issues
                .iter()
                .map(|(at, message)| format!("config.{at}: {message}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })?;
    let started = Instant::now();
    let evaluated = runtime.evaluate(&stage, call.clone());
    let took = started.elapsed();
    let mut answer = match evaluated {
        Ok(evaluated) => {
            runtime.state().release(&evaluated.holds);
            let mut answer = verdict_json(&evaluated.verdict);
            if let Some(chain) = evidence_chain(&evaluated.checks, &[]) {
                answer["evidence_chain"] = serde_json::from_str(&chain).unwrap_or(Value::Null);
            }
            answer
        }
        // As at start: a failing stage blocks the call (`plugin_error`).
        Err(failure) => json!({ "verdict": "failed", "failure": failure.to_string() }),
    };
    answer["took_us"] = json!(took.as_micros() as u64);
    if repeat > 0 && answer["verdict"] != "failed" {
        answer["repeated"] = repeated(&runtime, &stage, &call, repeat)?;
    }
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if answer["verdict"] == "failed" {
        bail!("the stage failed: Helio would block this call (plugin_error)");
    }
    Ok(())
}

/// `--repeat`: the call evaluated `times` more on the warm instance (what
/// the stage took is given back each time, so state does not fill up).
fn repeated(
    runtime: &Runtime,
    stage: &Arc<crate::plugins::Stage>,
    call: &ToolCall,
    times: u32,
) -> anyhow::Result<Value> {
    let mut took: Vec<Duration> = Vec::with_capacity(times as usize);
    for _ in 0..times {
        let started = Instant::now();
        let evaluated = runtime.evaluate(stage, call.clone());
        took.push(started.elapsed());
        match evaluated {
            Ok(evaluated) => runtime.state().release(&evaluated.holds),
            Err(failure) => bail!("the stage failed on a repeat: {failure}"),
        }
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    let mean = took.iter().sum::<Duration>().as_secs_f64() * 1e6 / took.len() as f64;
    let round = |us: f64| (us * 10.0).round() / 10.0;
    Ok(json!({
        "calls": times,
        "p50_us": round(at(0.5)),
        "p99_us": round(at(0.99)),
        "mean_us": round(mean),
    }))
}

/// `helio plugin eval` of a spend extractor: what it reads from the call,
/// as a stage's `tool-call.spend` would get it.
fn extract(runtime: &Arc<Runtime>, spec: &StageSpec, call: ToolCall) -> anyhow::Result<()> {
    let extractor = runtime
        .load_extractor(spec)
        .map_err(|e| anyhow::anyhow!("{}: {e}", spec.name))?;
    let extractors = Extractors::new(runtime.clone(), vec![extractor]);
    let started = Instant::now();
    let read = extractors.extract(&spec.name, call);
    let took_us = started.elapsed().as_micros() as u64;
    let answer = match &read {
        Ok(spend) => json!({
            "spend": spend.as_ref().map(|s| json!({"amount": s.amount, "currency": s.currency})),
            "took_us": took_us,
        }),
        Err(why) => json!({ "error": why, "took_us": took_us }),
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if let Err(why) = read {
        bail!("{why}: a stage asking for this amount would block the call");
    }
    Ok(())
}

/// `--call`, read as the MCP door reads a call: the arguments exactly (a
/// duplicate key or an out-of-range number is refused, as it would be).
fn read_call(text: &str) -> anyhow::Result<ToolCall> {
    let value = crate::strict_json::parse(text)
        .map_err(|e| anyhow::anyhow!("--call: {} at {}", e.problem, e.path))?;
    let Value::Object(mut call) = value else {
        bail!("--call must be a JSON object such as {{\"tool\": \"send_email\", \"arguments\": {{}}}}");
    };
    let Some(Value::String(tool)) = call.remove("tool").filter(|t| t.as_str() != Some("")) else {
        bail!("--call.tool is required (the tool's name)");
    };
    let text_field = |call: &mut serde_json::Map<String, Value>, key: &str| match call.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Arc::<str>::from(s))),
        Some(_) => bail!("--call.{key} must be a string"),
    };
    let session = text_field(&mut call, "session")?;
    let environment = text_field(&mut call, "environment")?;
    let agent = text_field(&mut call, "agent")?;
    // An adapter's origin (and metadata) makes it an adapter's call: no MCP
    // era. Otherwise the MCP door's, in the era `protocol_version` names.
    let origin = text_field(&mut call, "origin")?;
    let protocol_version = text_field(&mut call, "protocol_version")?;
    let metadata = match call.remove("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(metadata)) => Some(Arc::new(metadata)),
        Some(_) => bail!("--call.metadata must be a JSON object"),
    };
    let annotations =
        Annotations::of_mcp(call.get("annotations")).map_err(|p| anyhow::anyhow!("--call.{p}"))?;
    call.remove("annotations");
    let arguments = call
        .remove("arguments")
        .filter(|a| !a.is_null())
        .map(Arc::new);
    if let Some(key) = call.keys().next() {
        bail!("--call.{key}: unknown key (expected tool, arguments, annotations, session, environment, agent, origin, protocol_version, metadata)");
    }
    let door = match origin.filter(|o| &**o != "mcp") {
        Some(origin) => Door::Adapter(origin),
        None => Door::Mcp,
    };
    let era = Era::of(protocol_version.as_deref());
    Ok(
        ToolCall::new(tool.into(), annotations, arguments, environment)
            .with_session(session)
            .with_metadata(metadata)
            .with_caller(agent, door, era),
    )
}

fn verdict_json(verdict: &Verdict) -> Value {
    let (word, feedback) = match verdict {
        Verdict::Allow(_) => ("allow", None),
        Verdict::Deny(_, feedback) => ("deny", Some(feedback)),
        Verdict::DryRun(_) => ("dry_run", None),
        Verdict::RequireApproval { feedback, .. } => ("require_approval", feedback.as_ref()),
    };
    let decision = verdict.decision();
    let mut answer = json!({
        "verdict": word,
        "action": decision.action,
        "rule": decision.rule,
        "rule_index": decision.rule_index,
        "explanation": decision.explanation,
    });
    if !decision.redact.is_empty() {
        answer["redact"] = json!(decision.redact);
    }
    if decision.observe {
        answer["observe"] = json!(true);
    }
    if let Some(feedback) = feedback {
        answer["feedback"] = feedback_json(feedback);
    }
    if let Verdict::RequireApproval {
        channel,
        timeout_ms,
        ..
    } = verdict
    {
        answer["channel"] = json!(channel);
        answer["timeout_ms"] = json!(timeout_ms);
    }
    answer
}

fn feedback_json(feedback: &Feedback) -> Value {
    json!({
        "reason": feedback.reason,
        "message": feedback.message,
        "suggestion": feedback.suggestion,
        "retry_allowed": feedback.retry_allowed,
        "extra": feedback.extra,
    })
}
