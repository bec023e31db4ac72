//! Sustained load on the ledger's HTTP API, open loop at a fixed rate: receipts, cart
//! reservations that expire (the sweeper releases them), marketplace orders, order
//! cancellations and stock adjustments, on every SKU. Failed requests are counted, not
//! retried: during a fault the ledger may refuse or time out, which is what is measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::world::{CHANNELS, SHOP_TOKEN, WAREHOUSES, WMS_TOKEN};

/// Requests in flight at most; a tick with none free is counted as skipped.
const IN_FLIGHT: usize = 32;

#[derive(Debug, Default)]
pub struct LoadStats {
    pub sent: AtomicU64,
    /// 2xx.
    pub ok: AtomicU64,
    /// 4xx the load expects now and then (409 insufficient stock, 404 an expired order).
    pub refused: AtomicU64,
    /// 5xx, timeouts, connection errors: the ledger was unavailable.
    pub failed: AtomicU64,
    /// Ticks with every request slot busy (the ledger was slow or down).
    pub skipped: AtomicU64,
    /// Any other status: a bug in the harness or the ledger.
    pub unexpected: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub ok: u64,
    pub refused: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unexpected: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            sent: self.sent - o.sent,
            ok: self.ok - o.ok,
            refused: self.refused - o.refused,
            failed: self.failed - o.failed,
            skipped: self.skipped - o.skipped,
            unexpected: self.unexpected - o.unexpected,
        }
    }
}

impl LoadStats {
    pub fn counts(&self) -> Counts {
        Counts {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
pub struct Load {
    pub stats: Arc<LoadStats>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone)]
struct Target {
    http: reqwest::Client,
    ledger: String,
    skus: Arc<Vec<String>>,
    orders: Arc<Mutex<Vec<String>>>,
    stats: Arc<LoadStats>,
}

/// Gives every SKU `units` on hand in every warehouse (before the load starts).
pub async fn seed(
    http: &reqwest::Client,
    ledger: &str,
    skus: &[String],
    units: i64,
) -> anyhow::Result<()> {
    for sku in skus {
        for warehouse in WAREHOUSES {
            let body = json!({"sku": sku, "warehouse": warehouse, "qty": units, "reference": "chaos-seed"});
            let response = post(http, ledger, "/v1/receipts", WMS_TOKEN, &body).await?;
            anyhow::ensure!(
                response.status().is_success(),
                "seeding {sku}: {}",
                response.status()
            );
        }
    }
    Ok(())
}

pub async fn post(
    http: &reqwest::Client,
    ledger: &str,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{ledger}{path}"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(body)
        .send()
        .await
}

impl Load {
    /// Starts `rate` requests a second until [`stop`](Self::stop).
    pub fn start(http: reqwest::Client, ledger: String, skus: Vec<String>, rate: f64) -> Load {
        let stats = Arc::new(LoadStats::default());
        let stop = CancellationToken::new();
        let target = Target {
            http,
            ledger,
            skus: Arc::new(skus),
            orders: Arc::new(Mutex::new(Vec::new())),
            stats: stats.clone(),
        };
        let task = tokio::spawn(run(target, rate, stop.clone()));
        Load { stats, stop, task }
    }

    /// Stops sending and waits for the requests in flight.
    pub async fn stop(self) -> Counts {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            say!("the load task failed: {err}");
        }
        self.stats.counts()
    }
}

async fn run(target: Target, rate: f64, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            target.stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            one_request(&target).await;
            drop(permit);
        });
    }
    // Wait for the requests in flight: every slot back.
    let _all = slots.acquire_many(IN_FLIGHT as u32).await;
}

async fn one_request(t: &Target) {
    let (path, token, body, order) = {
        let mut rng = rand::rng();
        let sku = &t.skus[rng.random_range(0..t.skus.len())];
        let warehouse = WAREHOUSES[rng.random_range(0..WAREHOUSES.len())];
        let roll: f64 = rng.random();
        if roll < 0.30 {
            let body = json!({"sku": sku, "warehouse": warehouse, "qty": rng.random_range(1..=4)});
            ("/v1/receipts".to_owned(), WMS_TOKEN, body, None)
        } else if roll < 0.55 {
            let body = json!({"sku": sku, "qty": rng.random_range(1..=2), "kind": "cart",
                "order_id": format!("cart-{}", uuid::Uuid::new_v4().simple()),
                "ttl_secs": rng.random_range(2..=6)});
            ("/v1/reservations".to_owned(), SHOP_TOKEN, body, None)
        } else if roll < 0.80 {
            let order_id = format!("mkt-{}", uuid::Uuid::new_v4().simple());
            let channel = CHANNELS[rng.random_range(0..CHANNELS.len())].as_str();
            let body = json!({"order_id": order_id, "channel": channel,
                "lines": [{"sku": sku, "qty": 1, "warehouse": warehouse}]});
            ("/v1/orders".to_owned(), SHOP_TOKEN, body, Some(order_id))
        } else if roll < 0.90 {
            let magnitude = rng.random_range(1..=3_i64);
            let delta = if rng.random_bool(0.5) {
                magnitude
            } else {
                -magnitude
            };
            let body = json!({"sku": sku, "warehouse": warehouse, "delta": delta,
                "reason": "cycle_count"});
            ("/v1/adjustments".to_owned(), WMS_TOKEN, body, None)
        } else {
            // Cancel an earlier marketplace order (its pending units come back).
            let Some(order) = t.orders.try_lock().ok().and_then(|mut o| o.pop()) else {
                return;
            };
            (
                format!("/v1/orders/{order}/cancel"),
                SHOP_TOKEN,
                json!({}),
                None,
            )
        }
    };
    t.stats.sent.fetch_add(1, Ordering::Relaxed);
    let counter = match post(&t.http, &t.ledger, &path, token, &body).await {
        Ok(r) if r.status().is_success() => {
            if let Some(order) = order {
                let mut orders = t.orders.lock().await;
                orders.push(order);
                if orders.len() > 1_000 {
                    orders.remove(0);
                }
            }
            &t.stats.ok
        }
        Ok(r) if matches!(r.status().as_u16(), 404 | 409 | 422) => &t.stats.refused,
        Ok(r) if r.status().is_server_error() => &t.stats.failed,
        Ok(r) => {
            say!("load: unexpected {} from POST {path}", r.status());
            &t.stats.unexpected
        }
        Err(_) => &t.stats.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}
