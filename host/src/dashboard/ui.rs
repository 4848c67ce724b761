//! The dashboard UI: the files under `host/ui/`, embedded at build time
//! (`host/build.rs`), served at `/ui/<path>`; the page routes all answer
//! with `index.html` and the page script routes on the client. The files
//! are plain HTML, CSS and JavaScript modules: no framework, no build step,
//! no third-party code (see docs/dependencies.md).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::Operator;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// The client-side pages; each is `index.html`.
pub const PAGES: &[&str] = &[
    "/",
    "/approvals",
    "/audit",
    "/limits",
    "/budgets",
    "/analytics",
];

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

fn assets() -> &'static HashMap<&'static str, Asset> {
    static ASSETS: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        embedded::ASSETS
            .iter()
            .map(|&(path, bytes)| {
                let digest = Sha256::digest(bytes);
                let etag = format!("\"{}\"", hex::encode(&digest[..12]));
                let asset = Asset {
                    bytes,
                    content_type: content_type(path),
                    etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
                };
                (path, asset)
            })
            .collect()
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

pub(super) fn routes() -> Router<Arc<Operator>> {
    let mut router = Router::new().route("/ui/{*path}", get(file));
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// An embedded file, or 304 when the browser has this version, or 404.
/// `no-cache`: the browser revalidates each time (a cheap 304 on loopback),
/// so an upgraded binary's UI is never mixed with a stale cached module.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = assets().get(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not found",
        )
            .into_response();
    };
    let cached = headers
        .get(IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == asset.etag.as_bytes());
    let head = [
        (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (ETAG, asset.etag.clone()),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, head).into_response();
    }
    (head, asset.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_is_embedded_with_its_entry_page() {
        let assets = assets();
        let index = assets.get("index.html").expect("index.html embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        let html = std::str::from_utf8(index.bytes).expect("utf-8");
        // The CSP forbids inline script: the page loads its module by URL.
        assert!(html.contains("src=\"/ui/"), "{html}");
        assert!(!html.contains("<script>"), "no inline script");
        for (path, asset) in assets {
            if path.ends_with(".js") {
                let text = std::str::from_utf8(asset.bytes).expect("utf-8");
                assert!(
                    !text.contains("innerHTML") && !text.contains("insertAdjacentHTML"),
                    "{path} builds HTML from strings"
                );
            }
        }
    }
}
