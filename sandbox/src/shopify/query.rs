//! The queries the adapter needs, resolved against the catalogue and projected onto the
//! request's selection:
//!
//! - `inventoryItems(first:, after:, query: "sku:A OR sku:\"B 2\"")`: items by exact SKU
//!   (only `sku:` terms joined by `OR` are understood; anything else is an error), in id
//!   order, each with `inventoryLevel(locationId:)` at the one location.
//! - `location(id:) { inventoryLevels(first:, after:) { nodes { item { id sku }
//!   quantities(names:) { name quantity } } pageInfo { hasNextPage endCursor } } }`.
//!
//! Quantities: `available` and `on_hand` show the item's quantity (nothing is committed in
//! the sandbox); the other documented names show 0.

use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;

use super::graphql::{self, Field, GqlError, Operation};
use super::{LOCATION_ID, item_gid};
use crate::state::{ChannelState, Item};

const QUANTITY_NAMES: [&str; 8] = [
    "available",
    "on_hand",
    "committed",
    "reserved",
    "incoming",
    "damaged",
    "safety_stock",
    "quality_control",
];

pub fn execute(
    state: &mut ChannelState,
    op: &Operation,
    vars: &Map<String, Json>,
) -> Result<Json, GqlError> {
    let mut data = Map::new();
    for field in &op.selection {
        let value = match field.name.as_str() {
            "inventoryItems" => inventory_items(state, field, vars)?,
            "location" => location(state, field, vars)?,
            "__typename" => json!("QueryRoot"),
            other => {
                return Err(GqlError::new(format!(
                    "Field '{other}' doesn't exist on type 'QueryRoot'"
                ))
                .code("undefinedField"));
            }
        };
        let projected = graphql::project(&value, &field.selection, vars, &hook)?;
        data.insert(field.key().to_owned(), projected);
    }
    Ok(Json::Object(data))
}

/// Field arguments below the top level.
pub fn hook(field: &Field, value: &Json, vars: &Map<String, Json>) -> Result<Json, GqlError> {
    let filter = |arg: &str, required: bool| -> Result<Json, GqlError> {
        let names = graphql::argument(field, arg, vars)?;
        let names: Option<Vec<&str>> = match &names {
            Json::Null if !required => None,
            Json::Array(a) => Some(a.iter().filter_map(Json::as_str).collect()),
            _ => {
                return Err(GqlError::new(format!(
                    "Argument '{arg}' on Field '{}' has an invalid value",
                    field.name
                ))
                .code("argumentLiteralsIncompatible"));
            }
        };
        Ok(match (value, names) {
            (Json::Array(items), Some(names)) => Json::Array(
                items
                    .iter()
                    .filter(|q| q["name"].as_str().is_some_and(|n| names.contains(&n)))
                    .cloned()
                    .collect(),
            ),
            _ => value.clone(),
        })
    };
    match field.name.as_str() {
        "quantities" => filter("names", true),
        "changes" => filter("quantityNames", false),
        "inventoryLevel" => {
            let location = graphql::argument(field, "locationId", vars)?;
            Ok(if location.as_str() == Some(LOCATION_ID) {
                value.clone()
            } else {
                Json::Null
            })
        }
        _ => Ok(value.clone()),
    }
}

pub fn location_json() -> Json {
    json!({"__typename": "Location", "id": LOCATION_ID, "name": "Sandbox warehouse"})
}

pub fn item_json(id: u64, sku: &str) -> Json {
    json!({"__typename": "InventoryItem", "id": item_gid(id), "legacyResourceId": id.to_string(),
           "sku": sku, "tracked": true})
}

fn level_json(id: u64, sku: &str, quantity: i64) -> Json {
    let quantities: Vec<Json> = QUANTITY_NAMES
        .iter()
        .map(|&name| {
            let q = if matches!(name, "available" | "on_hand") {
                quantity
            } else {
                0
            };
            json!({"__typename": "InventoryQuantity", "name": name, "quantity": q, "updatedAt": null})
        })
        .collect();
    json!({
        "__typename": "InventoryLevel",
        "id": format!("gid://shopify/InventoryLevel/1?inventory_item_id={id}"),
        "item": item_json(id, sku),
        "location": location_json(),
        "quantities": quantities,
    })
}

fn cursor(id: u64) -> String {
    hex::encode(format!("cursor:{id}"))
}

fn from_cursor(cursor: &str) -> Option<u64> {
    let bytes = hex::decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("cursor:")?
        .parse()
        .ok()
}

/// `first` and `after` of a connection field.
fn page_args(field: &Field, vars: &Map<String, Json>) -> Result<(usize, u64), GqlError> {
    let first = graphql::argument(field, "first", vars)?
        .as_u64()
        .filter(|n| (1..=super::cost::MAX_PAGE).contains(n))
        .ok_or_else(|| {
            GqlError::new(format!(
                "{} needs `first` between 1 and {}",
                field.name,
                super::cost::MAX_PAGE
            ))
            .code("argumentLiteralsIncompatible")
        })?;
    let after = match graphql::argument(field, "after", vars)? {
        Json::Null => 0,
        Json::String(c) => from_cursor(&c).ok_or_else(|| {
            GqlError::new("Invalid cursor for current pagination sort.").code("BAD_REQUEST")
        })?,
        _ => return Err(GqlError::new("`after` must be a String").code("BAD_REQUEST")),
    };
    Ok((usize::try_from(first).unwrap_or(250), after))
}

/// Items after the cursor, in id order, that the filter keeps; at most `first`, and
/// whether more follow.
fn page<T>(
    state: &mut ChannelState,
    first: usize,
    after: u64,
    keep: impl Fn(&Item) -> bool,
    node: impl Fn(u64, &str, i64) -> T,
) -> (Vec<(u64, T)>, bool) {
    let now = Instant::now();
    let mut rows: Vec<(u64, &mut Item)> = state
        .items
        .values_mut()
        .filter(|i| i.id > after && keep(i))
        .map(|i| (i.id, i))
        .collect();
    rows.sort_unstable_by_key(|(id, _)| *id);
    let more = rows.len() > first;
    let nodes = rows
        .into_iter()
        .take(first)
        .map(|(id, item)| {
            let q = item.visible(now);
            (id, node(id, &item.sku, q))
        })
        .collect();
    (nodes, more)
}

fn connection(typename: &str, nodes: Vec<(u64, Json)>, more: bool, after: u64) -> Json {
    let edges: Vec<Json> = nodes
        .iter()
        .map(|(id, n)| json!({"cursor": cursor(*id), "node": n}))
        .collect();
    json!({
        "__typename": typename,
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": more,
            "hasPreviousPage": after > 0,
            "startCursor": nodes.first().map(|(id, _)| cursor(*id)),
            "endCursor": nodes.last().map(|(id, _)| cursor(*id)),
        },
        "edges": edges,
        "nodes": nodes.into_iter().map(|(_, n)| n).collect::<Vec<_>>(),
    })
}

fn inventory_items(
    state: &mut ChannelState,
    field: &Field,
    vars: &Map<String, Json>,
) -> Result<Json, GqlError> {
    let (first, after) = page_args(field, vars)?;
    let skus = match graphql::argument(field, "query", vars)? {
        Json::Null => None,
        Json::String(q) => Some(sku_terms(&q).ok_or_else(|| {
            GqlError::new(format!(
                "The sandbox understands only `sku:` terms joined by OR, not {q:?}"
            ))
            .code("BAD_REQUEST")
        })?),
        _ => return Err(GqlError::new("`query` must be a String").code("BAD_REQUEST")),
    };
    let (nodes, more) = page(
        state,
        first,
        after,
        |i| skus.as_ref().is_none_or(|s| s.contains(&i.sku)),
        |id, sku, q| {
            let mut item = item_json(id, sku);
            item["inventoryLevel"] = level_json(id, sku, q);
            item
        },
    );
    Ok(connection("InventoryItemConnection", nodes, more, after))
}

fn location(
    state: &mut ChannelState,
    field: &Field,
    vars: &Map<String, Json>,
) -> Result<Json, GqlError> {
    if graphql::argument(field, "id", vars)?.as_str() != Some(LOCATION_ID) {
        return Ok(Json::Null);
    }
    let mut location = location_json();
    if let Some(levels) = field.child("inventoryLevels") {
        let (first, after) = page_args(levels, vars)?;
        let (nodes, more) = page(state, first, after, |_| true, level_json);
        location["inventoryLevels"] = connection("InventoryLevelConnection", nodes, more, after);
    }
    Ok(location)
}

/// The SKUs of a search query made of `sku:VALUE` terms joined by `OR`, where VALUE is bare
/// (up to whitespace) or double-quoted with backslash escapes.
pub fn sku_terms(query: &str) -> Option<Vec<String>> {
    let mut chars = query.chars().peekable();
    let mut skus = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        if !skus.is_empty() {
            let or: String = chars.by_ref().take(3).collect();
            if or != "OR " {
                return None;
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        }
        let prefix: String = chars.by_ref().take(4).collect();
        if prefix != "sku:" {
            return None;
        }
        let mut sku = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => sku.push(chars.next()?),
                    c => sku.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| !c.is_whitespace()) {
                sku.push(c);
                chars.next();
            }
        }
        if sku.is_empty() {
            return None;
        }
        skus.push(sku);
    }
    (!skus.is_empty()).then_some(skus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms() {
        assert_eq!(
            sku_terms(r#"sku:A-1 OR sku:"B \"2\" \\x""#),
            Some(vec!["A-1".to_owned(), r#"B "2" \x"#.to_owned()])
        );
        assert_eq!(sku_terms("sku:A"), Some(vec!["A".to_owned()]));
        for bad in [
            "",
            "title:A",
            "sku:A AND sku:B",
            "sku:",
            "sku:\"A",
            "sku:A sku:B",
        ] {
            assert_eq!(sku_terms(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(from_cursor(&cursor(1234)), Some(1234));
        assert_eq!(from_cursor("zz"), None);
        assert_eq!(from_cursor(&hex::encode("other:1")), None);
    }
}
