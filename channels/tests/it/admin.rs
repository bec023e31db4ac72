//! The sandbox's admin API, as the adapter tests use it.

use onhand_sandbox::Channel;
use serde_json::{Value, json};

use crate::support::{TestSandbox, push};

#[tokio::test]
async fn seeds_changes_and_refuses_bad_knobs() {
    let sb = TestSandbox::start().await;
    let ids = sb
        .seed(Channel::Bigcommerce, &[("A-1", 3), ("B-2", 0)])
        .await;
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(sb.latest(Channel::Bigcommerce, "A-1"), Some(3));
    let r = sb
        .http
        .put(format!("{}/admin/bigcommerce/items/A-1", sb.base))
        .json(&json!({"quantity": 9}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(sb.latest(Channel::Bigcommerce, "A-1"), Some(9));
    let items: Value = sb
        .http
        .get(format!("{}/admin/bigcommerce/items", sb.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(items["items"][0]["quantity"], 9);
    for bad in [
        json!({"faults": {"http_5xx": 1.5}}),
        json!({"rate": {"capacity": 0, "refill_per_sec": 1}}),
        json!({"colour": "red"}),
    ] {
        let r = sb
            .http
            .put(format!("{}/admin/bigcommerce/knobs", sb.base))
            .json(&bad)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    let r = sb
        .http
        .get(format!("{}/admin/nowhere/items", sb.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 404);
    assert!(
        sb.writes(Channel::Bigcommerce).is_empty(),
        "admin changes are not writes"
    );
    assert!(sb.url(Channel::Shopify).ends_with("/shopify"));
    assert_eq!(push("A-1", 1, 1).quantity, 1);
    sb.knobs(Channel::Bigcommerce, onhand_sandbox::Knobs::default());
}
