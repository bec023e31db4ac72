//! Values that break a body field — out of range, of the wrong JSON type, not JSON or not
//! UTF-8 — by the kind of field, and arbitrary JSON.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::bodies::{MAX_QTY, SKU};

/// What a body field holds, which decides how it can be broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sku,
    Warehouse,
    Qty,
    Delta,
    Text(usize),
    Name,
    CartOrCheckout,
    Ttl,
    Lines,
    Uuid,
}

impl Kind {
    pub fn is_integer(self) -> bool {
        matches!(self, Kind::Qty | Kind::Delta | Kind::Ttl)
    }
}

/// Out-of-range or malformed values of the right JSON type for a field of this kind.
pub fn bad_values(kind: Kind) -> Vec<Value> {
    let text = |max: usize| {
        vec![
            json!(""),
            json!("x".repeat(max + 1)),
            json!("a\u{0}b"),
            json!("a\nb"),
            json!("é".repeat(max + 1)),
        ]
    };
    match kind {
        Kind::Sku => vec![
            json!(""),
            json!("x".repeat(256)),
            json!("a\u{7}b"),
            json!("é".repeat(128)),
        ],
        Kind::Warehouse => vec![
            json!(""),
            json!("ams 1"),
            json!("ams.1"),
            json!("x".repeat(65)),
            json!("ämš"),
            json!("lon-9"),
        ],
        Kind::Qty => vec![
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(MAX_QTY + 1),
            json!(i64::MAX),
        ],
        Kind::Delta => vec![
            json!(0),
            json!(MAX_QTY + 1),
            json!(-MAX_QTY - 1),
            json!(i64::MIN),
            json!(i64::MAX),
        ],
        Kind::Text(max) => text(max),
        Kind::Name => vec![
            json!(""),
            json!("Cycle"),
            json!("a b"),
            json!("x".repeat(65)),
            json!("é"),
        ],
        Kind::CartOrCheckout => vec![json!("wishlist"), json!("Cart"), json!(""), json!("cart ")],
        Kind::Ttl => vec![
            json!(0),
            json!(-1),
            json!(86_401),
            json!(i64::MIN),
            json!(i64::MAX),
        ],
        Kind::Lines => vec![json!([])],
        Kind::Uuid => vec![
            json!(""),
            json!("not-a-uuid"),
            json!("0193a1b2"),
            json!("0193a1b2-0000-7000-8000-00000000000g"),
        ],
    }
}

/// Values of the wrong JSON type for a field of this kind.
pub fn wrong_types(kind: Kind) -> Vec<Value> {
    let mut out = vec![json!(true), json!({"a": 1})];
    if kind.is_integer() {
        out.extend([
            json!([1]),
            json!("1"),
            json!(1.5),
            json!(1e300),
            json!(u64::MAX),
        ]);
    } else if kind == Kind::Lines {
        // (An array of wrong lines is named by the line: `lines[0]`.)
        out.extend([json!("x"), json!({}), json!(1)]);
    } else {
        out.extend([json!(["x"]), json!(1), json!(-1.5)]);
    }
    out
}

/// Raw tokens that are not a JSON value of any kind, or not UTF-8.
pub const RAW_JUNK: [&[u8]; 12] = [
    b"1e400",
    b"-1e400",
    b"01",
    b"+1",
    b"NaN",
    b"\"ab\xffcd\"",
    b"\"\x80\"",
    b"\"\xe2\x82\"",
    b"\"a\\xb\"",
    b"\"\\ud800\"",
    b"\"a\x01b\"",
    b"",
];

/// Arbitrary JSON, a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,16}".prop_map(Value::String),
        Just(json!(SKU)),
        Just(json!("ams-1")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(vec![
                "sku",
                "qty",
                "warehouse",
                "order_id",
                "lines",
                "kind",
                "delta",
                "reason"
            ])
            .prop_map(str::to_owned),
            ".{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
