//! The named limits of node-to-node traffic, with their defaults and the reasons for them. Both
//! ends of a link read the same [`PeerLimits`]: a node whose frames are bigger than its peer
//! decodes breaks the stream (and reconnects), so a cluster runs with one setting.

use std::time::Duration;

/// Protobuf bytes a call or reply adds around its payload in a frame (tags, lengths, call id,
/// group, kind), rounded up; used to bound a whole frame from its payloads.
pub const CALL_OVERHEAD_BYTES: usize = 64;

/// How node-to-node links and streams are bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Largest payload of one call or reply. An AppendEntries carries whole record batches, so
    /// this is megabytes; a call over it is refused before it is sent, a reply over it is
    /// replaced by a refusal.
    pub max_call_payload_bytes: usize,
    /// Payload bytes after which a writer stops adding calls (or replies) to a frame. A frame
    /// always takes at least one, so a frame is at most this plus one largest payload. Small
    /// enough that heartbeats queued behind a big append wait for one modest frame only.
    pub frame_payload_bytes_target: usize,
    /// Most calls (or replies) in one frame.
    pub max_calls_per_frame: usize,
    /// The least time between two frames of calls on a link, for frames headed by a heartbeat
    /// or a ping: such a call arriving sooner after the previous frame waits for the rest of
    /// the interval, and whatever else arrives meanwhile leaves in the same frame (a paced Kafka
    /// `linger.ms`); on a link quiet for longer it leaves at once. Calls somebody waits on
    /// (entries, votes, proposals) are never paced. Zero sends every frame at once.
    ///
    /// Why pace: heartbeats of independent groups arrive spread over the heartbeat interval, so
    /// unpaced most leave in frames of their own, and a frame costs CPU at both ends (task
    /// wake-ups, HTTP/2 framing, a write and a read each side). Measured with
    /// `benches/peer_calls.rs` (1,000 groups heartbeating every 250 ms, both ends in one
    /// process, this 2-core machine shared with other builds, so ranges over runs): unpaced,
    /// ~1 call per frame and 12-16% of a core in all; paced at 1 ms, ~8 calls per frame and
    /// 7-11%; the groups' timers alone take 4-5%. So pacing about halves what the transport
    /// costs. Pacing entries too cost each replication round up to a timer tick (tokio's
    /// timers round up to the millisecond; openraft replicates each group one AppendEntries at
    /// a time), which showed as milliseconds of `acks=all` produce latency under load, so
    /// entries leave at once (see `session::paced`).
    pub frame_interval_min: Duration,
    /// Calls queued per peer before callers wait (up to their deadline) for room.
    pub call_queue_depth: usize,
    /// Calls of one inbound stream handled at once; past it the node stops reading the stream,
    /// and HTTP/2 flow control holds the caller back.
    pub max_in_flight_calls_per_stream: usize,
    /// How long opening a stream to a peer may take: TCP connect, HTTP/2 handshake and the
    /// peer's acceptance of the hello. A paused peer still accepts TCP connections in its
    /// kernel, so only this bound keeps a link from waiting forever on one.
    pub open_timeout: Duration,
    /// The first pause after a failed or broken link, during which calls to the peer fail at
    /// once with `Unreachable`; it doubles on each failure in a row.
    pub reconnect_backoff_min: Duration,
    /// The longest pause: a peer that comes back is reached again within about this long.
    pub reconnect_backoff_max: Duration,
    /// How often an HTTP/2 PING checks an open link; a peer that stops answering (paused,
    /// partitioned away) is detected within this plus [`Self::keepalive_timeout`], after which
    /// calls fail fast instead of each waiting out its deadline.
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the link is declared broken.
    pub keepalive_timeout: Duration,
    /// How long a node waits for the hello of a stream opened to it.
    pub hello_timeout: Duration,
}

/// Default [`PeerLimits::max_call_payload_bytes`]: 32 MiB, two of the largest produce requests
/// (`MAX_REQUEST_BYTES`), so an append of a few large batches fits.
pub const DEFAULT_MAX_CALL_PAYLOAD_BYTES: usize = 32 << 20;
/// Default [`PeerLimits::frame_payload_bytes_target`]: 1 MiB.
pub const DEFAULT_FRAME_PAYLOAD_BYTES_TARGET: usize = 1 << 20;
/// Default [`PeerLimits::max_calls_per_frame`]: a heartbeat of each of a thousand groups fits
/// in one frame.
pub const DEFAULT_MAX_CALLS_PER_FRAME: usize = 1024;
/// Default [`PeerLimits::frame_interval_min`]: 1 ms, tokio's timer resolution.
pub const DEFAULT_FRAME_INTERVAL_MIN: Duration = Duration::from_millis(1);
/// Default [`PeerLimits::call_queue_depth`]: a few heartbeat rounds of a thousand groups.
pub const DEFAULT_CALL_QUEUE_DEPTH: usize = 4096;
/// Default [`PeerLimits::max_in_flight_calls_per_stream`].
pub const DEFAULT_MAX_IN_FLIGHT_CALLS_PER_STREAM: usize = 4096;

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            max_call_payload_bytes: DEFAULT_MAX_CALL_PAYLOAD_BYTES,
            frame_payload_bytes_target: DEFAULT_FRAME_PAYLOAD_BYTES_TARGET,
            max_calls_per_frame: DEFAULT_MAX_CALLS_PER_FRAME,
            frame_interval_min: DEFAULT_FRAME_INTERVAL_MIN,
            call_queue_depth: DEFAULT_CALL_QUEUE_DEPTH,
            max_in_flight_calls_per_stream: DEFAULT_MAX_IN_FLIGHT_CALLS_PER_STREAM,
            // Under the default election timeout (1 s to 2 s): a link that cannot open in a
            // second is not going to carry a heartbeat in time either.
            open_timeout: Duration::from_secs(1),
            reconnect_backoff_min: Duration::from_millis(50),
            // A returning node is reached within a second, before its groups' election timers
            // (1 s to 2 s) would make it campaign needlessly; one attempt a second per down peer
            // costs nothing.
            reconnect_backoff_max: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(2),
            hello_timeout: Duration::from_secs(10),
        }
    }
}

impl PeerLimits {
    /// The largest protobuf message (frame) either end encodes or decodes: one frame's payload
    /// target, one largest payload past it, and the overhead of a full frame's calls.
    pub fn max_message_bytes(&self) -> usize {
        self.frame_payload_bytes_target
            .saturating_add(self.max_call_payload_bytes)
            .saturating_add(
                self.max_calls_per_frame
                    .saturating_add(1)
                    .saturating_mul(CALL_OVERHEAD_BYTES),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_frame_of_the_largest_payloads_fits_the_message_limit() {
        let limits = PeerLimits::default();
        // The writer adds payloads until the target is reached, then one more at most.
        let worst = limits.frame_payload_bytes_target
            + limits.max_call_payload_bytes
            + limits.max_calls_per_frame * CALL_OVERHEAD_BYTES;
        assert!(
            worst <= limits.max_message_bytes(),
            "worst frame {worst} over limit {}",
            limits.max_message_bytes()
        );
    }
}
