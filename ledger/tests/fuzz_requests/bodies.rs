//! Request bodies for every write command, valid and broken: a valid template per command,
//! one mutation of it (a field dropped, retyped, out of range, not UTF-8, nested deep, an
//! unknown field, the body padded to the size limit), or arbitrary bytes and JSON — each
//! with what the ledger must answer.

use onhand_ledger::http::BODY_LIMIT_BYTES;
use proptest::prelude::*;
use serde_json::{Value, json};

pub use crate::values::json_value;
use crate::values::{Kind, RAW_JUNK, bad_values, wrong_types};

/// The SKU the HTTP fuzz seeds; templates write to it.
pub const SKU: &str = "FUZZ-A";
/// An open order with plenty left to ship, for the shipment template.
pub const SEED_ORDER: &str = "fuzz-seed-order";
pub const MAX_QTY: i64 = onhand_ledger::commands::fields::MAX_QTY;

/// The write commands, each reachable over HTTP and over JetStream ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Receipt,
    Adjustment,
    Reservation,
    Checkout,
    Release,
    Order,
    CancelOrder,
    Shipment,
}

impl Command {
    pub const ALL: [Command; 8] = [
        Command::Receipt,
        Command::Adjustment,
        Command::Reservation,
        Command::Checkout,
        Command::Release,
        Command::Order,
        Command::CancelOrder,
        Command::Shipment,
    ];

    /// The `<command>` of `ingest.<source>.<command>`.
    pub fn ingest_name(self) -> &'static str {
        match self {
            Command::Receipt => "receipt",
            Command::Adjustment => "adjustment",
            Command::Reservation => "reservation",
            Command::Checkout => "reservation_checkout",
            Command::Release => "reservation_release",
            Command::Order => "order",
            Command::CancelOrder => "order_cancel",
            Command::Shipment => "shipment",
        }
    }

    pub fn scope(self) -> &'static str {
        match self {
            Command::Receipt | Command::Adjustment | Command::Shipment => "stock:write",
            _ => "orders:write",
        }
    }
}

/// Where a command's input comes from: over HTTP the ids of checkout, release and cancel
/// are in the path and their body is `{}`; over ingest they are in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Http,
    Ingest,
}

/// A field of a command body: its name as the ledger reports it, where it sits, its kind.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    at: &'static [&'static str],
    kind: Kind,
    required: bool,
}

const fn field(
    name: &'static str,
    at: &'static [&'static str],
    kind: Kind,
    required: bool,
) -> Field {
    Field {
        name,
        at,
        kind,
        required,
    }
}

fn fields(command: Command, via: Via) -> Vec<Field> {
    use Kind::*;
    let line_sku = field("lines[0].sku", &["lines", "0", "sku"], Sku, true);
    let line_qty = field("lines[0].qty", &["lines", "0", "qty"], Qty, true);
    match (command, via) {
        (Command::Receipt, _) => vec![
            field("sku", &["sku"], Sku, true),
            field("warehouse", &["warehouse"], Warehouse, true),
            field("qty", &["qty"], Qty, true),
            field("reference", &["reference"], Text(256), false),
        ],
        (Command::Adjustment, _) => vec![
            field("sku", &["sku"], Sku, true),
            field("warehouse", &["warehouse"], Warehouse, true),
            field("delta", &["delta"], Delta, true),
            field("reason", &["reason"], Name, true),
        ],
        (Command::Reservation, _) => vec![
            field("sku", &["sku"], Sku, true),
            field("qty", &["qty"], Qty, true),
            field("order_id", &["order_id"], Text(128), true),
            field("kind", &["kind"], CartOrCheckout, true),
            field("warehouse", &["warehouse"], Warehouse, false),
            field("ttl_secs", &["ttl_secs"], Ttl, false),
        ],
        (Command::Order, _) => vec![
            field("order_id", &["order_id"], Text(128), true),
            field("channel", &["channel"], Name, true),
            field("lines", &["lines"], Lines, true),
            line_sku,
            line_qty,
            field(
                "lines[0].warehouse",
                &["lines", "0", "warehouse"],
                Warehouse,
                false,
            ),
            field(
                "lines[0].reservation_id",
                &["lines", "0", "reservation_id"],
                Uuid,
                false,
            ),
        ],
        (Command::Shipment, _) => vec![
            field("order_id", &["order_id"], Text(128), true),
            field("lines", &["lines"], Lines, true),
            line_sku,
            field(
                "lines[0].warehouse",
                &["lines", "0", "warehouse"],
                Warehouse,
                true,
            ),
            line_qty,
        ],
        (Command::Checkout | Command::Release | Command::CancelOrder, Via::Http) => vec![],
        (Command::Checkout | Command::Release, Via::Ingest) => {
            vec![field("reservation_id", &["reservation_id"], Uuid, true)]
        }
        (Command::CancelOrder, Via::Ingest) => {
            vec![field("order_id", &["order_id"], Text(128), true)]
        }
    }
}

/// A valid body; `n` makes its order ids unique.
pub fn template(command: Command, via: Via, n: u64) -> Value {
    let order_id = format!("fuzz-order-{n}");
    match (command, via) {
        (Command::Receipt, _) => {
            json!({"sku": SKU, "warehouse": "ams-1", "qty": 1, "reference": format!("asn-{n}")})
        }
        (Command::Adjustment, _) => {
            json!({"sku": SKU, "warehouse": "ams-1", "delta": 1, "reason": "cycle_count"})
        }
        (Command::Reservation, _) => json!({
            "sku": SKU, "qty": 1, "order_id": order_id, "kind": "cart",
            "warehouse": "ams-1", "ttl_secs": 600
        }),
        (Command::Order, _) => json!({
            "order_id": order_id, "channel": "shopify",
            "lines": [{"sku": SKU, "qty": 1, "warehouse": "ams-1"}]
        }),
        (Command::Shipment, _) => json!({
            "order_id": SEED_ORDER,
            "lines": [{"sku": SKU, "warehouse": "ams-1", "qty": 1}]
        }),
        (Command::Checkout | Command::Release | Command::CancelOrder, Via::Http) => json!({}),
        (Command::Checkout | Command::Release, Via::Ingest) => {
            json!({"reservation_id": uuid::Uuid::from_u128(u128::from(n)).to_string()})
        }
        (Command::CancelOrder, Via::Ingest) => json!({"order_id": order_id}),
    }
}

/// What the ledger must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Anything but a server error (a valid body may still meet a state conflict).
    Any,
    /// A 4xx error whose `field` is this one.
    Field(String),
    /// A 4xx error (a syntax error in the JSON: the message says what, not where).
    Rejected,
    /// 413.
    TooLarge,
}

/// A body to send, what was done to it, and the expected answer.
#[derive(Debug, Clone)]
pub struct Body {
    pub command: Command,
    pub what: String,
    pub bytes: Vec<u8>,
    pub expect: Expect,
}

/// Bodies for `command` arriving `via`; `n` keeps ids unique.
pub fn body(command: Command, via: Via) -> BoxedStrategy<Body> {
    let mutated = (any::<u64>(), mutation(command, via)).prop_map(move |(n, m)| {
        let mut v = template(command, via, n);
        let mut raw = None;
        for edit in &m.edits {
            apply(&mut v, edit, &mut raw);
        }
        let bytes = serde_json::to_vec(&v).expect("JSON serializes");
        let bytes = match raw {
            Some(raw) => splice(&bytes, &serde_json::to_vec(HOLE).expect("a string"), &raw),
            None => bytes,
        };
        // Over HTTP the body limit comes first; ingest messages are bounded by NATS instead.
        let expect = match m.expect {
            Expect::Field(_) | Expect::Rejected
                if via == Via::Http && bytes.len() > BODY_LIMIT_BYTES =>
            {
                Expect::TooLarge
            }
            other => other,
        };
        Body {
            command,
            what: m.what,
            bytes,
            expect,
        }
    });
    let whole = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| (b, "arbitrary bytes")),
        json_value().prop_map(|v| (v.to_string().into_bytes(), "arbitrary JSON")),
        prop::sample::select(vec![
            "[1,2]",
            "\"x\"",
            "1",
            "null",
            "{",
            "{}}",
            "{\"sku\":}",
            "\u{feff}{}"
        ])
        .prop_map(|s| (s.as_bytes().to_vec(), "not an object")),
    ]
    .prop_map(move |(bytes, what)| Body {
        command,
        what: what.to_owned(),
        expect: Expect::Any,
        bytes,
    });
    prop_oneof![4 => mutated, 1 => whole].boxed()
}

const HOLE: &str = "\u{1}fuzz-hole\u{1}";

#[derive(Debug, Clone)]
enum Edit {
    Drop(&'static [&'static str]),
    Set(Vec<String>, Value),
    /// Raw bytes in place of the value (at most one per body).
    Raw(&'static [&'static str], Vec<u8>),
}

#[derive(Debug, Clone)]
struct Mutation {
    what: String,
    edits: Vec<Edit>,
    expect: Expect,
}

fn owned(at: &[&str]) -> Vec<String> {
    at.iter().map(|s| (*s).to_owned()).collect()
}

fn set(f: Field, value: Value, expect: Expect) -> Mutation {
    Mutation {
        what: format!("{} = {value}", f.name),
        edits: vec![Edit::Set(owned(f.at), value)],
        expect,
    }
}

fn named(f: Field) -> Expect {
    Expect::Field(f.name.to_owned())
}

fn mutation(command: Command, via: Via) -> BoxedStrategy<Mutation> {
    let fields = fields(command, via);
    let mut arms: Vec<BoxedStrategy<Mutation>> = Vec::new();
    let unknown =
        prop::sample::select(vec!["colour", "Sku", "qty ", "__proto__", "é"]).prop_map(|name| {
            Mutation {
                what: format!("unknown field {name:?}"),
                edits: vec![Edit::Set(vec![name.to_owned()], json!(1))],
                expect: Expect::Field(name.to_owned()),
            }
        });
    arms.push(unknown.boxed());
    // The body padded with an unknown field to around the body limit: 413 beyond it.
    let pad = (-600isize..600).prop_map(move |d| {
        let len = BODY_LIMIT_BYTES.saturating_add_signed(d);
        Mutation {
            what: format!("padded to about {len} bytes"),
            edits: vec![Edit::Set(vec!["zz_pad".to_owned()], json!("p".repeat(len)))],
            expect: Expect::Field("zz_pad".to_owned()),
        }
    });
    arms.push(pad.boxed());
    if fields.is_empty() {
        return prop::strategy::Union::new(arms).boxed();
    }
    let pick = prop::sample::select(fields);
    arms.push(
        pick.clone()
            .prop_map(|f| Mutation {
                what: format!("{} dropped", f.name),
                edits: vec![Edit::Drop(f.at)],
                expect: if f.required { named(f) } else { Expect::Any },
            })
            .boxed(),
    );
    arms.push(
        pick.clone()
            .prop_flat_map(|f| {
                prop::sample::select(wrong_types(f.kind)).prop_map(move |v| set(f, v, named(f)))
            })
            .boxed(),
    );
    arms.push(
        pick.clone()
            .prop_map(|f| {
                set(
                    f,
                    Value::Null,
                    if f.required { named(f) } else { Expect::Any },
                )
            })
            .boxed(),
    );
    arms.push(
        pick.clone()
            .prop_flat_map(|f| {
                prop::sample::select(bad_values(f.kind)).prop_map(move |v| set(f, v, named(f)))
            })
            .boxed(),
    );
    arms.push(
        (pick.clone(), prop::sample::select(RAW_JUNK.to_vec()))
            .prop_map(|(f, raw)| Mutation {
                what: format!("{} = raw {:?}", f.name, String::from_utf8_lossy(raw)),
                edits: vec![Edit::Raw(f.at, raw.to_vec())],
                expect: Expect::Rejected,
            })
            .boxed(),
    );
    arms.push(
        (pick.clone(), 1usize..10_000)
            .prop_map(|(f, depth)| {
                let mut raw = vec![b'['; depth];
                raw.extend(std::iter::repeat_n(b']', depth));
                Mutation {
                    what: format!("{} nested {depth} deep", f.name),
                    edits: vec![Edit::Raw(f.at, raw)],
                    expect: if f.kind == Kind::Lines {
                        Expect::Rejected
                    } else {
                        named(f)
                    },
                }
            })
            .boxed(),
    );
    if command == Command::Adjustment {
        // A counted on_hand instead of the delta.
        let counted = prop_oneof![
            Just(-1i64),
            Just(MAX_QTY + 1),
            Just(i64::MIN),
            Just(i64::MAX),
            0..=MAX_QTY
        ]
        .prop_map(|on_hand| Mutation {
            what: format!("on_hand {on_hand} instead of delta"),
            edits: vec![
                Edit::Drop(&["delta"]),
                Edit::Set(owned(&["on_hand"]), json!(on_hand)),
            ],
            expect: if (0..=MAX_QTY).contains(&on_hand) {
                Expect::Any
            } else {
                Expect::Field("on_hand".to_owned())
            },
        });
        arms.push(counted.boxed());
    }
    if matches!(command, Command::Order | Command::Shipment) {
        let line = template(command, via, 0)["lines"][0].clone();
        let many = (501usize..600).prop_map(move |n| Mutation {
            what: format!("{n} lines"),
            edits: vec![Edit::Set(owned(&["lines"]), json!(vec![line.clone(); n]))],
            expect: Expect::Field("lines".to_owned()),
        });
        let line_extra = Just(Mutation {
            what: "unknown field in a line".to_owned(),
            edits: vec![Edit::Set(owned(&["lines", "0", "colour"]), json!("red"))],
            expect: Expect::Field("lines[0].colour".to_owned()),
        });
        arms.push(many.boxed());
        arms.push(line_extra.boxed());
    }
    prop::strategy::Union::new(arms).boxed()
}

fn at<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Object(m) => m.get_mut(k),
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    })
}

fn apply(v: &mut Value, edit: &Edit, raw: &mut Option<Vec<u8>>) {
    let (path, value) = match edit {
        Edit::Drop(p) => {
            let p = owned(p);
            let (last, parent) = p.split_last().expect("a path names a field");
            if let Some(Value::Object(m)) = at(v, parent) {
                m.remove(last);
            }
            return;
        }
        Edit::Set(p, value) => (p.clone(), value.clone()),
        Edit::Raw(p, bytes) => {
            *raw = Some(bytes.clone());
            (owned(p), json!(HOLE))
        }
    };
    let (last, parent) = path.split_last().expect("a path names a field");
    if let Some(Value::Object(m)) = at(v, parent) {
        m.insert(last.clone(), value);
    }
}

fn splice(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match haystack.windows(needle.len()).position(|w| w == needle) {
        Some(i) => [&haystack[..i], with, &haystack[i + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}
