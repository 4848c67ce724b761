//! Exports: records oldest first, read a chunk at a time and encoded as a
//! JSON array or CSV, so an export of any size needs memory for one chunk.
//!
//! Chunks are read by keyset (`(created_at, rowid)` after the last row sent),
//! each in its own short read, rather than with `OFFSET` (which rereads
//! everything skipped, so a large export would cost quadratic time) or with
//! one long statement (which would hold a read snapshot, and so keep the
//! write-ahead log from being checkpointed, for as long as a slow client
//! takes to download).

use std::sync::Arc;

use super::params::{quoted, Cursor, ParamError, Params};
use super::rows::kind;
use super::select::{self, Source};
use super::{csv, AuditReader, Filter, QueryError, Record};

/// Records read (and encoded) at a time.
pub const CHUNK_ROWS: u64 = 500;

/// The encoding of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A JSON array of records, one per line.
    Json,
    /// RFC 4180 CSV with a header line (see [`super::csv`]).
    Csv,
}

impl ExportFormat {
    /// `format`: `json` (the default) or `csv`.
    pub fn take(params: &mut Params) -> Result<Self, ParamError> {
        match params.take("format").as_deref() {
            None | Some("json") => Ok(Self::Json),
            Some("csv") => Ok(Self::Csv),
            Some(other) => Err(ParamError::new(
                "format",
                format!("must be json or csv, got {}", quoted(other)),
            )),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What comes before the first record: `[` or the header line.
    pub fn start(self, columns: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Json => out.push(b'['),
            Self::Csv => csv::write_header(&mut out, columns),
        }
        out
    }

    /// Appends `records`; `first` says whether any came before them.
    pub fn write(self, out: &mut Vec<u8>, columns: &[&str], records: &[Record], first: bool) {
        match self {
            Self::Json => {
                for (i, record) in records.iter().enumerate() {
                    out.extend_from_slice(if first && i == 0 { b"\n" } else { b",\n" });
                    // A map of JSON values always serialises.
                    if let Ok(text) = serde_json::to_vec(record) {
                        out.extend_from_slice(&text);
                    }
                }
            }
            Self::Csv => csv::write_records(out, columns, kind, records),
        }
    }

    /// What comes after the last record.
    pub fn end(self, any: bool) -> Vec<u8> {
        match (self, any) {
            (Self::Json, true) => b"\n]\n".to_vec(),
            (Self::Json, false) => b"]\n".to_vec(),
            (Self::Csv, _) => Vec::new(),
        }
    }
}

/// `columns`: the CSV's columns, `original` (the original's 29 in its
/// order, the default) or `all` (Helio's own appended). JSON exports carry
/// every field whatever it says: a consumer of JSON ignores extra keys.
pub fn take_columns(params: &mut Params) -> Result<&'static [&'static str], ParamError> {
    use crate::audit::schema::{COLUMNS, ORIGINAL_COLUMNS};
    match params.take("columns").as_deref() {
        None | Some("original") => Ok(ORIGINAL_COLUMNS),
        Some("all") => Ok(COLUMNS),
        Some(other) => Err(ParamError::new(
            "columns",
            format!("must be original or all, got {}", quoted(other)),
        )),
    }
}

/// Reads up to `limit` matching records, oldest first, [`CHUNK_ROWS`] at a
/// time. Each [`next_chunk`](Self::next_chunk) is a short blocking read.
pub struct ExportCursor {
    reader: Arc<AuditReader>,
    filter: Filter,
    /// What to read, made at the first read (how the filter is read
    /// depends on the database) and kept, so every chunk reads the same way.
    source: Option<Source>,
    remaining: u64,
    /// Just past the last record returned.
    after: Option<Cursor>,
    done: bool,
}

impl ExportCursor {
    pub fn new(reader: Arc<AuditReader>, filter: &Filter, limit: u64) -> Self {
        Self {
            reader,
            filter: filter.clone(),
            source: None,
            remaining: limit,
            after: None,
            done: limit == 0,
        }
    }

    /// The next records, or `None` once the export is complete.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, QueryError> {
        if self.done {
            return Ok(None);
        }
        let want = self.remaining.min(CHUNK_ROWS);
        let reader = self.reader.clone();
        let (chunk, after) = reader.with_table((Vec::new(), None), |db, _| {
            if self.source.is_none() {
                let plan = select::plan(db, &self.filter)?;
                self.source = Some(Source::of(&self.filter, &plan));
            }
            match &self.source {
                Some(source) => select::chunk(db, source, self.after.as_ref(), want),
                None => Ok((Vec::new(), None)),
            }
        })?;
        self.remaining -= chunk.len() as u64;
        if (chunk.len() as u64) < want || self.remaining == 0 {
            self.done = true;
        }
        self.after = after;
        if chunk.is_empty() {
            return Ok(None);
        }
        Ok(Some(chunk))
    }
}

impl Iterator for ExportCursor {
    type Item = Result<Vec<Record>, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}
