//! Conformance of the Rust event types with the published JSON Schema
//! (`streams/schema/inventory-event.v1.schema.json`): what we write validates, and the
//! schema rejects what `decode_event` rejects.

use serde_json::{Value, json};

use crate::event::tests::sample;
use crate::event::{EventType, decode_event};

const SCHEMA: &str = include_str!("../../streams/schema/inventory-event.v1.schema.json");

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn sample_json(t: EventType) -> Value {
    serde_json::from_slice(&sample(t).to_json()).expect("event serializes to JSON")
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

#[test]
fn every_event_type_validates() {
    let v = validator();
    for t in EventType::ALL {
        let instance = sample_json(t);
        assert_eq!(errors(&v, &instance), Vec::<String>::new(), "{t}");
    }
}

#[test]
fn unknown_fields_are_allowed() {
    let mut instance = sample_json(EventType::Received);
    instance["added_in_v1_1"] = json!({"anything": true});
    assert!(validator().is_valid(&instance));
    assert!(decode_event(instance.to_string().as_bytes()).is_ok());
}

#[test]
fn invalid_events_are_rejected_by_schema_and_decoder() {
    let v = validator();
    type Mutation = fn(&mut Value);
    let cases: &[(&str, EventType, Mutation)] = &[
        ("missing stock", EventType::Received, |e| {
            e.as_object_mut().expect("object").remove("stock");
        }),
        ("bad type", EventType::Received, |e| {
            e["type"] = json!("stock.teleported");
        }),
        ("qty 0", EventType::Received, |e| e["qty"] = json!(0)),
        ("negative qty", EventType::Shipped, |e| e["qty"] = json!(-2)),
        ("adjusted by 0", EventType::Adjusted, |e| {
            e["qty"] = json!(0)
        }),
        ("adjusted without reason", EventType::Adjusted, |e| {
            e.as_object_mut().expect("object").remove("reason");
        }),
        ("adjusted reason too long", EventType::Adjusted, |e| {
            e["reason"] = json!("x".repeat(65));
        }),
        ("reserved without reservation", EventType::Reserved, |e| {
            e.as_object_mut().expect("object").remove("reservation_id");
        }),
        ("released for no reason", EventType::Released, |e| {
            e["reason"] = json!("bored");
        }),
        ("shipped without order", EventType::Shipped, |e| {
            e.as_object_mut().expect("object").remove("order_id");
        }),
        ("schema 2", EventType::Received, |e| e["schema"] = json!(2)),
        ("version 0", EventType::Received, |e| {
            e["stock"]["version"] = json!(0);
        }),
        ("empty sku", EventType::Received, |e| e["sku"] = json!("")),
        ("control character in sku", EventType::Received, |e| {
            e["sku"] = json!("A\u{7}B");
        }),
        ("bad warehouse", EventType::Received, |e| {
            e["warehouse"] = json!("ams 1");
        }),
        ("bad event id", EventType::Received, |e| {
            e["event_id"] = json!("not-a-uuid");
        }),
        ("bad timestamp", EventType::Received, |e| {
            e["occurred_at"] = json!("yesterday");
        }),
        (
            "warehouse stock without pending",
            EventType::Received,
            |e| {
                e["stock"]["warehouses"]["ams-1"]
                    .as_object_mut()
                    .expect("object")
                    .remove("pending");
            },
        ),
    ];
    for (what, t, mutate) in cases {
        let mut instance = sample_json(*t);
        mutate(&mut instance);
        assert!(!v.is_valid(&instance), "schema accepted: {what}");
        assert!(
            decode_event(instance.to_string().as_bytes()).is_err(),
            "decoder accepted: {what}"
        );
    }
}

#[test]
fn design_example_validates() {
    let example = json!({
        "schema": 1,
        "event_id": "0193a1b2-0000-7000-8000-000000000001",
        "type": "stock.reserved",
        "occurred_at": "2026-11-26T10:00:00.123456Z",
        "sku": "TSHIRT-RED-M",
        "warehouse": "ams-1",
        "qty": 2,
        "order_id": "web-1001",
        "reservation_id": "0193a1b2-0000-7000-8000-0000000000aa",
        "stock": {
            "version": 42,
            "warehouses": {
                "ams-1": {"on_hand": 10, "reserved": 2, "pending": 1},
                "nyc-1": {"on_hand": 4, "reserved": 0, "pending": 0}
            }
        }
    });
    assert_eq!(errors(&validator(), &example), Vec::<String>::new());
    assert!(decode_event(example.to_string().as_bytes()).is_ok());
}
