//! Shopify's calculated query cost, as documented for the Admin GraphQL API: a mutation
//! root field costs 10; an object costs 1 plus its fields; a scalar or enum costs 0; a
//! connection (a field taking `first`/`last`) costs 2 plus `first` times the cost of one
//! node (`nodes { .. }` or `edges { node { .. } }`; `pageInfo` and cursors are free). One
//! query may cost at most 1000, and a connection may ask for at most 250 nodes.

use serde_json::{Map, Value as Json};

use super::graphql::{self, Field, GqlError, Operation, OperationKind};

pub const MUTATION_COST: u64 = 10;
pub const MAX_QUERY_COST: u64 = 1000;
pub const MAX_PAGE: u64 = 250;

/// The requested cost of an operation, or the error Shopify gives before running it.
pub fn requested(op: &Operation, vars: &Map<String, Json>) -> Result<u64, GqlError> {
    let cost = match op.kind {
        OperationKind::Mutation => MUTATION_COST * op.selection.len() as u64,
        OperationKind::Query => fields(&op.selection, vars)?,
    };
    if cost > MAX_QUERY_COST {
        return Err(GqlError::new(format!(
            "Query cost is {cost}, which exceeds the single query max cost limit ({MAX_QUERY_COST})."
        ))
        .code("MAX_COST_EXCEEDED"));
    }
    Ok(cost)
}

fn fields(selection: &[Field], vars: &Map<String, Json>) -> Result<u64, GqlError> {
    selection
        .iter()
        .map(|f| field(f, vars))
        .try_fold(0u64, |sum, c| Ok(sum.saturating_add(c?)))
}

fn field(f: &Field, vars: &Map<String, Json>) -> Result<u64, GqlError> {
    if f.selection.is_empty() || f.name == "pageInfo" {
        return Ok(0);
    }
    let size = match (f.argument("first"), f.argument("last")) {
        (None, None) => return Ok(1u64.saturating_add(fields(&f.selection, vars)?)),
        (Some(v), _) | (None, Some(v)) => graphql::to_json(v, vars)?,
    };
    let size = size
        .as_u64()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| {
            GqlError::new(format!(
                "The argument `first`/`last` of {} must be between 1 and {MAX_PAGE}",
                f.name
            ))
            .code("argumentLiteralsIncompatible")
        })?;
    let mut node = 0u64;
    for child in &f.selection {
        match child.name.as_str() {
            "nodes" => node = node.saturating_add(1 + fields(&child.selection, vars)?),
            "edges" => {
                if let Some(n) = child.child("node") {
                    node = node.saturating_add(1 + fields(&n.selection, vars)?);
                }
            }
            _ => {}
        }
    }
    Ok(2u64.saturating_add(size.saturating_mul(node)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(doc: &str, vars: Json) -> Result<u64, GqlError> {
        let op = graphql::parse(doc).expect("parses").remove(0);
        let vars = vars.as_object().cloned().unwrap_or_default();
        requested(&op, &vars)
    }

    #[test]
    fn documented_costs() {
        assert_eq!(
            cost(
                "mutation { inventorySetQuantities(input: {}) { userErrors { code } } }",
                Json::Null
            ),
            Ok(10)
        );
        let read = "query($after: String) { location(id: \"x\") { inventoryLevels(first: 250, after: $after) {
            nodes { item { id sku } quantities(names: [\"available\"]) { name quantity } }
            pageInfo { hasNextPage endCursor } } } }";
        assert_eq!(cost(read, Json::Null), Ok(753));
        let resolve = "query($first: Int!) { inventoryItems(first: $first, query: \"sku:A\") {
            nodes { id sku inventoryLevel(locationId: \"x\") { quantities(names: [\"available\"]) { quantity } } } } }";
        assert_eq!(cost(resolve, serde_json::json!({"first": 2})), Ok(8));
        assert_eq!(
            cost(resolve, serde_json::json!({"first": 251}))
                .expect_err("251 is over the page cap")
                .code,
            Some("argumentLiteralsIncompatible")
        );
        let big = "{ a: inventoryItems(first: 250) { nodes { id inventoryLevel(locationId: \"x\") { id } } }
                     b: inventoryItems(first: 250) { nodes { id inventoryLevel(locationId: \"x\") { id } } } }";
        assert_eq!(
            cost(big, Json::Null).expect_err("over 1000").code,
            Some("MAX_COST_EXCEEDED")
        );
    }
}
