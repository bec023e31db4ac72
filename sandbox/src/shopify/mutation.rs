//! `inventorySetQuantities`, with the version rules of CHANNELS.md §1:
//!
//! - `@idempotent(key:)` is mandatory from 2026-04 (missing → a top-level error; the shape
//!   of that runtime error is UNVERIFIED). A repeat with the same key and the same input
//!   returns the stored original result without applying anything; the same key with a
//!   different input → userError `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`. Keys are kept for
//!   [`RETENTION`] (the documented window's length is UNVERIFIED), at most [`MAX_KEYS`].
//! - From 2026-04 every quantity must carry `changeFromQuantity` (an Int, or an explicit
//!   null to opt out): missing → `CHANGE_FROM_QUANTITY_REQUIRED` (code name UNVERIFIED,
//!   after `COMPARE_QUANTITY_REQUIRED`); a mismatch → `CHANGE_FROM_QUANTITY_STALE`. Before
//!   2026-04 `compareQuantity` rules unless `ignoreCompareQuantity`, and `changeFromQuantity`
//!   exists from 2026-01 and then wins.
//! - Input: `name` `available` or `on_hand` (both set the sandbox's one quantity), `reason`
//!   from the documented list, `referenceDocumentUri` a URI, ≤ 250 quantities (more →
//!   top-level `MAX_INPUT_SIZE_EXCEEDED`), each at [`LOCATION_ID`] with 0 ≤ quantity ≤ 10⁹.
//! - All or nothing: with any userError nothing is applied and `inventoryAdjustmentGroup`
//!   is null. Injected item faults (`faults.item_error`) answer `CHANGE_FROM_QUANTITY_STALE`
//!   as if the value had changed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::graphql::{self, Field, GqlError, Operation};
use super::query::{item_json, location_json};
use super::{LOCATION_ID, Version, item_id};
use crate::state::ChannelState;

/// Items in one input array.
pub const MAX_QUANTITIES: usize = 250;
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// How long an idempotency key is remembered (UNVERIFIED; configurable here only).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
pub const MAX_KEYS: usize = 100_000;

const REASONS: [&str; 17] = [
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

const INPUT_FIELDS: [&str; 5] = [
    "name",
    "reason",
    "referenceDocumentUri",
    "quantities",
    "ignoreCompareQuantity",
];

/// Idempotency keys and adjustment group ids, per sandbox.
#[derive(Debug, Default)]
pub struct Store {
    keys: HashMap<String, (Instant, Json, Json)>,
    order: VecDeque<String>,
    next_group: u64,
}

impl Store {
    fn get(&mut self, key: &str) -> Option<&(Instant, Json, Json)> {
        let now = Instant::now();
        while let Some(oldest) = self.order.front() {
            let expired = self
                .keys
                .get(oldest)
                .is_none_or(|(at, _, _)| now.duration_since(*at) > RETENTION);
            if !expired && self.order.len() <= MAX_KEYS {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                self.keys.remove(&k);
            }
        }
        self.keys.get(key)
    }

    fn put(&mut self, key: String, input: Json, payload: Json) {
        if self
            .keys
            .insert(key.clone(), (Instant::now(), input, payload))
            .is_none()
        {
            self.order.push_back(key);
        }
    }
}

pub fn execute(
    state: &mut ChannelState,
    store: &mut Store,
    version: Version,
    op: &Operation,
    vars: &Map<String, Json>,
    traceparent: Option<&str>,
) -> Result<Json, GqlError> {
    let mut data = Map::new();
    for field in &op.selection {
        let payload = match field.name.as_str() {
            "inventorySetQuantities" => {
                set_quantities(state, store, version, field, vars, traceparent)?
            }
            "__typename" => json!("Mutation"),
            other => {
                return Err(GqlError::new(format!(
                    "Field '{other}' doesn't exist on type 'Mutation'"
                ))
                .code("undefinedField"));
            }
        };
        let projected = graphql::project(&payload, &field.selection, vars, &super::query::hook)?;
        data.insert(field.key().to_owned(), projected);
    }
    Ok(Json::Object(data))
}

fn payload(group: Json, errors: Vec<Json>) -> Json {
    json!({"__typename": "InventorySetQuantitiesPayload",
           "inventoryAdjustmentGroup": group, "userErrors": errors})
}

fn user_error(code: &str, field: &[&str], message: impl Into<String>) -> Json {
    json!({"__typename": "InventorySetQuantitiesUserError",
           "code": code, "field": field, "message": message.into()})
}

fn input_error(message: String) -> GqlError {
    GqlError::new(message).code("INVALID_VARIABLE")
}

/// RFC 3986: a scheme, a colon, then something without whitespace or controls.
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn idempotency_key(field: &Field, vars: &Map<String, Json>) -> Result<Option<String>, GqlError> {
    let Some(directive) = field.directive("idempotent") else {
        return Ok(None);
    };
    let key = directive
        .argument("key")
        .map_or(Ok(Json::Null), |v| graphql::to_json(v, vars))?;
    match key {
        Json::String(k) if !k.trim().is_empty() => Ok(Some(k)),
        _ => Err(
            GqlError::new("Directive 'idempotent' needs a non-empty String argument 'key'")
                .code("argumentLiteralsIncompatible"),
        ),
    }
}

fn set_quantities(
    state: &mut ChannelState,
    store: &mut Store,
    version: Version,
    field: &Field,
    vars: &Map<String, Json>,
    traceparent: Option<&str>,
) -> Result<Json, GqlError> {
    let input = graphql::argument(field, "input", vars)?;
    let Json::Object(fields) = &input else {
        return Err(input_error(
            "Argument 'input' on Field 'inventorySetQuantities' has an invalid value".to_owned(),
        ));
    };
    let key = idempotency_key(field, vars)?;
    if key.is_none() && version >= Version::V2026_04 {
        return Err(GqlError::new(
            "The @idempotent directive is required for inventorySetQuantities from API version 2026-04.",
        )
        .code("BAD_REQUEST"));
    }
    if let Some(unknown) = fields.keys().find(|k| !INPUT_FIELDS.contains(&k.as_str())) {
        return Err(input_error(format!(
            "InventorySetQuantitiesInput isn't a defined input type field '{unknown}'"
        )));
    }
    let Some(quantities) = fields.get("quantities").and_then(Json::as_array) else {
        return Err(input_error(
            "InventorySetQuantitiesInput.quantities is required (a list)".to_owned(),
        ));
    };
    if quantities.len() > MAX_QUANTITIES {
        return Err(GqlError::new(format!(
            "The input array size of {} is greater than the maximum allowed of {MAX_QUANTITIES}.",
            quantities.len()
        ))
        .code("MAX_INPUT_SIZE_EXCEEDED"));
    }
    let parsed = quantities
        .iter()
        .enumerate()
        .map(|(i, q)| QuantityInput::parse(i, q, version))
        .collect::<Result<Vec<_>, _>>()?;

    if let Some((_, stored_input, stored)) = key.as_deref().and_then(|k| store.get(k)) {
        return Ok(if *stored_input == input {
            stored.clone()
        } else {
            payload(
                Json::Null,
                vec![user_error(
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    &["idempotencyKey"],
                    "The same idempotency key was used with different parameters.",
                )],
            )
        });
    }

    let result = validate_and_apply(state, store, version, fields, &parsed, traceparent);
    if let Some(key) = key {
        store.put(key, input.clone(), result.clone());
    }
    Ok(result)
}

/// One `InventoryQuantityInput`, type-checked.
#[derive(Debug)]
struct QuantityInput {
    item: Option<u64>,
    location: String,
    quantity: i64,
    /// `None`: absent; `Some(None)`: explicit null.
    change_from: Option<Option<i64>>,
    compare: Option<i64>,
}

impl QuantityInput {
    fn parse(i: usize, q: &Json, version: Version) -> Result<Self, GqlError> {
        let Json::Object(q) = q else {
            return Err(input_error(format!("quantities[{i}] must be an object")));
        };
        let mut known = vec![
            "inventoryItemId",
            "locationId",
            "quantity",
            "compareQuantity",
        ];
        if version >= Version::V2026_01 {
            known.push("changeFromQuantity");
        }
        if let Some(unknown) = q.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(input_error(format!(
                "InventoryQuantityInput isn't a defined input type field '{unknown}' (quantities[{i}])"
            )));
        }
        let int = |name: &str| -> Result<Option<i64>, GqlError> {
            match q.get(name) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .filter(|n| i32::try_from(*n).is_ok())
                    .map(Some)
                    .ok_or_else(|| {
                        input_error(format!(
                            "Int cannot represent non 32-bit signed integer value (quantities[{i}].{name})"
                        ))
                    }),
            }
        };
        let id = |name: &str| -> Result<String, GqlError> {
            q.get(name)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| input_error(format!("quantities[{i}].{name} is required (an ID)")))
        };
        let quantity = int("quantity")?
            .ok_or_else(|| input_error(format!("quantities[{i}].quantity is required")))?;
        Ok(Self {
            item: item_id(&id("inventoryItemId")?),
            location: id("locationId")?,
            quantity,
            change_from: match q.get("changeFromQuantity") {
                None => None,
                Some(_) => Some(int("changeFromQuantity")?),
            },
            compare: int("compareQuantity")?,
        })
    }
}

fn validate_and_apply(
    state: &mut ChannelState,
    store: &mut Store,
    version: Version,
    input: &Map<String, Json>,
    quantities: &[QuantityInput],
    traceparent: Option<&str>,
) -> Json {
    let mut errors = Vec::new();
    let name = input.get("name").and_then(Json::as_str).unwrap_or_default();
    if !matches!(name, "available" | "on_hand") {
        errors.push(user_error(
            "INVALID_NAME",
            &["input", "name"],
            "The quantity name must be available or on_hand.",
        ));
    }
    let reason = input
        .get("reason")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if !REASONS.contains(&reason) {
        errors.push(user_error(
            "INVALID_REASON",
            &["input", "reason"],
            "The specified reason is invalid.",
        ));
    }
    let reference = input.get("referenceDocumentUri").and_then(Json::as_str);
    if input
        .get("referenceDocumentUri")
        .is_some_and(|r| !r.is_null())
        && !reference.is_some_and(is_uri)
    {
        errors.push(user_error(
            "INVALID_REFERENCE_DOCUMENT",
            &["input", "referenceDocumentUri"],
            "The reference document URI isn't a valid URI.",
        ));
    }
    let ignore_compare = input
        .get("ignoreCompareQuantity")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let version_2026_04 = version >= Version::V2026_04;
    let item_error = state.knobs.faults.item_error;
    let mut seen = std::collections::HashSet::new();
    let mut targets = Vec::new();
    for (i, q) in quantities.iter().enumerate() {
        let index = i.to_string();
        let err = |code: &str, leaf: &str, message: String| {
            user_error(code, &["input", "quantities", &index, leaf], message)
        };
        let Some((sku, current)) = q.item.and_then(|id| {
            state
                .item_by_id(id)
                .map(|item| (item.sku.clone(), item.latest()))
        }) else {
            errors.push(err(
                "INVALID_INVENTORY_ITEM",
                "inventoryItemId",
                "The specified inventory item could not be found.".to_owned(),
            ));
            continue;
        };
        if !seen.insert(sku.clone()) {
            errors.push(err(
                "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                "inventoryItemId",
                "The inventory item appears more than once in the input.".to_owned(),
            ));
            continue;
        }
        if q.location != LOCATION_ID {
            errors.push(err(
                "INVALID_LOCATION",
                "locationId",
                "The specified location could not be found.".to_owned(),
            ));
            continue;
        }
        if q.quantity < 0 {
            errors.push(err(
                "INVALID_QUANTITY_NEGATIVE",
                "quantity",
                "The quantity can't be negative.".to_owned(),
            ));
            continue;
        }
        if q.quantity > MAX_QUANTITY {
            errors.push(err(
                "INVALID_QUANTITY_TOO_HIGH",
                "quantity",
                format!("The quantity can't be higher than {MAX_QUANTITY}."),
            ));
            continue;
        }
        match (q.change_from, version_2026_04) {
            (Some(Some(from)), _) if from != current => {
                errors.push(err(
                    "CHANGE_FROM_QUANTITY_STALE",
                    "changeFromQuantity",
                    "The specified changeFromQuantity doesn't match the current quantity."
                        .to_owned(),
                ));
                continue;
            }
            (Some(_), _) => {}
            (None, true) => {
                errors.push(err(
                    "CHANGE_FROM_QUANTITY_REQUIRED",
                    "changeFromQuantity",
                    "changeFromQuantity is required (an Int, or null to skip the check)."
                        .to_owned(),
                ));
                continue;
            }
            (None, false) if ignore_compare => {}
            (None, false) => match q.compare {
                None => {
                    errors.push(err(
                        "COMPARE_QUANTITY_REQUIRED",
                        "compareQuantity",
                        "compareQuantity is required unless ignoreCompareQuantity is true."
                            .to_owned(),
                    ));
                    continue;
                }
                Some(c) if c != current => {
                    errors.push(err(
                        "COMPARE_QUANTITY_STALE",
                        "compareQuantity",
                        "The specified compareQuantity doesn't match the current quantity."
                            .to_owned(),
                    ));
                    continue;
                }
                Some(_) => {}
            },
        }
        if state.roll(item_error) {
            errors.push(err(
                "CHANGE_FROM_QUANTITY_STALE",
                "changeFromQuantity",
                "The specified changeFromQuantity doesn't match the current quantity.".to_owned(),
            ));
            continue;
        }
        targets.push((q.item.unwrap_or_default(), sku, current, q.quantity));
    }
    if !errors.is_empty() {
        return payload(Json::Null, errors);
    }
    let mut changes = Vec::new();
    for (id, sku, before, after) in targets {
        state.apply_write(&sku, after, traceparent);
        for name in ["available", "on_hand"] {
            changes.push(json!({
                "__typename": "InventoryChange",
                "name": name,
                "delta": after - before,
                "quantityAfterChange": after,
                "item": item_json(id, &sku),
                "location": location_json(),
            }));
        }
    }
    store.next_group += 1;
    let created = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let group = json!({
        "__typename": "InventoryAdjustmentGroup",
        "id": format!("gid://shopify/InventoryAdjustmentGroup/{}", store.next_group),
        "createdAt": created,
        "reason": reason,
        "referenceDocumentUri": reference,
        "changes": changes,
    });
    payload(group, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        for ok in [
            "gid://onhand/InventoryEvent/0190a1b2-0000-7000-8000-000000000000",
            "https://example.com/x?y=1",
            "urn:isbn:1",
        ] {
            assert!(is_uri(ok), "{ok}");
        }
        for bad in ["", "no-scheme", "1http://x", "gid://a b", ":x", "gid:"] {
            assert!(!is_uri(bad), "{bad}");
        }
    }
}
