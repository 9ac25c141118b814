//! [`ReplayConfig`]: what a [`super::Replay`] reads and how hard it pushes. Every knob has a
//! default and a unit; together they bound the replay's memory to about
//! `(prefetch_chunks + max_partitions_in_flight) * fetch_max_bytes`.

use super::checkpoint::Checkpoint;
use crate::connection::Timeouts;

/// Default upper bound on one fetched chunk of a partition (one streamed fetch answer). Measured
/// (BENCHMARKS.md): 256 KiB to 1 MiB chunks replay fastest; 8 MiB ones ran 20% slower, 16 MiB
/// ones 35% slower, as each chunk's buffers on both sides are fresh pages to fault in and zero.
pub const DEFAULT_FETCH_MAX_BYTES: i32 = 1 << 20;
/// Largest chunk the broker serves; larger settings are refused before connecting.
pub const MAX_FETCH_MAX_BYTES: i32 = 64 << 20;
/// Default number of fetched chunks waiting for the caller, all partitions together.
pub const DEFAULT_PREFETCH_CHUNKS: usize = 4;
/// Default number of partitions read at once during catch-up.
pub const DEFAULT_MAX_PARTITIONS_IN_FLIGHT: usize = 8;

/// How records travel from the broker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplayFormat {
    /// Stored batches, untouched; the client checks CRCs and decodes records in place
    /// (`FETCH_FORMAT_RECORD_BATCHES`). The fast path.
    #[default]
    RawBatches,
    /// Records decoded by the broker (`FETCH_FORMAT_RECORDS`): costs the broker a decode and
    /// the wire a per-record framing; for comparison, or a broker that serves only these.
    Decoded,
}

/// How a replay runs. `ReplayConfig::default()` reads every partition from its earliest
/// offset to the end captured at start, as raw batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Raw batches (default) or broker-decoded records.
    pub format: ReplayFormat,
    /// Start from these offsets instead of the earliest; partitions it does not name start
    /// from their earliest offset (a partition added since it was taken, say).
    pub checkpoint: Option<Checkpoint>,
    /// Keep reading after the captured end: a catch-up subscription that then waits for new
    /// records, until the replay is dropped.
    pub follow: bool,
    /// Upper bound on one fetched chunk, in bytes (at least one batch always comes, however
    /// large). 1 to [`MAX_FETCH_MAX_BYTES`].
    pub fetch_max_bytes: i32,
    /// Fetched chunks that may wait for the caller, all partitions together (at least 1).
    pub prefetch_chunks: usize,
    /// Partitions fetched at once before they are caught up (at least 1). In follow mode a
    /// partition gives its turn up once it reaches the captured end.
    pub max_partitions_in_flight: usize,
    /// Deadlines on connecting and on the offset lookups (not on the streams, which wait for
    /// new records in follow mode). Default: no request deadline.
    pub timeouts: Timeouts,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            format: ReplayFormat::default(),
            checkpoint: None,
            follow: false,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            prefetch_chunks: DEFAULT_PREFETCH_CHUNKS,
            max_partitions_in_flight: DEFAULT_MAX_PARTITIONS_IN_FLIGHT,
            timeouts: Timeouts::default(),
        }
    }
}

impl ReplayConfig {
    /// Checks the limits.
    ///
    /// # Errors
    /// A description of the first setting out of range.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_FETCH_MAX_BYTES).contains(&self.fetch_max_bytes) {
            return Err(format!(
                "fetch_max_bytes must be 1 to {MAX_FETCH_MAX_BYTES}, got {}",
                self.fetch_max_bytes
            ));
        }
        if self.prefetch_chunks == 0 {
            return Err("prefetch_chunks must be at least 1".to_string());
        }
        if self.max_partitions_in_flight == 0 {
            return Err("max_partitions_in_flight must be at least 1".to_string());
        }
        Ok(())
    }
}
