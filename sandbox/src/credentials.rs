//! What an adapter needs to talk to an emulator: the channel settings (the keys of
//! `ONHAND_CHANNEL__<NAME>__*`, without the prefix) besides `BASE_URL`. The emulators accept
//! any token where the real API would check one, so these are placeholders except where
//! the emulator verifies the value (WooCommerce keys, the webhook's HMAC secret, Shopify's
//! location).

use crate::state::Channel;

/// The connection settings an adapter needs for this emulator, besides `BASE_URL`.
pub fn adapter_settings(channel: Channel) -> Vec<(&'static str, String)> {
    let pairs: &[(&'static str, &str)] = match channel {
        Channel::Shopify => &[
            ("TOKEN", "shpat_sandbox"),
            ("LOCATION_ID", crate::shopify::LOCATION_ID),
        ],
        Channel::Amazon => &[
            ("TOKEN", "Atza|sandbox"),
            ("SELLER_ID", "A3SELLER"),
            ("MARKETPLACE_ID", "ATVPDKIKX0DER"),
        ],
        Channel::Ebay => &[("TOKEN", "v^1.1#sandbox")],
        Channel::Woocommerce => &[
            ("CONSUMER_KEY", crate::woocommerce::CONSUMER_KEY),
            ("CONSUMER_SECRET", crate::woocommerce::CONSUMER_SECRET),
        ],
        Channel::Bigcommerce => &[("TOKEN", "bc-sandbox"), ("STORE_HASH", "abc123")],
        Channel::Webhook => &[("SECRET", crate::webhook::SECRET)],
    };
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
