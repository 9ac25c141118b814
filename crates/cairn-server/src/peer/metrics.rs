//! Counters of node-to-node traffic per peer, for `GET /metrics`: frames, calls and bytes each
//! way, failed calls by reason, streams opened and broken, and whether the link is up. Plain
//! atomics, written by the links and the inbound streams, rendered at scrape time. Frames
//! against calls is the coalescing ratio: with many groups it should stay far below one.
//!
//! The peer label comes from the hello of inbound streams, which anyone reaching the port can
//! send, so the number of peers tracked is capped ([`MAX_TRACKED_PEERS`]); the rest share one
//! `peer="other"` series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cairn_raft::NodeId;

/// Most peers with series of their own.
pub const MAX_TRACKED_PEERS: usize = 256;

/// One counter kept per peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCounter {
    /// Frames of calls this node sent to the peer.
    FramesSent,
    /// Calls this node sent to the peer.
    CallsSent,
    /// Encoded bytes of the frames of calls sent.
    BytesSent,
    /// Frames of replies this node received from the peer.
    ReplyFramesReceived,
    /// Replies this node received from the peer.
    RepliesReceived,
    /// Encoded bytes of the frames of replies received.
    ReplyBytesReceived,
    /// Calls to the peer that failed as unreachable (link down, stream broken).
    CallsUnreachable,
    /// Calls to the peer whose deadline passed.
    CallsTimedOut,
    /// Calls the peer refused (or that were refused before sending: too large).
    CallsRefused,
    /// Streams this node opened to the peer.
    StreamsOpened,
    /// Streams to the peer that broke or were closed after opening.
    StreamsClosed,
    /// Frames of calls received from the peer.
    InboundFrames,
    /// Calls received from the peer.
    InboundCalls,
    /// Encoded bytes of the frames of calls received.
    InboundBytes,
    /// Frames of replies sent to the peer.
    InboundReplyFrames,
    /// Encoded bytes of the frames of replies sent.
    InboundReplyBytes,
    /// Calls from the peer answered with a refusal.
    InboundRefused,
}

const COUNTER_COUNT: usize = 17;

/// How each counter is exposed: name, help, and the extra label of its series.
struct Series {
    counter: PeerCounter,
    name: &'static str,
    help: &'static str,
    label: &'static str,
}

/// Series in exposition order; series of one name are consecutive.
const SERIES: [Series; COUNTER_COUNT] = [
    series(
        PeerCounter::FramesSent,
        "cairn_peer_frames_sent_total",
        "Frames of Raft calls sent to a peer (each carries one or more calls).",
        "",
    ),
    series(
        PeerCounter::CallsSent,
        "cairn_peer_calls_sent_total",
        "Raft calls sent to a peer.",
        "",
    ),
    series(
        PeerCounter::BytesSent,
        "cairn_peer_sent_bytes_total",
        "Encoded bytes of the frames of calls sent to a peer.",
        "",
    ),
    series(
        PeerCounter::ReplyFramesReceived,
        "cairn_peer_reply_frames_received_total",
        "Frames of replies received from a peer.",
        "",
    ),
    series(
        PeerCounter::RepliesReceived,
        "cairn_peer_replies_received_total",
        "Replies received from a peer.",
        "",
    ),
    series(
        PeerCounter::ReplyBytesReceived,
        "cairn_peer_received_bytes_total",
        "Encoded bytes of the frames of replies received from a peer.",
        "",
    ),
    series(
        PeerCounter::CallsUnreachable,
        "cairn_peer_call_failures_total",
        "Raft calls to a peer that got no answer, by reason.",
        ",reason=\"unreachable\"",
    ),
    series(
        PeerCounter::CallsTimedOut,
        "cairn_peer_call_failures_total",
        "",
        ",reason=\"timeout\"",
    ),
    series(
        PeerCounter::CallsRefused,
        "cairn_peer_call_failures_total",
        "",
        ",reason=\"refused\"",
    ),
    series(
        PeerCounter::StreamsOpened,
        "cairn_peer_streams_opened_total",
        "Streams this node opened to a peer.",
        "",
    ),
    series(
        PeerCounter::StreamsClosed,
        "cairn_peer_streams_closed_total",
        "Streams to a peer that broke or closed after opening.",
        "",
    ),
    series(
        PeerCounter::InboundFrames,
        "cairn_peer_inbound_frames_total",
        "Frames of Raft calls received from a peer.",
        "",
    ),
    series(
        PeerCounter::InboundCalls,
        "cairn_peer_inbound_calls_total",
        "Raft calls received from a peer.",
        "",
    ),
    series(
        PeerCounter::InboundBytes,
        "cairn_peer_inbound_received_bytes_total",
        "Encoded bytes of the frames of calls received from a peer.",
        "",
    ),
    series(
        PeerCounter::InboundReplyFrames,
        "cairn_peer_inbound_reply_frames_total",
        "Frames of replies sent to a peer.",
        "",
    ),
    series(
        PeerCounter::InboundReplyBytes,
        "cairn_peer_inbound_sent_bytes_total",
        "Encoded bytes of the frames of replies sent to a peer.",
        "",
    ),
    series(
        PeerCounter::InboundRefused,
        "cairn_peer_inbound_refused_total",
        "Raft calls from a peer answered with a refusal (unknown kind, no such group, undecodable).",
        "",
    ),
];

const fn series(
    counter: PeerCounter,
    name: &'static str,
    help: &'static str,
    label: &'static str,
) -> Series {
    Series {
        counter,
        name,
        help,
        label,
    }
}

// Every counter has exactly one series, at its own index.
const _: () = {
    let mut idx = 0;
    while idx < COUNTER_COUNT {
        assert!(SERIES[idx].counter as usize == idx);
        idx += 1;
    }
};

/// The counters of one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    values: [AtomicU64; COUNTER_COUNT],
    link_up: AtomicU64,
}

impl PeerCounters {
    /// Adds `amount` to `counter`.
    pub(crate) fn add(&self, counter: PeerCounter, amount: u64) {
        self.values[counter as usize].fetch_add(amount, Ordering::Relaxed);
    }

    /// Adds one to `counter`.
    pub(crate) fn incr(&self, counter: PeerCounter) {
        self.add(counter, 1);
    }

    /// Records whether this node's link to the peer has a stream open.
    pub(crate) fn set_link_up(&self, up: bool) {
        self.link_up.store(u64::from(up), Ordering::Relaxed);
    }

    fn get(&self, counter: PeerCounter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }
}

/// Node-to-node traffic counters of one node, shared by its links, its `Peer` service and the
/// `/metrics` rendering.
#[derive(Debug, Default)]
pub struct PeerMetrics {
    peers: Mutex<BTreeMap<NodeId, Arc<PeerCounters>>>,
    other: Arc<PeerCounters>,
}

impl PeerMetrics {
    /// No traffic counted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters of `peer` (the shared overflow counters once [`MAX_TRACKED_PEERS`] peers
    /// have their own).
    pub(crate) fn peer(&self, peer: NodeId) -> Arc<PeerCounters> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = peers.get(&peer) {
            return Arc::clone(counters);
        }
        if peers.len() >= MAX_TRACKED_PEERS {
            return Arc::clone(&self.other);
        }
        Arc::clone(peers.entry(peer).or_default())
    }

    /// The value of `counter` for `peer` (0 for a peer never seen).
    pub fn count(&self, peer: NodeId, counter: PeerCounter) -> u64 {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .map_or(0, |counters| counters.get(counter))
    }

    /// Whether this node's link to `peer` has a stream open now.
    pub fn link_up(&self, peer: NodeId) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .is_some_and(|counters| counters.link_up.load(Ordering::Relaxed) == 1)
    }

    /// Appends every series in Prometheus text format; nothing while no peer was seen (a
    /// cluster of one).
    pub fn render(&self, out: &mut String) {
        let peers: Vec<(String, Arc<PeerCounters>)> = {
            let map = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            let mut peers: Vec<_> = map
                .iter()
                .map(|(id, counters)| (id.to_string(), Arc::clone(counters)))
                .collect();
            if map.len() >= MAX_TRACKED_PEERS {
                peers.push(("other".to_string(), Arc::clone(&self.other)));
            }
            peers
        };
        if peers.is_empty() {
            return;
        }
        let mut previous = "";
        for (idx, series) in SERIES.iter().enumerate() {
            if series.name != previous {
                let _ = write!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} counter\n",
                    name = series.name,
                    help = series.help
                );
                previous = series.name;
            }
            // All series of one name go out together, peer by peer.
            if SERIES
                .get(idx + 1)
                .is_some_and(|next| next.name == series.name)
            {
                continue;
            }
            let family: Vec<&Series> = SERIES.iter().filter(|s| s.name == series.name).collect();
            for (peer, counters) in &peers {
                for s in &family {
                    let _ = writeln!(
                        out,
                        "{}{{peer=\"{peer}\"{}}} {}",
                        s.name,
                        s.label,
                        counters.get(s.counter)
                    );
                }
            }
        }
        out.push_str(
            "# HELP cairn_peer_link_up 1 while this node has a stream open to the peer.\n# TYPE cairn_peer_link_up gauge\n",
        );
        for (peer, counters) in &peers {
            let _ = writeln!(
                out,
                "cairn_peer_link_up{{peer=\"{peer}\"}} {}",
                counters.link_up.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_rendered_before_any_peer_is_seen() {
        let mut out = String::new();
        PeerMetrics::new().render(&mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn counts_are_rendered_per_peer_with_one_help_per_family() {
        let metrics = PeerMetrics::new();
        metrics.peer(2).add(PeerCounter::FramesSent, 3);
        metrics.peer(3).incr(PeerCounter::CallsTimedOut);
        metrics.peer(2).set_link_up(true);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("cairn_peer_frames_sent_total{peer=\"2\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("cairn_peer_frames_sent_total{peer=\"3\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("cairn_peer_call_failures_total{peer=\"3\",reason=\"timeout\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("cairn_peer_link_up{peer=\"2\"} 1\n"), "{out}");
        assert_eq!(
            out.matches("# HELP cairn_peer_call_failures_total").count(),
            1,
            "{out}"
        );
        assert_eq!(metrics.count(2, PeerCounter::FramesSent), 3);
        assert_eq!(metrics.count(9, PeerCounter::FramesSent), 0);
    }

    #[test]
    fn peers_past_the_cap_share_the_other_series() {
        let metrics = PeerMetrics::new();
        for peer in 0..MAX_TRACKED_PEERS as u64 + 5 {
            metrics.peer(peer).incr(PeerCounter::InboundCalls);
        }
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("cairn_peer_inbound_calls_total{peer=\"other\"} 5\n"),
            "other series missing"
        );
    }
}
