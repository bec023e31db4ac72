//! `onhand-bench channels`: SKUs per second through each channel adapter and the sandbox's
//! emulator of that channel, in one process (the sandbox on its own thread and runtime).
//!
//! Per channel, two runs ([`measure`]): limits off (adapter overhead), and the channel's
//! documented default limit on in the sandbox's bucket with the adapter's own default
//! limiter (how close the adapter gets to the allowed rate, and whether it is throttled in
//! steady state). Channels
//! without a documented limit (WooCommerce core, the webhook, storefront KV) get the first
//! run only. Storefront KV needs a NATS server (`--nats-url`) and is skipped without one.
//! The result is JSON on stdout; the run fails when a limits-off push is not applied, when
//! the sandbox accepted fewer writes than the adapter reported applied, or when a push
//! fails permanently.

mod adapters;
mod counters;
mod cpu;
mod measure;
mod sandbox;

use onhand_channels::{ChannelApi, ChannelKind, HttpChannel, RateLimiter};
use onhand_common::Sku;
use onhand_sandbox::Channel;
use serde::Serialize;

use adapters::Pusher;
use counters::Counters;
use measure::{Limited, Probe, Unlimited};
use sandbox::SandboxThread;

/// The sandbox's RNG seed (it only drives fault injection, which is off).
const SANDBOX_SEED: u64 = 7;
/// Every SKU starts at this quantity.
const SEED_QUANTITY: i64 = 100;

#[derive(Debug, Clone)]
pub struct Options {
    pub channels: Vec<ChannelKind>,
    /// SKUs seeded for the limits-off run.
    pub skus: usize,
    pub unlimited_secs: f64,
    /// Steady-state time of the limits-on run.
    pub limited_secs: f64,
    /// SKUs in the limits-on run: at most `skus`, at least one full batch.
    pub limited_skus: usize,
    /// The limits-on run fails when the burst is not spent by then.
    pub max_warmup_secs: f64,
    pub nats_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub skus: usize,
    pub unlimited_secs: f64,
    pub limited_secs: f64,
    pub limited_skus: usize,
    pub channels: Vec<ChannelReport>,
}

#[derive(Debug, Serialize)]
pub struct ChannelReport {
    pub channel: ChannelKind,
    pub unlimited: Option<Unlimited>,
    pub limited: Option<Limited>,
    /// Why a run is missing.
    pub notes: Vec<String>,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let counters = Counters::install()?;
    let sandbox = SandboxThread::start(SANDBOX_SEED)?;
    let bench = Bench {
        options: &options,
        counters: &counters,
        sandbox: &sandbox,
    };
    let mut channels = Vec::with_capacity(options.channels.len());
    for &kind in &options.channels {
        progress(format_args!("{kind}"));
        channels.push(bench.channel(kind).await?);
    }
    sandbox.stop()?;
    Ok(Report {
        skus: options.skus,
        unlimited_secs: options.unlimited_secs,
        limited_secs: options.limited_secs,
        limited_skus: options.limited_skus,
        channels,
    })
}

#[allow(clippy::print_stderr)]
fn progress(what: std::fmt::Arguments<'_>) {
    eprintln!("onhand-bench channels: {what}");
}

#[derive(Debug)]
struct Bench<'a> {
    options: &'a Options,
    counters: &'a Counters,
    sandbox: &'a SandboxThread,
}

type Build<A> = fn(&str, RateLimiter) -> anyhow::Result<HttpChannel<A>>;

impl Bench<'_> {
    async fn channel(&self, kind: ChannelKind) -> anyhow::Result<ChannelReport> {
        match kind {
            ChannelKind::Shopify => {
                let api = adapters::shopify_api();
                self.http(Channel::Shopify, api, adapters::shopify).await
            }
            ChannelKind::Amazon => {
                let api = adapters::amazon_api();
                self.http(Channel::Amazon, api, adapters::amazon).await
            }
            ChannelKind::Ebay => {
                let api = adapters::ebay_api();
                self.http(Channel::Ebay, api, adapters::ebay).await
            }
            ChannelKind::Woocommerce => {
                let api = adapters::woocommerce_api();
                self.http(Channel::Woocommerce, api, adapters::woocommerce)
                    .await
            }
            ChannelKind::Bigcommerce => {
                let api = adapters::bigcommerce_api();
                self.http(Channel::Bigcommerce, api, adapters::bigcommerce)
                    .await
            }
            ChannelKind::Webhook => {
                let api = adapters::webhook_api();
                self.http(Channel::Webhook, api, adapters::webhook).await
            }
            ChannelKind::StorefrontKv => self.storefront_kv().await,
        }
    }

    fn probe(&self, kind: ChannelKind, emulator: Option<Channel>) -> Probe<'_> {
        Probe {
            kind,
            counters: self.counters,
            sandbox: self.sandbox,
            emulator,
        }
    }

    /// Both runs of an HTTP channel. `api` is the adapter's mapping as `build` makes it.
    async fn http<A: ChannelApi>(
        &self,
        emulator: Channel,
        api: A,
        build: Build<A>,
    ) -> anyhow::Result<ChannelReport> {
        let kind = api.kind();
        let probe = self.probe(kind, Some(emulator));
        let url = self.sandbox.url(emulator);
        let (names, skus) = skus(self.options.skus)?;

        progress(format_args!(
            "{kind}: limits off, {} SKUs, {} s",
            skus.len(),
            self.options.unlimited_secs
        ));
        self.sandbox
            .reset(emulator, sandbox::unlimited(), &names, SEED_QUANTITY);
        let channel = build(&url, RateLimiter::unlimited())?;
        let unlimited =
            measure::unlimited(&probe, &channel, &skus, self.options.unlimited_secs).await?;

        let mut notes = Vec::new();
        let limited = match adapters::documented_limit(kind) {
            None => {
                notes.push(format!(
                    "{kind}: no documented rate limit, so no limits-on run"
                ));
                None
            }
            Some(limit) => {
                let n = self
                    .options
                    .limited_skus
                    .max(api.max_batch())
                    .min(skus.len());
                progress(format_args!(
                    "{kind}: limits on ({} {} + {}/s), {n} SKUs, {} s steady state",
                    limit.documented.capacity,
                    limit.unit,
                    limit.documented.refill_per_sec,
                    self.options.limited_secs
                ));
                let documented = limit.documented;
                self.sandbox.reset(
                    emulator,
                    sandbox::limited(documented.capacity, documented.refill_per_sec),
                    &names[..n],
                    SEED_QUANTITY,
                );
                let adapter_limit = api.default_rate_limit();
                let channel = build(&url, RateLimiter::new(adapter_limit))?;
                // The SKU is the key unless the adapter has a lookup request for it.
                let resolves_ids = api.resolve_request(&[]).is_some();
                Some(
                    measure::limited(
                        &probe,
                        &channel,
                        limit,
                        adapter_limit,
                        resolves_ids,
                        &skus[..n],
                        self.options.limited_secs,
                        self.options.max_warmup_secs,
                    )
                    .await?,
                )
            }
        };
        Ok(ChannelReport {
            channel: kind,
            unlimited: Some(unlimited),
            limited,
            notes,
        })
    }

    async fn storefront_kv(&self) -> anyhow::Result<ChannelReport> {
        let kind = ChannelKind::StorefrontKv;
        let Some(nats_url) = &self.options.nats_url else {
            return Ok(ChannelReport {
                channel: kind,
                unlimited: None,
                limited: None,
                notes: vec![format!(
                    "{kind}: skipped, it writes a NATS KV bucket and no --nats-url was given"
                )],
            });
        };
        let kv = adapters::storefront_kv(nats_url).await?;
        let (_, skus) = skus(self.options.skus)?;
        progress(format_args!(
            "{kind}: {} SKUs, {} s, {} pushes handed over at once",
            skus.len(),
            self.options.unlimited_secs,
            kv.batch()
        ));
        let probe = self.probe(kind, None);
        let unlimited = measure::unlimited(&probe, &kv, &skus, self.options.unlimited_secs).await?;
        Ok(ChannelReport {
            channel: kind,
            unlimited: Some(unlimited),
            limited: None,
            notes: vec![format!(
                "{kind}: a NATS KV bucket, no rate limit, so no limits-on run; no HTTP requests (each push is a read and a compare-and-set)"
            )],
        })
    }
}

/// `BENCH-00000`, `BENCH-00001`, ... as names and as SKUs.
fn skus(n: usize) -> anyhow::Result<(Vec<String>, Vec<Sku>)> {
    let names: Vec<String> = (0..n).map(|i| format!("BENCH-{i:05}")).collect();
    let skus = names
        .iter()
        .map(|s| Sku::parse(s.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((names, skus))
}
