//! `cairn-client`: the Rust client of Cairn over the `cairn.v1` gRPC API. It depends only on the
//! generated API types, never on the server crates.
//!
//! Code map:
//! - `connection`: reaching the first answering broker of a `host:port` list;
//! - [`Admin`]: topic administration;
//! - [`Producer`]: sends records (one request per call for now; batching and idempotence next);
//! - [`Consumer`]: reads assigned partitions from a [`Seek`] position by long polls;
//! - [`ClientError`]: every failure, with the broker's stable error code when it sent one.
//!
//! The CLI's client commands are built on this crate.

mod admin;
mod connection;
mod consumer;
mod error;
mod producer;

pub use admin::Admin;
pub use cairn_proto::v1::Acks;
pub use cairn_proto::v1::{ErrorCode, PartitionDescription, TopicDescription};
pub use connection::{CONNECT_TIMEOUT, connect};
pub use consumer::{ConsumedRecord, Consumer, Seek};
pub use error::ClientError;
pub use producer::{OutgoingRecord, Placement, Producer};
