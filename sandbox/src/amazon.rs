//! The amazon emulator (being written).

use std::sync::Arc;

use axum::Router;

use crate::state::Sandbox;

pub fn router() -> Router<Arc<Sandbox>> {
    Router::new()
}
