//! `cairn-server`: Cairn's network edges over `cairn-broker`. It decodes requests, calls the
//! broker and maps results and errors; it holds no produce, fetch or topic rule.
//!
//! Code map:
//! - [`auth`]: the layer that gives each request its principal (certificate or password) and
//!   the authorization policy over the ACLs that services consult, with the audit log;
//! - [`quota`]: the layer after `auth` that throttles a principal over its produce, fetch or
//!   request rate by delaying its answers (never failing them), with the throttle metrics;
//! - [`caller`]: what the transport proved about a request's caller (TLS, a verified client
//!   certificate), as request extensions for the layers that authenticate and authorize;
//! - `services`: the `cairn.v1` gRPC services (Producer, Consumer, Admin, Metadata);
//! - `status`: the one mapping from broker errors (storage failures by their
//!   `StorageErrorKind`; the transport's own refusals, through a layer over every service) to
//!   error codes and gRPC statuses;
//! - [`health`]: the server-wide `grpc.health.v1` status kept in step with the partitions
//!   (NOT_SERVING while one is stopped) and the detail that names them;
//! - `http`: `/health` and `/metrics` on the admin port, with `group_metrics`,
//!   `cluster_metrics` (only on a node in a cluster), `fsync_metrics` and `process_metrics`
//!   rendering what is read at scrape time;
//! - [`connections`]: what the gRPC port lets in and for how long (connection limits, handshake
//!   and idle timeouts, accept back-off); [`descriptor_limit`]: the open-file limit they rest on;
//! - [`request_memory`]: the broker-wide budget of request bytes read and not yet answered
//!   (Kafka's `queued.max.request.bytes`);
//! - [`tls`]: TLS 1.3 on both listeners and the peer links, from the certificate, key and
//!   client CA files, reloaded when they change or on SIGHUP; a node bound to a non-loopback
//!   address without TLS refuses to start unless plaintext was asked for;
//! - [`metrics`]: produce and fetch counters and latency histograms; the services count into one
//!   shared [`metrics::Metrics`] and `http` renders it (the broker never sees it);
//! - [`peer`]: node-to-node traffic (`cairn.cluster.v1.Peer`): [`peer::PeerLinks`], the
//!   `cairn_raft::PeerTransport` every Raft group calls through (one stream per peer, calls
//!   coalesced into frames), and [`peer::peer_server`], the service that hands peers' calls to
//!   the node's groups;
//! - [`run`]: opens the broker, binds both ports, adds `grpc.health.v1.Health` and server
//!   reflection (v1 and v1alpha), and serves until told to stop (a node in a cluster hands its
//!   leaderships over first).

pub mod auth;
pub mod caller;
mod cluster_metrics;
pub mod connections;
pub mod descriptor_limit;
mod fsync_metrics;
mod group_metrics;
pub mod health;
mod http;
pub mod metrics;
pub mod peer;
mod process_metrics;
pub mod quota;
pub mod request_memory;
pub mod services;
pub mod status;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_broker::{Broker, BrokerConfig, BrokerError, ClusterSpec, SystemClock, TopicConfig};
use cairn_proto::v1::FILE_DESCRIPTOR_SET;
use cairn_proto::v1::admin_server::AdminServer;
use cairn_proto::v1::consumer_server::ConsumerServer;
use cairn_proto::v1::groups_server::GroupsServer;
use cairn_proto::v1::metadata_server::MetadataServer;
use cairn_proto::v1::producer_server::ProducerServer;
use connections::{ConnectionLimits, ConnectionMetrics, InFlightLayer};
use descriptor_limit::DescriptorLimitError;
use metrics::Metrics;
use request_memory::{RequestMemory, RequestMemoryLayer};
use services::{
    AdminService, ConsumerRoutes, ConsumerService, CountedAdmin, CountedGroups, GroupsService,
    MetadataService, ProduceShortcut, ProducerRoutes, ProducerService,
};
use tls::{TlsError, TlsFiles, TlsState};
use tokio::net::TcpListener;

/// Largest request the gRPC server decodes: a produce of up to 16 MiB of batches.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Largest response it encodes: a fetch of up to 64 MiB plus framing.
pub const MAX_RESPONSE_BYTES: usize = (64 << 20) + (1 << 20);
/// HTTP/2 flow-control window per stream: room for a whole large produce request or fetch
/// answer without waiting for a window update.
pub const HTTP2_STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// Largest HTTP/2 frame the gRPC listener accepts (the protocol's default is 16 KiB).
pub const HTTP2_MAX_FRAME_BYTES: u32 = 1 << 20;
/// HTTP/2 flow-control window per connection (all streams together).
pub const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 32 << 20;
/// Largest `grpc.health.v1` request: a service name. Health checks are outside the request
/// budget (so that they are answered when it is full), so they are kept this small.
pub const MAX_HEALTH_REQUEST_BYTES: usize = 64 << 10;

/// How the server is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where topics and logs live.
    pub data_dir: PathBuf,
    /// The gRPC listen address (port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// The HTTP admin listen address (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// The cluster this node starts in (its id among them); [`ClusterSpec::default`] is a
    /// cluster of one, node 1, as a lone broker always was.
    pub cluster: ClusterSpec,
    /// The address clients are told to use; default: the bound gRPC address.
    pub advertised_address: Option<String>,
    /// Configs a topic gets unless it overrides them.
    pub topic_defaults: TopicConfig,
    /// Most partitions the node holds, `__consumer_offsets` included (see
    /// [`cairn_broker::BrokerConfig::max_partitions`]).
    pub max_partitions: u32,
    /// How long a partition remembers an idempotent producer after its last write (see
    /// [`cairn_broker::BrokerConfig::producer_id_expiration`]).
    pub producer_id_expiration: cairn_broker::ProducerExpiration,
    /// Limits on the gRPC port's connections.
    pub connections: ConnectionLimits,
    /// Authentication and authorization (see [`auth`]).
    pub auth: auth::AuthConfig,
    /// TLS on the gRPC and HTTP listeners and the peer links; `None`: plaintext.
    pub tls: Option<TlsFiles>,
    /// Lets a listener without TLS bind a non-loopback address (`--allow-plaintext`); loopback
    /// addresses may always be plaintext.
    pub allow_plaintext: bool,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The broker failed to open.
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    /// The gRPC transport failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not load the API's descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The open-file limit, which the default connection limit derives from, is unreadable.
    #[error("{0}")]
    DescriptorLimit(#[from] DescriptorLimitError),
    /// The OS gave no random numbers (for the password cache's key).
    #[error("no random numbers from the OS: {0}")]
    Random(#[from] getrandom::Error),
    /// A TLS file cannot be used.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// A listener would serve plaintext on a non-loopback address.
    #[error(
        "refusing to serve plaintext {listener} on non-loopback address {addr}: configure TLS (--tls-cert and --tls-key) or pass --allow-plaintext (CAIRN_ALLOW_PLAINTEXT=true)"
    )]
    PlaintextRefused {
        /// "gRPC" or "HTTP".
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
    },
    /// A node in a cluster has TLS but no CA to verify its peers with.
    #[error(
        "a node in a cluster with TLS needs --tls-client-ca: it verifies the other nodes' certificates (mTLS between nodes)"
    )]
    PeerTlsWithoutCa,
}

/// Opens the broker, binds both listeners, prints `cairn ready grpc=<addr> http=<addr>` on
/// stdout once serving, and runs until `shutdown` resolves; then, on a node in a cluster,
/// hands its leaderships over to other nodes (bounded by a few election timeouts, see
/// [`cairn_broker::Broker::hand_over_leaderships`]), stops accepting calls, lets in-flight ones
/// finish, and closes every log cleanly.
///
/// # Errors
/// [`ServerError`] naming what failed.
pub async fn run(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tls = check_security(&cfg)?;
    let grpc_listener =
        TcpListener::bind(cfg.grpc_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: cfg.grpc_addr,
                source,
            })?;
    let http_listener =
        TcpListener::bind(cfg.http_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: cfg.http_addr,
                source,
            })?;
    let grpc_local = grpc_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            addr: cfg.grpc_addr,
            source,
        })?;
    let http_local = http_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            addr: cfg.http_addr,
            source,
        })?;
    let broker_cfg = BrokerConfig {
        data_dir: cfg.data_dir.clone(),
        cluster: cfg.cluster.clone(),
        advertised_address: cfg
            .advertised_address
            .clone()
            .unwrap_or_else(|| grpc_local.to_string()),
        topic_defaults: cfg.topic_defaults.clone(),
        offsets_topic_partitions: cairn_broker::DEFAULT_OFFSETS_TOPIC_PARTITIONS,
        max_partitions: cfg.max_partitions,
        producer_id_expiration: cfg.producer_id_expiration,
    };
    let broker = Arc::new(Broker::open(broker_cfg, Arc::new(SystemClock)).await?);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ProducerServer<ProducerService>>()
        .await;
    health_reporter
        .set_serving::<ConsumerServer<ConsumerService>>()
        .await;
    health_reporter
        .set_serving::<AdminServer<AdminService>>()
        .await;
    health_reporter
        .set_serving::<MetadataServer<MetadataService>>()
        .await;
    health_reporter
        .set_serving::<GroupsServer<GroupsService>>()
        .await;
    // A partition stopped at open (or poisoned later) turns the server-wide status NOT_SERVING.
    let serving = health::set_now(&broker, &health_reporter).await;
    let health_watch = tokio::spawn(health::watch(
        Arc::clone(&broker),
        health_reporter.clone(),
        serving,
    ));
    // Each version lists every service the port answers, the other reflection version
    // included, as grpc-go's does: tonic-reflection adds only its own version's
    // descriptors, so a client asking v1alpha would not learn that v1 answers too.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let scrub_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_scrub(Arc::clone(&broker), Arc::clone(&scrub_stop));
    let metrics = Arc::new(Metrics::new());
    let connection_metrics = Arc::new(ConnectionMetrics::new());
    let request_memory = Arc::new(RequestMemory::new(cfg.connections.queued_max_request_bytes));
    let http = tokio::spawn(http::serve(
        http_listener,
        http::Sources {
            broker: Arc::clone(&broker),
            metrics: Arc::clone(&metrics),
            connection_metrics: Arc::clone(&connection_metrics),
            request_memory: Arc::clone(&request_memory),
        },
        tls.clone(),
    ));
    let tls_watch = tls.as_ref().map(TlsState::spawn_watch);
    // Node-to-node traffic: every Raft group of this node answers peers through one registry,
    // and calls them through one link per peer (`peer`). A cluster of one mounts none of it.
    let peer_limits = peer::PeerLimits::default();
    let mut peer_handle = None;
    let peer_service = if cfg.cluster.is_single_node() {
        None
    } else {
        // A data directory that joined a cluster before carries its id in every hello, so the
        // peers of another cluster refuse it and it refuses them.
        let identity = Arc::new(peer::NodeIdentity::new(
            cfg.cluster.node_id(),
            broker.recorded_cluster_id()?,
        ));
        let registry = Arc::new(cairn_raft::GroupRegistry::new());
        let (service, handle) = peer::peer_server(
            Arc::clone(&identity),
            Arc::clone(&registry) as Arc<dyn cairn_raft::InboundCalls>,
            peer_limits,
            Arc::clone(metrics.peer_metrics()),
        );
        let links = Arc::new(peer::PeerLinks::new_with_tls(
            Arc::clone(&identity),
            cfg.cluster.peers().clone(),
            peer_limits,
            Arc::clone(metrics.peer_metrics()),
            tls.clone(),
        ));
        broker.join_cluster(links, registry).await?;
        let (learner, formed) = (Arc::clone(&identity), Arc::clone(&broker));
        tokio::spawn(async move {
            // Once the cluster has formed, the hello names it.
            loop {
                if let Some(id) = formed.cluster_id() {
                    if learner.cluster_id().is_none() {
                        learner.set_cluster_id(id);
                    }
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        });
        peer_handle = Some(handle);
        Some(service)
    };
    let leaving = Arc::clone(&broker);
    let shutdown = async move {
        shutdown.await;
        // In a cluster, this node's leaderships go to caught-up followers first, while it still
        // serves: its successors need its vote and its acknowledgements, and clients sent away
        // retry at them. A partition then refuses writes for a vote round trip rather than an
        // election timeout. A cluster of one returns at once.
        leaving.hand_over_leaderships().await;
        drop(leaving);
        // An open peer stream would otherwise hold the graceful shutdown forever.
        if let Some(handle) = peer_handle {
            handle.close();
        }
    };
    let (keepalive_interval, keepalive_timeout) = if cfg.cluster.is_single_node() {
        (
            connections::CLIENT_KEEPALIVE_INTERVAL,
            connections::CLIENT_KEEPALIVE_TIMEOUT,
        )
    } else {
        (
            peer_limits.keepalive_interval,
            peer_limits.keepalive_timeout,
        )
    };
    let limits = cfg.connections.effective(descriptor_limit::current()?.soft);
    // No per-address limit is held as u64::MAX; the log says "none" rather than that number.
    let per_ip = match limits.max_connections_per_ip {
        u64::MAX => "none".to_string(),
        n => n.to_string(),
    };
    tracing::info!(
        max_connections = limits.max_connections,
        max_connections_per_ip = %per_ip,
        handshake_timeout_ms = limits.handshake_timeout.as_millis() as u64,
        connections_max_idle_ms = limits.idle_timeout.as_millis() as u64,
        queued_max_request_bytes = cfg.connections.queued_max_request_bytes,
        "gRPC connection limits"
    );
    // Passwords over plaintext only where no other machine can connect (see `auth`).
    let auth_layer = auth::AuthLayer::new(
        cfg.auth.clone(),
        grpc_local.ip().is_loopback(),
        Arc::clone(&broker),
        Arc::clone(metrics.auth_metrics()),
    )?;
    tracing::info!(
        authorization = cfg.auth.authorization,
        super_users = cfg.auth.super_users.len(),
        passwords_over_plaintext = grpc_local.ip().is_loopback(),
        "authentication and authorization"
    );
    if cfg.auth.authorization && !cfg.cluster.is_single_node() {
        // The peer service needs ClusterAction; a node without a client certificate calls its
        // peers as User:ANONYMOUS, and a cluster whose nodes may not replicate never forms.
        tracing::warn!(
            "authorization is on in a cluster: each node's principal (its client certificate's, \
             or User:ANONYMOUS without one) must be a super user or hold ClusterAction on the \
             cluster, or the nodes cannot replicate"
        );
    }
    let producer = ProducerRoutes::new(
        ProducerService::new(Arc::clone(&broker), Arc::clone(&metrics)),
        MAX_REQUEST_BYTES,
        Arc::clone(&request_memory),
    );
    let router = tonic::transport::Server::builder()
        // Counts each connection's requests in flight, which the idle timeout and eviction
        // read so that they never close a connection under a request.
        .layer(InFlightLayer)
        // HTTP/2's default 64 KiB windows stall every request larger than that on a window
        // update round trip; produce requests of batches are routinely bigger.
        .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW_BYTES))
        // Lets a client send a produce request's batch in a few large DATA frames rather than
        // 16 KiB ones (HTTP/2's default): each frame costs a header and often a syscall.
        .max_frame_size(Some(HTTP2_MAX_FRAME_BYTES))
        // A connection whose other end went silent without closing (a paused or partitioned
        // peer, a vanished client holding a Subscribe) is found by keepalive; it would
        // otherwise keep its place, and a graceful shutdown would wait on it, forever. The
        // answers to these PINGs do not count as activity for the idle timeout (see
        // `connections::tracked_stream`).
        .http2_keepalive_interval(Some(keepalive_interval))
        .http2_keepalive_timeout(Some(keepalive_timeout))
        // Over every service: the transport's own refusals get Cairn's codes and ErrorInfo,
        // and INTERNAL/UNAVAILABLE answers are logged (see `status`).
        .layer(status::StatusLayer)
        // Every call gets its principal, or is refused, before any service runs.
        .layer(auth_layer)
        // After authentication (quotas are per principal), around the services (whose
        // answers report the bytes they moved).
        .layer(quota::QuotaLayer::new(
            Arc::clone(&broker),
            Arc::clone(metrics.quota_metrics()),
        ))
        // The calls tonic decodes take their request bytes from the budget as they arrive;
        // the broker's own readers take theirs themselves (see `request_memory`).
        .layer(RequestMemoryLayer::new(
            Arc::clone(&request_memory),
            MAX_REQUEST_BYTES,
        ))
        // Innermost: the hottest call skips the router (see `ProducerRoutes`).
        .layer(ProduceShortcut::new(producer.clone()))
        // Health checks are answered while the request budget is full, so their requests (a
        // service name) are capped small instead.
        .add_service(health.max_decoding_message_size(MAX_HEALTH_REQUEST_BYTES))
        // The same request limit as the other services, which the request budget's layer
        // assumes (tonic's default is 4 MiB).
        .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(producer.clone())
        .add_service(ConsumerRoutes::new(
            ConsumerService::new(Arc::clone(&broker), Arc::clone(&metrics)),
            MAX_REQUEST_BYTES,
            MAX_RESPONSE_BYTES,
            Arc::clone(&request_memory),
        ))
        .add_service(
            AdminServer::new(CountedAdmin::new(
                AdminService::new(Arc::clone(&broker)),
                Arc::clone(&metrics),
            ))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        // Every service takes requests up to the same size, as common.proto says; tonic's
        // default (4 MiB) had left Metadata and Groups below the others.
        .add_service(
            MetadataServer::new(MetadataService::new(Arc::clone(&broker)))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            GroupsServer::new(CountedGroups::new(
                GroupsService::new(Arc::clone(&broker)),
                Arc::clone(&metrics),
            ))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_optional_service(peer_service);
    println!("cairn ready grpc={grpc_local} http={http_local}");
    tracing::info!(grpc = %grpc_local, http = %http_local, data_dir = %cfg.data_dir.display(), "serving");
    let incoming = connections::incoming(grpc_listener, limits, connection_metrics, tls);
    let served = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    tracing::info!("shutting down: closing partitions");
    http.abort();
    health_watch.abort();
    if let Some(watch) = tls_watch {
        watch.abort();
    }
    scrub_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    broker.shutdown().await;
    served?;
    Ok(())
}

/// Loads the TLS files, if any, and refuses what would run open: plaintext on a non-loopback
/// address without `allow_plaintext`, or a cluster node with TLS but no CA to verify its peers.
/// Checked before anything is bound or opened, so a mistake costs nothing but the start.
///
/// # Errors
/// [`ServerError::Tls`], [`ServerError::PlaintextRefused`] or [`ServerError::PeerTlsWithoutCa`].
fn check_security(cfg: &ServerConfig) -> Result<Option<TlsState>, ServerError> {
    let Some(files) = &cfg.tls else {
        for (listener, addr) in [("gRPC", cfg.grpc_addr), ("HTTP", cfg.http_addr)] {
            if addr.ip().is_loopback() {
                continue;
            }
            if !cfg.allow_plaintext {
                return Err(ServerError::PlaintextRefused { listener, addr });
            }
            tracing::warn!(listener, %addr, "serving plaintext on a non-loopback address, as allowed");
        }
        return Ok(None);
    };
    if !cfg.cluster.is_single_node() && files.client_ca.is_none() {
        return Err(ServerError::PeerTlsWithoutCa);
    }
    Ok(Some(TlsState::load(files.clone())?))
}

/// Starts the one scrub pass over every log on its own thread (see `cairn_broker`'s scrub): damage
/// at rest shows on health and metrics without a consumer tripping on it first.
fn spawn_scrub(broker: Arc<Broker>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("cairn-scrub".to_string())
        .spawn(move || {
            let report = broker.scrub_blocking(cairn_broker::DEFAULT_SCRUB_BYTES_PER_SEC, &stop);
            if report.damaged > 0 {
                tracing::error!(
                    partitions = report.partitions,
                    batches = report.batches,
                    bytes = report.bytes,
                    damaged = report.damaged,
                    "scrub found damaged batches (see health)"
                );
            } else {
                tracing::info!(
                    partitions = report.partitions,
                    batches = report.batches,
                    bytes = report.bytes,
                    "scrub found no damage"
                );
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "no thread for the scrub; damage is found when read");
    }
}
