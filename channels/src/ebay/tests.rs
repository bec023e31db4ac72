//! Mapping tests on recorded responses, and snapshots of the outbound requests.

use super::*;

fn target(sku: &str, quantity: i64, offers: &str) -> Target {
    let offers = ChannelRef {
        id: offers.to_owned(),
        ..ChannelRef::default()
    };
    crate::test_support::target(sku, quantity, 1, Some(offers))
}

fn resp(status: u16, body: serde_json::Value) -> ApiResponse {
    crate::test_support::response(status, &[], body.to_string())
}

fn outcomes(batch: &[Target], r: &ApiResponse) -> Vec<PushOutcome> {
    Ebay::default()
        .write_outcomes(batch, r)
        .into_iter()
        .map(|i| match i {
            ItemResult::Done(o) => o,
            other => panic!("eBay results are final per item: {other:?}"),
        })
        .collect()
}

#[test]
fn write_body_snapshot() {
    let request = Ebay::default()
        .write_request(&[target("A-1", 7, "1001"), target("B 2", -3, "1002,2002")])
        .expect("maps");
    assert_eq!(request.method, Method::POST);
    assert_eq!(
        request.path,
        "/sell/inventory/v1/bulk_update_price_quantity"
    );
    assert_eq!(
        request.json_body(),
        Some(json!({"requests": [
            {"sku": "A-1", "shipToLocationAvailability": {"quantity": 7},
             "offers": [{"offerId": "1001", "availableQuantity": 7}]},
            {"sku": "B 2", "shipToLocationAvailability": {"quantity": 0},
             "offers": [{"offerId": "1002", "availableQuantity": 0},
                        {"offerId": "2002", "availableQuantity": 0}]},
        ]}))
    );
}

#[test]
fn resolve_request_encodes_the_sku() {
    let sku = Sku::parse("A&B 1").expect("sku");
    let request = Ebay::default()
        .resolve_request(std::slice::from_ref(&sku))
        .expect("resolves")
        .expect("maps");
    assert_eq!(request.path, "/sell/inventory/v1/offer?sku=A%26B+1");
}

#[test]
fn multi_status_fans_out_per_sku() {
    let batch = [
        target("OK", 1, "1"),
        target("BUSY", 2, "2"),
        target("GONE", 3, "3"),
        target("HALF", 4, "4"),
        target("CAP", 5, "5"),
        target("SILENT", 6, "6"),
    ];
    let concurrent = json!({"errorId": 25025, "domain": "API_INVENTORY", "category": "APPLICATION",
        "message": "Concurrent access of Inventory or InventoryItemGroup. Please try again later"});
    let cap = json!({"errorId": 25002, "domain": "API_INVENTORY", "category": "REQUEST",
        "message": "Any User error. The listing has reached the limit of 250 revisions per calendar day; it can be revised again on the next calendar day."});
    let r = resp(
        207,
        json!({"responses": [
            {"statusCode": 200, "sku": "OK", "errors": [], "warnings": []},
            {"statusCode": 200, "sku": "OK", "offerId": "1", "errors": [], "warnings": []},
            {"statusCode": 500, "sku": "BUSY", "errors": [concurrent], "warnings": []},
            {"statusCode": 500, "sku": "BUSY", "offerId": "2", "errors": [concurrent], "warnings": []},
            {"statusCode": 404, "sku": "GONE", "errors": [{"errorId": 25002, "message": "Any User error. SKU GONE is not available in the system."}]},
            {"statusCode": 404, "sku": "GONE", "offerId": "3", "errors": [{"errorId": 25002, "message": "x"}]},
            {"statusCode": 200, "sku": "HALF", "errors": []},
            {"statusCode": 400, "sku": "HALF", "offerId": "4", "errors": [{"errorId": 25709, "message": "Invalid value for offerId."}]},
            {"statusCode": 400, "sku": "CAP", "errors": [cap]},
            {"statusCode": 400, "sku": "CAP", "offerId": "5", "errors": [cap]},
            {"statusCode": 200, "sku": "SILENT", "errors": []},
        ]}),
    );
    let got = outcomes(&batch, &r);
    assert_eq!(got[0], PushOutcome::Applied);
    assert!(
        matches!(&got[1], PushOutcome::Transient { retry_after: None, reason } if reason.contains("25025")),
        "{:?}",
        got[1]
    );
    assert!(
        matches!(&got[2], PushOutcome::Permanent { code, .. } if code == "ebay_25002"),
        "{:?}",
        got[2]
    );
    assert!(
        matches!(&got[3], PushOutcome::Permanent { code, .. } if code == "ebay_25709"),
        "{:?}",
        got[3]
    );
    match &got[4] {
        PushOutcome::Transient {
            retry_after: Some(wait),
            reason,
        } => {
            assert!(*wait <= REVISION_RETRY, "{wait:?}");
            assert!(reason.contains("revisions"), "{reason}");
        }
        other => panic!("revision cap should wait and retry: {other:?}"),
    }
    // The offer's entry is missing: not confirmed, so not applied.
    assert!(
        matches!(&got[5], PushOutcome::Transient { .. }),
        "{:?}",
        got[5]
    );
}

#[test]
fn all_ok_is_applied() {
    let batch = [target("A", 1, "1,9")];
    let r = resp(
        200,
        json!({"responses": [
            {"statusCode": 200, "sku": "A", "errors": [], "warnings": []},
            {"statusCode": 200, "sku": "A", "offerId": "1", "errors": [], "warnings": []},
            {"statusCode": 200, "sku": "A", "offerId": "9", "errors": [], "warnings": []},
        ]}),
    );
    assert_eq!(outcomes(&batch, &r), vec![PushOutcome::Applied]);
}

#[test]
fn whole_request_failures() {
    let batch = [target("A", 1, "1"), target("B", 2, "2")];
    let throttled = resp(
        429,
        json!({"errors": [{"errorId": 2001, "domain": "ACCESS", "category": "REQUEST",
            "message": "Too many requests.", "longMessage": "The request limit has been reached for the resource."}]}),
    );
    assert_eq!(
        Ebay::default().classify(&throttled),
        Class::Throttled { retry_after: None }
    );
    assert!(
        outcomes(&batch, &throttled)
            .iter()
            .all(|o| matches!(o, PushOutcome::Transient { .. }))
    );
    let system = resp(500, json!({"errors": [{"errorId": 25001}]}));
    assert!(
        outcomes(&batch, &system)
            .iter()
            .all(|o| matches!(o, PushOutcome::Transient { .. }))
    );
    // An expired user token (errorId 1001) is the account's, not the SKUs': held.
    let unauthorized = resp(401, json!({"errors": [{"errorId": 1001}]}));
    assert!(
        outcomes(&batch, &unauthorized)
            .iter()
            .all(|o| matches!(o, PushOutcome::Transient { reason, .. } if reason.contains("1001")))
    );
}

#[test]
fn resolve_reads_offers_and_the_not_found_answer() {
    let api = Ebay::default();
    let sku = Sku::parse("A").expect("sku");
    let skus = [sku.clone()];
    let found = api
        .resolve_response(
            &skus,
            &resp(
                200,
                json!({"offers": [
                    {"offerId": "11", "sku": "A", "availableQuantity": 4, "status": "PUBLISHED"},
                    {"offerId": "12", "sku": "A", "status": "UNPUBLISHED"},
                    {"offerId": "13", "sku": "A", "availableQuantity": 4, "status": "PUBLISHED"},
                ], "total": 3}),
            ),
        )
        .expect("maps");
    assert_eq!(
        found.get(&sku),
        Some(&ChannelRef {
            id: "11,13".to_owned(),
            parent: None,
            current: Some(4)
        })
    );
    let missing = resp(
        404,
        json!({"errors": [{"errorId": 25713, "message": "This Offer is not available : A."}]}),
    );
    assert_eq!(api.classify(&missing), Class::Success);
    assert!(
        api.resolve_response(&skus, &missing)
            .expect("maps")
            .is_empty()
    );
    // Any other 404 stays a failure.
    assert_eq!(api.classify(&resp(404, json!({}))), Class::Rejected);
}

#[test]
fn read_pages_follow_next() {
    let api = Ebay::default();
    let request = api.read_request(&PageToken::first()).expect("maps");
    assert_eq!(
        request.path,
        "/sell/inventory/v1/inventory_item?limit=100&offset=0"
    );
    let page = api
        .read_page(&resp(
            200,
            json!({"inventoryItems": [
                {"sku": "A", "availability": {"shipToLocationAvailability": {"quantity": 3}}},
                {"sku": "B"},
            ], "total": 250, "limit": 100,
            "next": "/sell/inventory/v1/inventory_item?limit=100&offset=200"}),
        ))
        .expect("maps");
    assert_eq!(page.next, Some(PageToken::next("200")));
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].quantity, 3);
    assert_eq!(page.items[1].quantity, 0);
    let last = api
        .read_page(&resp(200, json!({"inventoryItems": [], "total": 250})))
        .expect("maps");
    assert_eq!(last.next, None);
    assert!(matches!(
        api.read_request(&PageToken::next("x")),
        Err(MappingError::PageToken { .. })
    ));
}
