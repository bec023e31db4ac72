//! `onhand sandbox`: every emulated channel API on one port (path-prefixed by channel,
//! admin API under `/admin`), optionally seeded from a catalogue file at start.
//!
//! Catalogue file (JSON): `{"<channel>": [{"sku", "quantity", "parent_id"?}], ...}` with
//! channels `shopify`, `amazon`, `ebay`, `woocommerce`, `bigcommerce`, `webhook`.
//! The webhook receiver verifies signatures with `onhand_sandbox::webhook::SECRET`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use onhand_sandbox::{Channel, Sandbox};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub listen_addr: SocketAddr,
    /// Seeds the fault-injection RNG and the item ids.
    pub seed: u64,
    pub catalog: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    pub sku: String,
    pub quantity: i64,
    #[serde(default)]
    pub parent_id: Option<u64>,
}

/// Items per channel.
pub type Catalog = BTreeMap<Channel, Vec<CatalogItem>>;

pub fn parse_catalog(text: &str) -> anyhow::Result<Catalog> {
    serde_json::from_str(text).context(
        "expected {\"<channel>\": [{\"sku\", \"quantity\", \"parent_id\"?}]} with channels \
         shopify, amazon, ebay, woocommerce, bigcommerce, webhook",
    )
}

pub fn load_catalog(path: &Path) -> anyhow::Result<Catalog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the catalogue {}", path.display()))?;
    parse_catalog(&text).with_context(|| format!("parsing the catalogue {}", path.display()))
}

/// Seed every item; returns how many.
pub fn seed(sandbox: &Sandbox, catalog: &Catalog) -> usize {
    let mut count = 0;
    for (channel, items) in catalog {
        let mut state = sandbox.channel(*channel);
        for item in items {
            state.seed_item(&item.sku, item.quantity, item.parent_id);
            count += 1;
        }
    }
    count
}

pub async fn run(options: SandboxOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let catalog = options.catalog.as_deref().map(load_catalog).transpose()?;
    let app = onhand_sandbox::build(options.listen_addr, options.seed)
        .await
        .with_context(|| format!("binding the sandbox to {}", options.listen_addr))?;
    if let Some(catalog) = &catalog {
        let items = seed(&app.sandbox(), catalog);
        tracing::info!(items, channels = catalog.len(), "sandbox catalogue seeded");
    }
    let base = format!("http://{}:{}", options.listen_addr.ip(), app.port());
    for channel in Channel::ALL {
        tracing::info!(channel = channel.as_str(), url = %format!("{base}/{}", channel.as_str()), "emulated API");
    }
    tracing::info!(url = %format!("{base}/admin/{{channel}}/items"), "sandbox admin API");
    app.run(shutdown).await.context("serving the sandbox")?;
    tracing::info!("sandbox stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_seeds_each_channel() {
        let catalog = parse_catalog(
            r#"{"shopify": [{"sku": "A-1", "quantity": 3}],
                "woocommerce": [{"sku": "V-1", "quantity": 0, "parent_id": 7}],
                "webhook": []}"#,
        )
        .expect("catalogue");
        let sandbox = Sandbox::new(1);
        assert_eq!(seed(&sandbox, &catalog), 2);
        assert_eq!(
            sandbox
                .channel(Channel::Shopify)
                .items
                .get("A-1")
                .map(|i| i.latest()),
            Some(3)
        );
        assert_eq!(
            sandbox
                .channel(Channel::Woocommerce)
                .items
                .get("V-1")
                .and_then(|i| i.parent_id),
            Some(7)
        );
    }

    #[test]
    fn unknown_channels_and_fields_are_refused() {
        assert!(parse_catalog(r#"{"etsy": []}"#).is_err());
        assert!(parse_catalog(r#"{"shopify": [{"sku": "A", "qty": 1}]}"#).is_err());
    }
}
