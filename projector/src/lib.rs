//! Projectors (DESIGN.md §5): one stateless process per channel consumes the durable
//! consumer `projector-<channel>` on `INVENTORY`, keeps the newest event per SKU, computes the
//! channel's quantity with the shared policy, drops what the watermark already holds, pushes
//! through the channel's adapter, writes watermarks (together, per commit), then acks. Transient failures are naked
//! with backoff; what the channel refuses for good and what cannot be decoded goes to
//! `inventory.dlq.<channel>` and is termed, without holding back the rest.

pub mod apply;
mod batch;
mod commit;
pub mod config;
pub mod consumer;
mod deferred;
pub mod dlq;
pub mod http;
pub mod metrics;
mod multiget;
pub mod ops;
pub mod projector;
mod puback;
pub mod watermark;

pub use apply::{Applier, SkuOutcome};
pub use batch::decode;
pub use config::ProjectorConfig;
pub use projector::Projector;
pub use watermark::{Watermark, Watermarks};

#[cfg(test)]
mod tests {
    /// The futures a binary spawns must be Send for any lifetime (a closure over a
    /// borrowed item in a buffered stream breaks that, and only shows at the spawn site).
    #[allow(dead_code)]
    fn spawned_futures_are_send(
        p: crate::Projector,
        c: &onhand_channels::Channel,
        t: tokio_util::sync::CancellationToken,
        pushes: &[onhand_channels::Push],
    ) {
        fn is_send<T: Send>(_: T) {}
        is_send(c.push(pushes));
        is_send(p.run(t));
    }
}
