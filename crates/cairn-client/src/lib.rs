//! `cairn-client`: the Rust client of Cairn over the `cairn.v1` gRPC API. It depends only on the
//! generated API types, never on the server crates.
//!
//! Code map:
//! - `connection`: reaching the first answering broker of a `host:port` list;
//! - [`Admin`]: topic administration;
//! - [`ClientError`]: every failure, with the broker's stable error code when it sent one.
//!
//! Producer (batching, Kafka's partitioner, idempotent retries) and Consumer (assign, seek,
//! poll) come next; the CLI's client commands are built on this crate.

mod admin;
mod connection;
mod error;

pub use admin::Admin;
pub use cairn_proto::v1::{ErrorCode, PartitionDescription, TopicDescription};
pub use connection::{CONNECT_TIMEOUT, connect};
pub use error::ClientError;
