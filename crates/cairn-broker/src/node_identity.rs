//! [`NodeIdentity`]: who this node is to clients, as the broker holds it. Metadata answers,
//! partition leadership and `NOT_LEADER` hints are built from it, so the server never makes
//! up a node id or an address.

/// A node's id and the address clients reach it at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// The node's id (`--node-id`).
    pub node_id: i32,
    /// The gRPC address clients are told to use ("host:port").
    pub advertised_address: String,
}
