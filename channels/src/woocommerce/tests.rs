//! Mapping tests on recorded responses, and snapshots of the outbound requests.

use super::*;

fn target(sku: &str, quantity: i64, id: u64, parent: Option<u64>) -> Target {
    let reference = ChannelRef {
        id: id.to_string(),
        parent: parent.map(|p| p.to_string()),
        current: None,
    };
    crate::test_support::target(sku, quantity, 1, Some(reference))
}

fn resp(status: u16, body: serde_json::Value, total_pages: Option<u32>) -> ApiResponse {
    let pages = total_pages.map(|t| t.to_string());
    let headers: Vec<(&'static str, &str)> = pages
        .iter()
        .map(|t| ("x-wp-totalpages", t.as_str()))
        .collect();
    crate::test_support::response(status, &headers, body.to_string())
}

fn outcomes(batch: &[Target], r: &ApiResponse) -> Vec<PushOutcome> {
    Woo::default()
        .write_outcomes(batch, r)
        .into_iter()
        .map(|i| match i {
            ItemResult::Done(o) => o,
            other => panic!("WooCommerce results are final per item: {other:?}"),
        })
        .collect()
}

#[test]
fn write_body_snapshots() {
    let api = Woo::default();
    let products = api
        .write_request(&[target("A", 12, 799, None), target("B", -1, 800, None)])
        .expect("maps");
    assert_eq!(products.method, Method::POST);
    assert_eq!(products.path, "/wp-json/wc/v3/products/batch");
    assert_eq!(
        products.json_body(),
        Some(json!({"update": [
            {"id": 799, "manage_stock": true, "stock_quantity": 12},
            {"id": 800, "manage_stock": true, "stock_quantity": -1},
        ]}))
    );
    let variations = api
        .write_request(&[target("A-RED", 3, 901, Some(900))])
        .expect("maps");
    assert_eq!(
        variations.path,
        "/wp-json/wc/v3/products/900/variations/batch"
    );
    assert_eq!(
        variations.json_body(),
        Some(json!({"update": [{"id": 901, "manage_stock": true, "stock_quantity": 3}]}))
    );
    assert!(
        api.write_request(&[target("A", 1, 1, None), target("V", 1, 2, Some(9))])
            .is_err(),
        "a mixed batch is a transport bug, not a request"
    );
    assert_eq!(
        api.group_key(&target("V", 1, 2, Some(9))),
        Some("9".to_owned())
    );
    assert_eq!(api.group_key(&target("A", 1, 1, None)), None);
}

#[test]
fn per_item_errors_inside_a_200_fan_out() {
    let batch = [
        target("OK", 5, 1, None),
        target("BAD-ID", 5, 2, None),
        target("UNMANAGED", 5, 3, None),
        target("DOWN", 5, 4, None),
        target("ABSENT", 5, 5, None),
        target("NO-RIGHTS", 5, 6, None),
    ];
    let r = resp(
        200,
        json!({"update": [
            {"id": 1, "sku": "OK", "manage_stock": true, "stock_quantity": 5},
            {"id": 2, "error": {"code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}},
            {"id": 3, "sku": "UNMANAGED", "manage_stock": false, "stock_quantity": null},
            {"id": 4, "error": {"code": "internal_server_error", "message": "db gone", "data": {"status": 500}}},
            {"id": 6, "error": {"code": "woocommerce_rest_cannot_edit", "message": "Sorry, you are not allowed to edit this resource.", "data": {"status": 403}}},
        ]}),
        None,
    );
    let got = outcomes(&batch, &r);
    assert_eq!(got[0], PushOutcome::Applied);
    assert_eq!(
        got[1],
        PushOutcome::permanent("woocommerce_rest_product_invalid_id", "Invalid ID.")
    );
    assert!(
        matches!(&got[2], PushOutcome::Permanent { code, .. } if code == "stock_management_disabled"),
        "{:?}",
        got[2]
    );
    assert!(
        matches!(&got[3], PushOutcome::Transient { .. }),
        "{:?}",
        got[3]
    );
    assert!(
        matches!(&got[4], PushOutcome::Transient { .. }),
        "{:?}",
        got[4]
    );
    // A key whose user may not edit: the credentials' problem, held rather than
    // dead-lettered.
    assert!(
        matches!(&got[5], PushOutcome::Transient { retry_after: Some(_), reason }
            if reason.contains("woocommerce_rest_cannot_edit")),
        "{:?}",
        got[5]
    );
}

#[test]
fn whole_request_failures() {
    let batch = [target("A", 1, 1, None), target("B", 1, 2, None)];
    let too_large = resp(
        413,
        json!({"code": "woocommerce_rest_request_entity_too_large",
               "message": "Unable to accept more than 100 items for this request.",
               "data": {"status": 413}}),
        None,
    );
    // Over the store's limit: nobody's fault, so resent in halves; alone, final.
    assert!(
        Woo::default()
            .write_outcomes(&batch, &too_large)
            .iter()
            .all(|o| matches!(
                o,
                ItemResult::Resend(PushOutcome::Permanent { code, .. })
                    if code == "woocommerce_rest_request_entity_too_large"
            ))
    );
    let unauthorized = resp(
        401,
        json!({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": {"status": 401}}),
        None,
    );
    // A key without rights says nothing about the items: held, not dead-lettered.
    assert!(outcomes(&batch, &unauthorized).iter().all(|o| matches!(
        o,
        PushOutcome::Transient { reason, .. } if reason.contains("woocommerce_rest_cannot_view")
    )));
    let busy = resp(503, json!({"code": "service_unavailable"}), None);
    assert!(
        outcomes(&batch, &busy)
            .iter()
            .all(|o| matches!(o, PushOutcome::Transient { .. }))
    );
}

#[test]
fn resolves_products_and_variations() {
    let api = Woo::default();
    let skus = [
        Sku::parse("P").expect("sku"),
        Sku::parse("V").expect("sku"),
        Sku::parse("NONE").expect("sku"),
    ];
    let request = api.resolve_request(&skus).expect("resolves").expect("maps");
    assert_eq!(
        request.path,
        "/wp-json/wc/v3/products?sku=P%2CV%2CNONE&per_page=100&_fields=id%2Csku%2Cparent_id%2Cstock_quantity"
    );
    let found = api
        .resolve_response(
            &skus,
            &resp(
                200,
                json!([
                    {"id": 10, "sku": "P", "parent_id": 0, "stock_quantity": 4},
                    {"id": 12, "sku": "V", "parent_id": 11, "stock_quantity": null},
                ]),
                Some(1),
            ),
        )
        .expect("maps");
    assert_eq!(found.len(), 2);
    assert_eq!(found[&skus[0]].parent, None);
    assert_eq!(found[&skus[0]].current, Some(4));
    assert_eq!(found[&skus[1]].id, "12");
    assert_eq!(found[&skus[1]].parent.as_deref(), Some("11"));
}

#[test]
fn read_back_walks_products_then_their_variations() {
    let api = Woo::default();
    let first = PageToken::first();
    assert!(
        api.read_request(&first)
            .expect("maps")
            .path
            .starts_with("/wp-json/wc/v3/products?per_page=100&page=1&")
    );
    // Page 1 of 2 holds a simple product and two variable ones.
    let page = api
        .read_page_at(
            &first,
            &resp(
                200,
                json!([
                    {"id": 1, "sku": "S", "type": "simple", "stock_quantity": 3},
                    {"id": 2, "sku": "", "type": "variable", "stock_quantity": null},
                    {"id": 3, "sku": "VAR", "type": "variable", "stock_quantity": 9},
                    {"id": 4, "sku": "OFF", "type": "simple", "stock_quantity": null},
                ]),
                Some(2),
            ),
        )
        .expect("maps");
    let skus: Vec<&str> = page.items.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, vec!["S", "VAR"]);
    let token = page.next.expect("more");
    assert_eq!(
        api.read_request(&token).expect("maps").path,
        "/wp-json/wc/v3/products/2/variations?per_page=100&page=1&orderby=id&order=asc&_fields=id%2Csku%2Cstock_quantity"
    );
    // Product 2's variations span two pages, then product 3's, then products page 2.
    let variations = |n: u64| {
        resp(
            200,
            json!([{"id": n, "sku": format!("V{n}"), "stock_quantity": 1}]),
            Some(2),
        )
    };
    let token = api
        .read_page_at(&token, &variations(20))
        .expect("maps")
        .next
        .expect("more");
    assert!(
        api.read_request(&token)
            .expect("maps")
            .path
            .contains("/products/2/variations?per_page=100&page=2")
    );
    let token = api
        .read_page_at(&token, &variations(21))
        .expect("maps")
        .next
        .expect("more");
    assert!(
        api.read_request(&token)
            .expect("maps")
            .path
            .contains("/products/3/variations?per_page=100&page=1")
    );
    let last_variations = resp(200, json!([]), Some(0));
    let token = api
        .read_page_at(&token, &last_variations)
        .expect("maps")
        .next
        .expect("more");
    assert!(
        api.read_request(&token)
            .expect("maps")
            .path
            .contains("/products?per_page=100&page=2&")
    );
    let end = api
        .read_page_at(
            &token,
            &resp(
                200,
                json!([{"id": 5, "sku": "Z", "type": "simple", "stock_quantity": 0}]),
                Some(2),
            ),
        )
        .expect("maps");
    assert_eq!(end.next, None);
    assert_eq!(end.items.len(), 1);
    assert!(matches!(
        api.read_request(&PageToken::next("nonsense")),
        Err(MappingError::PageToken { .. })
    ));
}
