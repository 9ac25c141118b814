//! Node-to-node traffic over gRPC: the tonic side of `cairn-raft`'s network contract. Every Raft
//! group of a node (the controller and each replicated partition) calls its peers through one
//! [`PeerLinks`], which implements [`cairn_raft::PeerTransport`]; calls from peers arrive at the
//! node's [`PeerService`] (`cairn.cluster.v1.Peer`, `proto/cairn/cluster/v1/peer.proto`), which
//! hands them to the node's [`cairn_raft::InboundCalls`].
//!
//! Why this shape: a node with a thousand partition groups must not open a thousand connections
//! or send a thousand separate heartbeats per interval to each peer. So each ordered node pair
//! has one connection and one long-lived bidirectional stream, and each message on it is a
//! *frame* of many calls (or replies): whatever was queued when the writer ran. Replies come back
//! in completion order, so one slow call (a follower's fsync) delays no other. Each direction of
//! a node pair uses its own connection (A's calls to B on A's, B's calls to A on B's): a stream
//! then has one caller and one callee, and a node's restart breaks exactly the links it owns.
//! Payloads are opaque: `cairn-raft` encodes openraft's messages.
//!
//! Code map:
//! - [`PeerLinks`] (`links`): the address book and one `link::Link` per peer; a link queues
//!   calls and a `link_driver` task per peer opens the stream lazily, reopens it after a pause
//!   (`backoff`) while failing calls fast, and runs a `session`: a writer coalescing queued calls
//!   into frames (`frame`), holding only recurring calls back to share them (`pacing`), and a
//!   reader resolving `pending` calls from reply frames;
//! - [`PeerService`] (`service`): checks each stream's hello ([`NodeIdentity`], `identity`) and
//!   runs it as an `inbound` stream: calls dispatched concurrently, at most a bounded number per
//!   stream, replies coalesced as they complete; a caller's newer stream ends its older one
//!   (`callers`), so a peer that vanished without closing leaves nothing behind;
//! - [`PeerLimits`] (`limits`): every bound, with its default and why;
//! - [`PeerMetrics`] (`metrics`): frames, calls and bytes per peer each way, for `/metrics`.
//!
//! Wiring, at start-up (one [`NodeIdentity`], one [`PeerMetrics`] shared by both sides; the
//! server's `Metrics` holds the one `/metrics` renders, see `Metrics::peer_metrics`):
//! `PeerLinks::new(identity, peers, limits, metrics)` is the transport every group calls
//! through; `peer_server(identity, inbound, limits, metrics)` gives the service to add to the
//! gRPC router and a [`PeerServiceHandle`] to `close()` when shutdown begins (before the router
//! drains, which an open peer stream would otherwise hold forever). The router should also send
//! HTTP/2 keepalive pings (`http2_keepalive_interval`/`http2_keepalive_timeout`, e.g. from
//! [`PeerLimits`]): a peer that went silent without closing (paused, partitioned) otherwise keeps
//! its connection, and a graceful shutdown waits on it forever.
//!
//! What it does not do: retry calls (Raft retries), authenticate peers (the hello's node and
//! cluster ids catch misconfiguration, not attackers), or order calls of one group (Raft does not
//! need it; in practice a link keeps its queue's order).

mod backoff;
mod callers;
mod frame;
mod identity;
mod inbound;
mod limits;
mod link;
mod link_driver;
mod links;
mod metrics;
mod pacing;
mod pending;
mod service;
mod session;

pub use identity::{HelloRefusal, NodeIdentity};
pub use limits::{
    CALL_OVERHEAD_BYTES, DEFAULT_CALL_QUEUE_DEPTH, DEFAULT_FRAME_INTERVAL_MIN,
    DEFAULT_FRAME_PAYLOAD_BYTES_TARGET, DEFAULT_MAX_CALL_PAYLOAD_BYTES,
    DEFAULT_MAX_CALLS_PER_FRAME, DEFAULT_MAX_IN_FLIGHT_CALLS_PER_STREAM, PeerLimits,
};
pub use links::PeerLinks;
pub use metrics::{MAX_TRACKED_PEERS, PeerCounter, PeerMetrics};
pub use service::{PeerService, PeerServiceHandle, peer_server};
