//! Shopify's response bodies and what they mean: the GraphQL envelope, throttling (HTTP 429
//! or HTTP 200 with a `THROTTLED` error, both seen in the wild), `extensions.cost`, and the
//! mutation's `userErrors` fanned out to the items their `field` path names.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::api::{ApiResponse, ItemResult, RateReport, Target};
use crate::classify::{self, Class};
use crate::push::PushOutcome;

#[derive(Debug, Deserialize)]
pub(super) struct Envelope<D> {
    pub data: Option<D>,
    #[serde(default)]
    pub errors: Option<Errors>,
    #[serde(default)]
    pub extensions: Option<Extensions>,
}

/// Top-level `errors`: a list of GraphQL errors, or (401, 404) a string or object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Errors {
    List(Vec<GraphqlError>),
    Other(Value),
}

#[derive(Debug, Deserialize)]
pub(super) struct GraphqlError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub extensions: Option<ErrorExtensions>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorExtensions {
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Extensions {
    pub cost: Option<Cost>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Cost {
    pub requested_query_cost: Option<f64>,
    pub throttle_status: Option<ThrottleStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

impl Errors {
    fn codes(&self) -> impl Iterator<Item = &str> {
        let list = match self {
            Errors::List(list) => list.as_slice(),
            Errors::Other(_) => &[],
        };
        list.iter()
            .filter_map(|e| e.extensions.as_ref()?.code.as_deref())
    }

    pub fn message(&self) -> String {
        match self {
            Errors::List(list) => list
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            Errors::Other(v) => v.to_string(),
        }
    }
}

/// The envelope without caring about `data`'s shape.
fn envelope(resp: &ApiResponse) -> Option<Envelope<Value>> {
    serde_json::from_slice(&resp.body).ok()
}

/// How long Shopify's bucket needs to afford the request again, from `extensions.cost`.
fn wait_from_cost(cost: &Cost) -> Option<Duration> {
    let status = cost.throttle_status.as_ref()?;
    let missing = cost.requested_query_cost? - status.currently_available;
    (status.restore_rate > 0.0)
        .then(|| Duration::from_secs_f64((missing / status.restore_rate).clamp(0.0, 60.0)))
}

/// 429 and 200-with-`THROTTLED` are throttling (wait from the throttle status, else
/// `Retry-After`); a 2xx whose `errors` left no `data` is refused as a whole (transient
/// for `INTERNAL_SERVER_ERROR` and `IDEMPOTENCY_CONCURRENT_REQUEST`, credentials for
/// `ACCESS_DENIED`); the rest by status (401 and 403 are credentials).
pub(super) fn classify(resp: &ApiResponse) -> Class {
    let class = classify::http(resp);
    let body = || envelope(resp);
    match class {
        Class::Throttled { retry_after } => {
            let wait = body()
                .and_then(|b| b.extensions?.cost)
                .and_then(|c| wait_from_cost(&c));
            Class::Throttled {
                retry_after: wait.or(retry_after),
            }
        }
        // Cheap check first: most responses carry no top-level errors.
        Class::Success if !contains(&resp.body, b"\"errors\"") => Class::Success,
        Class::Success => {
            let Some(body) = body() else {
                return Class::Success;
            };
            let Some(errors) = &body.errors else {
                return Class::Success;
            };
            if errors.codes().any(|c| c == "THROTTLED") {
                return Class::Throttled {
                    retry_after: body
                        .extensions
                        .and_then(|e| e.cost)
                        .and_then(|c| wait_from_cost(&c)),
                };
            }
            if body.data.as_ref().is_some_and(|d| !d.is_null()) {
                return Class::Success;
            }
            if errors.codes().any(|c| {
                matches!(
                    c,
                    "INTERNAL_SERVER_ERROR" | "IDEMPOTENCY_CONCURRENT_REQUEST"
                )
            }) {
                Class::Unavailable { retry_after: None }
            } else if errors.codes().any(|c| c == "ACCESS_DENIED") {
                // The app lacks a scope (`write_inventory`, `read_inventory`; CHANNELS.md
                // §1): the account's problem, not the items'.
                Class::Unauthorized
            } else {
                Class::Rejected
            }
        }
        other => other,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `extensions.cost.throttleStatus`, when the response has one.
pub(super) fn rate_report(resp: &ApiResponse) -> Option<RateReport> {
    let status = envelope(resp)?.extensions?.cost?.throttle_status?;
    Some(RateReport {
        available: status.currently_available,
        capacity: Some(status.maximum_available),
        refill_per_sec: Some(status.restore_rate),
        reset_after: None,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetData {
    pub inventory_set_quantities: Option<SetPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetPayload {
    #[serde(default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
pub(super) struct UserError {
    pub code: Option<String>,
    pub field: Option<Vec<String>>,
    #[serde(default)]
    pub message: String,
}

impl UserError {
    /// The item a `field` path such as `["input","quantities","3","changeFromQuantity"]`
    /// names; `None` for errors about the request as a whole.
    fn item(&self) -> Option<usize> {
        match self.field.as_deref()? {
            [_, list, index, ..] if list == "quantities" => index.parse().ok(),
            _ => None,
        }
    }

    /// What this error means for the item(s) it concerns: a lost compare-and-set re-reads
    /// and retries; idempotency conflicts go again (a new request gets a new key); the rest
    /// (unknown or unstocked item, a quantity out of range, an invalid name, reason,
    /// location or reference) will not change on a retry.
    fn result(&self) -> ItemResult {
        let code = self.code.as_deref().unwrap_or("UNKNOWN");
        match code {
            "CHANGE_FROM_QUANTITY_STALE" | "COMPARE_QUANTITY_STALE" => {
                ItemResult::Stale { current: None }
            }
            "IDEMPOTENCY_CONCURRENT_REQUEST"
            | "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"
            | "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" => ItemResult::Done(PushOutcome::transient(
                format!("Shopify {code}: {}", self.message),
            )),
            _ => ItemResult::Done(PushOutcome::permanent(code, self.message.clone())),
        }
    }
}

/// Permanent beats stale beats transient: retrying cannot fix the permanent part.
fn worse(a: ItemResult, b: ItemResult) -> ItemResult {
    fn rank(r: &ItemResult) -> u8 {
        match r {
            ItemResult::Done(PushOutcome::Permanent { .. }) => 3,
            ItemResult::Stale { .. } => 2,
            ItemResult::Done(PushOutcome::Transient { .. } | PushOutcome::Deferred { .. })
            | ItemResult::Resend(_) => 1,
            ItemResult::Done(PushOutcome::Applied) => 0,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}

/// One result per target. `inventorySetQuantities` is all or nothing: with any userError
/// nothing was applied, so the items no error names are re-sent without the others.
pub(super) fn write_outcomes(batch: &[Target], resp: &ApiResponse) -> Vec<ItemResult> {
    if let Some(outcome) = classify::outcome(&classify(resp), resp) {
        return crate::api::all(batch, outcome);
    }
    let body: Envelope<SetData> = match resp.json() {
        Ok(body) => body,
        Err(e) => return crate::api::all(batch, PushOutcome::transient(e.to_string())),
    };
    let Some(payload) = body.data.and_then(|d| d.inventory_set_quantities) else {
        let outcome = match body.errors {
            Some(errors) => PushOutcome::permanent("graphql_error", errors.message()),
            // Applied or not, nobody can tell; the compare-and-set makes a retry safe.
            None => PushOutcome::transient("Shopify answered without inventorySetQuantities"),
        };
        return crate::api::all(batch, outcome);
    };
    if payload.user_errors.is_empty() {
        // No userErrors is success whether or not a group came back. Every refusal of this
        // all-or-nothing mutation is a userError, and every `changeFromQuantity` we send
        // was checked (a mismatch is CHANGE_FROM_QUANTITY_STALE, CHANNELS.md §1). The group
        // is nullable in the schema, and a set that changes nothing has no adjustments to
        // group; treating that as transient would retry a no-op set for ever and never
        // ack it. The read-back still confirms.
        return crate::api::all(batch, PushOutcome::Applied);
    }
    let mut results: Vec<Option<ItemResult>> = vec![None; batch.len()];
    for error in &payload.user_errors {
        let result = error.result();
        let items: Vec<usize> = match error.item() {
            Some(i) if i < batch.len() => vec![i],
            _ => (0..batch.len()).collect(),
        };
        for i in items {
            results[i] = Some(match results[i].take() {
                Some(previous) => worse(previous, result.clone()),
                None => result.clone(),
            });
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                ItemResult::Resend(PushOutcome::transient(
                    "Shopify refused the request because of other items in it",
                ))
            })
        })
        .collect()
}
