//! Where clients reach this node, published in the cluster metadata. Peers dial each other at
//! the `--peers` addresses; clients may need another (a container's published port, a name
//! behind NAT), which is `--advertised-address`. Every client-facing answer that names a node
//! (metadata, `NOT_LEADER` and `NOT_COORDINATOR` hints, `DescribeCluster`) reads the metadata,
//! so each node writes its own client address there once the cluster has formed, and again
//! whenever the metadata disagrees with its settings (after a restart with a new address).

use std::time::Duration;

use cairn_controller::Command;

use super::runtime::{ADMIN_TIMEOUT, ClusterRuntime};

/// What this node's metadata entry should say clients use: `None` when clients use the peer
/// address (no advertised address, or the same one).
pub(super) fn wanted_client_address(
    peer_address: Option<&str>,
    advertised: &str,
) -> Option<String> {
    (!advertised.is_empty() && Some(advertised) != peer_address).then(|| advertised.to_string())
}

/// Proposes this node's client address until the metadata holds it.
pub(super) async fn publish_client_address(runtime: &ClusterRuntime, advertised: &str) {
    let me = runtime.spec.node_id();
    let peer_address = runtime.spec.peers().get(&me).cloned();
    let wanted = wanted_client_address(peer_address.as_deref(), advertised);
    loop {
        let metadata = runtime.controller.metadata();
        let Some(node) = metadata.node(me) else {
            tracing::error!(
                node = me,
                "this node is not in the cluster metadata; its client address is not published"
            );
            return;
        };
        if node.client_addr == wanted {
            return;
        }
        let command = Command::AdvertiseNode {
            node: me,
            client_addr: wanted.clone(),
        };
        match runtime.controller.propose(&command, ADMIN_TIMEOUT).await {
            Ok(_) => {
                tracing::info!(
                    node = me,
                    client_address = wanted.as_deref().unwrap_or(node.addr.as_str()),
                    "client address published"
                );
                return;
            }
            Err(e) => {
                tracing::info!(error = %e, "client address not published yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wanted_client_address;

    #[test]
    fn only_an_address_other_than_the_peer_address_is_published() {
        assert_eq!(wanted_client_address(Some("10.0.0.1:7070"), ""), None);
        assert_eq!(
            wanted_client_address(Some("10.0.0.1:7070"), "10.0.0.1:7070"),
            None
        );
        assert_eq!(
            wanted_client_address(Some("10.0.0.1:7070"), "broker-1.example:9092"),
            Some("broker-1.example:9092".to_string())
        );
    }
}
