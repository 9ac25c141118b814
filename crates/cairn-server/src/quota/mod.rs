//! Client quotas, enforced by throttling as Kafka does: a principal over its produce, fetch or
//! request rate gets its answer late, by the time that brings its rate back to the quota, and
//! never an error. The limits are stored with users and ACLs
//! (`cairn_controller::security::quota`); this module measures and delays.
//!
//! - `window.rs`: [`RateWindow`], the sliding window and the delay rule (pure, clock passed in);
//! - `throttler.rs`: [`Throttler`], the windows of every principal on this node;
//! - `layer.rs`: [`QuotaLayer`], over every client call after authentication: records the call
//!   and its bytes, sleeps the delay, and says so in the `cairn-throttle-time-ms` header;
//! - `metrics.rs`: [`QuotaMetrics`], the throttle time per principal for `/metrics`.
//!
//! Quotas are per node (Kafka's are per broker). Creation limits (`max_topics`,
//! `max_partitions`) are not throttled but refused; the Admin service checks them.

mod layer;
mod metrics;
mod throttler;
mod window;

pub use layer::{Metered, QuotaLayer, QuotaService, StreamQuota, THROTTLE_HEADER, UsedBytes};
pub use metrics::QuotaMetrics;
pub use throttler::{MAX_THROTTLE, QuotaKind, Throttle, Throttler, Usage};
pub use window::RateWindow;
