//! What the server's integration tests share: a broker started on free loopback ports.

#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test code: a failed unwrap is a failed test; not every test uses every field"
)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use cairn_broker::TopicConfig;
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    CreateTopicRequest, ProduceRequest, Record, RecordList, produce_request::Payload,
};
use cairn_server::{ServerConfig, run};

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A running server: its gRPC URL and HTTP admin address, the stop signal, and its task.
pub struct Started {
    pub url: String,
    pub http: SocketAddr,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub server: tokio::task::JoinHandle<()>,
}

pub async fn start(dir: &std::path::Path) -> Started {
    start_with_auth(dir, cairn_server::auth::AuthConfig::default()).await
}

/// As [`start`], with authentication and authorization set up as `auth` says.
pub async fn start_with_auth(
    dir: &std::path::Path,
    auth: cairn_server::auth::AuthConfig,
) -> Started {
    start_with(
        dir,
        auth,
        cairn_server::connections::ConnectionLimits::default(),
    )
    .await
}

/// As [`start`], with the gRPC port's limits as `connections` says.
pub async fn start_with_limits(
    dir: &std::path::Path,
    connections: cairn_server::connections::ConnectionLimits,
) -> Started {
    start_with(dir, cairn_server::auth::AuthConfig::default(), connections).await
}

async fn start_with(
    dir: &std::path::Path,
    auth: cairn_server::auth::AuthConfig,
    connections: cairn_server::connections::ConnectionLimits,
) -> Started {
    let grpc = free_port();
    let http = free_port();
    let cfg = ServerConfig {
        data_dir: dir.to_path_buf(),
        grpc_addr: grpc,
        http_addr: http,
        cluster: cairn_broker::ClusterSpec::default(),
        advertised_address: None,
        topic_defaults: TopicConfig::default(),
        max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
        producer_id_expiration: Default::default(),
        connections,
        auth,
        tls: None,
        allow_plaintext: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        run(cfg, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let url = format!("http://{grpc}");
    for _ in 0..200 {
        if AdminClient::connect(url.clone()).await.is_ok() {
            return Started {
                url,
                http,
                stop,
                server,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not come up at {url}");
}

/// Creates `name` with `partitions` through a stock client; the create must succeed.
pub async fn create_topic(url: &str, name: &str, partitions: i32) {
    AdminClient::connect(url.to_string())
        .await
        .unwrap()
        .create_topic(CreateTopicRequest {
            name: name.into(),
            partitions,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Produces `records` to `topic`/`partition` in one request through a stock client.
pub async fn produce(url: &str, topic: &str, partition: i32, records: Vec<Record>) {
    ProducerClient::connect(url.to_string())
        .await
        .unwrap()
        .produce(ProduceRequest {
            topic: topic.into(),
            partition: Some(partition),
            payload: Some(Payload::Records(RecordList { records })),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// The body of `GET /metrics` on the admin port, over a plain TCP connection (no HTTP client
/// among the dev-dependencies); the answer must be a 200 in the Prometheus text format.
pub async fn metrics_page(http: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}
