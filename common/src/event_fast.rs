//! A single-pass reader for the v1 event as the ledger writes it, in front of serde_json.
//!
//! Every event a projector receives is decoded, and on two cores that decode is a fifth of
//! the projector's own CPU. This reader handles the common shape in one pass over the bytes
//! with no per-field dispatch through serde: known keys in any order, strings without escape
//! sequences, integers without fraction or exponent, `null` for an optional field. Anything
//! else — an escape, an unknown or repeated key, a float, a syntax error, a value of the
//! wrong type — makes it answer `None`, and [`crate::decode_event`] then decodes with
//! serde_json, which names the problem. So it never accepts what serde_json would refuse,
//! and where it accepts it builds the same event (the tests compare the two on valid events
//! and on many thousands of broken ones).

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::event::{EventType, InventoryEvent};
use crate::sku::Sku;
use crate::stock::{StockState, WarehouseStock};

/// The event, or `None` when serde_json must decide.
pub(crate) fn decode(bytes: &[u8]) -> Option<InventoryEvent> {
    // Validated once for the whole payload, so every string slice below is valid UTF-8.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Reader {
        s: text,
        b: bytes,
        i: 0,
    };
    let event = r.event()?;
    r.ws();
    (r.i == r.b.len()).then_some(event)
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// The top-level fields, one bit each, to refuse a repeated key as serde_json does.
const SCHEMA: u16 = 1;
const EVENT_ID: u16 = 1 << 1;
const TYPE: u16 = 1 << 2;
const OCCURRED_AT: u16 = 1 << 3;
const SKU: u16 = 1 << 4;
const WAREHOUSE: u16 = 1 << 5;
const QTY: u16 = 1 << 6;
const ORDER_ID: u16 = 1 << 7;
const RESERVATION_ID: u16 = 1 << 8;
const REASON: u16 = 1 << 9;
const STOCK: u16 = 1 << 10;

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next non-whitespace byte, consumed.
    fn next(&mut self) -> Option<u8> {
        self.ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string without escapes or control characters, after optional whitespace.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let s = &self.s[start..self.i];
        self.i += 1;
        Some(s)
    }

    /// `null` (consumed, true) or anything else (left in place, false).
    fn null(&mut self) -> bool {
        self.ws();
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// An integer as JSON writes it: optional `-`, no leading zero, no fraction or exponent
    /// (and not `-0`).
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut value: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
            let digit = i64::from(d - b'0');
            value = value.checked_mul(10)?;
            value = if negative {
                value.checked_sub(digit)?
            } else {
                value.checked_add(digit)?
            };
            self.i += 1;
        }
        let digits = self.i - start;
        // serde_json reads `-0` as a float, and refuses it for an integer.
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || (negative && value == 0) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
            return None;
        }
        Some(value)
    }

    /// `{` key `:` value (`,` key `:` value)* `}`, calling `field` with each key, positioned
    /// at its value; `field` answers `None` to give up.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            field(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn event(&mut self) -> Option<InventoryEvent> {
        let mut seen = 0u16;
        let mut schema = None;
        let mut event_id = None;
        let mut event_type = None;
        let mut occurred_at = None;
        let mut sku = None;
        let mut warehouse = None;
        let mut qty = None;
        let mut order_id = None;
        let mut reservation_id = None;
        let mut reason = None;
        let mut stock = None;
        self.object(|r, key| {
            let bit = match key {
                "schema" => SCHEMA,
                "event_id" => EVENT_ID,
                "type" => TYPE,
                "occurred_at" => OCCURRED_AT,
                "sku" => SKU,
                "warehouse" => WAREHOUSE,
                "qty" => QTY,
                "order_id" => ORDER_ID,
                "reservation_id" => RESERVATION_ID,
                "reason" => REASON,
                "stock" => STOCK,
                _ => return None,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match bit {
                SCHEMA => schema = Some(u32::try_from(r.int()?).ok()?),
                EVENT_ID => event_id = Some(Uuid::parse_str(r.string()?).ok()?),
                TYPE => event_type = Some(r.string()?.parse::<EventType>().ok()?),
                OCCURRED_AT => {
                    occurred_at = Some(crate::timestamp::parse_rfc3339(r.string()?).ok()?);
                }
                SKU => sku = Some(Sku::parse(r.string()?).ok()?),
                WAREHOUSE => warehouse = Some(r.string()?.to_owned()),
                QTY => qty = Some(r.int()?),
                ORDER_ID => order_id = r.optional_string()?,
                RESERVATION_ID => {
                    reservation_id = match r.optional_string()? {
                        None => None,
                        Some(s) => Some(Uuid::parse_str(&s).ok()?),
                    };
                }
                REASON => reason = r.optional_string()?,
                _ => stock = Some(r.stock()?),
            }
            Some(())
        })?;
        // A required field left out is a None below.
        Some(InventoryEvent {
            schema: schema?,
            event_id: event_id?,
            event_type: event_type?,
            occurred_at: occurred_at?,
            sku: sku?,
            warehouse: warehouse?,
            qty: qty?,
            order_id,
            reservation_id,
            reason,
            stock: stock?,
        })
    }

    /// `null` or a string, for an optional field (`Some(None)` for `null`).
    fn optional_string(&mut self) -> Option<Option<String>> {
        if self.null() {
            return Some(None);
        }
        Some(Some(self.string()?.to_owned()))
    }

    fn stock(&mut self) -> Option<StockState> {
        let mut version = None;
        let mut warehouses = None;
        self.object(|r, key| {
            match key {
                "version" if version.is_none() => version = Some(r.int()?),
                "warehouses" if warehouses.is_none() => warehouses = Some(r.warehouses()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(StockState {
            version: version?,
            warehouses: warehouses?,
        })
    }

    fn warehouses(&mut self) -> Option<BTreeMap<String, WarehouseStock>> {
        let mut map = BTreeMap::new();
        self.object(|r, key| {
            // A repeated warehouse replaces the earlier one, as serde_json's map does.
            map.insert(key.to_owned(), r.warehouse_stock()?);
            Some(())
        })?;
        Some(map)
    }

    fn warehouse_stock(&mut self) -> Option<WarehouseStock> {
        let (mut on_hand, mut reserved, mut pending) = (None, None, None);
        self.object(|r, key| {
            let slot = match key {
                "on_hand" => &mut on_hand,
                "reserved" => &mut reserved,
                "pending" => &mut pending,
                _ => return None,
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(r.int()?);
            Some(())
        })?;
        Some(WarehouseStock {
            on_hand: on_hand?,
            reserved: reserved?,
            pending: pending?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::decode;
    use crate::event::tests::sample;
    use crate::event::{EventType, InventoryEvent};
    use crate::stock::WarehouseStock;

    /// What serde_json makes of `bytes` (the decode this reader stands in front of).
    fn serde(bytes: &[u8]) -> Option<InventoryEvent> {
        serde_json::from_slice(bytes).ok()
    }

    /// The reader may decline anything, but what it accepts serde_json accepts too, as the
    /// same event.
    fn agrees(bytes: &[u8]) -> bool {
        match decode(bytes) {
            None => false,
            Some(fast) => {
                assert_eq!(
                    Some(&fast),
                    serde(bytes).as_ref(),
                    "{}",
                    String::from_utf8_lossy(bytes)
                );
                true
            }
        }
    }

    fn payloads() -> Vec<Vec<u8>> {
        EventType::ALL
            .into_iter()
            .flat_map(|t| {
                let e = sample(t);
                [
                    e.to_json(),
                    serde_json::to_vec_pretty(&e).expect("serializes"),
                ]
            })
            .collect()
    }

    #[test]
    fn reads_every_event_type_as_the_ledger_writes_it() {
        for t in EventType::ALL {
            let e = sample(t);
            assert_eq!(decode(&e.to_json()), Some(e.clone()), "{t}");
            let pretty = serde_json::to_vec_pretty(&e).expect("serializes");
            assert_eq!(decode(&pretty), Some(e), "{t}, pretty-printed");
        }
    }

    #[test]
    fn reads_null_optionals_reordered_keys_and_extreme_integers() {
        let e = sample(EventType::Received);
        let json = format!(
            r#" {{"stock":{{"warehouses":{{"b":{{"pending":0,"reserved":0,"on_hand":9223372036854775807}},"a":{{"on_hand":-9223372036854775808,"reserved":1,"pending":2}}}},"version":7}},
            "reason":null,"order_id":null,"reservation_id":null,"qty":-12,"warehouse":"ams-1","sku":"é-1","occurred_at":"2026-11-26T11:00:00.5+01:00","type":"stock.adjusted","event_id":"{}","schema":1}}
"#,
            e.event_id
        );
        assert!(agrees(json.as_bytes()), "declined: {json}");
        let read = decode(json.as_bytes()).expect("read");
        assert_eq!(read.sku.as_str(), "é-1");
        assert_eq!(read.qty, -12);
        assert_eq!(read.stock.warehouses["a"].on_hand, i64::MIN);
        assert_eq!(
            read.stock.warehouses["b"],
            WarehouseStock {
                on_hand: i64::MAX,
                reserved: 0,
                pending: 0
            }
        );
    }

    #[test]
    fn declines_what_it_does_not_handle_and_decode_event_still_reads_it() {
        let json = String::from_utf8(sample(EventType::Reserved).to_json()).expect("utf-8");
        for (from, to) in [
            // an escape in a value, and in a key
            (r#""web-1001""#, r#""web-\u0031001""#),
            (r#""order_id""#, r#""order\u005fid""#),
            // a field this version does not know
            (r#""schema":1"#, r#""schema":1,"note":[1,{"a":null}]"#),
            (r#""ams-1":{"#, r#""ams-1":{"bin":"A3","#),
        ] {
            assert!(json.contains(from), "{from}");
            let changed = json.replacen(from, to, 1);
            assert_eq!(decode(changed.as_bytes()), None, "{changed}");
            let event = crate::decode_event(changed.as_bytes()).expect(&changed);
            assert_eq!(event, serde(changed.as_bytes()).expect("serde reads it"));
        }
    }

    #[test]
    fn declines_everything_serde_json_refuses() {
        let json = String::from_utf8(sample(EventType::Received).to_json()).expect("utf-8");
        for (from, to) in [
            (r#""qty":2"#, r#""qty":2.0"#),
            (r#""qty":2"#, r#""qty":2e0"#),
            (r#""qty":2"#, r#""qty":02"#),
            (r#""qty":2"#, r#""qty":-"#),
            (r#""qty":2"#, r#""qty":-0"#),
            (r#""qty":2"#, r#""qty":9223372036854775808"#),
            (r#""qty":2"#, r#""qty":"2""#),
            (r#""qty":2"#, r#""qty":2,"qty":2"#),
            (r#""schema":1"#, r#""schema":-1"#),
            (r#""schema":1"#, r#""schema":4294967296"#),
            (r#""sku":"TSHIRT-RED-M""#, r#""sku":"TSHIRT	RED""#),
            (r#""sku":"TSHIRT-RED-M""#, r#""sku":"""#),
            (r#""type":"stock.received""#, r#""type":"stock.lost""#),
            (r#""type":"stock.received""#, r#""type":null"#),
            (r#""on_hand":10,"#, ""),
            (r#""version":42"#, r#""version":42,"version":43"#),
            (r#""pending":1}"#, r#""pending":1,}"#),
        ] {
            assert!(json.contains(from), "{from}");
            let changed = json.replacen(from, to, 1);
            assert_eq!(serde(changed.as_bytes()), None, "serde reads {changed}");
            assert_eq!(decode(changed.as_bytes()), None, "{changed}");
        }
        for broken in [
            format!("{json}x"),
            json[..json.len() - 1].to_owned(),
            format!("[{json}]"),
            String::new(),
        ] {
            assert_eq!(decode(broken.as_bytes()), None, "{broken}");
        }
        let mut invalid_utf8 = json.into_bytes();
        let at = invalid_utf8.len() / 2;
        invalid_utf8[at] = 0xff;
        assert_eq!(decode(&invalid_utf8), None);
    }

    /// Every payload with one byte deleted, replaced by a JSON-significant byte, or cut
    /// short: the reader never accepts one serde_json refuses, nor reads one differently.
    #[test]
    fn agrees_with_serde_json_on_every_one_byte_change() {
        const BYTES: &[u8] = b"\"\\{}[],:0-1.eE n\x01\xff ";
        let mut accepted = 0;
        let mut tried = 0;
        for payload in payloads() {
            for at in 0..payload.len() {
                let mut cut = payload.clone();
                cut.remove(at);
                accepted += usize::from(agrees(&cut));
                accepted += usize::from(agrees(&payload[..at]));
                for &b in BYTES {
                    let mut changed = payload.clone();
                    changed[at] = b;
                    accepted += usize::from(agrees(&changed));
                    let mut inserted = payload.clone();
                    inserted.insert(at, b);
                    accepted += usize::from(agrees(&inserted));
                    tried += 2;
                }
                tried += 2;
            }
        }
        // Some changes stay valid (a digit for a digit, whitespace between tokens): the
        // reader handles those itself.
        assert!(accepted > 0 && accepted < tried, "{accepted} of {tried}");
    }

    fn arb_event() -> impl Strategy<Value = InventoryEvent> {
        (
            proptest::sample::select(EventType::ALL.to_vec()),
            "[A-Za-z0-9é_./-]{1,20}",
            any::<i64>(),
            1..i64::MAX,
            proptest::collection::btree_map(
                "[a-z0-9é-]{1,8}",
                (any::<i64>(), any::<i64>(), any::<i64>()),
                0..4,
            ),
            proptest::option::of("[ -~é]{0,12}"),
            proptest::option::of(any::<u128>()),
            proptest::option::of("[ -~]{0,12}"),
        )
            .prop_map(
                |(t, sku, qty, version, warehouses, order, reservation, reason)| {
                    let mut e = sample(t);
                    e.sku = crate::Sku::parse(sku).expect("valid sku");
                    e.qty = qty;
                    e.stock.version = version;
                    e.stock.warehouses = warehouses
                        .into_iter()
                        .map(|(k, (on_hand, reserved, pending))| {
                            (
                                k,
                                WarehouseStock {
                                    on_hand,
                                    reserved,
                                    pending,
                                },
                            )
                        })
                        .collect();
                    e.order_id = order;
                    e.reservation_id = reservation.map(uuid::Uuid::from_u128);
                    e.reason = reason;
                    e
                },
            )
    }

    proptest! {
        /// Whatever an event holds (printable strings, some with characters JSON escapes),
        /// the reader reads it as serde_json does or leaves it to serde_json.
        #[test]
        fn reads_any_event_as_serde_json_does(e in arb_event(), pretty in any::<bool>()) {
            let bytes = if pretty {
                serde_json::to_vec_pretty(&e).expect("serializes")
            } else {
                e.to_json()
            };
            let escaped = bytes.contains(&b'\\');
            prop_assert_eq!(agrees(&bytes), !escaped);
            if !escaped {
                prop_assert_eq!(decode(&bytes), Some(e));
            }
        }
    }
}
