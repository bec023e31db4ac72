//! Channels built from `ONHAND_CHANNEL__<NAME>__*` settings, as a projector builds them,
//! push to and read back from the sandbox: the settings reach the wire (auth, ids, paths).

use onhand_channels::{Channel, ChannelKind, ChannelSettings, PushOutcome};
use onhand_sandbox::Channel as Sandboxed;

use crate::support::{TestSandbox, push};

/// (the sandboxed API, the kind, its settings)
type Case = (Sandboxed, ChannelKind, Vec<(&'static str, String)>);

fn settings(name: &str, pairs: &[(&str, String)]) -> ChannelSettings {
    ChannelSettings::from_settings(name, pairs.iter().cloned()).expect("valid settings")
}

#[tokio::test]
async fn every_http_kind_pushes_and_reads_back_through_its_settings() {
    let sb = TestSandbox::start().await;
    let cases: Vec<Case> = vec![
        (
            Sandboxed::Shopify,
            ChannelKind::Shopify,
            vec![
                ("TOKEN", "shpat_sandbox_token".into()),
                ("LOCATION_ID", onhand_sandbox::shopify::LOCATION_ID.into()),
            ],
        ),
        (
            Sandboxed::Amazon,
            ChannelKind::Amazon,
            vec![
                ("TOKEN", "Atza|sandbox".into()),
                ("SELLER_ID", "A3SELLER".into()),
                ("MARKETPLACE_ID", "ATVPDKIKX0DER".into()),
            ],
        ),
        (
            Sandboxed::Ebay,
            ChannelKind::Ebay,
            vec![("TOKEN", "v^1.1#sandbox".into())],
        ),
        (
            Sandboxed::Woocommerce,
            ChannelKind::Woocommerce,
            vec![
                (
                    "CONSUMER_KEY",
                    onhand_sandbox::woocommerce::CONSUMER_KEY.into(),
                ),
                (
                    "CONSUMER_SECRET",
                    onhand_sandbox::woocommerce::CONSUMER_SECRET.into(),
                ),
            ],
        ),
        (
            Sandboxed::Bigcommerce,
            ChannelKind::Bigcommerce,
            vec![("TOKEN", "sandbox".into()), ("STORE_HASH", "abc123".into())],
        ),
        (
            Sandboxed::Webhook,
            ChannelKind::Webhook,
            vec![("SECRET", onhand_sandbox::webhook::SECRET.into())],
        ),
    ];
    for (sandboxed, kind, mut pairs) in cases {
        let name = format!("cfg-{}", kind.as_str());
        pairs.push(("KIND", kind.as_str().into()));
        pairs.push(("BASE_URL", sb.url(sandboxed)));
        let skus = [format!("{name}-a"), format!("{name}-b")];
        sb.seed(sandboxed, &[(&skus[0], 1), (&skus[1], 1)]).await;
        let channel = Channel::connect(&settings(&name, &pairs), None)
            .await
            .expect("connects");
        assert_eq!(channel.kind(), kind);
        let outcomes = channel
            .push(&[push(&skus[0], 7, 1), push(&skus[1], 0, 1)])
            .await;
        assert_eq!(
            outcomes,
            [PushOutcome::Applied, PushOutcome::Applied],
            "{kind}"
        );
        assert_eq!(sb.latest(sandboxed, &skus[0]), Some(7), "{kind}");
        assert_eq!(sb.latest(sandboxed, &skus[1]), Some(0), "{kind}");
        let listed = channel.read_all().await.expect("reads back");
        for (sku, qty) in [(&skus[0], 7), (&skus[1], 0)] {
            let found = listed.iter().find(|l| l.sku.as_str() == sku.as_str());
            assert_eq!(
                found.map(|l| l.quantity),
                Some(qty),
                "{kind} read-back of {sku}"
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_secret_reaches_the_channel_as_a_refusal() {
    let sb = TestSandbox::start().await;
    sb.seed(Sandboxed::Woocommerce, &[("cfg-woo-x", 1)]).await;
    let channel = Channel::connect(
        &settings(
            "woocommerce",
            &[
                ("BASE_URL", sb.url(Sandboxed::Woocommerce)),
                (
                    "CONSUMER_KEY",
                    onhand_sandbox::woocommerce::CONSUMER_KEY.into(),
                ),
                ("CONSUMER_SECRET", "cs_wrong".into()),
            ],
        ),
        None,
    )
    .await
    .expect("connects");
    let outcomes = channel.push(&[push("cfg-woo-x", 5, 1)]).await;
    assert_ne!(outcomes, [PushOutcome::Applied]);
    assert_eq!(
        sb.latest(Sandboxed::Woocommerce, "cfg-woo-x"),
        Some(1),
        "nothing written"
    );
}

#[tokio::test]
async fn storefront_kv_without_nats_is_a_clear_error() {
    let err = Channel::connect(&settings("storefront_kv", &[]), None)
        .await
        .expect_err("needs NATS");
    assert!(err.to_string().contains("NATS"), "{err}");
}

#[tokio::test]
async fn a_rate_share_takes_that_part_of_the_limit() {
    use onhand_channels::ChannelApi as _;
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let mut s = settings(
        "amazon",
        &[
            ("BASE_URL", "http://127.0.0.1:9/amazon".into()),
            ("TOKEN", "Atza|x".into()),
            ("SELLER_ID", "A3SELLER".into()),
            ("MARKETPLACE_ID", "ATVPDKIKX0DER".into()),
        ],
    );
    s.rate_share = 0.5;
    let channel = Channel::connect(&s, None).await.expect("connects");
    let Channel::Amazon(http) = &channel else {
        panic!("an amazon channel");
    };
    let documented = http.api().default_rate_limit().expect("amazon has a limit");
    let limit = http.transport().limiter.limit().expect("limited");
    assert_eq!(limit.refill_per_sec, documented.refill_per_sec * 0.5);
    assert_eq!(limit.capacity, (documented.capacity * 0.5).max(1.0));
}
