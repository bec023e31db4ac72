//! The inventory event contract (schema v1): what the ledger publishes on
//! `inventory.sku.<token>` and every projector and the reconciler read.
//!
//! Each event carries the SKU's whole state after the change, so a consumer needs no
//! other state; a higher `stock.version` supersedes everything before it. Unknown JSON
//! fields are ignored on read. [`decode_event`] is the one way to read a payload: it
//! parses and then applies [`InventoryEvent::validate`]. The JSON Schema twin of this
//! module is `streams/schema/inventory-event.v1.schema.json`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::sku::Sku;
pub use crate::stock::{StockState, WarehouseStock};
pub use crate::timestamp::now_micros;
use crate::warehouse::validate_warehouse;

/// The payload schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Subject prefix of the `INVENTORY` stream; the SKU token follows.
pub const INVENTORY_SUBJECT_PREFIX: &str = "inventory.sku.";
/// Message header naming the event type (`stock.reserved`, ...).
pub const HEADER_EVENT_TYPE: &str = "Onhand-Event-Type";
/// W3C trace context header.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// JetStream dedupe header; set to the event id.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// Dead letters (`INVENTORY_DLQ`, subject `inventory.dlq.<consumer>`): the original payload
/// (cut to [`DLQ_MAX_PAYLOAD`] bytes) with these headers.
pub const DLQ_SUBJECT_PREFIX: &str = "inventory.dlq.";
/// Why it was dead-lettered (always set).
pub const HEADER_DLQ_REASON: &str = "Onhand-Dlq-Reason";
/// The subject the message was on.
pub const HEADER_DLQ_SUBJECT: &str = "Onhand-Original-Subject";
/// Its sequence in the stream it came from (projector dead letters).
pub const HEADER_DLQ_SEQUENCE: &str = "Onhand-Original-Seq";
/// The channel's own error code, when a channel refused the push.
pub const HEADER_DLQ_CODE: &str = "Onhand-Dlq-Code";
/// Set when the payload was cut: the original length in bytes.
pub const HEADER_DLQ_TRUNCATED: &str = "Onhand-Dlq-Truncated";
/// Most payload bytes a dead letter keeps.
pub const DLQ_MAX_PAYLOAD: usize = 64 * 1024;

/// Largest event payload a consumer accepts; a v1 event is far smaller (a few hundred
/// bytes per warehouse), so anything bigger is not one.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Longest accepted `reason` on an adjustment, in characters.
pub const MAX_ADJUST_REASON_CHARS: usize = 64;

/// What happened to the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// Units arrived (`on_hand` up).
    #[serde(rename = "stock.received")]
    Received,
    /// Signed correction of `on_hand` (cycle count, damage, ...).
    #[serde(rename = "stock.adjusted")]
    Adjusted,
    /// A reservation was taken (`reserved` up).
    #[serde(rename = "stock.reserved")]
    Reserved,
    /// A reservation or pending order was released (expired, cancelled).
    #[serde(rename = "stock.released")]
    Released,
    /// An order was placed (`reserved` or nothing → `pending`).
    #[serde(rename = "stock.committed")]
    Committed,
    /// An order shipped (`pending` and `on_hand` down).
    #[serde(rename = "stock.shipped")]
    Shipped,
}

impl EventType {
    /// Every event type, in contract order.
    pub const ALL: [EventType; 6] = [
        EventType::Received,
        EventType::Adjusted,
        EventType::Reserved,
        EventType::Released,
        EventType::Committed,
        EventType::Shipped,
    ];

    /// The wire name, e.g. `stock.reserved`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Received => "stock.received",
            EventType::Adjusted => "stock.adjusted",
            EventType::Reserved => "stock.reserved",
            EventType::Released => "stock.released",
            EventType::Committed => "stock.committed",
            EventType::Shipped => "stock.shipped",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| EventError::UnknownEventType {
                value: s.to_owned(),
            })
    }
}

/// Why a reservation or pending order was released (`reason` of `stock.released`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The reservation's TTL ran out (emitted by the sweeper).
    Expired,
    /// The client cancelled the reservation.
    Cancelled,
    /// A pending order was cancelled.
    OrderCancelled,
}

impl ReleaseReason {
    /// The wire name, e.g. `order_cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::Expired => "expired",
            ReleaseReason::Cancelled => "cancelled",
            ReleaseReason::OrderCancelled => "order_cancelled",
        }
    }
}

impl fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReleaseReason {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ReleaseReason::Expired,
            ReleaseReason::Cancelled,
            ReleaseReason::OrderCancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or(EventError::InvalidField {
            field: "reason",
            reason: "a release reason is expired, cancelled or order_cancelled".to_owned(),
        })
    }
}

/// One inventory event (schema v1). See DESIGN.md §3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEvent {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// UUIDv7; also the `Nats-Msg-Id` dedupe key.
    pub event_id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened (UTC, microseconds).
    #[serde(with = "crate::timestamp::rfc3339_micros")]
    pub occurred_at: OffsetDateTime,
    /// The SKU.
    pub sku: Sku,
    /// The warehouse the change applies to.
    pub warehouse: String,
    /// Units, > 0; for `stock.adjusted` the signed, non-zero delta.
    pub qty: i64,
    /// The order, for reserved / released / committed / shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The reservation, for reserved / released / committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<Uuid>,
    /// Released: a [`ReleaseReason`]; adjusted: free text such as `cycle_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The SKU's whole state after this event.
    pub stock: StockState,
}

impl InventoryEvent {
    /// Checks the per-type rules of the contract beyond what the types enforce.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.schema != SCHEMA_VERSION {
            return Err(EventError::UnsupportedSchema { found: self.schema });
        }
        let invalid = |field, reason: &str| EventError::InvalidField {
            field,
            reason: reason.to_owned(),
        };
        let missing = |field| EventError::MissingField {
            field,
            event_type: self.event_type,
        };
        validate_warehouse(&self.warehouse).map_err(|e| EventError::InvalidField {
            field: "warehouse",
            reason: e.to_string(),
        })?;
        match self.event_type {
            EventType::Adjusted if self.qty == 0 => {
                return Err(invalid("qty", "an adjustment's delta must not be 0"));
            }
            EventType::Adjusted => {}
            _ if self.qty <= 0 => return Err(invalid("qty", "must be greater than 0")),
            _ => {}
        }
        let order_id = self.order_id.as_deref().filter(|s| !s.is_empty());
        let reason = self.reason.as_deref().filter(|s| !s.is_empty());
        match self.event_type {
            EventType::Received | EventType::Committed => {}
            EventType::Reserved => {
                order_id.ok_or_else(|| missing("order_id"))?;
                self.reservation_id
                    .ok_or_else(|| missing("reservation_id"))?;
            }
            EventType::Released => {
                reason
                    .ok_or_else(|| missing("reason"))?
                    .parse::<ReleaseReason>()?;
            }
            EventType::Shipped => {
                order_id.ok_or_else(|| missing("order_id"))?;
            }
            EventType::Adjusted => {
                let reason = reason.ok_or_else(|| missing("reason"))?;
                if reason.chars().count() > MAX_ADJUST_REASON_CHARS {
                    return Err(invalid("reason", "must be at most 64 characters"));
                }
            }
        }
        if self.stock.version <= 0 {
            return Err(invalid("stock.version", "must be greater than 0"));
        }
        if !self.stock.warehouses.contains_key(&self.warehouse) {
            return Err(invalid(
                "stock.warehouses",
                "must contain the event's warehouse",
            ));
        }
        Ok(())
    }

    /// The subject this event is published on: `inventory.sku.<token>`.
    pub fn subject(&self) -> String {
        self.sku.subject()
    }

    /// The release reason of a `stock.released` event, if it has a valid one.
    pub fn release_reason(&self) -> Option<ReleaseReason> {
        self.reason.as_deref()?.parse().ok()
    }

    /// The JSON payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("invariant: an InventoryEvent has string map keys and always serializes")
    }
}

/// Why an event payload was rejected.
#[derive(Debug, Error)]
pub enum EventError {
    /// Not JSON, or not the v1 shape. `path` is the field being read when it failed
    /// (`qty`, `stock.warehouses.ams-1.on_hand`); absent at the top level, where serde's
    /// message names a missing field itself.
    #[error("event payload is not a valid v1 event: {}{source}", at_field(.path.as_deref()))]
    Json {
        /// The offending field's JSON path, when inside the event.
        path: Option<String>,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// `schema` is not [`SCHEMA_VERSION`].
    #[error("event schema {found} is not supported (this build reads schema 1)")]
    UnsupportedSchema {
        /// The schema version found.
        found: u32,
    },
    /// A field this event type requires is absent or empty.
    #[error("event field `{field}` is required for {event_type} events")]
    MissingField {
        /// The field name.
        field: &'static str,
        /// The event's type.
        event_type: EventType,
    },
    /// A field has a value the contract does not allow.
    #[error("event field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field name (dotted for nested fields).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An event type name that is not part of the contract.
    #[error("unknown event type {value:?}")]
    UnknownEventType {
        /// The rejected name.
        value: String,
    },
}

impl EventError {
    /// The offending field, when known.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EventError::Json { .. } => None,
            EventError::UnsupportedSchema { .. } => Some("schema"),
            EventError::MissingField { field, .. } | EventError::InvalidField { field, .. } => {
                Some(field)
            }
            EventError::UnknownEventType { .. } => Some("type"),
        }
    }
}

fn at_field(path: Option<&str>) -> String {
    path.map(|p| format!("field `{p}`: ")).unwrap_or_default()
}

/// `serde_json::from_slice`, with the path of the field that failed.
fn from_json(bytes: &[u8]) -> Result<InventoryEvent, EventError> {
    // The fast path first: tracking the path costs as much again as the parse itself, and
    // every event a projector receives goes through here. Only a payload that fails is
    // parsed a second time, to name the field.
    if let Ok(event) = serde_json::from_slice(bytes) {
        return Ok(event);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let event = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        // `.` is the top level, `?` between fields (a syntax error after a value).
        let path = err.path().to_string();
        EventError::Json {
            path: (path != "." && path != "?").then_some(path),
            source: err.into_inner(),
        }
    })?;
    de.end()
        .map_err(|source| EventError::Json { path: None, source })?;
    Ok(event)
}

/// Parses and validates an event payload.
pub fn decode_event(bytes: &[u8]) -> Result<InventoryEvent, EventError> {
    // The common shape in one pass; serde_json for anything else, and to name a problem.
    let decoded = match crate::event_fast::decode(bytes) {
        Some(event) => Ok(event),
        None => from_json(bytes),
    };
    let event = match decoded {
        Ok(event) => event,
        Err(err) => {
            // A future schema may not fit the v1 shape: say so rather than name a field.
            #[derive(Deserialize)]
            struct Probe {
                schema: u32,
            }
            if let Ok(Probe { schema }) = serde_json::from_slice::<Probe>(bytes)
                && schema != SCHEMA_VERSION
            {
                return Err(EventError::UnsupportedSchema { found: schema });
            }
            return Err(err);
        }
    };
    event.validate()?;
    Ok(event)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use time::macros::datetime;

    /// A valid sample event of each type (used by the schema tests too).
    pub(crate) fn sample(event_type: EventType) -> InventoryEvent {
        let mut e = InventoryEvent {
            schema: SCHEMA_VERSION,
            event_id: Uuid::parse_str("0193a1b2-0000-7000-8000-000000000001").expect("uuid"),
            event_type,
            occurred_at: datetime!(2026-11-26 10:00:00.123456 UTC),
            sku: Sku::parse("TSHIRT-RED-M").expect("sku"),
            warehouse: "ams-1".to_owned(),
            qty: 2,
            order_id: None,
            reservation_id: None,
            reason: None,
            stock: StockState {
                version: 42,
                warehouses: BTreeMap::from([
                    (
                        "ams-1".to_owned(),
                        WarehouseStock {
                            on_hand: 10,
                            reserved: 2,
                            pending: 1,
                        },
                    ),
                    (
                        "nyc-1".to_owned(),
                        WarehouseStock {
                            on_hand: 4,
                            reserved: 0,
                            pending: 0,
                        },
                    ),
                ]),
            },
        };
        let reservation =
            Some(Uuid::parse_str("0193a1b2-0000-7000-8000-0000000000aa").expect("uuid"));
        match event_type {
            EventType::Received => {}
            EventType::Adjusted => {
                e.qty = -3;
                e.reason = Some("cycle_count".to_owned());
            }
            EventType::Reserved => {
                e.order_id = Some("web-1001".to_owned());
                e.reservation_id = reservation;
            }
            EventType::Released => {
                e.order_id = Some("web-1001".to_owned());
                e.reservation_id = reservation;
                e.reason = Some("expired".to_owned());
            }
            EventType::Committed => {
                e.order_id = Some("web-1001".to_owned());
                e.reservation_id = reservation;
            }
            EventType::Shipped => e.order_id = Some("web-1001".to_owned()),
        }
        e
    }

    #[test]
    fn samples_round_trip_and_validate() {
        for t in EventType::ALL {
            let e = sample(t);
            assert_eq!(e.validate().map_err(|e| e.to_string()), Ok(()), "{t}");
            let decoded = decode_event(&e.to_json()).expect("round trip");
            assert_eq!(decoded, e);
        }
    }

    #[test]
    fn wire_format_matches_the_contract() {
        let v: serde_json::Value =
            serde_json::from_slice(&sample(EventType::Reserved).to_json()).expect("json");
        assert_eq!(v["type"], "stock.reserved");
        assert_eq!(v["occurred_at"], "2026-11-26T10:00:00.123456Z");
        assert_eq!(v["event_id"], "0193a1b2-0000-7000-8000-000000000001");
        assert_eq!(v["stock"]["warehouses"]["ams-1"]["reserved"], 2);
        assert!(v.get("reason").is_none(), "None fields are omitted");
    }

    #[test]
    fn decodes_the_design_example_with_unknown_fields() {
        let json = br#"{
            "schema": 1, "event_id": "0193a1b2-0000-7000-8000-000000000001",
            "type": "stock.reserved", "occurred_at": "2026-11-26T10:00:00.123456Z",
            "sku": "TSHIRT-RED-M", "warehouse": "ams-1", "qty": 2,
            "order_id": "web-1001", "reservation_id": "0193a1b2-0000-7000-8000-0000000000aa",
            "future_field": {"x": 1},
            "stock": {"version": 42, "warehouses": {
                "ams-1": {"on_hand": 10, "reserved": 2, "pending": 1},
                "nyc-1": {"on_hand": 4, "reserved": 0, "pending": 0}}}
        }"#;
        let e = decode_event(json).expect("valid");
        assert_eq!(e, sample(EventType::Reserved));
        assert_eq!(e.stock.available_total(), 11);
        assert_eq!(e.subject(), "inventory.sku.TSHIRT-RED-M");
    }

    fn rejects(e: InventoryEvent, field: &str) {
        let err = decode_event(&e.to_json()).expect_err("should be rejected");
        assert_eq!(err.field(), Some(field), "{err}");
    }

    #[test]
    fn per_type_rules() {
        let mut e = sample(EventType::Received);
        e.qty = 0;
        rejects(e, "qty");
        let mut e = sample(EventType::Shipped);
        e.qty = -1;
        rejects(e, "qty");
        let mut e = sample(EventType::Adjusted);
        e.qty = 0;
        rejects(e, "qty");
        let mut e = sample(EventType::Adjusted);
        e.reason = None;
        rejects(e, "reason");
        let mut e = sample(EventType::Adjusted);
        e.reason = Some("x".repeat(65));
        rejects(e, "reason");
        let mut e = sample(EventType::Reserved);
        e.reservation_id = None;
        rejects(e, "reservation_id");
        let mut e = sample(EventType::Reserved);
        e.order_id = Some(String::new());
        rejects(e, "order_id");
        let mut e = sample(EventType::Released);
        e.reason = Some("bored".to_owned());
        rejects(e, "reason");
        let mut e = sample(EventType::Shipped);
        e.order_id = None;
        rejects(e, "order_id");
        let mut e = sample(EventType::Received);
        e.stock.version = 0;
        rejects(e, "stock.version");
        let mut e = sample(EventType::Received);
        e.warehouse = "lon-1".to_owned();
        rejects(e, "stock.warehouses");
        let mut e = sample(EventType::Received);
        e.warehouse = "lon 1".to_owned();
        rejects(e, "warehouse");
        let mut e = sample(EventType::Received);
        e.schema = 2;
        rejects(e, "schema");
    }

    #[test]
    fn released_without_reservation_is_fine() {
        for reason in ["expired", "cancelled", "order_cancelled"] {
            let mut e = sample(EventType::Released);
            e.reservation_id = None;
            e.reason = Some(reason.to_owned());
            assert!(e.validate().is_ok(), "{reason}");
            assert_eq!(e.release_reason().map(ReleaseReason::as_str), Some(reason));
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&sample(EventType::Received).to_json()).expect("json");
        v.as_object_mut().expect("object").remove("stock");
        let err = decode_event(v.to_string().as_bytes()).expect_err("no stock");
        assert!(err.to_string().contains("missing field `stock`"), "{err}");

        v["stock"] = serde_json::json!({"version": 1, "warehouses": {}});
        v["type"] = serde_json::json!("stock.teleported");
        let err = decode_event(v.to_string().as_bytes()).expect_err("bad type");
        assert!(err.to_string().contains("stock.teleported"), "{err}");

        assert!(matches!(
            decode_event(b"not json"),
            Err(EventError::Json { path: None, .. })
        ));
        let err = decode_event(br#"{"schema": 2, "whatever": true}"#).expect_err("v2");
        assert!(
            matches!(err, EventError::UnsupportedSchema { found: 2 }),
            "{err}"
        );
        let err = decode_event(br#"{"schema": 1, "sku": ""}"#).expect_err("bad sku");
        assert!(matches!(err, EventError::Json { .. }), "{err}");
    }

    #[test]
    fn json_errors_name_a_mistyped_field_by_its_path() {
        // Found by the event fuzz test: serde's own message names no field for a wrong type.
        let sample = || -> serde_json::Value {
            serde_json::from_slice(&sample(EventType::Received).to_json()).expect("json")
        };
        let mut v = sample();
        v["schema"] = serde_json::json!("1");
        let err = decode_event(v.to_string().as_bytes()).expect_err("string schema");
        assert!(
            err.to_string().contains("field `schema`: invalid type"),
            "{err}"
        );
        let mut v = sample();
        v["stock"]["warehouses"]["ams-1"]["on_hand"] = serde_json::json!(1.5);
        let err = decode_event(v.to_string().as_bytes()).expect_err("fractional count");
        assert!(
            err.to_string()
                .contains("field `stock.warehouses.ams-1.on_hand`"),
            "{err}"
        );
        let err = decode_event(&[sample().to_string().as_bytes(), b" x"].concat())
            .expect_err("trailing characters");
        assert!(err.to_string().contains("trailing characters"), "{err}");
    }

    #[test]
    fn event_type_and_reason_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().expect("round trip"), t);
            assert_eq!(
                serde_json::to_value(t).expect("json"),
                serde_json::json!(t.as_str())
            );
        }
        assert!("stock.lost".parse::<EventType>().is_err());
        assert_eq!(
            serde_json::to_value(ReleaseReason::OrderCancelled).expect("json"),
            serde_json::json!("order_cancelled")
        );
        assert_eq!(
            "order_cancelled".parse::<ReleaseReason>().expect("parses"),
            ReleaseReason::OrderCancelled
        );
    }
}
