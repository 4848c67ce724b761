//! The budget routes, in the original's shapes (spec §10.3):
//! `GET /api/budgets` (every configured pot, with its buckets as they
//! stand), `GET /api/budgets/:name/events` (its ledger, newest first) and
//! `/api/budgets/:name/events/export`; and `GET /api/adapters`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::audit::{blocking, ApiError};
use super::Operator;
use crate::audit::query::{
    take_limit, ExportFormat, Page, Params, LEDGER_BOUNDS, LEDGER_COLUMNS, LEDGER_EXPORT_BOUNDS,
};
use crate::config::Budget;
use crate::pipeline::Pipeline;
use crate::plugins::checks::{decimal, decimal_json};
use crate::state::{now_ms, WindowSnapshot};

pub(super) fn routes() -> Router<Arc<Operator>> {
    Router::new()
        .route("/api/budgets", get(list))
        .route("/api/budgets/{name}/events", get(events))
        .route("/api/budgets/{name}/events/export", get(export))
        .route("/api/adapters", get(adapters))
}

/// `GET /api/budgets`: configured pots are listed even with no buckets.
async fn list(State(op): State<Arc<Operator>>) -> Response {
    let windows = match op.state.windows(now_ms()) {
        Ok(windows) => windows,
        Err(error) => return super::state_unavailable("GET /api/budgets", &error),
    };
    let pipeline = op.pipeline.current();
    let budgets: Vec<Value> = pipeline
        .budgets()
        .iter()
        .map(|budget| describe(budget, &pipeline, &windows))
        .collect();
    Json(json!({ "budgets": budgets })).into_response()
}

fn describe(budget: &Budget, pipeline: &Pipeline, windows: &[WindowSnapshot]) -> Value {
    let name = budget.name.as_deref().unwrap_or_default();
    let limit = decimal(&budget.limit);
    let buckets: Vec<Value> = windows
        .iter()
        .filter_map(|window| {
            let described = pipeline.describe(&window.key)?;
            let mine = described.family.kind == "budget" && described.family.name == name;
            mine.then(|| bucket(described.bucket, window, limit))
        })
        .collect();
    json!({
        "name": name,
        "limit": budget.limit,
        "currency": budget.currency,
        "window": budget.window,
        "key": budget.key.as_str(),
        "on_exceed": budget.on_exceed.as_str(),
        "buckets": buckets,
    })
}

fn bucket(key: &str, window: &WindowSnapshot, limit: Option<Decimal>) -> Value {
    let remaining = limit.map(|l| (l - window.total).max(Decimal::ZERO));
    json!({
        "bucket_key": key,
        "spent": decimal_json(&window.total),
        "remaining": remaining.as_ref().map(decimal_json),
        "reset_at_ms": window.reset_at_ms,
        "last_activity_ms": window.last_activity_ms,
    })
}

/// The budget's currency as configured now, if it is configured.
fn currency(op: &Operator, name: &str) -> Option<String> {
    op.pipeline
        .current()
        .budgets()
        .iter()
        .find(|b| b.name.as_deref() == Some(name))
        .map(|b| b.currency.clone())
}

/// `GET /api/budgets/:name/events`: `limit` (1..=1000, default 50) and
/// `offset`; a budget with no charges (or no such budget) is an empty page.
async fn events(
    State(op): State<Arc<Operator>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let page = Page::take(&mut params, LEDGER_BOUNDS)?;
    params.finish()?;
    let currency = currency(&op, &name);
    let (data, total) = blocking(&op.audit, move |r| {
        r.budget_ledger(&name, currency.as_deref(), page)
    })
    .await?;
    Ok(Json(json!({
        "data": data,
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    })))
}

/// `GET /api/budgets/:name/events/export`: `format` (`json` or `csv`),
/// `limit` (1..=10000, default 1000); newest first, as an attachment.
async fn export(
    State(op): State<Arc<Operator>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    let format = ExportFormat::take(&mut params)?;
    let limit = take_limit(&mut params, LEDGER_EXPORT_BOUNDS)?;
    params.finish()?;
    let currency = currency(&op, &name);
    let file = format!(
        "helio-budget-{}-events.{}",
        sanitised(&name),
        format.extension()
    );
    let page = Page { limit, offset: 0 };
    let (rows, _) = blocking(&op.audit, move |r| {
        r.budget_ledger(&name, currency.as_deref(), page)
    })
    .await?;
    let mut body = format.start(LEDGER_COLUMNS);
    format.write(&mut body, LEDGER_COLUMNS, &rows, true);
    body.extend(format.end(!rows.is_empty()));
    Ok((
        [
            (CONTENT_TYPE, format.content_type().to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// A budget name fit for a file name (names are already restricted; this
/// keeps any other character out of the header regardless).
fn sanitised(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `GET /api/adapters`: the frameworks that used the adapter API since
/// start (origin, version, first and last seen); empty with the SDK
/// sideband off.
async fn adapters(State(op): State<Arc<Operator>>) -> Json<Value> {
    Json(match &op.evaluations {
        Some(evaluations) => evaluations.adapters_json(),
        None => json!({ "adapters": [] }),
    })
}
