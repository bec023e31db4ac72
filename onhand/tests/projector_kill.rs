//! The projector process killed with SIGKILL at random moments while 50k events for 2k SKUs
//! flow: the channel ends exactly at the ledger's state, and no SKU's quantity ever goes
//! back to an older version's value in the channel's write log.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onhand_common::event::HEADER_MSG_ID;
use onhand_common::{EventType, InventoryEvent, Sku, StockState, WarehouseStock};
use onhand_sandbox::Channel as Sandboxed;
use onhand_testkit::{NatsServer, eventually};
use rand::Rng;
use tokio_util::sync::CancellationToken;

const SKUS: usize = 2_000;
const VERSIONS: i64 = 25;
const KILLS: usize = 6;

fn event(sku: &str, version: i64) -> InventoryEvent {
    InventoryEvent {
        schema: 1,
        event_id: uuid::Uuid::now_v7(),
        event_type: EventType::Received,
        occurred_at: time::OffsetDateTime::now_utc(),
        sku: Sku::parse(sku).expect("sku"),
        warehouse: "wh1".to_owned(),
        qty: 1,
        order_id: None,
        reservation_id: None,
        reason: None,
        stock: StockState {
            version,
            warehouses: BTreeMap::from([(
                "wh1".to_owned(),
                WarehouseStock {
                    on_hand: quantity(version),
                    reserved: 0,
                    pending: 0,
                },
            )]),
        },
    }
}

/// Grows with the version, so a lower written value is an older version's.
fn quantity(version: i64) -> i64 {
    version * 3
}

/// `onhand projector --channel shopify` against this run's nats-server and sandbox, its
/// output into `log`; callers add the projector settings their test needs.
fn projector_command(world: &World, log: &std::path::Path) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_onhand"));
    command
        .args(["projector", "--channel", "shopify"])
        .env("NATS_URL", world.nats.url())
        .env(
            "ONHAND_CHANNEL__SHOPIFY__BASE_URL",
            format!("{}/shopify", world.base),
        )
        .envs(
            onhand_sandbox::credentials::adapter_settings(Sandboxed::Shopify)
                .into_iter()
                .map(|(k, v)| (format!("ONHAND_CHANNEL__SHOPIFY__{k}"), v)),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log);
    command
}

fn spawn_projector(world: &World, log: &std::path::Path) -> Reaped {
    let child = projector_command(world, log)
        .env("ONHAND_CHANNEL__SHOPIFY__RATE_LIMIT", "off")
        .env("ONHAND_PROJECTOR__LISTEN_ADDR", "127.0.0.1:0")
        .env("ONHAND_PROJECTOR__ACK_WAIT_SECS", "3")
        .env("ONHAND_PROJECTOR__MAX_BATCH", "1000")
        .env("RUST_LOG", "info,onhand_projector=debug")
        .spawn()
        .expect("spawn onhand projector");
    Reaped(child)
}

/// A nats-server with the streams, and the sandbox, for one test.
struct World {
    nats: NatsServer,
    js: async_nats::jetstream::Context,
    base: String,
    sandbox: std::sync::Arc<onhand_sandbox::Sandbox>,
    stop_sandbox: CancellationToken,
}

impl World {
    async fn start(seed: u64) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats = NatsServer::start().await;
        let js = nats.jetstream().await;
        onhand_streams::ensure(&js, &onhand_streams::Definitions::embedded())
            .await
            .expect("streams");
        let app = onhand_sandbox::build("127.0.0.1:0".parse().expect("addr"), seed)
            .await
            .expect("sandbox");
        let base = format!("http://127.0.0.1:{}", app.port());
        let sandbox = app.sandbox();
        let stop_sandbox = CancellationToken::new();
        tokio::spawn(app.run(stop_sandbox.clone()));
        Self {
            nats,
            js,
            base,
            sandbox,
            stop_sandbox,
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_sandbox.cancel();
    }
}

/// A child process killed when the test ends, however it ends (a failed assertion too).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// The projector's log lines about one SKU (and its starts), for a failure message.
fn about(log: &std::path::Path, sku: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(&format!("\"{sku}\"")) || l.contains("attached"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_projector_converges_without_going_back() {
    let world = World::start(11).await;
    let (js, sandbox) = (&world.js, &world.sandbox);
    let skus: Vec<String> = (0..SKUS).map(|i| format!("kill-{i:05}")).collect();
    {
        let mut shop = sandbox.channel(Sandboxed::Shopify);
        for sku in &skus {
            shop.seed_item(sku, 0, None);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("projector.log");
    let mut child = spawn_projector(&world, &log);

    // The ledger's side: 50k events, versions in order per SKU, paced over ~10 s.
    let publisher = {
        let js = js.clone();
        let skus = skus.clone();
        tokio::spawn(async move {
            for version in 1..=VERSIONS {
                let started = Instant::now();
                let mut acks = Vec::with_capacity(skus.len());
                for sku in &skus {
                    let e = event(sku, version);
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(HEADER_MSG_ID, e.event_id.to_string().as_str());
                    acks.push(
                        js.publish_with_headers(e.subject(), headers, e.to_json().into())
                            .await
                            .expect("publish"),
                    );
                }
                for ack in acks {
                    ack.await.expect("puback");
                }
                let pace = Duration::from_millis(400);
                if let Some(rest) = pace.checked_sub(started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
        })
    };

    // Kill at random moments while the events flow, restarting each time.
    let mut rng = rand::rng();
    for _ in 0..KILLS {
        let wait = Duration::from_millis(rng.random_range(500..2_000));
        tokio::time::sleep(wait).await;
        child.kill().expect("SIGKILL the projector");
        child.wait().expect("reap");
        child = spawn_projector(&world, &log);
    }
    publisher.await.expect("publisher");

    eventually(
        Duration::from_secs(120),
        "every sku at its last version",
        || async {
            let shop = sandbox.channel(Sandboxed::Shopify);
            skus.iter()
                .all(|s| {
                    shop.items.get(s).map(onhand_sandbox::state::Item::latest)
                        == Some(quantity(VERSIONS))
                })
                .then_some(())
        },
    )
    .await;
    child.kill().expect("stop the projector");
    child.wait().expect("reap");

    let writes = sandbox.channel(Sandboxed::Shopify).writes.clone();
    let mut last: HashMap<&str, i64> = HashMap::new();
    for w in &writes {
        if let Some(prev) = last.insert(&w.sku, w.quantity) {
            assert!(
                w.quantity >= prev,
                "{} went back from {prev} to {} at write #{}\n{}",
                w.sku,
                w.quantity,
                w.seq,
                about(&log, &w.sku)
            );
        }
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let starts = log_text.matches("projector attached").count();
    assert!(
        starts > KILLS,
        "the projector attached {starts} times (killed {KILLS} times)"
    );
    assert!(
        writes.len() < SKUS * VERSIONS as usize,
        "coalescing: {} writes for {} events",
        writes.len(),
        SKUS * VERSIONS as usize
    );
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_projector_cleanly_after_its_batch() {
    let world = World::start(3).await;
    let (js, sandbox) = (&world.js, &world.sandbox);
    sandbox
        .channel(Sandboxed::Shopify)
        .seed_item("term-1", 0, None);
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("projector.log");
    let mut child = Reaped(
        projector_command(&world, &log)
            .env("ONHAND_PROJECTOR__LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .spawn()
            .expect("spawn"),
    );
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(20),
        "the projector is ready",
        || async {
            http.get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(drop)
        },
    )
    .await;
    let e = event("term-1", 1);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(HEADER_MSG_ID, e.event_id.to_string().as_str());
    js.publish_with_headers(e.subject(), headers, e.to_json().into())
        .await
        .expect("publish")
        .await
        .expect("puback");
    eventually(Duration::from_secs(10), "the event is applied", || async {
        (sandbox
            .channel(Sandboxed::Shopify)
            .items
            .get("term-1")
            .map(onhand_sandbox::state::Item::latest)
            == Some(quantity(1)))
        .then_some(())
    })
    .await;
    // What an operator scrapes: the outcome counters, lag and pending, the adapter's calls.
    let wanted = [
        r#"onhand_projector_events_total{channel="shopify",outcome="applied"} 1"#,
        r#"onhand_projector_event_lag_seconds{channel="shopify"} 0"#,
        r#"onhand_projector_pending{channel="shopify"} 0"#,
        "onhand_projection_latency_seconds_bucket",
        r#"onhand_channel_requests_total{channel="shopify""#,
    ];
    eventually(
        Duration::from_secs(10),
        "the metrics show the event",
        || async {
            let text = http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            wanted.iter().all(|w| text.contains(w)).then_some(())
        },
    )
    .await;
    let health = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the projector did not exit within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exited.success(), "exit status {exited}\n{text}");
    assert!(text.contains("projector stopped"), "{text}");
    // The event's message was acked before the exit: nothing left for a successor.
    let (pending, _) = onhand_projector::consumer::sample(js, "shopify")
        .await
        .expect("sample");
    assert_eq!(pending, 0);
}
