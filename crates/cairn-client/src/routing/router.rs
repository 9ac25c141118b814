//! [`Router`]: which node each call goes to, and the channels to get there. One lazily
//! connected tonic `Channel` per node address (HTTP/2 multiplexes every call to that node on
//! it), a [`LeaderCache`] filled from `GetMetadata`, and the "any node" channel that calls with
//! no partition (admin, producer ids, metadata itself) use, which fails over along the bootstrap
//! list and the known nodes when its node dies.
//!
//! Partition calls ask [`Router::route`] for the leader's channel and report failures back
//! through [`Router::on_error`]: a `NOT_LEADER` hint sends the retry straight to the named
//! leader, anything else marks the entry stale so the next call reads metadata again (at most
//! once per [`METADATA_REFRESH_INTERVAL`], from whichever node answers). The router never
//! retries by itself: each caller keeps its own retry rules (delivery timeout, stream resume).
//! When it cannot say who leads, a call goes to the any-node channel, whose node then answers
//! with the authentic error (`NOT_LEADER`, unknown topic), which the caller retries or reports.
//!
//! On a single node the hot path is one map lookup: the first call of a topic reads metadata
//! once, and the answering node is reached through the channel the client already has.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cairn_proto::v1::metadata_client::MetadataClient;
use cairn_proto::v1::{ErrorCode, MetadataRequest, MetadataResponse};
use http::Uri;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::credentials::CallCredentials;

/// A channel whose calls carry the client's credentials, if it has any.
pub(crate) type AuthChannel = InterceptedService<Channel, CallCredentials>;
use tonic_types::StatusExt;

use super::coordinator_cache::CoordinatorCache;
use super::leader_cache::{LeaderCache, Lookup};
use crate::connection::{Timeouts, broker_addresses, connect_first, lazy_channel};
use crate::error::ClientError;
use crate::produce_channel::ProduceChannel;
use crate::stream_channel::StreamChannel;

/// Shortest time between two metadata reads that errors asked for, so a storm of failures
/// during an election costs one read per interval, not one per failed request.
pub const METADATA_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// Deadline of one metadata read when the client has no request timeout of its own: a node
/// that accepts and never answers (paused) must not hold every router of the process.
pub const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A node a call goes to: its address (to report failures against) and its channel.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// `host:port`, as the cache knows the node.
    pub address: Arc<str>,
    /// The channel to it.
    pub channel: AuthChannel,
}

/// The client's routing: cheap to clone, clones share channels and the cache.
#[derive(Clone, Debug)]
pub(crate) struct Router {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    bootstrap: Vec<(String, Uri)>,
    timeouts: Timeouts,
    cache: Mutex<LeaderCache>,
    /// Each group's coordinator (the `coordinator` child module's state).
    coordinators: Mutex<CoordinatorCache>,
    channels: Mutex<HashMap<Arc<str>, AuthChannel>>,
    streams: Mutex<HashMap<Arc<str>, StreamChannel>>,
    /// The producer's connections, one per node (see [`ProduceChannel`]).
    produce: Mutex<HashMap<Arc<str>, ProduceChannel>>,
    /// The node calls without a partition go to.
    any: Mutex<Route>,
    /// One metadata read at a time; the others wait for its answer.
    refreshing: tokio::sync::Mutex<()>,
    /// Completed metadata reads, so a caller that waited for another's read need not repeat it.
    reads: AtomicU64,
}

/// `channel`, sending the credentials of `timeouts` (if any) with each call.
fn with_credentials(channel: Channel, timeouts: &Timeouts) -> AuthChannel {
    InterceptedService::new(channel, CallCredentials(timeouts.credentials.clone()))
}

/// Locks a mutex whose data stays valid even if a holder panicked (each update is one
/// assignment or map operation).
/// The transport of `transports` to the node at `address`, made with `make` on first use.
fn per_node<T: Clone>(
    transports: &Mutex<HashMap<Arc<str>, T>>,
    address: &Arc<str>,
    make: impl FnOnce() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut transports = lock(transports);
    if let Some(transport) = transports.get(address) {
        return Ok(transport.clone());
    }
    let transport = make()?;
    transports.insert(Arc::clone(address), transport.clone());
    Ok(transport)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Router {
    /// Connects to the first answering broker of `brokers` (`host:port`, comma-separated), in
    /// the order given, each within `timeouts.connect`. Nothing else is dialled until needed.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for a malformed address or an empty list;
    /// [`ClientError::Connect`] naming every address tried when none answers.
    pub(crate) async fn connect(brokers: &str, timeouts: Timeouts) -> Result<Router, ClientError> {
        let bootstrap = broker_addresses(brokers)?;
        if bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no broker address given".to_string(),
            ));
        }
        let (address, channel) = connect_first(&bootstrap, &timeouts).await?;
        let channel = with_credentials(channel, &timeouts);
        let address: Arc<str> = Arc::from(address);
        let channels = HashMap::from([(Arc::clone(&address), channel.clone())]);
        Ok(Router {
            shared: Arc::new(Shared {
                bootstrap,
                timeouts,
                cache: Mutex::new(LeaderCache::default()),
                coordinators: Mutex::new(CoordinatorCache::default()),
                channels: Mutex::new(channels),
                streams: Mutex::new(HashMap::new()),
                produce: Mutex::new(HashMap::new()),
                any: Mutex::new(Route { address, channel }),
                refreshing: tokio::sync::Mutex::new(()),
                reads: AtomicU64::new(0),
            }),
        })
    }

    /// The node calls without a partition go to now.
    pub(crate) fn any_node(&self) -> Route {
        lock(&self.shared.any).clone()
    }

    /// The leader of `topic`/`partition`, reading metadata first when the cache cannot say
    /// (at most once per call, and at most once per [`METADATA_REFRESH_INTERVAL`] overall). When
    /// it still cannot, the any-node channel, whose node answers with the authentic error.
    pub(crate) async fn route(&self, topic: &str, partition: i32) -> Route {
        match self.lookup(topic, partition) {
            Lookup::Leader(address) => return self.route_to(address),
            Lookup::Unknown => return self.any_node(),
            Lookup::Refresh => {}
        }
        if let Err(error) = self.refresh(topic, true).await {
            tracing::debug!(%topic, partition, %error, "metadata refresh failed");
        }
        match self.lookup(topic, partition) {
            Lookup::Leader(address) => self.route_to(address),
            Lookup::Refresh | Lookup::Unknown => self.any_node(),
        }
    }

    /// The replay transport to `route`'s node, opened on first use.
    pub(crate) fn stream_channel(&self, route: &Route) -> Result<StreamChannel, ClientError> {
        per_node(&self.shared.streams, &route.address, || {
            StreamChannel::lazy(
                &route.address,
                self.shared.timeouts.credentials.clone(),
                self.shared.timeouts.tls.clone(),
            )
        })
    }

    /// The producer's transport to `route`'s node, opened on first use.
    pub(crate) fn produce_channel(&self, route: &Route) -> Result<ProduceChannel, ClientError> {
        per_node(&self.shared.produce, &route.address, || {
            ProduceChannel::lazy(&route.address, self.shared.timeouts.clone())
        })
    }

    /// How many partitions `topic` has: from the cache when read less than `max_age` ago,
    /// else from a metadata read now. `None` when the topic does not exist.
    ///
    /// # Errors
    /// The metadata read's failure when no node answered it.
    pub(crate) async fn partition_count(
        &self,
        topic: &str,
        max_age: Duration,
    ) -> Result<Option<usize>, ClientError> {
        if let Some(count) =
            lock(&self.shared.cache).partition_count(topic, Instant::now(), max_age)
        {
            return Ok(Some(count));
        }
        self.refresh(topic, false).await?;
        Ok(lock(&self.shared.cache).partition_count(topic, Instant::now(), Duration::MAX))
    }

    /// Learns from a failed call to `topic`/`partition` that went to `address`. True when the
    /// failure is about where the call went (`NOT_LEADER`, or a node that could not be reached
    /// while others exist), so the same call sent again may succeed on another node.
    pub(crate) fn on_error(
        &self,
        topic: &str,
        partition: i32,
        address: &str,
        error: &ClientError,
    ) -> bool {
        let mut cache = lock(&self.shared.cache);
        if error.code() == Some(ErrorCode::NotLeader) {
            let hint = match error {
                ClientError::Broker { leader, .. } => leader.as_deref(),
                _ => None,
            };
            cache.on_not_leader(topic, partition, hint.filter(|h| !h.is_empty()));
            return true;
        }
        if is_transport_failure(error) {
            cache.on_unreachable(address);
            return cache.is_cluster();
        }
        false
    }

    /// Runs `call` on the any-node channel. When that node cannot be reached (UNAVAILABLE, or a
    /// failed connection attempt), the next answering address of the bootstrap list and the
    /// known nodes becomes the any node and `call` runs once more there. Only those fail over:
    /// they mean the call was not carried out, so even a call that is not idempotent is safe to
    /// send again.
    ///
    /// # Errors
    /// The call's failure, or the first node's when no other answers.
    pub(crate) async fn on_any_node<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let first = self.any_node();
        match call(first.channel).await {
            Ok(answer) => Ok(answer),
            Err(status) if unreachable(&status) => {
                let error = ClientError::from(status);
                match self.fail_over(&first.address).await {
                    Some(next) => Ok(call(next.channel).await?),
                    None => Err(error),
                }
            }
            Err(status) => Err(status.into()),
        }
    }

    /// Makes the first answering node other than `dead` the any node: the bootstrap list in
    /// order, then the nodes the metadata named. `None` when none answers.
    async fn fail_over(&self, dead: &str) -> Option<Route> {
        let mut candidates: Vec<(String, Uri)> = self
            .shared
            .bootstrap
            .iter()
            .filter(|(address, _)| address != dead)
            .cloned()
            .collect();
        let nodes = lock(&self.shared.cache).node_addresses();
        for node in nodes {
            if &*node != dead
                && !candidates.iter().any(|(a, _)| **a == *node)
                && let Some(uri) = origin(&node)
            {
                candidates.push((node.to_string(), uri));
            }
        }
        let (address, channel) = connect_first(&candidates, &self.shared.timeouts)
            .await
            .ok()?;
        let channel = with_credentials(channel, &self.shared.timeouts);
        let route = Route {
            address: Arc::from(address),
            channel,
        };
        tracing::debug!(from = %dead, to = %route.address, "failing over to another node");
        lock(&self.shared.channels).insert(Arc::clone(&route.address), route.channel.clone());
        *lock(&self.shared.any) = route.clone();
        Some(route)
    }

    fn lookup(&self, topic: &str, partition: i32) -> Lookup {
        lock(&self.shared.cache).lookup(topic, partition, Instant::now(), METADATA_REFRESH_INTERVAL)
    }

    /// The channel to `address`, made (unconnected) on first use. An address the metadata
    /// sent that is not a valid URI routes to the any node, which will answer NOT_LEADER.
    pub(crate) fn route_to(&self, address: Arc<str>) -> Route {
        let mut channels = lock(&self.shared.channels);
        if let Some(channel) = channels.get(&address) {
            return Route {
                address,
                channel: channel.clone(),
            };
        }
        let Some(uri) = origin(&address) else {
            tracing::warn!(%address, "the metadata named a leader address that is not host:port");
            drop(channels);
            return self.any_node();
        };
        let channel = with_credentials(
            lazy_channel(uri, &self.shared.timeouts),
            &self.shared.timeouts,
        );
        channels.insert(Arc::clone(&address), channel.clone());
        Route { address, channel }
    }

    /// Reads metadata for the cached topics and `topic` from the first node that answers.
    /// With `paced`, waits out [`METADATA_REFRESH_INTERVAL`] since the last read, and does not
    /// read at all when another caller's read finished while this one waited for it.
    async fn refresh(&self, topic: &str, paced: bool) -> Result<(), ClientError> {
        let reads_before = self.shared.reads.load(Ordering::Acquire);
        let _turn = self.shared.refreshing.lock().await;
        if paced {
            if self.shared.reads.load(Ordering::Acquire) != reads_before {
                return Ok(());
            }
            let wait =
                lock(&self.shared.cache).refresh_wait(Instant::now(), METADATA_REFRESH_INTERVAL);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let topics = lock(&self.shared.cache).topics_to_ask(topic);
        self.read_and_apply(&topics).await
    }

    /// Reads metadata for `topics` from the first node that answers and takes it in. The
    /// caller holds the `refreshing` turn.
    async fn read_and_apply(&self, topics: &[String]) -> Result<(), ClientError> {
        let nodes = lock(&self.shared.cache).node_addresses();
        let (address, response) = self.read_metadata(topics, &nodes).await?;
        lock(&self.shared.cache).apply(&response, &address, topics, Instant::now());
        self.shared.reads.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// One `GetMetadata` for `topics`, asked of the any node first, then of each other known
    /// node and each bootstrap address until one answers.
    async fn read_metadata(
        &self,
        topics: &[String],
        nodes: &[Arc<str>],
    ) -> Result<(Arc<str>, MetadataResponse), ClientError> {
        let first = self.any_node();
        let mut routes = vec![first.clone()];
        let bootstrap = self
            .shared
            .bootstrap
            .iter()
            .map(|(address, _)| Arc::from(address.as_str()));
        for node in nodes.iter().cloned().chain(bootstrap) {
            if !routes.iter().any(|route| route.address == node) {
                routes.push(self.route_to(node));
            }
        }
        let deadline = self
            .shared
            .timeouts
            .request
            .unwrap_or(METADATA_REQUEST_TIMEOUT);
        let mut last_error = None;
        for (index, route) in routes.into_iter().enumerate() {
            let mut client = MetadataClient::new(route.channel.clone());
            let request = MetadataRequest {
                topics: topics.to_vec(),
            };
            let error = match tokio::time::timeout(deadline, client.get_metadata(request)).await {
                Ok(Ok(response)) => {
                    if index > 0 {
                        // The any node could not be reached: calls without a partition move
                        // to this one, which just answered, rather than wait on a dead node.
                        tracing::debug!(from = %first.address, to = %route.address, "failing over to another node");
                        *lock(&self.shared.any) = route.clone();
                    }
                    return Ok((route.address, response.into_inner()));
                }
                Ok(Err(status)) => ClientError::from(status),
                Err(_) => ClientError::Broker {
                    code: ErrorCode::RequestTimedOut,
                    status: tonic::Code::DeadlineExceeded,
                    message: format!("no metadata from {} within {deadline:?}", route.address),
                    leader: None,
                },
            };
            // A node that answers with a refusal will refuse everywhere; only an unreachable
            // one is a reason to ask the next.
            if !is_transport_failure(&error) {
                return Err(error);
            }
            last_error = Some(error);
        }
        Err(last_error.unwrap_or_else(|| {
            ClientError::InvalidArgument("no node to read metadata from".to_string())
        }))
    }
}

/// The `http://` origin of `host:port`, if it is one.
fn origin(address: &str) -> Option<Uri> {
    format!("http://{address}").parse().ok()
}

/// True when `error` says the call did not get an answer from the node (refused, reset, timed
/// out, shutting down) rather than a refusal of the call itself.
pub(crate) fn is_transport_failure(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. } => true,
        ClientError::Broker { code, .. } => matches!(
            code,
            ErrorCode::BrokerNotAvailable | ErrorCode::RequestTimedOut
        ),
        _ => false,
    }
}

mod coordinator;
pub use coordinator::COORDINATOR_RETRY_TIMEOUT;
#[cfg(test)]
mod tests;

/// Whether `status` says the node was not reached: UNAVAILABLE, or the transport error a lazily
/// connected channel answers when its connection attempt fails (code UNKNOWN, message
/// "transport error", as tonic words it), such as a node killed a moment ago. A status that
/// carries a broker error code other than `BROKER_NOT_AVAILABLE` is the node's own answer
/// (`COORDINATOR_NOT_AVAILABLE` and `GROUP_BUSY` are UNAVAILABLE too), not a failure to reach
/// it, so it does not move calls to another node.
fn unreachable(status: &tonic::Status) -> bool {
    let transport = status.code() == tonic::Code::Unavailable
        || (status.code() == tonic::Code::Unknown && status.message() == "transport error");
    transport
        && status
            .get_details_error_info()
            .is_none_or(|info| info.reason == ErrorCode::BrokerNotAvailable.as_str_name())
}
