//! One stock change traced end to end, as deployed: `onhand ledger`, `onhand sandbox` and
//! `onhand projector --channel webhook` run as processes exporting their spans over OTLP
//! (gRPC, `OTEL_EXPORTER_OTLP_ENDPOINT`) to a receiver this test runs. A receipt posted with
//! a caller's `traceparent` reaches the sandbox's webhook with a `traceparent` of the same
//! trace, and the exported spans chain back from that call to the caller: the projector's
//! `push_batch` → its `project_sku` → the relay's `publish_event` → … → the ledger's
//! `http_request`, each under its component's service name; the projector's
//! `project_batch` links to the trace; and the projector's log line for the channel call
//! carries the call's trace and span ids.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::{NatsServer, TestDb, eventually};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The caller's (a WMS's) trace and span.
const TRACE_ID: &str = "5a0b1c2d3e4f56789a0b1c2d3e4f5678";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const WMS_TOKEN: &str = "e2e-wms-token-0001";
const SKU: &str = "TRACE-E2E-1";
const PROJECTOR: &str = "onhand-projector-webhook";
const LEDGER: &str = "onhand-ledger";

/// One span as a service exported it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    span: Span,
}

impl Exported {
    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/gRPC trace receiver: keeps every span exported to it.
#[derive(Debug, Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Exported>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| Exported {
                    service: service.clone(),
                    span,
                }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serve on a loopback port until `stop`; returns the endpoint URL.
    async fn start(&self, stop: CancellationToken) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("addr");
        let server = tonic::transport::Server::builder().serve_with_incoming_shutdown(
            TraceServiceServer::new(self.clone()),
            tonic::transport::server::TcpIncoming::from(listener),
            stop.cancelled_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("OTLP receiver: {e}");
            }
        });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Exported> {
        self.0.lock().expect("spans").clone()
    }
}

/// A child process killed when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound, then released for a child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `onhand <args>` exporting spans to `otlp`, its output into `dir/<name>.log`.
fn onhand(dir: &Path, name: &str, otlp: &str, args: &[&str]) -> Command {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_onhand"));
    command
        .args(args)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_SDK_DISABLED")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log);
    command
}

fn logs(dir: &Path) -> String {
    ["ledger", "sandbox", "projector"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            format!("--- {name}.log\n{text}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wait until `url` answers 2xx.
async fn ready(http: &reqwest::Client, url: &str, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        http.get(url)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(drop)
    })
    .await;
}

/// The spans from `leaf` up through its exported ancestors (the caller's span is not one).
fn ancestry<'a>(by_id: &HashMap<String, &'a Exported>, leaf: &str) -> Vec<&'a Exported> {
    let mut chain = Vec::new();
    let mut id = leaf.to_owned();
    while let Some(span) = by_id.get(&id) {
        chain.push(*span);
        id = span.parent_id();
        if chain.len() > 50 {
            break;
        }
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipts_trace_reaches_the_channel_and_every_span_of_the_chain_is_exported() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let receiver = Receiver::default();
    let otlp = receiver.start(stop.clone()).await;

    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
        .await
        .expect("streams");
    let db = TestDb::create().await;
    onhand_ledger::migrate(db.url()).await.expect("migrations");
    let dir = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = dir.path().to_owned();
    let http = reqwest::Client::new();

    let sandbox_port = free_port();
    let sandbox = format!("http://127.0.0.1:{sandbox_port}");
    let _sandbox = Reaped(
        onhand(&dir, "sandbox", &otlp, &["sandbox"])
            .env(
                "ONHAND_SANDBOX__LISTEN_ADDR",
                format!("127.0.0.1:{sandbox_port}"),
            )
            .spawn()
            .expect("spawn onhand sandbox"),
    );
    ready(
        &http,
        &format!("{sandbox}/admin/webhook/items"),
        "the sandbox",
    )
    .await;
    let seeded = http
        .post(format!("{sandbox}/admin/webhook/items"))
        .json(&json!([{"sku": SKU, "quantity": 0}]))
        .send()
        .await
        .expect("seed");
    assert!(seeded.status().is_success(), "{}", seeded.status());

    let ledger_port = free_port();
    let ledger = format!("http://127.0.0.1:{ledger_port}");
    let tokens = json!([{"name": "wms", "scopes": ["stock:write", "read"], "token": WMS_TOKEN}]);
    let _ledger = Reaped(
        onhand(&dir, "ledger", &otlp, &["ledger"])
            .env("DATABASE_URL", db.url())
            .env("NATS_URL", nats.url())
            .env(
                "ONHAND_LEDGER__LISTEN_ADDR",
                format!("127.0.0.1:{ledger_port}"),
            )
            .env("ONHAND_LEDGER__WAREHOUSES", "ams-1")
            .env("ONHAND_LEDGER__TOKENS", tokens.to_string())
            .env("ONHAND_LEDGER__RELAY_POLL_MS", "50")
            .spawn()
            .expect("spawn onhand ledger"),
    );
    let projector_port = free_port();
    let _projector = Reaped(
        onhand(
            &dir,
            "projector",
            &otlp,
            &["projector", "--channel", "webhook"],
        )
        .env("NATS_URL", nats.url())
        .env(
            "ONHAND_CHANNEL__WEBHOOK__BASE_URL",
            format!("{sandbox}/webhook"),
        )
        .envs(
            onhand_sandbox::credentials::adapter_settings(Sandboxed::Webhook)
                .into_iter()
                .map(|(k, v)| (format!("ONHAND_CHANNEL__WEBHOOK__{k}"), v)),
        )
        .env(
            "ONHAND_PROJECTOR__LISTEN_ADDR",
            format!("127.0.0.1:{projector_port}"),
        )
        // The channel call's log line, to join it with its span.
        .env("RUST_LOG", "info,onhand_channels=debug")
        .spawn()
        .expect("spawn onhand projector"),
    );
    ready(&http, &format!("{ledger}/readyz"), "the ledger").await;
    ready(
        &http,
        &format!("http://127.0.0.1:{projector_port}/readyz"),
        "the projector",
    )
    .await;

    let response = http
        .post(format!("{ledger}/v1/receipts"))
        .bearer_auth(WMS_TOKEN)
        .header("Idempotency-Key", "trace-e2e-1")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({"sku": SKU, "warehouse": "ams-1", "qty": 5}))
        .send()
        .await
        .expect("receipt");
    assert_eq!(response.status().as_u16(), 200, "{}", logs(&dir));

    // What the channel received.
    let received = eventually(
        Duration::from_secs(30),
        "the webhook receives the quantity",
        || async {
            let body: serde_json::Value = http
                .get(format!("{sandbox}/admin/webhook/writes"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            body["writes"]
                .as_array()?
                .iter()
                .find(|w| w["sku"] == SKU && w["quantity"] == 5)
                .cloned()
        },
    )
    .await;
    let traceparent = received["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("the write carries no traceparent: {received}"))
        .to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(
        parts[1], TRACE_ID,
        "the ledger request's trace reached the channel"
    );
    let call_span = parts[2].to_owned();

    // The exported chain, from the channel call back to the caller.
    let chain = eventually(
        Duration::from_secs(30),
        "every span of the chain is exported",
        || async {
            let spans = receiver.spans();
            let by_id: HashMap<String, &Exported> = spans
                .iter()
                .filter(|s| s.trace_id() == TRACE_ID)
                .map(|s| (s.span_id(), s))
                .collect();
            let chain: Vec<(String, String, String, String)> = ancestry(&by_id, &call_span)
                .into_iter()
                .map(|s| {
                    (
                        s.service.clone(),
                        s.span.name.clone(),
                        s.span_id(),
                        s.parent_id(),
                    )
                })
                .collect();
            let root_is_caller = chain
                .last()
                .is_some_and(|(_, _, _, parent)| parent == CALLER_SPAN);
            root_is_caller.then_some(chain)
        },
    )
    .await;
    let steps: Vec<(&str, &str)> = chain
        .iter()
        .map(|(service, name, _, _)| (service.as_str(), name.as_str()))
        .collect();
    assert_eq!(steps[0], (PROJECTOR, "push_batch"), "{steps:?}");
    assert_eq!(steps[1], (PROJECTOR, "project_sku"), "{steps:?}");
    assert_eq!(steps[2], (LEDGER, "publish_event"), "{steps:?}");
    assert_eq!(steps.last(), Some(&(LEDGER, "http_request")), "{steps:?}");
    assert!(
        steps[3..].iter().all(|(service, _)| *service == LEDGER),
        "the request's side is the ledger's: {steps:?}"
    );

    // The projector's batch span is a trace of its own, linked to this one's relay span.
    let publish_span = &chain[2].2;
    let batch = eventually(
        Duration::from_secs(30),
        "the projector's batch span is exported",
        || async {
            receiver.spans().into_iter().find(|s| {
                s.service == PROJECTOR
                    && s.span.name == "project_batch"
                    && s.span
                        .links
                        .iter()
                        .any(|l| hex(&l.trace_id) == TRACE_ID && &hex(&l.span_id) == publish_span)
            })
        },
    )
    .await;
    assert_ne!(batch.trace_id(), TRACE_ID);

    // Logs and traces join: the projector's line for the channel call has the call's ids.
    let projector_log = std::fs::read_to_string(dir.join("projector.log")).unwrap_or_default();
    let call_line = projector_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "channel request" && l["trace_id"] == TRACE_ID)
        .unwrap_or_else(|| panic!("no channel request line in trace {TRACE_ID}\n{projector_log}"));
    assert_eq!(call_line["span_id"], call_span.as_str(), "{call_line}");
}
