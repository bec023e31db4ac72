//! Generators: valid events, arbitrary JSON, and single-field mutations of a valid event
//! paired with what the decoder must make of them.

use onhand_common::event::MAX_EVENT_BYTES;
use onhand_common::{EventType, InventoryEvent, Sku, StockState, WarehouseStock};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years RFC 3339 can write.
const FIRST_SECOND: i64 = -62_167_219_200;
const LAST_SECOND: i64 = 253_402_300_799;

pub fn sku() -> impl Strategy<Value = Sku> {
    prop_oneof![
        "[A-Za-z0-9_-]{1,24}",
        "\\PC{1,40}",
        "[A-Za-z0-9_ .*>=~/-]{1,140}",
    ]
    .prop_filter_map("a valid sku", |s| Sku::parse(s).ok())
}

pub fn warehouse() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn counts() -> impl Strategy<Value = WarehouseStock> {
    let n = prop_oneof![-5i64..1000, any::<i64>()];
    (n.clone(), n.clone(), n).prop_map(|(on_hand, reserved, pending)| WarehouseStock {
        on_hand,
        reserved,
        pending,
    })
}

fn occurred_at() -> impl Strategy<Value = OffsetDateTime> {
    (FIRST_SECOND..=LAST_SECOND, 0i64..1_000_000).prop_map(|(secs, micros)| {
        OffsetDateTime::from_unix_timestamp(secs).expect("in range")
            + time::Duration::microseconds(micros)
    })
}

/// Any event `InventoryEvent::validate` accepts.
pub fn valid_event() -> impl Strategy<Value = InventoryEvent> {
    let ids = (
        any::<u128>(),
        any::<u128>(),
        "\\PC{1,40}",
        0usize..3,
        "\\PC{1,64}",
    );
    let stock = (
        warehouse(),
        counts(),
        prop::collection::btree_map(warehouse(), counts(), 0..4),
        1i64..=i64::MAX,
    );
    (
        prop::sample::select(EventType::ALL.to_vec()),
        occurred_at(),
        sku(),
        prop_oneof![1i64..100, 1i64..=i64::MAX],
        any::<bool>(),
        ids,
        stock,
    )
        .prop_map(
            |(event_type, occurred_at, sku, qty, negative, ids, stock)| {
                let (event_id, reservation, order_id, release, adjust_reason) = ids;
                let (warehouse, own, mut warehouses, version) = stock;
                warehouses.insert(warehouse.clone(), own);
                let mut e = InventoryEvent {
                    schema: 1,
                    event_id: Uuid::from_u128(event_id),
                    event_type,
                    occurred_at,
                    sku,
                    warehouse,
                    qty,
                    order_id: None,
                    reservation_id: None,
                    reason: None,
                    stock: StockState {
                        version,
                        warehouses,
                    },
                };
                let reservation = Some(Uuid::from_u128(reservation));
                match event_type {
                    EventType::Received => {}
                    EventType::Adjusted => {
                        if negative {
                            e.qty = -qty;
                        }
                        e.reason = Some(adjust_reason);
                    }
                    EventType::Reserved | EventType::Committed => {
                        e.order_id = Some(order_id);
                        e.reservation_id = reservation;
                    }
                    EventType::Released => {
                        e.reason =
                            Some(["expired", "cancelled", "order_cancelled"][release].into());
                        e.reservation_id = reservation;
                    }
                    EventType::Shipped => e.order_id = Some(order_id),
                }
                e
            },
        )
}

/// Arbitrary JSON, a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields of a v1 event, top level and nested, as JSON paths.
pub const FIELDS: [&str; 11] = [
    "schema",
    "event_id",
    "type",
    "occurred_at",
    "sku",
    "warehouse",
    "qty",
    "order_id",
    "reservation_id",
    "reason",
    "stock",
];

/// A JSON object with the event's field names (and some others) holding arbitrary values.
pub fn event_shaped_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ];
    prop::collection::btree_map(key, json_value(), 0..12)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// One change to a valid event's JSON.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove the field at this path.
    Drop(Vec<String>),
    /// Put this value at the path.
    Set(Vec<String>, Value),
    /// Put these raw bytes (maybe not JSON, maybe not UTF-8) where the path's value was.
    Raw(Vec<String>, Vec<u8>),
    /// Add an unknown field holding a string, sized so the payload is about this long.
    PadTo(usize),
    /// Add an unknown field nested this deep.
    Nest(usize),
}

/// What the decoder must do with a mutated event.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Decode it (and then it must round-trip).
    Accept,
    /// Reject it, with an error that contains this text (the field's name).
    Reject(String),
    /// Either; when it rejects, the error contains this text.
    Either(String),
    /// Reject it, with an error that gives the position: the bytes after a valid value
    /// are not JSON, so no field is to blame.
    RejectAt,
}

/// A valid event, one mutation of it, and the expected outcome.
pub fn mutated_event() -> impl Strategy<Value = (InventoryEvent, Mutation, Expect)> {
    valid_event().prop_flat_map(|e| {
        let m = mutation(&e);
        (Just(e), m).prop_map(|(e, (m, x))| (e, m, x))
    })
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// Values of the wrong JSON type for a string field.
fn not_a_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(json!(1.5)),
        Just(json!([])),
        Just(json!(["x"])),
        Just(json!({"a": 1})),
    ]
}

/// Values of the wrong JSON type, or out of range, for an integer field.
fn not_an_i64() -> impl Strategy<Value = Value> {
    prop_oneof![
        "-?[0-9]{1,3}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        Just(json!(2.5)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MAX as u64 + 1)),
        Just(json!([1])),
        Just(json!({"n": 1})),
    ]
}

/// Raw JSON tokens no integer field may hold: out of range, not JSON numbers, or not JSON.
/// The last ones start with a valid number, so the error comes after the field's value.
fn raw_number_junk() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let in_value = prop::sample::select(vec![
        "1e400",
        "-1e400",
        "99999999999999999999999",
        "-9223372036854775809",
        "01",
        "+1",
        "1.",
        ".5",
        "NaN",
        "Infinity",
        "",
        "\"\\ud800\"",
    ])
    .prop_map(|s| (s.as_bytes().to_vec(), true));
    let after_value = prop::sample::select(vec!["0x10", "1_000", "1 2", "1e5e5"])
        .prop_map(|s| (s.as_bytes().to_vec(), false));
    prop_oneof![3 => in_value, 1 => after_value]
}

/// A JSON string whose bytes are not UTF-8, or that is otherwise not a valid JSON string.
fn raw_bad_string() -> impl Strategy<Value = Vec<u8>> {
    let invalid = prop_oneof![
        Just(vec![0xff]),
        Just(vec![0x80]),
        Just(vec![0xe2, 0x82]),
        Just(vec![0xed, 0xa0, 0x80]),
        Just(vec![0xc0, 0xaf]),
        Just(vec![0x00]),
        Just(vec![b'\n']),
        Just(b"\\x41".to_vec()),
        Just(b"\\ud800".to_vec()),
        Just(b"\\udc00\\ud800".to_vec()),
    ];
    ("[a-z]{0,4}", invalid, "[a-z]{0,4}").prop_map(|(a, bad, b)| {
        let mut out = vec![b'"'];
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(&bad);
        out.extend_from_slice(b.as_bytes());
        out.push(b'"');
        out
    })
}

/// A timestamp-looking string: most in range, some at the ends of year 0 and 9999 with an
/// offset that moves them out of range in UTC, some not RFC 3339 at all.
fn timestamp_text() -> impl Strategy<Value = String> {
    let year = prop_oneof![Just(0u32), Just(9999), Just(1970), 0u32..=9999];
    let date = prop_oneof![
        (year, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        Just("0000-01-01".to_owned()),
        Just("9999-12-31".to_owned()),
    ];
    let clock = prop_oneof![
        (0u32..24, 0u32..60, 0u32..61).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}")),
        Just("00:00:00".to_owned()),
        Just("23:59:59".to_owned()),
    ];
    let fraction = prop_oneof![Just(String::new()), "\\.[0-9]{1,12}"];
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        ("[+-]", 0u32..24, 0u32..60).prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
        Just("+23:59".to_owned()),
        Just("-23:59".to_owned()),
    ];
    prop_oneof![
        8 => (date, clock, fraction, offset).prop_map(|(d, c, f, o)| format!("{d}T{c}{f}{o}")),
        1 => ".{0,30}",
        1 => "[0-9T:.Z+-]{0,30}",
    ]
}

fn reject(field: &str) -> Expect {
    Expect::Reject(field.to_owned())
}

/// Whether an event of type `t` must carry `field`.
fn required(field: &str, t: EventType) -> bool {
    match (field, t) {
        ("order_id", EventType::Reserved | EventType::Shipped)
        | ("reservation_id", EventType::Reserved)
        | ("reason", EventType::Released | EventType::Adjusted) => true,
        ("order_id" | "reservation_id" | "reason", _) => false,
        _ => true,
    }
}

fn deep_array(depth: usize) -> Vec<u8> {
    let mut out = vec![b'['; depth];
    out.extend(std::iter::repeat_n(b']', depth));
    out
}

fn mutation(e: &InventoryEvent) -> BoxedStrategy<(Mutation, Expect)> {
    let t = e.event_type;
    let w = e.warehouse.clone();
    let drop_top = prop::sample::select(FIELDS.to_vec()).prop_map(move |f| {
        let expect = if required(f, t) {
            reject(f)
        } else {
            Expect::Accept
        };
        (Mutation::Drop(path(&[f])), expect)
    });
    let w1 = w.clone();
    let drop_nested = prop::sample::select(vec![
        "version",
        "warehouses",
        "on_hand",
        "reserved",
        "pending",
        "own",
    ])
    .prop_map(move |f| match f {
        "version" | "warehouses" => (Mutation::Drop(path(&["stock", f])), reject(f)),
        "own" => (
            Mutation::Drop(path(&["stock", "warehouses", &w1])),
            reject("stock.warehouses"),
        ),
        leaf => (
            Mutation::Drop(path(&["stock", "warehouses", &w1, leaf])),
            reject(leaf),
        ),
    });
    let string_fields = prop::sample::select(vec![
        "event_id",
        "type",
        "occurred_at",
        "sku",
        "warehouse",
        "order_id",
        "reservation_id",
        "reason",
    ]);
    let wrong_string = (string_fields.clone(), not_a_string())
        .prop_map(|(f, v)| (Mutation::Set(path(&[f]), v), Expect::Reject(f.to_owned())));
    let null_string = string_fields.clone().prop_map(move |f| {
        let expect = if required(f, t) {
            reject(f)
        } else {
            Expect::Accept
        };
        (Mutation::Set(path(&[f]), Value::Null), expect)
    });
    let bad_string = (string_fields, raw_bad_string())
        .prop_map(|(f, raw)| (Mutation::Raw(path(&[f]), raw), Expect::Reject(f.to_owned())));
    let w2 = w.clone();
    let int_paths = prop::sample::select(vec![
        "schema", "qty", "version", "on_hand", "reserved", "pending",
    ])
    .prop_map(move |f| match f {
        "schema" | "qty" => (path(&[f]), f),
        "version" => (path(&["stock", f]), f),
        leaf => (path(&["stock", "warehouses", &w2, leaf]), leaf),
    });
    let wrong_int = (int_paths.clone(), not_an_i64())
        .prop_map(|((p, f), v)| (Mutation::Set(p, v), Expect::Reject(f.to_owned())));
    let raw_int = (int_paths, raw_number_junk()).prop_map(|((p, f), (raw, in_value))| {
        let expect = if in_value {
            reject(f)
        } else {
            Expect::RejectAt
        };
        (Mutation::Raw(p, raw), expect)
    });
    let adjusted = t == EventType::Adjusted;
    let qty =
        prop_oneof![Just(0i64), i64::MIN..0, Just(i64::MIN), Just(i64::MAX)].prop_map(move |q| {
            let expect = match q {
                0 => reject("qty"),
                q if q < 0 && !adjusted => reject("qty"),
                _ => Expect::Accept,
            };
            (Mutation::Set(path(&["qty"]), json!(q)), expect)
        });
    let version = prop_oneof![Just(0i64), i64::MIN..=0].prop_map(|v| {
        (
            Mutation::Set(path(&["stock", "version"]), json!(v)),
            reject("stock.version"),
        )
    });
    let schema = prop_oneof![
        Just(0u64),
        2u64..=u64::from(u32::MAX),
        Just(u64::from(u32::MAX) + 1)
    ]
    .prop_map(|s| (Mutation::Set(path(&["schema"]), json!(s)), reject("schema")));
    let event_type = prop_oneof![
        "stock\\.[a-z]{1,10}",
        Just("STOCK.RECEIVED".to_owned()),
        Just("stock.received ".to_owned()),
        Just(String::new()),
    ]
    .prop_filter("not a real type", |s| s.parse::<EventType>().is_err())
    .prop_map(|s| (Mutation::Set(path(&["type"]), json!(s)), reject("type")));
    let bad_sku = prop_oneof![
        Just(String::new()),
        "[a-z]{256,300}",
        "[a-z]{0,3}[\\x00-\\x1f\\x7f][a-z]{0,3}",
        "é{128,130}",
    ]
    .prop_map(|s| (Mutation::Set(path(&["sku"]), json!(s)), reject("sku")));
    let bad_warehouse = prop_oneof![
        Just(String::new()),
        "[a-z]{65,70}",
        "[a-z]{0,3}[ .*/é\\x00][a-z]{0,3}",
    ]
    .prop_map(|s| {
        (
            Mutation::Set(path(&["warehouse"]), json!(s)),
            reject("warehouse"),
        )
    });
    let w3 = w.clone();
    let other_warehouse = warehouse()
        .prop_filter("not the event's", move |x| *x != w3)
        .prop_map(|x| {
            (
                Mutation::Set(path(&["warehouse"]), json!(x)),
                reject("warehouse"),
            )
        });
    let bad_ids = prop::sample::select(vec!["event_id", "reservation_id"]).prop_flat_map(|f| {
        prop_oneof![Just(String::new()), "[0-9a-g-]{1,40}", ".{0,10}"]
            .prop_filter("not a uuid", |s| Uuid::parse_str(s).is_err())
            .prop_map(move |s| (Mutation::Set(path(&[f]), json!(s)), reject(f)))
    });
    let reason = prop_oneof!["\\PC{1,64}", "\\PC{65,80}", Just(String::new())].prop_map(move |r| {
        let n = r.chars().count();
        let expect = match t {
            EventType::Released
                if ["expired", "cancelled", "order_cancelled"].contains(&r.as_str()) =>
            {
                Expect::Accept
            }
            EventType::Released => reject("reason"),
            EventType::Adjusted if n == 0 || n > 64 => reject("reason"),
            _ => Expect::Accept,
        };
        (Mutation::Set(path(&["reason"]), json!(r)), expect)
    });
    let timestamp = timestamp_text().prop_map(|s| {
        (
            Mutation::Set(path(&["occurred_at"]), json!(s)),
            Expect::Either("occurred_at".to_owned()),
        )
    });
    let deep_known = (
        prop::sample::select(vec!["sku", "qty", "stock"]),
        1usize..5000,
    )
        .prop_map(|(f, d)| (Mutation::Raw(path(&[f]), deep_array(d)), reject(f)));
    let pad = (-256isize..256).prop_map(|d| {
        (
            Mutation::PadTo(MAX_EVENT_BYTES.saturating_add_signed(d)),
            Expect::Accept,
        )
    });
    let nest =
        (1usize..20_000).prop_map(|d| (Mutation::Nest(d), Expect::Either("zz_nest".to_owned())));
    let arms = vec![
        (4, drop_top.boxed()),
        (4, drop_nested.boxed()),
        (4, wrong_string.boxed()),
        (2, null_string.boxed()),
        (4, bad_string.boxed()),
        (4, wrong_int.boxed()),
        (4, raw_int.boxed()),
        (3, qty.boxed()),
        (2, version.boxed()),
        (2, schema.boxed()),
        (2, event_type.boxed()),
        (3, bad_sku.boxed()),
        (2, bad_warehouse.boxed()),
        (2, other_warehouse.boxed()),
        (2, bad_ids.boxed()),
        (3, reason.boxed()),
        (4, timestamp.boxed()),
        (2, deep_known.boxed()),
        (1, pad.boxed()),
        (1, nest.boxed()),
    ];
    prop::strategy::Union::new_weighted(arms).boxed()
}

/// The event's JSON with `m` applied, as the bytes a consumer would receive.
pub fn apply(e: &InventoryEvent, m: &Mutation) -> Vec<u8> {
    const HOLE: &str = "\u{1}fuzz-hole\u{1}";
    let mut v: Value = serde_json::from_slice(&e.to_json()).expect("an event is JSON");
    let mut raw = None;
    match m {
        Mutation::Drop(p) => {
            let (last, parent) = p.split_last().expect("a path has a field");
            if let Some(obj) = at(&mut v, parent).and_then(Value::as_object_mut) {
                obj.remove(last);
            }
        }
        Mutation::Set(p, value) => *slot(&mut v, p) = value.clone(),
        Mutation::Raw(p, bytes) => {
            *slot(&mut v, p) = json!(HOLE);
            raw = Some(bytes.clone());
        }
        Mutation::PadTo(len) => {
            let size = e.to_json().len() + r#","zz_pad":"""#.len();
            v["zz_pad"] = json!("p".repeat(len.saturating_sub(size)));
        }
        Mutation::Nest(depth) => {
            v["zz_nest"] = json!(HOLE);
            raw = Some(deep_array(*depth));
        }
    }
    let bytes = serde_json::to_vec(&v).expect("a JSON value serializes");
    match raw {
        Some(raw) => splice(&bytes, &serde_json::to_vec(HOLE).expect("a string"), &raw),
        None => bytes,
    }
}

fn at<'a>(v: &'a mut Value, p: &[String]) -> Option<&'a mut Value> {
    p.iter().try_fold(v, |v, k| v.as_object_mut()?.get_mut(k))
}

/// The value at `p`, created (as null) when the event does not carry that field.
fn slot<'a>(v: &'a mut Value, p: &[String]) -> &'a mut Value {
    let (last, parent) = p.split_last().expect("a path has a field");
    at(v, parent)
        .and_then(Value::as_object_mut)
        .expect("mutations name fields of objects the event has")
        .entry(last.clone())
        .or_insert(Value::Null)
}

fn splice(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match haystack.windows(needle.len()).position(|w| w == needle) {
        Some(i) => [&haystack[..i], with, &haystack[i + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}
