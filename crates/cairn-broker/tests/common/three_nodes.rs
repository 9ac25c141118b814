//! Three brokers in one process, joined by the in-process transport (`cairn-raft`'s `testing`
//! feature), each over a directory of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_broker::{Broker, BrokerConfig, ClusterSpec, RaftTimings};
use cairn_log::SystemClock;
use cairn_raft::GroupRegistry;
use cairn_raft::testing::mem_transport::MemNetwork;
use tempfile::TempDir;

/// One of the three brokers.
pub struct Node {
    /// Its node id, 1 to 3.
    pub id: u64,
    /// The broker.
    pub broker: Arc<Broker>,
    /// Its data directory, removed with it.
    pub dir: TempDir,
}

/// Three nodes (election timeouts 300 - 600 ms, heartbeats every 50 ms, retention checked
/// every 100 ms), joined over `net`.
pub async fn cluster(net: &Arc<MemNetwork>) -> Vec<Node> {
    cluster_with(net, |spec| spec).await
}

/// [`cluster`], with each node's spec changed by `tweak`.
pub async fn cluster_with(
    net: &Arc<MemNetwork>,
    tweak: impl Fn(ClusterSpec) -> ClusterSpec,
) -> Vec<Node> {
    cluster_configured(net, "300..600", |cfg| {
        cfg.cluster = tweak(
            cfg.cluster
                .clone()
                .with_retention_purge_interval(Duration::from_millis(100)),
        );
    })
    .await
}

/// Three nodes joined over `net`, whose election timeouts range over `elections`
/// (milliseconds; heartbeats every 50 ms), each node's config changed by `configure`.
pub async fn cluster_configured(
    net: &Arc<MemNetwork>,
    elections: &str,
    configure: impl Fn(&mut BrokerConfig),
) -> Vec<Node> {
    let peers: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("node-{id}:7070"))).collect();
    let timings = RaftTimings::parse(Some(elections), Some("50")).unwrap();
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = super::config(dir.path());
        cfg.cluster = ClusterSpec::new(Some(id), peers.clone(), timings, None).unwrap();
        cfg.advertised_address = format!("node-{id}:7070");
        configure(&mut cfg);
        let broker = Arc::new(Broker::open(cfg, Arc::new(SystemClock)).await.unwrap());
        let registry = Arc::new(GroupRegistry::new());
        net.add_node(id, Arc::clone(&registry));
        broker
            .join_cluster(net.transport(id), registry)
            .await
            .unwrap();
        nodes.push(Node { id, broker, dir });
    }
    nodes
}
