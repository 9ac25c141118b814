//! Cairn's gRPC API, package `cairn.v1`: the types and the tonic client and server stubs
//! generated from `proto/cairn/v1/*.proto`. Shared by `cairn-server` and `cairn-client`; it holds
//! no logic. The `.proto` files are the documentation of every field. Also the node-to-node
//! protocol, package `cairn.cluster.v1` (`proto/cairn/cluster/v1/peer.proto`), which only the
//! server uses.
//!
//! `bytes` fields are generated as `bytes::Bytes`, so a record batch travels from the gRPC
//! buffer to the log without a copy.

#![allow(
    missing_docs,
    reason = "generated code; the .proto files document every item"
)]
#![allow(clippy::all, reason = "generated code")]

/// Package `cairn.v1`.
pub mod v1 {
    tonic::include_proto!("cairn.v1");

    /// The encoded `FileDescriptorSet` of package `cairn.v1`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("cairn_v1_descriptor");
}

/// Node-to-node packages (not the client API).
pub mod cluster {
    /// Package `cairn.cluster.v1`: the `Peer` service that carries Raft calls between nodes.
    pub mod v1 {
        tonic::include_proto!("cairn.cluster.v1");
    }
}
