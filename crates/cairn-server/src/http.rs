//! The HTTP admin endpoint: `GET /health` (200 while serving, 503 while a partition is stopped,
//! with a line per troubled partition) and `GET /metrics` (Prometheus
//! text). A deliberately small HTTP/1.1 responder on tokio: one request per connection, bounded
//! request size, no dependency on a web framework for two read-only routes. `/metrics` joins
//! partition offsets and sizes read from the broker at scrape time with the request activity
//! counted in [`Metrics`], the log's fsync histogram, group figures and `process_*`.
//!
//! With TLS configured, each connection is TLS 1.3 under the configuration in force when it
//! was accepted (no client certificate asked: see `tls`), its handshake inside the same
//! per-connection deadline as the request.
//!
//! A scrape reads mapped segments (one batch per lagging group partition) and `/proc` files,
//! so it is built on a blocking thread, never on a runtime worker.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use cairn_broker::Broker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::connections::{AcceptBackoff, ConnectionMetrics, Listener};
use crate::metrics::Metrics;
use crate::request_memory::RequestMemory;
use crate::tls::TlsState;

/// Largest request head read before answering 400.
const MAX_REQUEST_HEAD_BYTES: usize = 8192;
/// Most admin requests answered at once. The port is for a scraper and a health checker; the
/// cap keeps it from taking descriptors the gRPC port's limit does not count, and a connection
/// past it waits in the kernel's backlog rather than being refused.
const MAX_CONCURRENT_REQUESTS: usize = 32;
/// How long one admin connection may take to send its request and read the answer, so a
/// client that stalls cannot hold one of the [`MAX_CONCURRENT_REQUESTS`] places.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin port's pages are read from.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Partitions, health, groups and the cluster.
    pub broker: Arc<Broker>,
    /// The services' request counters and latencies.
    pub metrics: Arc<Metrics>,
    /// The gRPC and HTTP ports' connection counters.
    pub connection_metrics: Arc<ConnectionMetrics>,
    /// The request bytes budget.
    pub request_memory: Arc<RequestMemory>,
}

/// Serves the endpoint until the task is dropped, over TLS under `tls` when given. Failed
/// accepts (EMFILE when the descriptors run out) pause the loop instead of spinning it.
pub async fn serve(listener: TcpListener, sources: Sources, tls: Option<TlsState>) {
    let places = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let mut backoff = AcceptBackoff::new(Listener::Http, Arc::clone(&sources.connection_metrics));
    loop {
        let Ok(place) = Arc::clone(&places).acquire_owned().await else {
            return; // The semaphore is never closed; nothing to serve without it.
        };
        let (stream, _) = backoff.accept(&listener).await;
        let sources = sources.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let state = tls.as_ref();
                match state.map(|state| Arc::clone(&state.current().http)) {
                    Some(config) => {
                        let stream = tokio_rustls::TlsAcceptor::from(config)
                            .accept(stream)
                            .await?;
                        answer(stream, &sources, state).await
                    }
                    None => answer(stream, &sources, state).await,
                }
            })
            .await;
            match answered {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(%err, "http admin request failed"),
                Err(_) => tracing::debug!("http admin request timed out"),
            }
            drop(place);
        });
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    sources: &Sources,
    tls: Option<&TlsState>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buf).await?;
        if read == 0 || head.len() + read > MAX_REQUEST_HEAD_BYTES {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                "bad request\n",
            )
            .await;
        }
        head.extend_from_slice(&buf[..read]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (method, path) {
        ("GET", "/health") => {
            let (status, body) = health_page(&sources.broker);
            respond(&mut stream, status, "text/plain", &body).await
        }
        ("GET", "/metrics") => {
            let sources = sources.clone();
            let mut body = tokio::task::spawn_blocking(move || exposition(&sources))
                .await
                .map_err(std::io::Error::other)?;
            if let Some(tls) = tls {
                body.push_str(&tls.metrics_text());
            }
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "only GET\n",
            )
            .await
        }
    }
}

/// `GET /health`: 200 and `ok` while the node serves, 503 and `not serving` while a partition
/// is stopped or the node has left its cluster; then a line for each reason.
fn health_page(broker: &Broker) -> (&'static str, String) {
    let problems = broker.problems();
    let (status, mut body) = if crate::health::node_serving(broker, &problems) {
        ("200 OK", String::from("ok\n"))
    } else {
        ("503 Service Unavailable", String::from("not serving\n"))
    };
    if broker.has_left_cluster() {
        body.push_str(crate::health::LEFT_CLUSTER);
        body.push('\n');
    }
    for problem in &problems {
        body.push_str(&crate::health::describe(problem));
        body.push('\n');
    }
    (status, body)
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Partition offsets and sizes, request activity, partition health, fsync latency,
/// connections, then consumer groups and their lag, then replication (in a cluster only),
/// then the process, in Prometheus text
/// format. Series of topics deleted since the last scrape are dropped first.
fn exposition(sources: &Sources) -> String {
    let Sources {
        broker,
        metrics,
        connection_metrics,
        request_memory,
    } = sources;
    let topics = broker.list_topics(true);
    metrics.retain_topics(|name| topics.binary_search_by(|t| t.as_str().cmp(name)).is_ok());
    let mut out = String::new();
    out.push_str(
        "# HELP cairn_partition_high_watermark The end of what is readable in a partition.\n",
    );
    out.push_str("# TYPE cairn_partition_high_watermark gauge\n");
    let mut starts = String::from(
        "# HELP cairn_partition_log_start_offset The first offset still in a partition.\n# TYPE cairn_partition_log_start_offset gauge\n",
    );
    let mut producer_ids = String::from(
        "# HELP cairn_partition_producer_ids Idempotent producers a partition remembers on this node (their epoch and last batches); each is forgotten once silent for --producer-id-expiration-ms.\n# TYPE cairn_partition_producer_ids gauge\n",
    );
    let mut sizes = String::from(
        "# HELP cairn_partition_size_bytes Bytes of record batches a partition holds on disk (its .log files up to the high watermark; index files not counted).\n# TYPE cairn_partition_size_bytes gauge\n",
    );
    for name in topics {
        let Ok(info) = broker.describe_topic(&name) else {
            continue;
        };
        for p in info.partitions {
            let labels = format!("topic=\"{name}\",partition=\"{}\"", p.partition);
            let _ = writeln!(
                out,
                "cairn_partition_high_watermark{{{labels}}} {}",
                p.high_watermark
            );
            let _ = writeln!(
                starts,
                "cairn_partition_log_start_offset{{{labels}}} {}",
                p.log_start_offset
            );
            if let Ok(bytes) = broker.partition_size_bytes(&name, i64::from(p.partition)) {
                let _ = writeln!(sizes, "cairn_partition_size_bytes{{{labels}}} {bytes}");
            }
            if let Ok(count) = broker.partition_producer_ids(&name, i64::from(p.partition)) {
                let _ = writeln!(
                    producer_ids,
                    "cairn_partition_producer_ids{{{labels}}} {count}"
                );
            }
        }
    }
    out.push_str(&starts);
    out.push_str(&sizes);
    out.push_str(&producer_ids);
    metrics.render(&mut out);
    crate::health::render_metrics(&broker.problems(), &mut out);
    crate::fsync_metrics::render(&cairn_broker::fsync_latency().snapshot(), &mut out);
    connection_metrics.render(&mut out);
    request_memory.render(&mut out);
    crate::group_metrics::render(broker, &mut out);
    if let Some(status) = broker.replication_status() {
        crate::cluster_metrics::render(&status, &mut out);
    }
    if let Some(status) = broker.leader_balance_status() {
        crate::cluster_metrics::render_leader_balance(&status, &mut out);
    }
    crate::process_metrics::render(&mut out);
    out
}
