//! `helio demo --drive`: a small scripted agent that calls the demo's tools
//! through Helio, so the dashboard has something to show within seconds:
//! allowed calls, a denied delete, a rehearsed payment, refunds drawing on
//! the daily budget, and one refund over 100 held for an operator. It is an
//! ordinary MCP client over streamable HTTP (the 2025-06-18 handshake), one
//! session, paced so a person can follow the feed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The agent's session, as Helio sees it (`x-helio-session-id`).
const SESSION: &str = "demo-agent";
/// Between two calls.
const PACE: Duration = Duration::from_millis(1200);
/// Between two rounds after the script.
const ROUND: Duration = Duration::from_secs(6);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Agent {
    client: HttpClient,
    url: String,
    /// The MCP session the server gave at `initialize`, if any.
    mcp_session: Option<String>,
    next_id: u64,
}

/// Runs the script, then a few calls every few seconds until `stop`.
pub async fn drive(mcp_url: String, stop: CancellationToken) {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut agent = Agent {
        client,
        url: mcp_url,
        mcp_session: None,
        next_id: 1,
    };
    tokio::select! {
        () = stop.cancelled() => {}
        outcome = agent.run(&stop) => if let Err(error) = outcome {
            eprintln!("demo agent stopped: {error}");
        },
    }
}

impl Agent {
    async fn run(&mut self, stop: &CancellationToken) -> Result<(), String> {
        self.initialize().await?;
        let script: [(&str, Value); 7] = [
            ("lookup_order", json!({ "order_id": "ORD-1001" })),
            ("search_docs", json!({ "query": "refund policy" })),
            (
                "process_refund",
                json!({ "order_id": "ORD-1001", "amount": 40, "reason": "damaged item" }),
            ),
            (
                "delete_record",
                json!({ "record_type": "customer", "record_id": "CUST-7" }),
            ),
            (
                "create_payment",
                json!({ "amount": 25, "currency": "USD", "recipient": "acme-supplies" }),
            ),
            ("lookup_order", json!({ "order_id": "ORD-1002" })),
            (
                "process_refund",
                json!({ "order_id": "ORD-1001", "amount": 10, "reason": "late delivery" }),
            ),
        ];
        for (tool, arguments) in script {
            self.call(tool, arguments).await?;
            tokio::time::sleep(PACE).await;
        }
        // Over 100: held until an operator decides on the dashboard. The
        // call waits in its own task, as an agent's would.
        let held = self.call(
            "process_refund",
            json!({
                "order_id": "ORD-1002", "amount": 150, "reason": "order never arrived"
            }),
        );
        let waiting = tokio::spawn(held);
        eprintln!(
            "demo agent: a refund of 150 is waiting for your decision on the dashboard (Approvals)"
        );
        let mut round = 0u64;
        loop {
            tokio::time::sleep(ROUND).await;
            if stop.is_cancelled() {
                break;
            }
            round += 1;
            let order = ["ORD-1001", "ORD-1002", "ORD-1003", "ORD-1004"][(round % 4) as usize];
            self.call("lookup_order", json!({ "order_id": order }))
                .await?;
            self.call(
                "search_docs",
                json!({ "query": format!("shipping {round}") }),
            )
            .await?;
            if waiting.is_finished() && round.is_multiple_of(3) {
                self.call(
                    "process_refund",
                    json!({ "order_id": order, "amount": 5, "reason": "goodwill" }),
                )
                .await?;
            }
        }
        waiting.abort();
        Ok(())
    }

    async fn initialize(&mut self) -> Result<(), String> {
        let (session, _) = post(
            &self.client,
            &self.url,
            None,
            &json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": { "name": "helio-demo-agent", "version": env!("CARGO_PKG_VERSION") },
                },
            }),
        )
        .await?;
        self.mcp_session = session;
        post(
            &self.client,
            &self.url,
            self.mcp_session.as_deref(),
            &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        )
        .await?;
        Ok(())
    }

    /// A `tools/call`, as a future that owns what it needs (so a held call
    /// can wait in its own task).
    fn call(
        &mut self,
        tool: &str,
        arguments: Value,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": tool, "arguments": arguments },
        });
        let client = self.client.clone();
        let url = self.url.clone();
        let session = self.mcp_session.clone();
        async move {
            post(&client, &url, session.as_deref(), &body).await?;
            Ok(())
        }
    }
}

/// POSTs one JSON-RPC message; the `Mcp-Session-Id` the reply carries and
/// its body.
async fn post(
    client: &HttpClient,
    url: &str,
    session: Option<&str>,
    message: &Value,
) -> Result<(Option<String>, Bytes), String> {
    let mut request = http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("x-helio-session-id", SESSION);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let request = request
        .body(Full::new(Bytes::from(message.to_string())))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot reach Helio at {url}: {e}"))?;
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("Helio answered {status}"));
    }
    Ok((session, body))
}
