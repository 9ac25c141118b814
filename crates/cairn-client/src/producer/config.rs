//! `ProducerConfig`: the producer's knobs, named and defaulted as Kafka's producer names them
//! (`linger.ms`, `batch.size`, `buffer.memory`, `delivery.timeout.ms`, ...), so a Kafka user
//! can carry their tuning over.

use std::time::Duration;

use cairn_codec::batch::Compression;
use cairn_proto::v1::Acks;

use crate::error::ClientError;

/// The most requests an idempotent producer keeps in flight per partition: the broker
/// remembers the last 5 batches of each producer, so a retry of any of them is recognised.
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// Default [`ProducerConfig::delivery_timeout`]: 120 s, as Kafka's `delivery.timeout.ms`. A
/// broker must remember a producer at least this long after its last write, or a retry of its
/// first batch could be written twice (see `cairn serve --producer-id-expiration-ms`).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// How a [`Producer`](crate::Producer) batches, retries and waits.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// How many replicas must have a batch before it counts as delivered (Kafka's `acks`).
    /// Default [`Acks::All`].
    pub acks: Acks,
    /// Exactly-once appends per partition through producer ids and sequence numbers (Kafka's
    /// `enable.idempotence`): a retried batch is never written twice and never reordered.
    /// Default `true`; ignored (off) with [`Acks::None`], where nothing is retried.
    pub idempotent: bool,
    /// How long a partition's batch waits for more records before it is sent, when it is not
    /// full and the partition has a request in flight (`linger.ms`). A partition with nothing
    /// in flight sends at once: batching only pays when requests queue. Default 5 ms, as
    /// Kafka 4 (KIP-1030).
    pub linger: Duration,
    /// A batch is sent once it holds this many bytes of records (`batch.size`). A record
    /// larger than this travels alone. Default 256 KiB, not Kafka's 16 KiB: every request
    /// costs a share of an fsync and a fixed amount of CPU at both ends, and on the 2-vCPU
    /// machine of `BENCHMARKS.md` durable 1 KiB records reached about 55 MB/s in 16 KiB
    /// requests, 225 MB/s in 64 KiB and 320 MB/s in 256 KiB ones (512 KiB gained 20% more but
    /// doubled each request's service time). It is a cap, not a wait: a partition with
    /// nothing in flight sends what it has at once, so small batches still go at low load.
    pub batch_size: usize,
    /// Compression of each batch (`compression.type`). Default none.
    pub compression: Compression,
    /// Bytes of records the producer holds before `send` waits for acknowledgements to free
    /// room (`buffer.memory`). Default 32 MiB.
    pub buffer_memory: usize,
    /// Requests in flight per partition (`max.in.flight.requests.per.connection`). At most
    /// [`MAX_IN_FLIGHT_IDEMPOTENT`] when idempotent. Default 5.
    pub max_in_flight: usize,
    /// First pause before a retry (`retry.backoff.ms`); it doubles up to `retry_backoff_max`.
    /// Default 100 ms.
    pub retry_backoff: Duration,
    /// Longest pause between retries (`retry.backoff.max.ms`). Default 1 s.
    pub retry_backoff_max: Duration,
    /// Longest wait for one request's answer (`request.timeout.ms`): each produce, and the
    /// producer id and metadata calls. Default 30 s.
    pub request_timeout: Duration,
    /// Longest wait for a TCP connection to one broker
    /// (`socket.connection.setup.timeout.ms`). Default [`crate::CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Upper bound on the time from `send` to the record's result, retries included
    /// (`delivery.timeout.ms`). Default 120 s.
    pub delivery_timeout: Duration,
    /// The user and password sent with every call (see [`crate::Credentials`]). Default
    /// `None`: the anonymous principal.
    pub credentials: Option<crate::Credentials>,
    /// TLS for every connection (see [`crate::Timeouts::tls`]). Default `None`: plaintext.
    pub tls: Option<crate::ClientTls>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            idempotent: true,
            linger: Duration::from_millis(5),
            batch_size: 256 * 1024,
            compression: Compression::None,
            buffer_memory: 32 << 20,
            max_in_flight: 5,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            connect_timeout: crate::CONNECT_TIMEOUT,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            credentials: None,
            tls: None,
        }
    }
}

impl ProducerConfig {
    /// Whether sequence numbers are in use: asked for, and acknowledgements to check them by.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent && self.acks != Acks::None
    }

    /// Checks that the settings can work together.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] naming the setting that is out of range.
    pub fn validate(&self) -> Result<(), ClientError> {
        let fail = |what: String| Err(ClientError::InvalidArgument(what));
        if self.batch_size == 0 {
            return fail("batch_size must be at least 1 byte".into());
        }
        if self.buffer_memory < self.batch_size {
            return fail(format!(
                "buffer_memory ({}) must be at least batch_size ({})",
                self.buffer_memory, self.batch_size
            ));
        }
        if u32::try_from(self.buffer_memory).is_err() {
            return fail(format!(
                "buffer_memory ({}) must be below 4 GiB",
                self.buffer_memory
            ));
        }
        if self.max_in_flight == 0 {
            return fail("max_in_flight must be at least 1".into());
        }
        if self.is_idempotent() && self.max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT {
            return fail(format!(
                "max_in_flight ({}) must be at most {MAX_IN_FLIGHT_IDEMPOTENT} for an idempotent producer",
                self.max_in_flight
            ));
        }
        if self.request_timeout.is_zero()
            || self.delivery_timeout.is_zero()
            || self.connect_timeout.is_zero()
        {
            return fail(
                "request_timeout, connect_timeout and delivery_timeout must be above zero".into(),
            );
        }
        // Kafka's rule: every batch must get at least one full attempt.
        if self.delivery_timeout < self.linger + self.request_timeout {
            return fail(format!(
                "delivery_timeout ({:?}) must be at least linger + request_timeout ({:?})",
                self.delivery_timeout,
                self.linger + self.request_timeout
            ));
        }
        Ok(())
    }

    /// The pause before retry number `attempt` (1-based): exponential, capped.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1_u32 << attempt.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.retry_backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_kafka_like() {
        let config = ProducerConfig::default();
        assert!(config.validate().is_ok());
        assert!(config.is_idempotent());
        assert_eq!(config.batch_size, 256 * 1024);
    }

    #[test]
    fn bad_settings_name_themselves() {
        let cases: [(ProducerConfig, &str); 4] = [
            (
                ProducerConfig {
                    batch_size: 0,
                    ..Default::default()
                },
                "batch_size",
            ),
            (
                ProducerConfig {
                    max_in_flight: 6,
                    ..Default::default()
                },
                "max_in_flight",
            ),
            (
                ProducerConfig {
                    buffer_memory: 10,
                    ..Default::default()
                },
                "buffer_memory",
            ),
            (
                ProducerConfig {
                    delivery_timeout: Duration::from_millis(1),
                    ..Default::default()
                },
                "delivery_timeout",
            ),
        ];
        for (config, name) in cases {
            let err = config.validate().expect_err(name).to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = ProducerConfig::default();
        assert_eq!(config.backoff(1), Duration::from_millis(100));
        assert_eq!(config.backoff(2), Duration::from_millis(200));
        assert_eq!(config.backoff(30), Duration::from_secs(1));
    }

    #[test]
    fn without_acks_there_is_no_idempotence() {
        let config = ProducerConfig {
            acks: Acks::None,
            max_in_flight: 50,
            ..Default::default()
        };
        assert!(!config.is_idempotent());
        assert!(config.validate().is_ok());
    }
}
