//! `onhand simulate shoppers`: simulated shoppers against the ledger's HTTP API, for demos
//! and soak runs. At `--rate` calls per second it plays a mix of channels: on storefront
//! channels a shopper reserves a cart that is checked out and ordered, abandoned (released)
//! or left to expire; on marketplaces (`--marketplaces`) the sale arrives as an order with no
//! reservation. Orders are shipped (sometimes in two parcels) or cancelled, and the WMS
//! restocks a SKU whenever its availability runs low, so stock never runs out for good.
//! Order ids are `<channel>-<run>-<n>` and each order carries its channel.
//!
//! The [`Planner`] decides (pure, seeded, clock passed in); [`run`] sends the requests and
//! prints a one-line summary every 5 s to stderr. Exits non-zero when any request failed
//! for a reason the simulation does not expect (anything but sold out, expired or already
//! released).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How often the summary line is printed.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// A SKU is not restocked twice within this long (a failing receipt must not spin).
const RESTOCK_COOLDOWN: Duration = Duration::from_secs(2);
/// Shares of the storefront flow: cart → checkout, cart → abandoned, the rest expire.
const P_CHECKOUT: f64 = 0.55;
const P_ABANDON: f64 = 0.20;
/// A checkout that becomes an order (the rest abandon at payment).
const P_ORDER: f64 = 0.85;
/// An order that is cancelled instead of shipped.
const P_CANCEL: f64 = 0.12;
/// An order of 2+ units shipped in two parcels.
const P_TWO_PARCELS: f64 = 0.30;

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The ledger's base URL.
    #[arg(
        long,
        env = "ONHAND_SIMULATE__LEDGER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub ledger_url: String,
    /// Bearer token with `orders:write` and `read` (shoppers and marketplaces).
    #[arg(long, env = "ONHAND_SIMULATE__SHOP_TOKEN", hide_env_values = true, value_parser = secret)]
    pub shop_token: SecretString,
    /// Bearer token with `stock:write` (the WMS: restocks and shipments).
    #[arg(long, env = "ONHAND_SIMULATE__WMS_TOKEN", hide_env_values = true, value_parser = secret)]
    pub wms_token: SecretString,
    /// Ledger calls per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// SKUs the shoppers buy, most popular first (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "TSHIRT-RED-M,MUG-BLUE,HOODIE-GRY-L,CAP-BLK,SOCKS-WHT-3P,TOTE-NAT"
    )]
    pub skus: Vec<String>,
    /// Channels the orders come from (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "shopify,amazon,ebay,woocommerce,bigcommerce,webhook,storefront_kv"
    )]
    pub channels: Vec<String>,
    /// Which of those channels are marketplaces (orders with no reservation).
    #[arg(long, value_delimiter = ',', default_value = "amazon,ebay")]
    pub marketplaces: Vec<String>,
    /// Warehouses restocks go to (the ledger's ONHAND_LEDGER__WAREHOUSES).
    #[arg(long, value_delimiter = ',', default_value = "ams-1,nyc-1")]
    pub warehouses: Vec<String>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// TTL of a cart reservation; carts left alone expire after it.
    #[arg(long, default_value_t = 10)]
    pub cart_ttl_secs: u64,
    /// Restock a warehouse when its availability of a SKU drops below this.
    #[arg(long, default_value_t = 5)]
    pub low_water: i64,
    /// Units per restock.
    #[arg(long, default_value_t = 20)]
    pub restock_qty: i64,
    /// Seed of the shoppers' choices (same seed, same decisions).
    #[arg(long)]
    pub seed: Option<u64>,
}

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

/// A reservation the simulation holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: String,
    pub order_id: String,
    pub channel: String,
    pub sku: String,
    pub qty: i64,
    pub warehouse: String,
}

/// An order, with the warehouse it ships from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub channel: String,
    pub sku: String,
    pub qty: i64,
    pub warehouse: String,
    pub reservation_id: Option<String>,
}

/// One ledger call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Restock {
        sku: String,
        warehouse: String,
        qty: i64,
    },
    Reserve {
        channel: String,
        order_id: String,
        sku: String,
        qty: i64,
        ttl_secs: u64,
    },
    Checkout(Hold),
    Release(Hold),
    PlaceOrder(Order),
    Ship {
        order: Order,
        qty: i64,
    },
    Cancel(Order),
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Self::Restock { .. } => "restock",
            Self::Reserve { .. } => "reserve",
            Self::Checkout(_) => "checkout",
            Self::Release(_) => "release",
            Self::PlaceOrder(_) => "order",
            Self::Ship { .. } => "ship",
            Self::Cancel(_) => "cancel",
        }
    }
}

/// What came of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 2xx, with the body.
    Done(Value),
    /// A refusal a shopper meets (sold out, reservation expired or already released).
    Refused(String),
    /// Anything else: a bug, a bad token, an outage.
    Failed(String),
}

/// Sorts a response: 2xx is done; 409 with a code the simulation expects is refused;
/// the rest failed.
pub fn classify(status: u16, body: &[u8]) -> Reply {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Reply::Done(value);
    }
    let code = value["error"]["code"].as_str().unwrap_or("").to_owned();
    let expected = [
        "insufficient_stock",
        "reservation_expired",
        "reservation_not_active",
    ];
    if status == 409 && expected.contains(&code.as_str()) {
        return Reply::Refused(code);
    }
    let message = value["error"]["message"].as_str().unwrap_or("");
    Reply::Failed(format!("HTTP {status} {code} {message}").trim().to_owned())
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    pub carts: u64,
    pub checkouts: u64,
    pub abandoned: u64,
    pub left_to_expire: u64,
    pub orders: u64,
    pub marketplace_orders: u64,
    pub oversold_units: i64,
    pub parcels: u64,
    pub cancelled: u64,
    pub restocks: u64,
    pub sold_out: u64,
    pub expired: u64,
    pub failed: u64,
    pub last_failure: Option<String>,
    pub orders_by_channel: BTreeMap<String, u64>,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "calls {} | carts {} (checkout {}, abandoned {}, left to expire {}) | orders {} \
             (marketplace {}, oversold units {}) | parcels {} | cancelled {} | restocks {} | \
             sold out {} | expired {} | failed {}",
            self.calls,
            self.carts,
            self.checkouts,
            self.abandoned,
            self.left_to_expire,
            self.orders,
            self.marketplace_orders,
            self.oversold_units,
            self.parcels,
            self.cancelled,
            self.restocks,
            self.sold_out,
            self.expired,
            self.failed
        )?;
        let by_channel: Vec<String> = self
            .orders_by_channel
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect();
        if !by_channel.is_empty() {
            write!(f, " | by channel {}", by_channel.join(" "))?;
        }
        if let Some(last) = &self.last_failure {
            write!(f, " | last failure: {last}")?;
        }
        Ok(())
    }
}

/// What the planner works from.
#[derive(Debug, Clone)]
pub struct Shop {
    pub skus: Vec<String>,
    pub channels: Vec<String>,
    pub marketplaces: BTreeSet<String>,
    pub warehouses: Vec<String>,
    pub cart_ttl: Duration,
    pub low_water: i64,
    pub restock_qty: i64,
    /// Tags order ids so two runs never collide.
    pub run: String,
}

/// The shoppers' and the WMS's decisions. `now` is time since the start.
#[derive(Debug)]
pub struct Planner {
    shop: Shop,
    rng: StdRng,
    /// Follow-ups by (due, tie-break).
    due: BTreeMap<(Duration, u64), Action>,
    /// Known availability per SKU: (version, available per warehouse).
    stock: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
    /// SKUs a shopper found sold out: restock them next.
    wanted: BTreeSet<String>,
    last_restock: BTreeMap<(String, String), Duration>,
    next_id: u64,
    pub tally: Tally,
}

impl Planner {
    pub fn new(shop: Shop, seed: u64) -> Self {
        Self {
            shop,
            rng: StdRng::seed_from_u64(seed),
            due: BTreeMap::new(),
            stock: BTreeMap::new(),
            wanted: BTreeSet::new(),
            last_restock: BTreeMap::new(),
            next_id: 0,
            tally: Tally::default(),
        }
    }

    /// Learns a SKU's state from a response: `{stock}`, `{stock: [..]}` or a stock read.
    pub fn observe(&mut self, body: &Value) {
        let states: Vec<&Value> = match &body["stock"] {
            Value::Array(list) => list.iter().collect(),
            Value::Object(_) => vec![&body["stock"]],
            _ if body["warehouses"].is_object() => vec![body],
            _ => Vec::new(),
        };
        for state in states {
            let (Some(sku), Some(version), Some(warehouses)) = (
                state["sku"].as_str(),
                state["version"].as_i64(),
                state["warehouses"].as_object(),
            ) else {
                continue;
            };
            if self.stock.get(sku).is_some_and(|(v, _)| *v > version) {
                continue;
            }
            let available = warehouses
                .iter()
                .map(|(w, s)| {
                    let n = |k: &str| s[k].as_i64().unwrap_or(0);
                    (w.clone(), n("on_hand") - n("reserved") - n("pending"))
                })
                .collect();
            self.stock.insert(sku.to_owned(), (version, available));
        }
    }

    /// Total known availability of a SKU (0 when never seen).
    #[cfg(test)]
    fn available(&self, sku: &str) -> i64 {
        self.stock.get(sku).map_or(0, |(_, w)| w.values().sum())
    }

    /// The next call to make at `now`: a follow-up that is due, else a restock that is
    /// needed, else a new shopper.
    pub fn next(&mut self, now: Duration) -> Action {
        if let Some(entry) = self.due.first_entry()
            && entry.key().0 <= now
        {
            return entry.remove();
        }
        if let Some(action) = self.restock(now) {
            return action;
        }
        self.new_shopper()
    }

    /// A warehouse's known availability of a SKU (0 when never seen).
    fn available_in(&self, sku: &str, warehouse: &str) -> i64 {
        self.stock
            .get(sku)
            .and_then(|(_, w)| w.get(warehouse))
            .copied()
            .unwrap_or(0)
    }

    /// The WMS refills any warehouse below the low water, and the emptiest warehouse of a
    /// SKU a shopper found sold out; each (SKU, warehouse) at most once per cooldown.
    fn restock(&mut self, now: Duration) -> Option<Action> {
        let cooled = |p: &Self, sku: &str, w: &str| {
            p.last_restock
                .get(&(sku.to_owned(), w.to_owned()))
                .is_none_or(|at| now.saturating_sub(*at) >= RESTOCK_COOLDOWN)
        };
        let (sku, warehouse) = self.shop.skus.iter().find_map(|sku| {
            let open = self.shop.warehouses.iter().filter(|w| cooled(self, sku, w));
            let pick = if self.wanted.contains(sku) {
                open.min_by_key(|w| self.available_in(sku, w))
            } else {
                open.into_iter()
                    .find(|w| self.available_in(sku, w) < self.shop.low_water)
            };
            pick.map(|w| (sku.clone(), w.clone()))
        })?;
        self.wanted.remove(&sku);
        self.last_restock
            .insert((sku.clone(), warehouse.clone()), now);
        Some(Action::Restock {
            sku,
            warehouse,
            qty: self.shop.restock_qty,
        })
    }

    fn new_shopper(&mut self) -> Action {
        let channel =
            self.shop.channels[self.rng.random_range(0..self.shop.channels.len())].clone();
        let sku = self.popular_sku();
        let qty = match self.rng.random::<f64>() {
            r if r < 0.7 => 1,
            r if r < 0.9 => 2,
            _ => 3,
        };
        self.next_id += 1;
        let order_id = format!("{channel}-{}-{}", self.shop.run, self.next_id);
        if self.shop.marketplaces.contains(&channel) {
            let warehouse = self.fullest_warehouse(&sku);
            return Action::PlaceOrder(Order {
                order_id,
                channel,
                sku,
                qty,
                warehouse,
                reservation_id: None,
            });
        }
        Action::Reserve {
            channel,
            order_id,
            sku,
            qty,
            ttl_secs: self.shop.cart_ttl.as_secs().max(1),
        }
    }

    /// SKU i is chosen with weight 1/(i+1): the first ones sell most.
    fn popular_sku(&mut self) -> String {
        let weights: Vec<f64> = (0..self.shop.skus.len())
            .map(|i| 1.0 / (i as f64 + 1.0))
            .collect();
        let mut roll = self.rng.random::<f64>() * weights.iter().sum::<f64>();
        for (sku, w) in self.shop.skus.iter().zip(&weights) {
            if roll < *w {
                return sku.clone();
            }
            roll -= w;
        }
        self.shop.skus[self.shop.skus.len() - 1].clone()
    }

    fn fullest_warehouse(&self, sku: &str) -> String {
        self.shop
            .warehouses
            .iter()
            .max_by_key(|w| self.available_in(sku, w))
            .unwrap_or(&self.shop.warehouses[0])
            .clone()
    }

    fn after(&mut self, now: Duration, secs: std::ops::RangeInclusive<u64>, action: Action) {
        let at = now + Duration::from_millis(self.rng.random_range(secs) * 1000);
        self.next_id += 1;
        self.due.insert((at, self.next_id), action);
    }

    /// Follow-ups waiting.
    pub fn waiting(&self) -> usize {
        self.due.len()
    }

    /// Counts the reply and schedules what the shopper, the store or the WMS does next.
    pub fn record(&mut self, action: Action, reply: &Reply, now: Duration) {
        self.tally.calls += 1;
        let body = match reply {
            Reply::Done(body) => body,
            Reply::Refused(code) => {
                match (code.as_str(), &action) {
                    ("insufficient_stock", Action::Reserve { sku, .. }) => {
                        self.tally.sold_out += 1;
                        self.wanted.insert(sku.clone());
                    }
                    _ => self.tally.expired += 1,
                }
                return;
            }
            Reply::Failed(message) => {
                self.tally.failed += 1;
                self.tally.last_failure = Some(format!("{}: {message}", action.name()));
                return;
            }
        };
        self.observe(body);
        let latest_checkout = self.shop.cart_ttl.as_secs().saturating_sub(1).clamp(1, 4);
        match action {
            Action::Restock { .. } => self.tally.restocks += 1,
            Action::Reserve {
                channel,
                order_id,
                sku,
                qty,
                ..
            } => {
                self.tally.carts += 1;
                let (Some(id), Some(warehouse)) =
                    (body["reservation_id"].as_str(), body["warehouse"].as_str())
                else {
                    return;
                };
                let hold = Hold {
                    id: id.to_owned(),
                    order_id,
                    channel,
                    sku,
                    qty,
                    warehouse: warehouse.to_owned(),
                };
                match self.rng.random::<f64>() {
                    r if r < P_CHECKOUT => {
                        self.after(now, 1..=latest_checkout, Action::Checkout(hold))
                    }
                    r if r < P_CHECKOUT + P_ABANDON => {
                        self.after(now, 1..=latest_checkout, Action::Release(hold));
                    }
                    _ => self.tally.left_to_expire += 1,
                }
            }
            Action::Checkout(hold) => {
                self.tally.checkouts += 1;
                if self.rng.random::<f64>() < P_ORDER {
                    let order = Order {
                        order_id: hold.order_id.clone(),
                        channel: hold.channel.clone(),
                        sku: hold.sku.clone(),
                        qty: hold.qty,
                        warehouse: hold.warehouse.clone(),
                        reservation_id: Some(hold.id.clone()),
                    };
                    self.after(now, 1..=3, Action::PlaceOrder(order));
                } else {
                    self.after(now, 1..=3, Action::Release(hold));
                }
            }
            Action::Release(_) => self.tally.abandoned += 1,
            Action::PlaceOrder(order) => {
                self.tally.orders += 1;
                *self
                    .tally
                    .orders_by_channel
                    .entry(order.channel.clone())
                    .or_default() += 1;
                if order.reservation_id.is_none() {
                    self.tally.marketplace_orders += 1;
                }
                self.tally.oversold_units += body["oversold"].as_i64().unwrap_or(0);
                if self.rng.random::<f64>() < P_CANCEL {
                    self.after(now, 1..=4, Action::Cancel(order));
                } else if order.qty >= 2 && self.rng.random::<f64>() < P_TWO_PARCELS {
                    let rest = order.qty - 1;
                    self.after(
                        now,
                        2..=3,
                        Action::Ship {
                            order: order.clone(),
                            qty: 1,
                        },
                    );
                    self.after(now, 4..=6, Action::Ship { order, qty: rest });
                } else {
                    let qty = order.qty;
                    self.after(now, 2..=5, Action::Ship { order, qty });
                }
            }
            Action::Ship { .. } => self.tally.parcels += 1,
            Action::Cancel(_) => self.tally.cancelled += 1,
        }
    }
}

/// One request for an action: method, path, token, body.
fn request(action: &Action) -> (reqwest::Method, String, bool, Option<Value>) {
    use reqwest::Method;
    const WMS: bool = true;
    const SHOP: bool = false;
    match action {
        Action::Restock {
            sku,
            warehouse,
            qty,
        } => (
            Method::POST,
            "/v1/receipts".into(),
            WMS,
            Some(
                json!({"sku": sku, "warehouse": warehouse, "qty": qty, "reference": "simulated-restock"}),
            ),
        ),
        Action::Reserve {
            order_id,
            sku,
            qty,
            ttl_secs,
            ..
        } => (
            Method::POST,
            "/v1/reservations".into(),
            SHOP,
            Some(
                json!({"sku": sku, "qty": qty, "order_id": order_id, "kind": "cart", "ttl_secs": ttl_secs}),
            ),
        ),
        Action::Checkout(hold) => (
            Method::POST,
            format!("/v1/reservations/{}/checkout", hold.id),
            SHOP,
            Some(json!({})),
        ),
        Action::Release(hold) => (
            Method::DELETE,
            format!("/v1/reservations/{}", hold.id),
            SHOP,
            None,
        ),
        Action::PlaceOrder(order) => {
            let mut line = json!({"sku": order.sku, "qty": order.qty});
            match &order.reservation_id {
                Some(id) => line["reservation_id"] = json!(id),
                None => line["warehouse"] = json!(order.warehouse),
            }
            (
                Method::POST,
                "/v1/orders".into(),
                SHOP,
                Some(
                    json!({"order_id": order.order_id, "channel": order.channel, "lines": [line]}),
                ),
            )
        }
        Action::Ship { order, qty } => (
            Method::POST,
            "/v1/shipments".into(),
            WMS,
            Some(json!({"order_id": order.order_id,
                        "lines": [{"sku": order.sku, "warehouse": order.warehouse, "qty": qty}]})),
        ),
        Action::Cancel(order) => (
            Method::POST,
            format!("/v1/orders/{}/cancel", order.order_id),
            SHOP,
            Some(json!({})),
        ),
    }
}

/// Sends the planner's calls to the ledger.
#[derive(Debug)]
struct Ledger {
    http: reqwest::Client,
    base: String,
    shop: SecretString,
    wms: SecretString,
    run: String,
    keys: u64,
}

impl Ledger {
    async fn send(&mut self, action: &Action) -> Reply {
        let (method, path, wms, body) = request(action);
        self.keys += 1;
        let key = format!("sim-{}-{}", self.run, self.keys);
        let token = if wms { &self.wms } else { &self.shop };
        // One retry with the same Idempotency-Key when the ledger could not be reached or
        // was briefly unavailable: the ledger answers a repeat with its first response.
        let mut reply = Reply::Failed("not sent".into());
        for attempt in 0..2 {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token.expose_secret())
                .header("Idempotency-Key", &key);
            if let Some(body) = &body {
                req = req.json(body);
            }
            reply = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(bytes) => classify(status, &bytes),
                        Err(e) => Reply::Failed(format!("reading the response: {e}")),
                    }
                }
                Err(e) => Reply::Failed(format!("request failed: {}", root_cause(&e))),
            };
            let retry = matches!(&reply, Reply::Failed(m) if m.starts_with("request failed") || m.starts_with("HTTP 503"));
            if !retry || attempt == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        reply
    }

    async fn stock(&self, sku: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/stock/{sku}", self.base))
            .bearer_auth(self.shop.expose_secret())
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }
}

/// The innermost error (reqwest's own message names only the URL).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn validate(args: &SimulateArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate <= 1000.0) {
        anyhow::bail!("--rate must be above 0 and at most 1000");
    }
    for (list, flag) in [
        (&args.skus, "--skus"),
        (&args.channels, "--channels"),
        (&args.warehouses, "--warehouses"),
    ] {
        if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) {
            anyhow::bail!("{flag} needs at least one non-empty name");
        }
    }
    if args.low_water < 0 || args.restock_qty < 1 || args.cart_ttl_secs < 2 {
        anyhow::bail!("--low-water must be ≥ 0, --restock-qty ≥ 1 and --cart-ttl-secs ≥ 2");
    }
    Ok(())
}

/// Plays shoppers until `shutdown` or `--duration-secs`.
pub async fn run(args: SimulateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    validate(&args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let run = format!("{:06x}", seed & 0xff_ffff);
    let shop = Shop {
        skus: args.skus.clone(),
        channels: args.channels.clone(),
        marketplaces: args.marketplaces.iter().cloned().collect(),
        warehouses: args.warehouses.clone(),
        cart_ttl: Duration::from_secs(args.cart_ttl_secs),
        low_water: args.low_water,
        restock_qty: args.restock_qty,
        run: run.clone(),
    };
    let mut planner = Planner::new(shop, seed);
    let mut ledger = Ledger {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?,
        base: args.ledger_url.trim_end_matches('/').to_owned(),
        shop: args.shop_token.clone(),
        wms: args.wms_token.clone(),
        run,
        keys: 0,
    };
    for sku in &args.skus {
        if let Some(state) = ledger.stock(sku).await {
            planner.observe(&state);
        }
    }
    let started = tokio::time::Instant::now();
    let stop_at = args.duration_secs.map(|s| started + Duration::from_secs(s));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut summary = tokio::time::interval_at(started + SUMMARY_EVERY, SUMMARY_EVERY);
    let stopped = async {
        match stop_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);
    // Calls counted at the last summary, so the final one is not a repeat.
    let mut summarised = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = &mut stopped => break,
            _ = summary.tick() => {
                print_summary(&planner, started.elapsed());
                summarised = Some(planner.tally.calls);
            }
            _ = ticks.tick() => {
                let action = planner.next(started.elapsed());
                let reply = ledger.send(&action).await;
                planner.record(action, &reply, started.elapsed());
            }
        }
    }
    if summarised != Some(planner.tally.calls) {
        print_summary(&planner, started.elapsed());
    }
    if planner.tally.failed > 0 {
        anyhow::bail!(
            "{} ledger calls failed (last: {})",
            planner.tally.failed,
            planner.tally.last_failure.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn print_summary(planner: &Planner, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let rate = planner.tally.calls as f64 / secs.max(0.001);
    let mut err = std::io::stderr().lock();
    // A closed stderr leaves nothing to report to.
    let _ignored = writeln!(
        err,
        "simulate {secs:6.1}s {rate:5.1} calls/s | {} | waiting {}",
        planner.tally,
        planner.waiting()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Shop {
        Shop {
            skus: vec!["A".into(), "B".into()],
            channels: vec!["shopify".into(), "amazon".into()],
            marketplaces: BTreeSet::from(["amazon".to_owned()]),
            warehouses: vec!["w1".into(), "w2".into()],
            cart_ttl: Duration::from_secs(10),
            low_water: 5,
            restock_qty: 20,
            run: "t".into(),
        }
    }

    fn stock(sku: &str, version: i64, w1: i64, w2: i64) -> Value {
        json!({"stock": {"sku": sku, "version": version, "warehouses": {
            "w1": {"on_hand": w1, "reserved": 0, "pending": 0},
            "w2": {"on_hand": w2, "reserved": 0, "pending": 0}}}})
    }

    fn stocked(seed: u64) -> Planner {
        let mut p = Planner::new(shop(), seed);
        p.observe(&stock("A", 1, 50, 50));
        p.observe(&stock("B", 1, 50, 50));
        p
    }

    /// Plays `n` calls where every call succeeds, 100 ms apart; returns the actions.
    fn play(p: &mut Planner, n: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        for i in 0..n {
            let now = Duration::from_millis(i * 100);
            let action = p.next(now);
            let body = match &action {
                Action::Reserve { sku, .. } => {
                    json!({"reservation_id": format!("r{i}"), "warehouse": "w1", "stock": stock(sku, 1, 50, 50)["stock"]})
                }
                _ => json!({}),
            };
            actions.push(action.clone());
            p.record(action, &Reply::Done(body), now);
        }
        actions
    }

    fn restock(sku: &str, warehouse: &str) -> Action {
        Action::Restock {
            sku: sku.into(),
            warehouse: warehouse.into(),
            qty: 20,
        }
    }

    #[test]
    fn unknown_skus_and_low_warehouses_are_restocked_before_anyone_shops() {
        let mut p = Planner::new(shop(), 1);
        p.observe(&stock("B", 3, 1, 9));
        // A was never seen (0 everywhere); B has 1 in w1, below the low water of 5.
        for want in [restock("A", "w1"), restock("A", "w2"), restock("B", "w1")] {
            let action = p.next(Duration::ZERO);
            assert_eq!(action, want);
            p.record(action, &Reply::Done(json!({})), Duration::ZERO);
        }
        assert!(matches!(
            p.next(Duration::ZERO),
            Action::Reserve { .. } | Action::PlaceOrder(_)
        ));
        // An older version never overwrites what is known.
        p.observe(&stock("B", 2, 100, 100));
        assert_eq!(p.available("B"), 10);
        p.observe(&stock("B", 4, 30, 30));
        assert_eq!(p.available("B"), 60);
    }

    #[test]
    fn a_failing_restock_is_not_retried_within_the_cooldown() {
        let mut p = Planner::new(shop(), 1);
        p.observe(&stock("A", 1, 50, 2));
        p.observe(&stock("B", 1, 50, 50));
        let first = p.next(Duration::ZERO);
        assert_eq!(first, restock("A", "w2"));
        p.record(first, &Reply::Failed("HTTP 500".into()), Duration::ZERO);
        assert!(!matches!(
            p.next(Duration::from_millis(500)),
            Action::Restock { .. }
        ));
        assert_eq!(p.next(RESTOCK_COOLDOWN), restock("A", "w2"));
        assert_eq!(p.tally.failed, 1);
        assert!(
            p.tally
                .last_failure
                .as_deref()
                .is_some_and(|m| m.starts_with("restock: HTTP 500"))
        );
    }

    #[test]
    fn marketplaces_order_without_a_reservation_and_storefronts_reserve_carts() {
        let mut p = stocked(7);
        for _ in 0..200 {
            match p.next(Duration::ZERO) {
                Action::PlaceOrder(order) => {
                    assert_eq!(order.channel, "amazon");
                    assert_eq!(order.reservation_id, None);
                    assert!(order.order_id.starts_with("amazon-t-"));
                }
                Action::Reserve {
                    channel, ttl_secs, ..
                } => {
                    assert_eq!(channel, "shopify");
                    assert_eq!(ttl_secs, 10);
                }
                other => panic!("a new shopper, not {other:?}"),
            }
        }
    }

    #[test]
    fn the_mix_has_every_step_of_a_day() {
        let mut p = stocked(42);
        let actions = play(&mut p, 2_000);
        let count = |name: &str| actions.iter().filter(|a| a.name() == name).count();
        for name in ["reserve", "checkout", "release", "order", "ship", "cancel"] {
            assert!(count(name) > 10, "{name}: {}", count(name));
        }
        let t = &p.tally;
        assert!(t.left_to_expire > 10);
        assert!(t.marketplace_orders > 10 && t.marketplace_orders < t.orders);
        assert_eq!(t.calls, 2_000);
        // The storefront funnel narrows: carts > checkouts > orders placed from them.
        assert!(t.carts > t.checkouts);
        assert!(t.checkouts > t.orders - t.marketplace_orders);
        // The most popular SKU sells more than the other.
        let reserved = |sku: &str| {
            actions
                .iter()
                .filter(|a| matches!(a, Action::Reserve { sku: s, .. } if s == sku))
                .count()
        };
        assert!(reserved("A") > reserved("B"));
    }

    #[test]
    fn follow_ups_wait_until_due_and_checkouts_come_before_the_cart_expires() {
        let mut p = stocked(3);
        let mut now = Duration::ZERO;
        let mut reserved_at = BTreeMap::new();
        for i in 0..500 {
            let action = p.next(now);
            if let Action::Checkout(hold) | Action::Release(hold) = &action
                && let Some(at) = reserved_at.get(&hold.id)
            {
                let age = now - *at;
                assert!(
                    age >= Duration::from_secs(1) && age < p.shop.cart_ttl,
                    "{age:?}"
                );
            }
            let body = if let Action::Reserve { sku, .. } = &action {
                reserved_at.insert(format!("r{i}"), now);
                json!({"reservation_id": format!("r{i}"), "warehouse": "w2", "stock": stock(sku, 1, 50, 50)["stock"]})
            } else {
                json!({})
            };
            p.record(action, &Reply::Done(body), now);
            now += Duration::from_millis(250);
        }
    }

    #[test]
    fn an_order_from_a_checkout_uses_its_reservation_and_ships_from_its_warehouse() {
        let mut p = stocked(11);
        let hold = Hold {
            id: "r1".into(),
            order_id: "shopify-t-1".into(),
            channel: "shopify".into(),
            sku: "A".into(),
            qty: 1,
            warehouse: "w2".into(),
        };
        let mut now = Duration::ZERO;
        p.record(Action::Checkout(hold), &Reply::Done(json!({})), now);
        now += Duration::from_secs(10);
        match p.next(now) {
            Action::PlaceOrder(order) => {
                assert_eq!(order.reservation_id.as_deref(), Some("r1"));
                assert_eq!(order.warehouse, "w2");
                p.record(
                    Action::PlaceOrder(order),
                    &Reply::Done(json!({"oversold": 0})),
                    now,
                );
                now += Duration::from_secs(10);
                match p.next(now) {
                    Action::Ship { order, qty } => {
                        assert_eq!((order.warehouse.as_str(), qty), ("w2", 1));
                    }
                    Action::Cancel(order) => assert_eq!(order.order_id, "shopify-t-1"),
                    other => panic!("ship or cancel, not {other:?}"),
                }
            }
            Action::Release(hold) => assert_eq!(hold.id, "r1"),
            other => panic!("order or release, not {other:?}"),
        }
    }

    #[test]
    fn sold_out_asks_for_a_restock_and_expiry_is_not_a_failure() {
        let mut p = stocked(5);
        let reserve = Action::Reserve {
            channel: "shopify".into(),
            order_id: "o".into(),
            sku: "B".into(),
            qty: 1,
            ttl_secs: 10,
        };
        p.record(
            reserve,
            &Reply::Refused("insufficient_stock".into()),
            Duration::ZERO,
        );
        // B looks well stocked, yet the shopper found none: refill the emptiest warehouse.
        p.observe(&stock("B", 2, 50, 40));
        assert_eq!(p.next(Duration::ZERO), restock("B", "w2"));
        let hold = Hold {
            id: "r".into(),
            order_id: "o".into(),
            channel: "shopify".into(),
            sku: "A".into(),
            qty: 1,
            warehouse: "w1".into(),
        };
        p.record(
            Action::Checkout(hold),
            &Reply::Refused("reservation_expired".into()),
            Duration::ZERO,
        );
        assert_eq!(
            (p.tally.sold_out, p.tally.expired, p.tally.failed),
            (1, 1, 0)
        );
    }

    #[test]
    fn replies_are_sorted_by_status_and_code() {
        assert_eq!(classify(201, br#"{"a":1}"#), Reply::Done(json!({"a": 1})));
        assert_eq!(
            classify(
                409,
                br#"{"error":{"code":"insufficient_stock","message":"m"}}"#
            ),
            Reply::Refused("insufficient_stock".into())
        );
        assert_eq!(
            classify(
                409,
                br#"{"error":{"code":"idempotency_key_reused","message":"m"}}"#
            ),
            Reply::Failed("HTTP 409 idempotency_key_reused m".into())
        );
        assert_eq!(
            classify(502, b"bad gateway"),
            Reply::Failed("HTTP 502".into())
        );
    }

    #[test]
    fn requests_carry_the_channel_and_the_right_token() {
        let order = Order {
            order_id: "ebay-t-9".into(),
            channel: "ebay".into(),
            sku: "A".into(),
            qty: 2,
            warehouse: "w1".into(),
            reservation_id: None,
        };
        let (method, path, wms, body) = request(&Action::PlaceOrder(order.clone()));
        assert_eq!(
            (method, path.as_str(), wms),
            (reqwest::Method::POST, "/v1/orders", false)
        );
        assert_eq!(
            body,
            Some(json!({"order_id": "ebay-t-9", "channel": "ebay",
                        "lines": [{"sku": "A", "qty": 2, "warehouse": "w1"}]}))
        );
        let (_, path, wms, _) = request(&Action::Ship { order, qty: 1 });
        assert_eq!((path.as_str(), wms), ("/v1/shipments", true));
    }
}
