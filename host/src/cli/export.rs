//! `helio export`: audit records (or a budget's ledger) from the database at
//! `audit.path`, as JSON or CSV, to stdout or a file; the count goes to
//! stderr. It opens the database read-only, so it runs safely beside a
//! live proxy (WAL: readers never block the writer).
//!
//! Flags are checked by the same rules as the operator API's parameters,
//! and a bad one exits 1 with a message naming it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::audit::query::{
    take_columns, take_limit, AuditReader, ExportCursor, ExportFormat, Filter, Page, ParamError,
    Params, EXPORT_BOUNDS, LEDGER_COLUMNS, LEDGER_EXPORT_BOUNDS,
};
use crate::config::{parse_duration, Config};
use crate::state::now_ms;

#[derive(clap::Args)]
pub(super) struct ExportArgs {
    /// The configuration naming the database (audit.path).
    #[arg(short, long, default_value = "helio.yaml")]
    config: PathBuf,
    /// json or csv.
    #[arg(short, long, default_value = "json")]
    format: String,
    /// CSV columns: original (the original Helio's 29, the default) or all.
    #[arg(long, value_name = "original|all")]
    columns: Option<String>,
    /// Export this budget's ledger (its charges) instead of audit records.
    #[arg(long, value_name = "NAME")]
    budgets: Option<String>,
    /// Tool name contains this.
    #[arg(long)]
    tool: Option<String>,
    /// Policy decision (allow, deny, rate_limit, …).
    #[arg(long)]
    decision: Option<String>,
    /// Block reason.
    #[arg(long)]
    reason: Option<String>,
    /// Session id.
    #[arg(long)]
    session: Option<String>,
    /// From this ISO-8601 time (inclusive).
    #[arg(long, value_name = "ISO")]
    from: Option<String>,
    /// Up to this ISO-8601 time (inclusive; a date means the whole day).
    #[arg(long, value_name = "ISO")]
    to: Option<String>,
    /// Only the last DURATION (30m, 12h, 7d); instead of --from.
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// At most this many (1 to 100000; default 10000).
    #[arg(long)]
    limit: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(super) fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let config = crate::config::load(&args.config)
        .map_err(|e| anyhow::anyhow!(e.report()))?
        .config;
    let reader = Arc::new(AuditReader::new(&config.audit.path));
    if !reader.database_exists() {
        bail!(
            "no audit database at {} (audit.path in {}): has Helio run with this configuration, \
             from this directory?",
            config.audit.path,
            args.config.display()
        );
    }
    match &args.budgets {
        Some(name) => export_ledger(args, &config, &reader, name),
        None => export_records(args, reader),
    }
}

/// The flags as API parameters, so both are checked by the same rules.
fn params(args: &ExportArgs, with_filters: bool) -> anyhow::Result<Params> {
    let mut pairs = vec![
        ("format", Some(args.format.clone())),
        ("limit", args.limit.clone()),
    ];
    if with_filters {
        pairs.push(("columns", args.columns.clone()));
        pairs.extend([
            ("tool", args.tool.clone()),
            ("decision", args.decision.clone()),
            ("reason", args.reason.clone()),
            ("session", args.session.clone()),
            ("from", from(args)?),
            ("to", args.to.clone()),
        ]);
    }
    let pairs = pairs
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)));
    Params::from_pairs(pairs).map_err(flag_error)
}

/// `--from`, or the instant `--since` names.
fn from(args: &ExportArgs) -> anyhow::Result<Option<String>> {
    let Some(since) = &args.since else {
        return Ok(args.from.clone());
    };
    if args.from.is_some() {
        bail!("--since and --from both set the start; give one");
    }
    let Some(duration) = parse_duration(since) else {
        bail!("--since: must be a duration such as 30m, 12h or 7d, got {since:?}");
    };
    let back = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    Ok(Some(crate::time::iso_utc(now_ms().saturating_sub(back))))
}

fn flag_error(error: ParamError) -> anyhow::Error {
    anyhow::Error::new(error.as_flag())
}

fn export_records(args: &ExportArgs, reader: Arc<AuditReader>) -> anyhow::Result<()> {
    let mut params = params(args, true)?;
    let filter = Filter::take(&mut params).map_err(flag_error)?;
    let format = ExportFormat::take(&mut params).map_err(flag_error)?;
    let columns = take_columns(&mut params).map_err(flag_error)?;
    let limit = take_limit(&mut params, EXPORT_BOUNDS).map_err(flag_error)?;
    params.finish().map_err(flag_error)?;

    let (total, exact) = reader.count(&filter)?;
    let total = if exact {
        total.to_string()
    } else {
        format!("at least {total}")
    };
    let mut cursor = ExportCursor::new(reader, &filter, limit);
    let written = write_output(args.out.as_deref(), |out| {
        let mut exported = 0;
        out.write_all(&format.start(columns))?;
        while let Some(chunk) = cursor.next_chunk().map_err(io::Error::other)? {
            let mut bytes = Vec::new();
            format.write(&mut bytes, columns, &chunk, exported == 0);
            out.write_all(&bytes)?;
            exported += chunk.len() as u64;
        }
        out.write_all(&format.end(exported > 0))?;
        Ok(exported)
    })?;
    eprintln!("Exported {written} of {total} records");
    Ok(())
}

fn export_ledger(
    args: &ExportArgs,
    config: &Config,
    reader: &AuditReader,
    name: &str,
) -> anyhow::Result<()> {
    let filters = [
        ("--tool", args.tool.is_some()),
        ("--decision", args.decision.is_some()),
        ("--reason", args.reason.is_some()),
        ("--session", args.session.is_some()),
        ("--from", args.from.is_some()),
        ("--to", args.to.is_some()),
        ("--since", args.since.is_some()),
        ("--columns", args.columns.is_some()),
    ];
    if let Some((flag, _)) = filters.iter().find(|(_, given)| *given) {
        bail!("--budgets exports a budget's ledger and takes no audit filters such as {flag}");
    }
    let mut params = params(args, false)?;
    let format = ExportFormat::take(&mut params).map_err(flag_error)?;
    let limit = take_limit(&mut params, LEDGER_EXPORT_BOUNDS).map_err(flag_error)?;
    params.finish().map_err(flag_error)?;
    let budget = config
        .budgets
        .iter()
        .find(|b| b.name.as_deref() == Some(name));
    if budget.is_none() {
        // Its ledger may outlive it in the database, so this is no error.
        eprintln!(
            "warning: no budget named {name:?} in {}",
            args.config.display()
        );
    }
    let currency = budget.map(|b| b.currency.as_str());
    let page = Page { limit, offset: 0 };
    let (records, total) = reader
        .budget_ledger(name, currency, page)
        .map_err(|e| match e {
            crate::audit::query::QueryError::Param(p) => flag_error(p),
            other => other.into(),
        })?;
    write_output(args.out.as_deref(), |out| {
        let mut bytes = format.start(LEDGER_COLUMNS);
        format.write(&mut bytes, LEDGER_COLUMNS, &records, true);
        bytes.extend(format.end(!records.is_empty()));
        out.write_all(&bytes)
    })?;
    eprintln!(
        "Exported {} of {total} ledger rows of budget {name}",
        records.len()
    );
    Ok(())
}

/// Runs `write` on stdout or on a new file at `out` (readable by its owner
/// only: audit data holds call arguments). A failed export removes the
/// file, so a cut-off export is never mistaken for a whole one.
fn write_output<T>(
    out: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> anyhow::Result<T> {
    let Some(path) = out else {
        let mut stdout = BufWriter::new(io::stdout().lock());
        let value = write(&mut stdout).and_then(|v| stdout.flush().map(|()| v));
        return value.context("cannot write the export to stdout");
    };
    let file = create_private(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut file = BufWriter::new(file);
    let written = write(&mut file).and_then(|v| {
        file.flush()?;
        file.get_ref().sync_all()?;
        Ok(v)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written.with_context(|| format!("cannot write the export to {}", path.display()))
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
