//! Who this node is to its peers: its node id and, once known, its cluster id. The same record
//! says hello on every stream the node opens and checks the hello of every stream opened to it.
//! The check guards against misconfiguration (an address book pointing at the wrong node, a node
//! of another cluster), not against an attacker: node-to-node traffic is not authenticated.

use std::sync::{PoisonError, RwLock};

use cairn_proto::cluster::v1::Hello;
use cairn_raft::NodeId;

/// This node's identity on node-to-node links; shared by its outbound links and its `Peer`
/// service.
#[derive(Debug)]
pub struct NodeIdentity {
    node_id: NodeId,
    cluster_id: RwLock<Option<String>>,
}

/// Why a node refused a stream's hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloRefusal {
    /// The caller meant to reach another node: its address book maps this address to another id.
    #[error("node {caller} called node {target} at this address, but this is node {mine}")]
    WrongTarget {
        /// The caller's node id.
        caller: NodeId,
        /// The node id the caller believes it reached.
        target: NodeId,
        /// This node's id.
        mine: NodeId,
    },
    /// The caller belongs to another cluster.
    #[error("node {caller} belongs to cluster {theirs:?}, this node to cluster {mine:?}")]
    WrongCluster {
        /// The caller's node id.
        caller: NodeId,
        /// The caller's cluster id.
        theirs: String,
        /// This node's cluster id.
        mine: String,
    },
}

impl NodeIdentity {
    /// The identity of node `node_id`, in cluster `cluster_id` when it is known already.
    pub fn new(node_id: NodeId, cluster_id: Option<String>) -> Self {
        Self {
            node_id,
            cluster_id: RwLock::new(cluster_id),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This node's cluster id, if known.
    pub fn cluster_id(&self) -> Option<String> {
        self.cluster_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the cluster id (when the controller assigns it, or it is read from the data
    /// directory). Streams opened from then on carry it, and hellos naming another are refused;
    /// streams already open are not re-checked.
    pub fn set_cluster_id(&self, cluster_id: String) {
        *self
            .cluster_id
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(cluster_id);
    }

    /// The hello this node sends when it opens a stream to node `target`.
    pub(crate) fn hello(&self, target: NodeId) -> Hello {
        Hello {
            node_id: self.node_id,
            target_node_id: Some(target),
            cluster_id: self.cluster_id(),
        }
    }

    /// Checks a caller's hello; on acceptance, answers the caller's node id.
    ///
    /// # Errors
    /// [`HelloRefusal`] when the caller names another node as its target, or another cluster
    /// than this node's (each checked only when both sides know it).
    pub(crate) fn check_hello(&self, hello: &Hello) -> Result<NodeId, HelloRefusal> {
        let caller = hello.node_id;
        match hello.target_node_id {
            Some(target) if target != self.node_id => {
                return Err(HelloRefusal::WrongTarget {
                    caller,
                    target,
                    mine: self.node_id,
                });
            }
            _ => {}
        }
        match (hello.cluster_id.as_ref(), self.cluster_id()) {
            (Some(theirs), Some(mine)) if *theirs != mine => {
                return Err(HelloRefusal::WrongCluster {
                    caller,
                    theirs: theirs.clone(),
                    mine,
                });
            }
            _ => {}
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node_id: NodeId, target: Option<NodeId>, cluster: Option<&str>) -> Hello {
        Hello {
            node_id,
            target_node_id: target,
            cluster_id: cluster.map(str::to_string),
        }
    }

    #[test]
    fn a_hello_for_this_node_is_accepted_and_names_the_caller() {
        let me = NodeIdentity::new(2, Some("c1".into()));
        assert_eq!(me.check_hello(&hello(1, Some(2), Some("c1"))), Ok(1));
        assert_eq!(me.check_hello(&hello(3, None, None)), Ok(3));
    }

    #[test]
    fn a_hello_for_another_node_is_refused() {
        let me = NodeIdentity::new(2, None);
        assert_eq!(
            me.check_hello(&hello(1, Some(3), None)),
            Err(HelloRefusal::WrongTarget {
                caller: 1,
                target: 3,
                mine: 2
            })
        );
    }

    #[test]
    fn another_cluster_is_refused_only_once_both_ids_are_known() {
        let me = NodeIdentity::new(2, None);
        assert_eq!(me.check_hello(&hello(1, Some(2), Some("other"))), Ok(1));
        me.set_cluster_id("mine".into());
        assert!(matches!(
            me.check_hello(&hello(1, Some(2), Some("other"))),
            Err(HelloRefusal::WrongCluster { .. })
        ));
        assert_eq!(me.check_hello(&hello(1, Some(2), None)), Ok(1));
    }

    #[test]
    fn the_hello_sent_names_the_target_and_the_cluster() {
        let me = NodeIdentity::new(1, None);
        assert_eq!(me.hello(2), hello(1, Some(2), None));
        me.set_cluster_id("c".into());
        assert_eq!(me.hello(2), hello(1, Some(2), Some("c")));
    }
}
