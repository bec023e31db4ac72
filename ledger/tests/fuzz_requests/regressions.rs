//! The minimized cases the request fuzz found, kept as plain tests.

use onhand_ledger::Command as LedgerCommand;
use reqwest::Method;

use crate::http::{Fuzz, Request, bearer, header};
use crate::ingest::settings;
use crate::support::{READER_TOKEN, SHOP_TOKEN};

/// `delta.abs()` overflowed (a panic in debug builds, accepted as a huge negative delta in
/// release) instead of refusing the delta as out of range.
#[test]
fn the_smallest_delta_is_out_of_range() {
    let body = br#"{"sku":"A","warehouse":"ams-1","delta":-9223372036854775808,"reason":"damage"}"#;
    let err =
        LedgerCommand::from_ingest("adjustment", body, &settings()).expect_err("out of range");
    assert_eq!(
        (err.code(), err.field()),
        ("invalid_field", Some("delta")),
        "{err}"
    );
}

/// serde files a wrong JSON type for an enum as a syntax error ("expected value"), which the
/// body parser did not attribute to a field.
#[test]
fn a_mistyped_reservation_kind_is_named() {
    let body = br#"{"sku":"A","qty":1,"order_id":"o","kind":["cart"]}"#;
    let err = LedgerCommand::from_ingest("reservation", body, &settings()).expect_err("bad kind");
    assert_eq!(err.field(), Some("kind"), "{err}");
}

/// axum answered these itself, in plain text or with an empty body, not the API's JSON.
#[test]
fn routing_rejections_are_json_errors() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let f = Fuzz::start().await;
        let cases = [
            (
                Method::POST,
                "/healthz",
                READER_TOKEN,
                405,
                "method_not_allowed",
                None,
            ),
            (
                Method::PUT,
                "/v1/receipts",
                READER_TOKEN,
                405,
                "method_not_allowed",
                None,
            ),
            (
                Method::DELETE,
                "/v1/reservations/%80",
                SHOP_TOKEN,
                400,
                "malformed_request",
                Some("reservation_id"),
            ),
            (
                Method::POST,
                "/v1/orders/%FF/cancel",
                SHOP_TOKEN,
                400,
                "malformed_request",
                Some("order_id"),
            ),
            (
                Method::GET,
                "/v1/stock/%C3",
                READER_TOKEN,
                400,
                "malformed_request",
                Some("sku"),
            ),
            (
                Method::GET,
                "/v1/stock/X/explain?channel=a&channel=b",
                READER_TOKEN,
                400,
                "malformed_request",
                Some("channel"),
            ),
        ];
        for (method, path, token, status, code, field) in cases {
            let r = Request {
                method: method.clone(),
                path: path.to_owned(),
                auth: bearer(token),
                key: header("fuzz-regression"),
                body: b"{}".to_vec(),
            };
            let answer = f.send(&r).await.expect("an answer");
            let error = answer
                .json
                .as_ref()
                .map(|v| v["error"].clone())
                .unwrap_or_default();
            assert_eq!(
                (
                    answer.status,
                    error["code"].as_str(),
                    error["field"].as_str()
                ),
                (status, Some(code), field),
                "{method} {path}: {}",
                answer.text
            );
        }
    });
}
