//! The HTTP API under bad input: a real ledger (its own database, port 0, no relay) takes
//! generated bodies, headers, paths and methods. Whatever arrives: never a 5xx (nor a
//! dropped connection), every 4xx is the JSON error shape with a code and a message (and
//! the field the generator broke), and a rejected request leaves every table as it was.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

use crate::bodies::{self, Body, Command, Expect, SEED_ORDER, SKU, Via};
use crate::config;
use crate::support::{Options, READER_TOKEN, SHOP_TOKEN, TestLedger, WMS_TOKEN};

/// A seeded ledger: `SKU` with stock in two warehouses, an open order to ship from, and an
/// active reservation to check out.
pub struct Fuzz {
    t: TestLedger,
    reservation: String,
}

/// Every table's rows, hashed: equal before and after a rejected request.
const FINGERPRINT: &str = "
    SELECT t, md5(coalesce(string_agg(r, ',' ORDER BY r), '')) FROM (
        SELECT 'warehouses' t, x::text r FROM warehouses x
        UNION ALL SELECT 'sku_versions', x::text FROM sku_versions x
        UNION ALL SELECT 'stock', x::text FROM stock x
        UNION ALL SELECT 'reservations', x::text FROM reservations x
        UNION ALL SELECT 'orders', x::text FROM orders x
        UNION ALL SELECT 'order_lines', x::text FROM order_lines x
        UNION ALL SELECT 'oversells', x::text FROM oversells x
        UNION ALL SELECT 'outbox', x::text FROM outbox x
        UNION ALL SELECT 'idempotency', x::text FROM idempotency x
    ) rows GROUP BY t ORDER BY t";

/// One request, as sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub auth: Option<HeaderValue>,
    pub key: Option<HeaderValue>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Option<Value>,
    pub text: String,
}

impl Fuzz {
    pub async fn start() -> Fuzz {
        let t = TestLedger::spawn_with(Options {
            relay: false,
            sweeper: false,
            ingest: false,
        })
        .await;
        // Half the largest on hand an adjustment allows: room to reserve and to adjust both ways.
        t.receive(SKU, "ams-1", 500_000_000).await;
        t.receive(SKU, "nyc-1", 10).await;
        let (status, order) = t
            .post(
                SHOP_TOKEN,
                "/v1/orders",
                json!({"order_id": SEED_ORDER, "channel": "shopify",
                       "lines": [{"sku": SKU, "qty": 100_000, "warehouse": "ams-1"}]}),
            )
            .await;
        assert_eq!(status, 201, "seed order: {order}");
        let (status, reservation) = t.reserve(SKU, 1, "fuzz-seed-cart").await;
        assert_eq!(status, 201, "seed reservation: {reservation}");
        let reservation = reservation["reservation_id"]
            .as_str()
            .expect("reservation id")
            .to_owned();
        // The mutations start from these bodies: each must be accepted as it is.
        for command in [
            Command::Receipt,
            Command::Adjustment,
            Command::Reservation,
            Command::Order,
            Command::Shipment,
        ] {
            let body = bodies::template(command, Via::Http, u64::MAX);
            let (status, answer) = t
                .post(token_for(command.scope()), &post_path(command, 0), body)
                .await;
            assert!(
                (200..300).contains(&status),
                "{command:?} template: {status} {answer}"
            );
        }
        Fuzz { t, reservation }
    }

    async fn fingerprint(&self) -> Vec<(String, String)> {
        sqlx::query_as(FINGERPRINT)
            .fetch_all(self.t.db.pool())
            .await
            .expect("fingerprint the database")
    }

    pub async fn send(&self, r: &Request) -> Result<Answer, TestCaseError> {
        let mut b = self
            .t
            .http
            .request(r.method.clone(), format!("{}{}", self.t.base, r.path))
            .body(r.body.clone());
        if let Some(auth) = &r.auth {
            b = b.header(AUTHORIZATION, auth.clone());
        }
        if let Some(key) = &r.key {
            b = b.header("Idempotency-Key", key.clone());
        }
        let response = b.send().await.map_err(|e| {
            TestCaseError::fail(format!("no answer to {r:?} (did the handler panic?): {e}"))
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TestCaseError::fail(format!("answer to {r:?} cut off: {e}")))?;
        Ok(Answer {
            status,
            json: serde_json::from_slice(&bytes).ok(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Send `r`; check the answer is not a server error, that a rejection is a clear JSON
    /// error and changed nothing. Returns the answer when it was a rejection.
    async fn exchange(&self, r: &Request) -> Result<Option<(u16, Value)>, TestCaseError> {
        let before = self.fingerprint().await;
        let answer = self.send(r).await?;
        let status = answer.status;
        prop_assert!(status < 500, "{status} for {r:?}: {}", answer.text);
        if status < 400 {
            return Ok(None);
        }
        let error = answer
            .json
            .as_ref()
            .map(|v| v["error"].clone())
            .unwrap_or_default();
        let nonempty = |k: &str| error[k].as_str().is_some_and(|s| !s.trim().is_empty());
        prop_assert!(
            nonempty("code") && nonempty("message"),
            "{status} without a JSON error for {} {}: {:?}",
            r.method,
            r.path,
            answer.text
        );
        // (A field may be "": an unknown field of that name.)
        prop_assert!(
            error.get("field").is_none_or(Value::is_string),
            "field is not a name: {error}"
        );
        let after = self.fingerprint().await;
        prop_assert_eq!(
            after,
            before,
            "{} {} was refused ({}) but changed the database",
            r.method,
            r.path,
            error
        );
        Ok(Some((status, error)))
    }
}

pub fn header(s: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(s).expect("a valid header value"))
}

pub fn bearer(token: &str) -> Option<HeaderValue> {
    header(&format!("Bearer {token}"))
}

fn token_for(scope: &str) -> &'static str {
    if scope == "stock:write" {
        WMS_TOKEN
    } else {
        SHOP_TOKEN
    }
}

/// Runs `strategy` against one seeded ledger, `cases` times by default.
fn fuzz<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl AsyncFn(&Fuzz, S::Value) -> Result<(), TestCaseError>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let f = rt.block_on(Fuzz::start());
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, |input| rt.block_on(check(&f, input)));
    rt.block_on(async {
        let mut f = f;
        f.t.stop().await;
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// The POST a body for `command` goes to: the checkout and cancel paths name ids that do
/// not exist, so a body that parses meets a 404, never a change of the seeded state.
fn post_path(command: Command, n: u64) -> String {
    match command {
        Command::Receipt => "/v1/receipts".to_owned(),
        Command::Adjustment => "/v1/adjustments".to_owned(),
        Command::Reservation => "/v1/reservations".to_owned(),
        Command::Order => "/v1/orders".to_owned(),
        Command::Shipment => "/v1/shipments".to_owned(),
        Command::Checkout | Command::Release => format!(
            "/v1/reservations/{}/checkout",
            uuid::Uuid::from_u128(u128::from(n))
        ),
        Command::CancelOrder => format!("/v1/orders/fuzz-none-{n}/cancel"),
    }
}

fn http_body() -> impl Strategy<Value = (Body, u64)> {
    let commands = Command::ALL
        .into_iter()
        .filter(|c| *c != Command::Release)
        .collect::<Vec<_>>();
    (prop::sample::select(commands), any::<u64>())
        .prop_flat_map(|(c, n)| (bodies::body(c, Via::Http), Just(n)))
}

#[test]
fn bodies_are_answered_with_a_clear_error_or_applied() {
    fuzz(256, http_body(), async |f, (body, n)| {
        let r = Request {
            method: Method::POST,
            path: post_path(body.command, n),
            auth: bearer(token_for(body.command.scope())),
            key: header(&format!("fuzz-body-{}", uuid::Uuid::new_v4())),
            body: body.bytes.clone(),
        };
        let rejected = f.exchange(&r).await?;
        let what = &body.what;
        match (&body.expect, rejected) {
            (Expect::Any, _) => {}
            (expect, None) => prop_assert!(false, "{what}: accepted, expected {expect:?}"),
            (Expect::Field(field), Some((_, error))) => {
                prop_assert_eq!(
                    error["field"].as_str(),
                    Some(field.as_str()),
                    "{}: {}",
                    what,
                    error
                );
            }
            (Expect::Rejected, Some((status, _))) => prop_assert!(status < 500),
            (Expect::TooLarge, Some((status, error))) => {
                prop_assert_eq!(
                    (status, error["code"].as_str()),
                    (413, Some("payload_too_large")),
                    "{}",
                    what
                );
            }
        }
        Ok(())
    });
}

/// What is wrong with a request's headers, if anything.
#[derive(Debug, Clone)]
enum Headers {
    Good,
    NoAuth,
    BadAuth(Vec<u8>),
    WrongScope,
    NoKey,
    BadKey(Vec<u8>),
    /// A key already used, with a different body.
    ReusedKey,
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// What the ledger accepts as an Idempotency-Key once the server has trimmed the header
/// value: 1 to 255 printable ASCII characters.
fn valid_key(b: &[u8]) -> bool {
    let k = b.trim_ascii();
    (1..=255).contains(&k.len()) && k.iter().all(u8::is_ascii_graphic)
}

fn headers() -> impl Strategy<Value = Headers> {
    let printable = prop::collection::vec(0x20u8..0x7f, 0..80);
    let any_bytes = prop::collection::vec(any::<u8>(), 0..80);
    let auth = prop_oneof![
        any_bytes.clone(),
        printable
            .clone()
            .prop_map(|b| [b"Bearer ".as_slice(), &b].concat()),
        any_bytes
            .clone()
            .prop_map(|b| [b"Bearer ".as_slice(), &b].concat()),
        Just(format!("Basic {WMS_TOKEN}").into_bytes()),
        Just(format!("Bearer{WMS_TOKEN}").into_bytes()),
        Just(format!("Bearer {WMS_TOKEN}x").into_bytes()),
        Just(format!("BEARER {WMS_TOKEN}").into_bytes()),
        Just(format!("Bearer {}", &WMS_TOKEN[1..]).into_bytes()),
    ]
    .prop_filter("a sendable header", |b| header_value(b).is_some());
    let key = prop_oneof![
        any_bytes,
        Just(Vec::new()),
        Just(b"   ".to_vec()),
        Just(vec![b'k'; 256]),
        Just(b"with space".to_vec()),
        Just(b"tab\there".to_vec()),
        Just("caf\u{e9}".as_bytes().to_vec()),
    ]
    .prop_filter("a sendable, invalid key", |b| {
        header_value(b).is_some() && !valid_key(b)
    });
    prop_oneof![
        2 => Just(Headers::Good),
        1 => Just(Headers::NoAuth),
        3 => auth.prop_map(Headers::BadAuth),
        1 => Just(Headers::WrongScope),
        1 => Just(Headers::NoKey),
        3 => key.prop_map(Headers::BadKey),
        1 => Just(Headers::ReusedKey),
    ]
}

#[test]
fn bad_headers_are_refused_naming_the_header() {
    let commands = vec![Command::Receipt, Command::Reservation, Command::Order];
    let strategy = (prop::sample::select(commands), any::<u64>(), headers());
    fuzz(256, strategy, async |f, (command, n, headers)| {
        let token = token_for(command.scope());
        let mut r = Request {
            method: Method::POST,
            path: post_path(command, n),
            auth: bearer(token),
            key: header(&format!("fuzz-header-{}", uuid::Uuid::new_v4())),
            body: bodies::template(command, Via::Http, n)
                .to_string()
                .into_bytes(),
        };
        let want = match &headers {
            Headers::Good => None,
            Headers::NoAuth => {
                r.auth = None;
                Some((401, "Authorization"))
            }
            Headers::BadAuth(b) => {
                r.auth = header_value(b);
                Some((401, "Authorization"))
            }
            Headers::WrongScope => {
                r.auth = bearer(if token == WMS_TOKEN {
                    READER_TOKEN
                } else {
                    WMS_TOKEN
                });
                Some((403, "Authorization"))
            }
            Headers::NoKey => {
                r.key = None;
                Some((400, "Idempotency-Key"))
            }
            Headers::BadKey(b) => {
                r.key = header_value(b);
                Some((400, "Idempotency-Key"))
            }
            Headers::ReusedKey => {
                r.key = header(&format!("fuzz-reused-{command:?}"));
                r.body = bodies::template(command, Via::Http, n ^ 1)
                    .to_string()
                    .into_bytes();
                let mut first = r.clone();
                first.body = bodies::template(command, Via::Http, n)
                    .to_string()
                    .into_bytes();
                f.exchange(&first).await?;
                Some((409, "Idempotency-Key"))
            }
        };
        let rejected = f.exchange(&r).await?;
        match (want, rejected) {
            (None, _) => {}
            (Some(want), None) => prop_assert!(false, "{headers:?}: accepted, expected {want:?}"),
            (Some((status, field)), Some((got, error))) => {
                prop_assert_eq!(
                    (got, error["field"].as_str()),
                    (status, Some(field)),
                    "{:?}: {}",
                    headers,
                    error
                );
            }
        }
        Ok(())
    });
}

/// Stands for the seeded reservation's id in generated paths.
const RESERVATION: &str = "@reservation@";

/// A path segment: arbitrary bytes percent-encoded (so `%FF`, `%00`, `%2F` all occur), ids
/// that exist, or plain text.
fn segment() -> impl Strategy<Value = String> {
    let encoded = prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
        b.iter()
            .map(|c| match c {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => {
                    (*c as char).to_string()
                }
                _ => format!("%{c:02X}"),
            })
            .collect::<String>()
    });
    prop_oneof![
        3 => encoded,
        1 => "[A-Za-z0-9._~-]{0,30}",
        1 => Just(SKU.to_owned()),
        1 => Just(RESERVATION.to_owned()),
        1 => Just("%FF".to_owned()),
        1 => Just("%2F..%2F".to_owned()),
        1 => Just(uuid::Uuid::nil().to_string()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let query = prop_oneof![
        Just(String::new()),
        Just("?channel=shopify".to_owned()),
        Just("?channel=shopify&channel=amazon".to_owned()),
        Just("?channel=%FF".to_owned()),
        Just("?channel".to_owned()),
        Just("?%ZZ=1".to_owned()),
        "\\?[a-z]{1,6}=[A-Za-z0-9%]{0,8}",
    ];
    prop_oneof![
        (segment(), query.clone()).prop_map(|(s, q)| format!("/v1/stock/{s}{q}")),
        (segment(), query).prop_map(|(s, q)| format!("/v1/stock/{s}/explain{q}")),
        segment().prop_map(|s| format!("/v1/reservations/{s}/checkout")),
        segment().prop_map(|s| format!("/v1/reservations/{s}")),
        segment().prop_map(|s| format!("/v1/orders/{s}/cancel")),
        prop::sample::select(vec![
            "/v1/receipts",
            "/v1/adjustments",
            "/v1/reservations",
            "/v1/orders",
            "/v1/shipments",
            "/v1/stock",
            "/v1/stock/",
            "/v1/receipts/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/",
            "//v1//receipts",
            "/V1/RECEIPTS",
        ])
        .prop_map(str::to_owned),
        (segment(), segment()).prop_map(|(a, b)| format!("/v1/{a}/{b}")),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ])
}

#[test]
fn paths_and_methods_are_answered_with_json_errors() {
    let strategy = (method(), path(), 0usize..4, any::<bool>());
    fuzz(256, strategy, async |f, (method, path, who, json_body)| {
        let r = Request {
            method,
            path: path.replace(RESERVATION, &f.reservation),
            auth: [Some(WMS_TOKEN), Some(SHOP_TOKEN), Some(READER_TOKEN), None][who]
                .and_then(bearer),
            key: header(&format!("fuzz-path-{}", uuid::Uuid::new_v4())),
            body: if json_body {
                b"{}".to_vec()
            } else {
                Vec::new()
            },
        };
        f.exchange(&r).await?;
        Ok(())
    });
}
