//! An in-process `cairn-server` on loopback for the client's tests: free ports, start-up and
//! waiting until it answers. Dropping the stop sender stops the server.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is a failed test"
)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use cairn_client::Admin;
use cairn_server::{ServerConfig, run};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A server on `grpc`/`http` over `dir`; dropping the sender stops it. The task panics if the
/// server fails, so awaiting the handle checks a clean stop.
pub fn serve(
    dir: &Path,
    grpc: SocketAddr,
    http: SocketAddr,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let cfg = ServerConfig {
        data_dir: dir.to_path_buf(),
        grpc_addr: grpc,
        http_addr: http,
        cluster: cairn_broker::ClusterSpec::default(),
        advertised_address: None,
        topic_defaults: cairn_broker::TopicConfig::default(),
        max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
        producer_id_expiration: Default::default(),
        connections: cairn_server::connections::ConnectionLimits::default(),
        auth: cairn_server::auth::AuthConfig::default(),
        tls: None,
        allow_plaintext: false,
    };
    spawn_server(cfg)
}

/// A server over `dir` on free ports, and its gRPC address; dropping the sender stops it.
pub fn start(dir: &Path) -> (String, oneshot::Sender<()>, JoinHandle<()>) {
    let grpc = free_port();
    let (stop, server) = serve(dir, grpc, free_port());
    (grpc.to_string(), stop, server)
}

/// An `Admin` on `brokers`, retried until the server answers (about ten seconds).
pub async fn admin(brokers: &str) -> Admin {
    for _ in 0..400 {
        if let Ok(admin) = Admin::connect(brokers).await {
            return admin;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not come up at {brokers}");
}

/// Node `node_id` of a cluster whose nodes (id to gRPC address) are `peers`, over `dir`, on
/// its address in `peers`; dropping the sender stops it, and the handle ends once it has.
pub fn serve_in_cluster(
    dir: &Path,
    node_id: u64,
    peers: &std::collections::BTreeMap<u64, String>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let cluster = cairn_broker::ClusterSpec::new(
        Some(node_id),
        peers.clone(),
        cairn_broker::RaftTimings::default(),
        None,
    )
    .unwrap();
    let cfg = ServerConfig {
        data_dir: dir.to_path_buf(),
        grpc_addr: peers[&node_id].parse().unwrap(),
        http_addr: free_port(),
        cluster,
        advertised_address: None,
        topic_defaults: cairn_broker::TopicConfig::default(),
        max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
        producer_id_expiration: Default::default(),
        connections: cairn_server::connections::ConnectionLimits::default(),
        auth: cairn_server::auth::AuthConfig::default(),
        tls: None,
        allow_plaintext: false,
    };
    spawn_server(cfg)
}

/// Runs a server with `cfg` until the returned sender is dropped; the task panics if the server
/// fails, so awaiting the handle checks a clean stop.
fn spawn_server(cfg: ServerConfig) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        run(cfg, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (stop, server)
}
