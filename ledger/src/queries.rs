//! Reads: a SKU's stock with computed availability, and the channel policy's steps for it.

use std::collections::BTreeMap;

use onhand_common::{ChannelPolicy, Sku, StockState, WarehouseStock};
use serde::Serialize;
use sqlx::PgPool;

use crate::error::LedgerError;

#[derive(Debug, Serialize)]
pub struct WarehouseView {
    pub on_hand: i64,
    pub reserved: i64,
    pub pending: i64,
    pub available: i64,
}

#[derive(Debug, Serialize)]
pub struct StockView {
    pub sku: String,
    pub version: i64,
    pub available: i64,
    pub warehouses: BTreeMap<String, WarehouseView>,
}

/// A SKU's state, read in one statement (one snapshot), or `UnknownSku`.
pub async fn stock_state(pool: &PgPool, sku: &Sku) -> Result<StockState, LedgerError> {
    let rows: Vec<(i64, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT v.version, s.warehouse, s.on_hand, s.reserved, s.pending
           FROM sku_versions v JOIN stock s ON s.sku = v.sku
          WHERE v.sku = $1",
    )
    .bind(sku.as_str())
    .fetch_all(pool)
    .await?;
    let Some(version) = rows.first().map(|r| r.0) else {
        return Err(LedgerError::UnknownSku {
            sku: sku.to_string(),
            field: "sku".to_owned(),
        });
    };
    let warehouses = rows
        .into_iter()
        .map(|(_, w, on_hand, reserved, pending)| {
            (
                w,
                WarehouseStock {
                    on_hand,
                    reserved,
                    pending,
                },
            )
        })
        .collect();
    Ok(StockState {
        version,
        warehouses,
    })
}

pub async fn stock(pool: &PgPool, sku: &Sku) -> Result<StockView, LedgerError> {
    let state = stock_state(pool, sku).await?;
    Ok(StockView {
        sku: sku.to_string(),
        version: state.version,
        available: state.available_total(),
        warehouses: state
            .warehouses
            .iter()
            .map(|(w, s)| {
                (
                    w.clone(),
                    WarehouseView {
                        on_hand: s.on_hand,
                        reserved: s.reserved,
                        pending: s.pending,
                        available: s.available(),
                    },
                )
            })
            .collect(),
    })
}

#[derive(Debug, Serialize)]
pub struct ExplainView {
    pub sku: String,
    pub channel: String,
    pub version: i64,
    pub policy: ChannelPolicy,
    pub steps: onhand_common::policy::PolicySteps,
    pub quantity: i64,
}

pub async fn explain(
    pool: &PgPool,
    sku: &Sku,
    channel: &str,
    policy: &ChannelPolicy,
) -> Result<ExplainView, LedgerError> {
    let state = stock_state(pool, sku).await?;
    let steps = onhand_common::policy::explain(&state, policy);
    Ok(ExplainView {
        sku: sku.to_string(),
        channel: channel.to_owned(),
        version: state.version,
        policy: policy.clone(),
        quantity: onhand_common::policy::channel_quantity(&state, policy),
        steps,
    })
}
