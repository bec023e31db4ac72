//! `onhand storefront`: the read-only availability endpoint over the `onhand_availability`
//! KV bucket (`GET /v1/availability/{sku}`, `GET /v1/availability?limit=&after=`,
//! `/healthz`, `/readyz`, `/metrics`). Configuration: `NATS_URL`, `ONHAND_STOREFRONT__LISTEN_ADDR`
//! (default `0.0.0.0:8090`), `ONHAND_STOREFRONT__REQUEST_TIMEOUT_MS` (default 5000). The
//! bucket is created by `onhand streams apply`.

use anyhow::Context as _;
use onhand_channels::storefront_kv::server::{StorefrontConfig, build};
use onhand_channels::storefront_kv::{BUCKET, StorefrontKv};
use tokio_util::sync::CancellationToken;

pub async fn run(
    js: async_nats::jetstream::Context,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = StorefrontConfig::from_env().context("storefront configuration")?;
    let kv = js.get_key_value(BUCKET).await.with_context(|| {
        format!("opening the KV bucket {BUCKET} (create it with `onhand streams apply`)")
    })?;
    let app = build(&config, StorefrontKv::new(kv))
        .await
        .context("starting the storefront endpoint")?;
    app.run(shutdown)
        .await
        .context("serving the storefront endpoint")?;
    tracing::info!("storefront stopped");
    Ok(())
}
