//! The demo upstream behind `helio demo`: a small order-and-payments MCP
//! server (rmcp, streamable HTTP) with realistic tool annotations, so a
//! fresh machine has something worth governing. It is also the upstream the
//! relay benchmark measures against.

pub mod drive;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The demo's mutable world: orders and the refunds issued against them.
struct Store {
    orders: BTreeMap<&'static str, Order>,
    refunded: BTreeMap<String, f64>,
    deleted: Vec<String>,
    next_payment: u32,
}

struct Order {
    customer: &'static str,
    total: f64,
    status: &'static str,
    items: &'static [&'static str],
}

impl Store {
    fn new() -> Self {
        let orders = BTreeMap::from([
            (
                "ORD-1001",
                Order {
                    customer: "Ada Lovelace",
                    total: 129.00,
                    status: "delivered",
                    items: &["analytical engine manual"],
                },
            ),
            (
                "ORD-1002",
                Order {
                    customer: "Grace Hopper",
                    total: 48.50,
                    status: "shipped",
                    items: &["compiler handbook", "nanosecond wire"],
                },
            ),
            (
                "ORD-1003",
                Order {
                    customer: "Alan Turing",
                    total: 2_400.00,
                    status: "processing",
                    items: &["bombe rotor set"],
                },
            ),
            (
                "ORD-1004",
                Order {
                    customer: "Katherine Johnson",
                    total: 15.99,
                    status: "delivered",
                    items: &["slide rule"],
                },
            ),
        ]);
        Self {
            orders,
            refunded: BTreeMap::new(),
            deleted: Vec::new(),
            next_payment: 1,
        }
    }
}

const DOCS: &[(&str, &str)] = &[
    ("Refund policy", "Refunds up to the order total are allowed within 30 days of delivery. Refunds above $100 need a second approver."),
    ("Payments", "create_payment moves real money: amounts are in the given currency and cannot be reversed, only refunded."),
    ("Data retention", "Customer records are kept for 7 years. delete_record removes a record permanently."),
    ("Order lifecycle", "Orders move from processing to shipped to delivered. Only delivered orders can be refunded in full."),
];

#[derive(Clone)]
pub struct DemoServer {
    store: Arc<Mutex<Store>>,
}

impl DemoServer {
    fn new(store: Arc<Mutex<Store>>) -> Self {
        Self { store }
    }
}

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn tools() -> Vec<Tool> {
    let string = |description: &str| json!({ "type": "string", "description": description });
    let number = |description: &str| json!({ "type": "number", "description": description });
    vec![
        Tool::new(
            "lookup_order",
            "Look up an order by id (e.g. ORD-1001): customer, total, status and items.",
            schema(json!({ "type": "object", "properties": { "order_id": string("Order id") }, "required": ["order_id"] })),
        )
        .with_title("Look up order")
        .with_annotations(ToolAnnotations::new().read_only(true).destructive(false).idempotent(true).open_world(false)),
        Tool::new(
            "search_docs",
            "Search the internal policy documentation.",
            schema(json!({ "type": "object", "properties": { "query": string("Words to look for") }, "required": ["query"] })),
        )
        .with_title("Search docs")
        .with_annotations(ToolAnnotations::new().read_only(true).destructive(false).idempotent(true).open_world(false)),
        Tool::new(
            "process_refund",
            "Refund part or all of an order to the customer's original payment method.",
            schema(json!({
                "type": "object",
                "properties": {
                    "order_id": string("Order id"),
                    "amount": number("Amount to refund, in the order's currency"),
                    "reason": string("Why the refund is issued")
                },
                "required": ["order_id", "amount"]
            })),
        )
        .with_title("Process refund")
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false).idempotent(false).open_world(true)),
        Tool::new(
            "create_payment",
            "Send a payment to a recipient. Moves real money.",
            schema(json!({
                "type": "object",
                "properties": {
                    "amount": number("Amount to pay"),
                    "currency": string("ISO currency code, e.g. USD"),
                    "recipient": string("Who receives the payment")
                },
                "required": ["amount", "currency", "recipient"]
            })),
        )
        .with_title("Create payment")
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false).idempotent(false).open_world(true)),
        Tool::new(
            "delete_record",
            "Permanently delete a customer or order record.",
            schema(json!({
                "type": "object",
                "properties": {
                    "record_type": { "type": "string", "enum": ["customer", "order"] },
                    "record_id": string("Id of the record to delete")
                },
                "required": ["record_type", "record_id"]
            })),
        )
        .with_title("Delete record")
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(true).idempotent(true).open_world(false)),
    ]
}

fn text_result(value: Value) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())]).into()
}

fn error_result(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message.into())]).into()
}

fn arg_str<'a>(args: &'a JsonObject, key: &str) -> Result<&'a str, ErrorData> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params(format!("\"{key}\" must be a string"), None))
}

fn arg_amount(args: &JsonObject, key: &str) -> Result<f64, ErrorData> {
    args.get(key)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            ErrorData::invalid_params(format!("\"{key}\" must be a positive number"), None)
        })
}

impl DemoServer {
    fn call(&self, name: &str, args: &JsonObject) -> Result<CallToolResponse, ErrorData> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| ErrorData::internal_error("demo store unavailable", None))?;
        match name {
            "lookup_order" => {
                let id = arg_str(args, "order_id")?;
                Ok(match store.orders.get(id) {
                    Some(o) => text_result(json!({
                        "order_id": id,
                        "customer": o.customer,
                        "total": o.total,
                        "currency": "USD",
                        "status": o.status,
                        "items": o.items,
                        "refunded": store.refunded.get(id).copied().unwrap_or(0.0),
                    })),
                    None => error_result(format!(
                        "No order {id}. Known orders: {}",
                        store.orders.keys().copied().collect::<Vec<_>>().join(", ")
                    )),
                })
            }
            "search_docs" => {
                let query = arg_str(args, "query")?.to_lowercase();
                let hits: Vec<Value> = DOCS
                    .iter()
                    .filter(|(title, body)| {
                        query.split_whitespace().any(|w| {
                            title.to_lowercase().contains(w) || body.to_lowercase().contains(w)
                        })
                    })
                    .map(|(title, body)| json!({ "title": title, "excerpt": body }))
                    .collect();
                Ok(text_result(json!({ "query": query, "results": hits })))
            }
            "process_refund" => {
                let id = arg_str(args, "order_id")?.to_owned();
                let amount = arg_amount(args, "amount")?;
                let Some(total) = store.orders.get(id.as_str()).map(|o| o.total) else {
                    return Ok(error_result(format!("No order {id}")));
                };
                let already = store.refunded.get(&id).copied().unwrap_or(0.0);
                if already + amount > total + 1e-9 {
                    return Ok(error_result(format!(
                        "Refund of {amount:.2} exceeds what is left on {id} ({:.2} of {total:.2} already refunded)",
                        already
                    )));
                }
                store.refunded.insert(id.clone(), already + amount);
                Ok(text_result(json!({
                    "refund_id": format!("RF-{}-{}", id, store.refunded.len()),
                    "order_id": id,
                    "amount": amount,
                    "currency": "USD",
                    "reason": args.get("reason").and_then(Value::as_str).unwrap_or("unspecified"),
                    "status": "issued",
                })))
            }
            "create_payment" => {
                let amount = arg_amount(args, "amount")?;
                let currency = arg_str(args, "currency")?.to_uppercase();
                let recipient = arg_str(args, "recipient")?.to_owned();
                let id = format!("PAY-{:05}", store.next_payment);
                store.next_payment += 1;
                Ok(text_result(json!({
                    "payment_id": id,
                    "amount": amount,
                    "currency": currency,
                    "recipient": recipient,
                    "status": "sent",
                })))
            }
            "delete_record" => {
                let kind = arg_str(args, "record_type")?;
                let id = arg_str(args, "record_id")?;
                let key = format!("{kind}:{id}");
                let already = store.deleted.contains(&key);
                if !already {
                    store.deleted.push(key);
                }
                Ok(text_result(
                    json!({ "deleted": { "type": kind, "id": id }, "already_deleted": already }),
                ))
            }
            other => Err(ErrorData::invalid_params(
                format!("Unknown tool: {other}"),
                None,
            )),
        }
    }
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "helio-demo-shop",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "A demo shop: look up orders, search policy docs, refund, pay and delete records.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        self.call(&request.name, &args)
    }
}

/// Serves the demo MCP server at `/mcp` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let store = Arc::new(Mutex::new(Store::new()));
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    // The Host allowlist guards a loopback server from browsers (DNS
    // rebinding); a server bound for a network (the compose demo's, reached
    // by its service name) serves whatever name it is reached by.
    if listener
        .local_addr()
        .is_ok_and(|address| !address.ip().is_loopback())
    {
        config = config.disable_allowed_hosts();
    }
    let service: StreamableHttpService<DemoServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(DemoServer::new(store.clone())),
            Default::default(),
            config,
        );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Serves the demo MCP server on stdin and stdout until the peer closes
/// them (`helio demo --transport stdio` spawns this).
pub async fn serve_stdio() -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let store = Arc::new(Mutex::new(Store::new()));
    let running = DemoServer::new(store)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// Binds the demo upstream on an ephemeral loopback port.
pub async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
