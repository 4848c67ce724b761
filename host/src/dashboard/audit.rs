//! The operator API over the audit trail: `GET /api/audit`,
//! `/api/audit/{id}`, `/api/audit/export`, `/api/feed`, `/api/analytics`.
//!
//! Parameters are parsed strictly (a bad or unknown one is a 400 naming it;
//! see `crate::audit::query::params`), database work runs on blocking
//! threads, and exports stream: the body is produced a chunk at a time as
//! the client reads it, so an export of any size needs memory for one
//! chunk.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use http::StatusCode;
use serde_json::{json, Value};

use super::Operator;
use crate::audit::query::{
    take_columns, AnalyticsRequest, AuditReader, Cursor, ExportCursor, ExportFormat, Filter, Page,
    ParamError, Params, QueryError, Record, EXPORT_BOUNDS, FEED_BOUNDS, LIST_BOUNDS,
};
use crate::state::now_ms;

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/audit", get(list))
        .route("/api/audit/export", get(export))
        .route("/api/audit/{id}", get(one))
        .route("/api/feed", get(feed))
        .route("/api/analytics", get(analytics))
}

/// An API error: `{error, code}` (and `parameter` for a bad parameter).
#[derive(Debug)]
pub(super) enum ApiError {
    BadParameter(ParamError),
    NotFound(&'static str),
    /// The read ran past its deadline.
    TooBroad,
    /// The database could not be read; details go to the log.
    Internal,
}

impl From<ParamError> for ApiError {
    fn from(error: ParamError) -> Self {
        Self::BadParameter(error)
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Param(error) => Self::BadParameter(error),
            QueryError::TooBroad => Self::TooBroad,
            error @ QueryError::Sqlite { .. } => {
                tracing::error!(%error, "audit query failed");
                Self::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::BadParameter(e) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": e.to_string(), "code": "bad_parameter", "parameter": e.parameter }),
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                json!({ "error": what, "code": "not_found" }),
            ),
            Self::TooBroad => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": QueryError::TooBroad.to_string(), "code": "query_too_broad" }),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": "The audit trail could not be read", "code": "internal_error" }),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// Runs a read on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    reader: &Arc<AuditReader>,
    read: impl FnOnce(&AuditReader) -> Result<T, QueryError> + Send + 'static,
) -> Result<T, ApiError> {
    let reader = reader.clone();
    match tokio::task::spawn_blocking(move || read(&reader)).await {
        Ok(outcome) => outcome.map_err(ApiError::from),
        Err(error) => {
            tracing::error!(%error, "audit query task failed");
            Err(ApiError::Internal)
        }
    }
}

/// `GET /api/audit`: filters, `limit` (1..=1000, default 50), `offset`.
async fn list(
    State(op): State<Arc<Operator>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let filter = Filter::take(&mut params)?;
    let page = Page::take(&mut params, LIST_BOUNDS)?;
    let cursor = Cursor::take(&mut params, page)?;
    params.finish()?;
    let listing = blocking(&op.audit, move |r| r.list(&filter, page, cursor.as_ref())).await?;
    Ok(Json(listing.to_json()))
}

/// `GET /api/feed`: the latest records, `limit` (1..=200, default 50) and
/// `offset`.
async fn feed(
    State(op): State<Arc<Operator>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let page = Page::take(&mut params, FEED_BOUNDS)?;
    let cursor = Cursor::take(&mut params, page)?;
    params.finish()?;
    let listing = blocking(&op.audit, move |r| {
        r.list(&Filter::default(), page, cursor.as_ref())
    })
    .await?;
    Ok(Json(listing.to_json()))
}

/// `GET /api/audit/{id}`: `{data: record}`.
async fn one(
    State(op): State<Arc<Operator>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound("Record not found"));
    };
    Params::from_query(query.as_deref())?.finish()?;
    match blocking(&op.audit, move |r| r.get(&id)).await? {
        Some(record) => Ok(Json(json!({ "data": record }))),
        None => Err(ApiError::NotFound("Record not found")),
    }
}

/// `GET /api/analytics`: filters (`from`/`to` default to the last 24
/// hours), `bucket` (`hour` or `minute`), `top`.
async fn analytics(
    State(op): State<Arc<Operator>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let filter = Filter::take(&mut params)?;
    let request = AnalyticsRequest::take(&mut params)?;
    params.finish()?;
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let summary = blocking(&op.audit, move |r| r.analytics(&filter, request, now)).await?;
    Ok(Json(summary.to_json()))
}

/// `GET /api/audit/export`: filters, `format` (`json` or `csv`),
/// `columns` (`original` or `all`), `limit` (1..=100000, default 10000);
/// oldest first, as an attachment.
async fn export(
    State(op): State<Arc<Operator>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let filter = Filter::take(&mut params)?;
    let format = ExportFormat::take(&mut params)?;
    let columns = take_columns(&mut params)?;
    let limit = crate::audit::query::take_limit(&mut params, EXPORT_BOUNDS)?;
    params.finish()?;
    let cursor = ExportCursor::new(op.audit.clone(), &filter, limit);
    // The first chunk is read before answering, so that a database that
    // cannot be read is a JSON error rather than a cut-off download.
    let (cursor, first) = next_chunk(cursor).await?;
    let mut head = format.start(columns);
    let any = first.is_some();
    if let Some(chunk) = &first {
        format.write(&mut head, columns, chunk, true);
    }
    let body = stream::once(async move { Ok(Bytes::from(head)) })
        .chain(rest_of_export(cursor, format, columns, any));
    Ok((
        [
            (CONTENT_TYPE, format.content_type().to_owned()),
            (
                CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"helio-audit-export.{}\"",
                    format.extension()
                ),
            ),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The chunks after the first, read one at a time as the client takes
/// them, then the closing bytes. A read failing midway ends the body with
/// an error, which aborts the response: the client sees a cut-off download,
/// never a complete-looking partial one.
fn rest_of_export(
    cursor: ExportCursor,
    format: ExportFormat,
    columns: &'static [&'static str],
    any: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream::unfold(Some((cursor, any)), move |state| async move {
        let (cursor, any) = state?;
        match next_chunk(cursor).await {
            Ok((cursor, Some(chunk))) => {
                let mut out = Vec::new();
                format.write(&mut out, columns, &chunk, !any);
                Some((Ok(Bytes::from(out)), Some((cursor, true))))
            }
            Ok((_, None)) => Some((Ok(Bytes::from(format.end(any))), None)),
            Err(_) => Some((
                Err(std::io::Error::other("the audit export failed midway")),
                None,
            )),
        }
    })
}

/// Reads the cursor's next chunk on a blocking thread.
async fn next_chunk(
    mut cursor: ExportCursor,
) -> Result<(ExportCursor, Option<Vec<Record>>), ApiError> {
    let read = tokio::task::spawn_blocking(move || {
        let chunk = cursor.next_chunk();
        chunk.map(|chunk| (cursor, chunk))
    });
    match read.await {
        Ok(outcome) => outcome.map_err(ApiError::from),
        Err(error) => {
            tracing::error!(%error, "audit export task failed");
            Err(ApiError::Internal)
        }
    }
}
