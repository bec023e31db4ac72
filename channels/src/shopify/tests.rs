//! The Shopify mapping on recorded requests and responses.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

use super::*;
use crate::push::{Push, PushOutcome};

fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("sku")
}

fn target(s: &str, quantity: i64, item: u64, current: Option<i64>, event: u128) -> Target {
    Target {
        push: Push {
            sku: sku(s),
            quantity,
            version: 1,
            event_id: Uuid::from_u128(event),
        },
        reference: Some(ChannelRef {
            id: format!("gid://shopify/InventoryItem/{item}"),
            parent: None,
            current,
        }),
    }
}

fn resp(status: u16, body: serde_json::Value) -> ApiResponse {
    crate::test_support::response(status, &[], body.to_string())
}

fn api() -> Shopify {
    Shopify::new(ShopifyConfig::new("gid://shopify/Location/124656943"))
}

const THROTTLED: &str = r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],"extensions":{"cost":{"requestedQueryCost":10,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":4.0,"restoreRate":100.0}}}}"#;

#[test]
fn snapshot_of_the_outbound_mutation() {
    let batch = [
        target(
            "A-1",
            11,
            30322695,
            Some(10),
            0x0190_0000_0000_7000_8000_0000_0000_0001,
        ),
        target(
            "B-2",
            -3,
            30322696,
            None,
            0x0190_0000_0000_7000_8000_0000_0000_0002,
        ),
    ];
    let request = api()
        .write_request_with_key(&batch, "6f1c1d2e-0000-4000-8000-000000000000")
        .expect("request");
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/admin/api/2026-04/graphql.json");
    assert_eq!(request.cost, 10.0);
    assert_eq!(
        request.json_body().expect("body"),
        json!({
            "query": "mutation SetQuantities($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) @idempotent(key: \"6f1c1d2e-0000-4000-8000-000000000000\") { inventoryAdjustmentGroup { id } userErrors { code field message } } }",
            "variables": {"input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": "gid://onhand/InventoryEvent/01900000-0000-7000-8000-000000000002",
                "quantities": [
                    {"inventoryItemId": "gid://shopify/InventoryItem/30322695",
                     "locationId": "gid://shopify/Location/124656943",
                     "quantity": 11, "changeFromQuantity": 10},
                    {"inventoryItemId": "gid://shopify/InventoryItem/30322696",
                     "locationId": "gid://shopify/Location/124656943",
                     "quantity": 0, "changeFromQuantity": null},
                ],
            }},
        })
    );
}

#[test]
fn every_request_draws_a_fresh_idempotency_key() {
    let batch = [target("A-1", 1, 1, Some(0), 1)];
    let query = |r: ApiRequest| {
        r.json_body().expect("body")["query"]
            .as_str()
            .map(str::to_owned)
    };
    let a = query(api().write_request(&batch).expect("request"));
    let b = query(api().write_request(&batch).expect("request"));
    assert_ne!(a, b);
    assert!(a.is_some_and(|q| q.contains("@idempotent(key: \"")));
}

#[test]
fn the_reference_document_is_a_valid_uri() {
    let uri = reference_uri(Uuid::now_v7());
    let parsed = reqwest::Url::parse(&uri).expect("a URI");
    assert_eq!(parsed.scheme(), "gid");
    assert_eq!(parsed.host_str(), Some("onhand"));
    assert!(parsed.path().starts_with("/InventoryEvent/"));
}

#[test]
fn sku_terms_are_quoted_and_escaped() {
    assert_eq!(sku_term(&sku("A-1")), r#"sku:"A-1""#);
    assert_eq!(sku_term(&sku(r#"B "2" \x"#)), r#"sku:"B \"2\" \\x""#);
    let request = api()
        .resolve_request(&[sku("A-1"), sku("B 2")])
        .expect("resolves")
        .expect("request");
    assert_eq!(request.cost, 8.0);
    assert_eq!(
        request.json_body().expect("body")["variables"],
        json!({"query": r#"sku:"A-1" OR sku:"B 2""#, "first": 2,
               "locationId": "gid://shopify/Location/124656943"})
    );
}

#[test]
fn throttled_with_http_200_is_throttled() {
    let r = ApiResponse {
        status: 200,
        headers: HeaderMap::new(),
        body: Bytes::from_static(THROTTLED.as_bytes()),
    };
    assert_eq!(
        api().classify(&r),
        Class::Throttled {
            retry_after: Some(Duration::from_millis(60))
        }
    );
    let batch = [target("A-1", 1, 1, Some(0), 1)];
    assert!(matches!(
        &api().write_outcomes(&batch, &r)[0],
        ItemResult::Done(PushOutcome::Transient {
            retry_after: Some(_),
            ..
        })
    ));
    assert_eq!(
        api().rate_report(&r),
        Some(RateReport {
            available: 4.0,
            capacity: Some(2000.0),
            refill_per_sec: Some(100.0),
            reset_after: None,
        })
    );
}

#[test]
fn throttled_with_http_429_is_throttled() {
    let mut r = ApiResponse {
        status: 429,
        headers: HeaderMap::new(),
        body: Bytes::from_static(THROTTLED.as_bytes()),
    };
    assert_eq!(
        api().classify(&r),
        Class::Throttled {
            retry_after: Some(Duration::from_millis(60))
        }
    );
    // Without a throttle status, Retry-After decides.
    r.body = Bytes::from_static(b"{}");
    r.headers
        .insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(
        api().classify(&r),
        Class::Throttled {
            retry_after: Some(Duration::from_secs(2))
        }
    );
}

#[test]
fn success_applies_every_item_and_reports_the_bucket() {
    let r = resp(
        200,
        json!({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":{"id":"gid://shopify/InventoryAdjustmentGroup/1"},"userErrors":[]}},
               "extensions":{"cost":{"requestedQueryCost":10,"actualQueryCost":10,
               "throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":1990.0,"restoreRate":100.0}}}}),
    );
    let batch = [
        target("A-1", 1, 1, Some(0), 1),
        target("B-2", 2, 2, Some(0), 2),
    ];
    assert_eq!(api().classify(&r), Class::Success);
    assert_eq!(
        api().write_outcomes(&batch, &r),
        vec![ItemResult::Done(PushOutcome::Applied); 2]
    );
    assert_eq!(api().rate_report(&r).map(|r| r.available), Some(1990.0));
}

#[test]
fn no_user_errors_is_applied_even_without_an_adjustment_group() {
    // A set to the value already there: the compare-and-set held, nothing changed, so
    // there is no adjustment to group. Retrying it would never end.
    let r = resp(
        200,
        json!({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":null,"userErrors":[]}},
               "extensions":{"cost":{"requestedQueryCost":10,"actualQueryCost":10}}}),
    );
    let batch = [target("A-1", 4, 1, Some(4), 1)];
    assert_eq!(
        api().write_outcomes(&batch, &r),
        vec![ItemResult::Done(PushOutcome::Applied)]
    );
}

#[test]
fn user_errors_fan_out_by_field_path_and_the_rest_is_resent() {
    let r = resp(
        200,
        json!({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":null,"userErrors":[
            {"code":"CHANGE_FROM_QUANTITY_STALE","field":["input","quantities","0","changeFromQuantity"],"message":"stale"},
            {"code":"INVALID_INVENTORY_ITEM","field":["input","quantities","2","inventoryItemId"],"message":"not found"},
            {"code":"INVALID_QUANTITY_TOO_HIGH","field":["input","quantities","3","quantity"],"message":"too high"}]}}}),
    );
    let batch = [
        target("A-1", 1, 1, Some(0), 1),
        target("B-2", 2, 2, Some(0), 2),
        target("C-3", 3, 3, Some(0), 3),
        target("D-4", 2_000_000_000, 4, Some(0), 4),
    ];
    let results = api().write_outcomes(&batch, &r);
    assert_eq!(results[0], ItemResult::Stale { current: None });
    assert!(matches!(
        &results[1],
        ItemResult::Resend(PushOutcome::Transient { .. })
    ));
    assert_eq!(
        results[2],
        ItemResult::Done(PushOutcome::permanent(
            "INVALID_INVENTORY_ITEM",
            "not found"
        ))
    );
    assert_eq!(
        results[3],
        ItemResult::Done(PushOutcome::permanent(
            "INVALID_QUANTITY_TOO_HIGH",
            "too high"
        ))
    );
}

#[test]
fn request_level_errors_reach_every_item() {
    let r = resp(
        200,
        json!({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":null,"userErrors":[
            {"code":"INVALID_REASON","field":["input","reason"],"message":"bad reason"}]}}}),
    );
    let batch = [
        target("A-1", 1, 1, Some(0), 1),
        target("B-2", 2, 2, Some(0), 2),
    ];
    assert_eq!(
        api().write_outcomes(&batch, &r),
        vec![ItemResult::Done(PushOutcome::permanent("INVALID_REASON", "bad reason")); 2]
    );
}

#[test]
fn graphql_errors_without_data_are_refused_as_a_whole() {
    let missing_key = resp(
        200,
        json!({"errors":[{"message":"The @idempotent directive is required","extensions":{"code":"BAD_REQUEST"}}]}),
    );
    assert_eq!(api().classify(&missing_key), Class::Rejected);
    let internal = resp(
        200,
        json!({"errors":[{"message":"Internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}),
    );
    assert_eq!(
        api().classify(&internal),
        Class::Unavailable { retry_after: None }
    );
    assert_eq!(
        api().classify(&resp(500, json!({"errors":[]}))),
        Class::Unavailable { retry_after: None }
    );
    let unauthorised = resp(
        401,
        json!({"errors":"[API] Invalid API key or access token"}),
    );
    assert_eq!(api().classify(&unauthorised), Class::Unauthorized);
    let batch = [target("A-1", 1, 1, Some(0), 1)];
    assert!(matches!(
        &api().write_outcomes(&batch, &unauthorised)[0],
        ItemResult::Done(PushOutcome::Transient { reason, .. }) if reason.contains("credentials")
    ));
    let no_scope = resp(
        200,
        json!({"errors":[{"message":"Access denied for inventorySetQuantities field. Required access: `write_inventory` access scope.","extensions":{"code":"ACCESS_DENIED","documentation":"https://shopify.dev/api/usage/access-scopes"}}]}),
    );
    assert_eq!(api().classify(&no_scope), Class::Unauthorized);
}

#[test]
fn resolve_matches_skus_exactly() {
    let r = resp(
        200,
        json!({"data":{"inventoryItems":{"nodes":[
            {"id":"gid://shopify/InventoryItem/7","sku":"A-1","inventoryLevel":{"quantities":[{"name":"available","quantity":4}]}},
            {"id":"gid://shopify/InventoryItem/8","sku":"A-1-RED","inventoryLevel":null}],
            "pageInfo":{"hasNextPage":false}}}}),
    );
    let found = api()
        .resolve_response(&[sku("A-1"), sku("B-2")], &r)
        .expect("resolves");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[&sku("A-1")],
        ChannelRef {
            id: "gid://shopify/InventoryItem/7".to_owned(),
            parent: None,
            current: Some(4)
        }
    );
}

#[test]
fn read_pages_follow_the_end_cursor() {
    let r = resp(
        200,
        json!({"data":{"location":{"inventoryLevels":{"nodes":[
            {"item":{"id":"gid://shopify/InventoryItem/7","sku":"A-1"},"quantities":[{"name":"available","quantity":4}]},
            {"item":{"id":"gid://shopify/InventoryItem/8","sku":null},"quantities":[{"name":"available","quantity":1}]}],
            "pageInfo":{"hasNextPage":true,"endCursor":"abc"}}}}}),
    );
    let page = api().read_page(&r).expect("page");
    assert_eq!(
        page.items,
        vec![Listed {
            sku: sku("A-1"),
            quantity: 4
        }]
    );
    assert_eq!(page.next, Some(PageToken::next("abc")));
    let request = api()
        .read_request(&PageToken::next("abc"))
        .expect("request");
    assert_eq!(request.cost, 753.0);
    assert_eq!(
        request.json_body().expect("body")["variables"]["after"],
        "abc"
    );
    let missing = resp(200, json!({"data":{"location":null}}));
    assert!(api().read_page(&missing).is_err());
}
