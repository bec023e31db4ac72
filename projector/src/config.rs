//! A projector's own settings (`ONHAND_PROJECTOR__*`); the channel's come from
//! [`onhand_channels::ChannelSettings`].

use std::net::SocketAddr;
use std::time::Duration;

use onhand_common::ConfigError;
use onhand_common::config::env_or;

/// How a projector consumes.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most messages handled as one batch (coalesced per SKU, pushed, acked together).
    pub max_batch: usize,
    /// After the first message of a batch, how long to wait for more (bursts coalesce).
    pub linger: Duration,
    /// The consumer's ack wait; in-progress acks go out at a third of it during long pushes.
    pub ack_wait: Duration,
    /// Messages delivered and not yet acked, at most (the consumer's `max_ack_pending`).
    pub max_ack_pending: i64,
    /// First redelivery delay after a transient failure; doubles per delivery.
    pub retry_base: Duration,
    /// Longest redelivery delay when the channel gave no Retry-After.
    pub retry_max: Duration,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub listen_addr: SocketAddr,
    /// How often lag and pending are sampled from the consumer.
    pub lag_interval: Duration,
    /// While a backlog is worked through, how long watermarks may wait to be written
    /// together (a hot SKU is written once per commit, not once per batch); the messages
    /// they cover are acked when written. A caught-up projector writes after every batch.
    ///
    /// 5 s by default (at most a third of the ack wait), like Kafka's consumer offset
    /// auto-commit. Each write costs nats-server about 20 µs of CPU on one node (0.41 s
    /// for 20,000 KV puts here), and a replicated bucket more. In a long backlog where every
    /// SKU recurs, scripts/bench projector measured 0.18 writes per event at 1 s and 0.03
    /// at 5 s, and the server's CPU fell by a fifth. Against that, a backlog's watermarks
    /// and acks trail by up to the interval: the lag gauge reads up to that much more
    /// while a backlog lasts, and a crash redelivers the held SKUs, at most
    /// `max_ack_pending - max_batch` of them whatever the interval.
    pub commit_interval: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            // Large: a batch is cut short by `linger` when the consumer is caught up, so the
            // size only matters with a backlog, where a bigger batch coalesces more events
            // per SKU into one channel item and one watermark write (at 10k rather than 2k,
            // 36% fewer writes and 15% less CPU in scripts/bench projector's Zipf run).
            max_batch: 10_000,
            linger: Duration::from_millis(5),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            retry_base: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            lag_interval: Duration::from_secs(1),
            commit_interval: Self::DEFAULT_COMMIT_INTERVAL,
        }
    }
}

impl ProjectorConfig {
    /// The commit interval when the ack wait allows it (see [`Self::commit_interval`]).
    pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

    /// The commit interval unless set: the default, or a third of a short ack wait.
    pub fn commit_interval_for(ack_wait: Duration) -> Duration {
        Self::DEFAULT_COMMIT_INTERVAL
            .min(ack_wait / 3)
            .max(Duration::from_millis(1))
    }

    /// `ONHAND_PROJECTOR__{MAX_BATCH,LINGER_MS,ACK_WAIT_SECS,MAX_ACK_PENDING,RETRY_BASE_MS,RETRY_MAX_MS,LISTEN_ADDR,COMMIT_INTERVAL_MS}`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let var = |k: &str| format!("ONHAND_PROJECTOR__{k}");
        let ms = |k: &str, default: Duration| -> Result<Duration, ConfigError> {
            env_or(&var(k), default.as_millis() as u64).map(Duration::from_millis)
        };
        let ack_wait = Duration::from_secs(env_or(&var("ACK_WAIT_SECS"), d.ack_wait.as_secs())?);
        let config = Self {
            max_batch: env_or(&var("MAX_BATCH"), d.max_batch)?,
            linger: ms("LINGER_MS", d.linger)?,
            ack_wait,
            max_ack_pending: env_or(&var("MAX_ACK_PENDING"), d.max_ack_pending)?,
            retry_base: ms("RETRY_BASE_MS", d.retry_base)?,
            retry_max: ms("RETRY_MAX_MS", d.retry_max)?,
            listen_addr: env_or(&var("LISTEN_ADDR"), d.listen_addr)?,
            lag_interval: d.lag_interval,
            commit_interval: ms("COMMIT_INTERVAL_MS", Self::commit_interval_for(ack_wait))?,
        };
        config.validate(|k| var(k))?;
        Ok(config)
    }

    fn validate(&self, var: impl Fn(&str) -> String) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.max_batch) {
            return Err(ConfigError::invalid(
                var("MAX_BATCH"),
                "must be from 1 to 10000",
            ));
        }
        if self.linger > Duration::from_secs(5) {
            return Err(ConfigError::invalid(
                var("LINGER_MS"),
                "must be at most 5000",
            ));
        }
        if !(Duration::from_secs(3)..=Duration::from_secs(3600)).contains(&self.ack_wait) {
            return Err(ConfigError::invalid(
                var("ACK_WAIT_SECS"),
                "must be from 3 to 3600",
            ));
        }
        if self.max_ack_pending < self.max_batch as i64 {
            return Err(ConfigError::invalid(
                var("MAX_ACK_PENDING"),
                "must be at least MAX_BATCH",
            ));
        }
        if self.retry_base.is_zero() || self.retry_base > self.retry_max {
            return Err(ConfigError::invalid(
                var("RETRY_BASE_MS"),
                "must be above 0 and at most RETRY_MAX_MS",
            ));
        }
        // Held messages get no in-progress acks between batches: a commit must come well
        // inside the ack wait.
        if self.commit_interval > self.ack_wait / 3 {
            return Err(ConfigError::invalid(
                var("COMMIT_INTERVAL_MS"),
                "must be at most a third of ACK_WAIT_SECS",
            ));
        }
        Ok(())
    }

    /// SKUs whose watermarks may be held before a commit starts at once: the consumer
    /// delivers at most `max_ack_pending` unacked messages, and a full batch must fit
    /// beside the held ones.
    pub fn commit_limit(&self) -> usize {
        usize::try_from(self.max_ack_pending)
            .unwrap_or(0)
            .saturating_sub(self.max_batch)
    }

    /// The redelivery delay after the `delivered`-th delivery failed transiently.
    pub fn retry_delay(&self, delivered: i64, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(Duration::from_secs(3600));
        }
        let exp = u32::try_from(delivered.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.retry_base
            .saturating_mul(1u32 << exp)
            .min(self.retry_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_to_the_cap_and_retry_after_wins() {
        let c = ProjectorConfig::default();
        assert_eq!(c.retry_delay(1, None), Duration::from_millis(250));
        assert_eq!(c.retry_delay(2, None), Duration::from_millis(500));
        assert_eq!(c.retry_delay(3, None), Duration::from_secs(1));
        assert_eq!(c.retry_delay(40, None), Duration::from_secs(30));
        assert_eq!(
            c.retry_delay(40, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_commit_interval_defaults_to_5_s_or_a_third_of_a_short_ack_wait() {
        assert_eq!(
            ProjectorConfig::commit_interval_for(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
        assert_eq!(
            ProjectorConfig::commit_interval_for(Duration::from_secs(15)),
            Duration::from_secs(5)
        );
        assert_eq!(
            ProjectorConfig::commit_interval_for(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            ProjectorConfig::commit_interval_for(Duration::ZERO),
            Duration::from_millis(1)
        );
        for secs in [3, 5, 14, 15, 30, 3600] {
            ProjectorConfig {
                ack_wait: Duration::from_secs(secs),
                commit_interval: ProjectorConfig::commit_interval_for(Duration::from_secs(secs)),
                ..ProjectorConfig::default()
            }
            .validate(|k| k.to_owned())
            .unwrap_or_else(|e| panic!("ack wait {secs} s: {e}"));
        }
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let var = |k: &str| format!("X_{k}");
        let bad = [
            ProjectorConfig {
                max_batch: 0,
                ..ProjectorConfig::default()
            },
            ProjectorConfig {
                ack_wait: Duration::from_secs(1),
                ..ProjectorConfig::default()
            },
            ProjectorConfig {
                max_ack_pending: 10,
                ..ProjectorConfig::default()
            },
            ProjectorConfig {
                retry_base: Duration::ZERO,
                ..ProjectorConfig::default()
            },
            ProjectorConfig {
                commit_interval: Duration::from_secs(11),
                ..ProjectorConfig::default()
            },
        ];
        let names: Vec<String> = bad
            .iter()
            .map(|c| c.validate(var).expect_err("invalid").name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "X_MAX_BATCH",
                "X_ACK_WAIT_SECS",
                "X_MAX_ACK_PENDING",
                "X_RETRY_BASE_MS",
                "X_COMMIT_INTERVAL_MS"
            ]
        );
        ProjectorConfig::default()
            .validate(var)
            .expect("defaults are valid");
    }
}
