//! `cairn-codec`: the bytes Cairn's broker and its clients must agree on, with no I/O, no
//! network and no clock.
//!
//! - [`batch`]: Kafka's RecordBatch v2, byte for byte: encoder, zero-copy validator, records,
//!   compression codecs, CRC-32C and Cairn's meta entries. The broker stores what a client's
//!   [`batch::BatchBuilder`] produced without re-encoding it, so both sides must share this code.
//! - `partitioner`: which partition a keyed record belongs to ([`partition_for_key`], Kafka's
//!   murmur2) and how keyless records are spread ([`StickyPartitioner`], KIP-794 and KIP-480).
//!   The client partitions before it batches, the broker when a request names no partition;
//!   both must pick the same partition for a key.
//! - [`grpc_frame`]: gRPC's 5-byte length-prefixed message framing and its limits, for the
//!   calls the broker frames itself and the client reads without copying. Bytes only: each end
//!   maps a [`grpc_frame::FrameError`] to its own status.
//! - [`Offset`] and [`LeaderEpoch`], the two numbers a batch header carries.
//!
//! Why a crate of its own: the client must never depend on the server crates (`cairn-log` maps
//! files and runs writer threads), yet it must encode exactly what the log validates. Kafka
//! draws the same line: its record format lives in the clients library and the broker uses it.

pub mod batch;
pub mod grpc_frame;
mod partitioner;
mod types;

pub use partitioner::{
    RandomSource, StickyPartitioner, XorShift64, murmur2, partition_for_key, to_positive,
};
pub use types::{LeaderEpoch, Offset};
