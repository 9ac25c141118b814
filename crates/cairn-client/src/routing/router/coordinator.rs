//! Routing of group calls: each group's calls go to its coordinator (the leader of the group's
//! partition of `__consumer_offsets`), found with `FindCoordinator` on the any node once per
//! group and remembered in a [`CoordinatorCache`]. Errors that say the coordinator moved
//! (`NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, `COORDINATOR_LOAD_IN_PROGRESS`, an
//! unreachable node) are reported to [`Router::on_coordinator_error`] before a retry, so the
//! retry goes where they pointed; [`Router::on_coordinator`] runs that loop for one call.
//!
//! When `FindCoordinator` fails, a call goes to the any node, whose answer is then the
//! authentic error. On a single node the hot path is one map lookup after one
//! `FindCoordinator` per group: the node names itself, at the address the client dialled
//! (or, under another name, mapped back to it by one metadata read).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::AuthChannel;
use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{ErrorCode, FindCoordinatorRequest};

use super::{METADATA_REQUEST_TIMEOUT, Route, Router, lock};
use crate::error::ClientError;
use crate::routing::coordinator_cache::{Verdict, is_hint, resolve, retry_pause};

/// How long a group call keeps retrying while its group's coordinator moves, when the client
/// has no request timeout of its own (with one, that timeout is the budget). As Kafka's
/// default `request.timeout.ms`: longer than an election, short enough to report a cluster
/// that has lost the group's offsets partition.
pub const COORDINATOR_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// The topic whose partition leaders coordinate groups. A metadata read that only wants the
/// nodes asks for it, because an empty topic list would ask for every topic.
const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

impl Router {
    /// The coordinator of `group`: the cached one, else the one `FindCoordinator` names
    /// (asked of the any node, with its failover), remembered. When `FindCoordinator` fails,
    /// the any node, whose answer to the group call is then the authentic error.
    pub(crate) async fn coordinator(&self, group: &str) -> Route {
        if let Some(address) = lock(&self.shared.coordinators).lookup(group) {
            return self.route_to(address);
        }
        match self.find_coordinator(group).await {
            Ok(address) => {
                lock(&self.shared.coordinators).insert(group, Arc::clone(&address));
                self.route_to(address)
            }
            Err(error) => {
                tracing::debug!(%group, %error, "FindCoordinator failed; asking the any node");
                self.any_node()
            }
        }
    }

    /// Learns from a failed call for `group` that went to `address`. True when the same call
    /// may succeed if sent again (after [`retry_pause`]): the coordinator moved (the retry goes
    /// to the node it named, or asks `FindCoordinator` again), is being elected or is loading
    /// the group, or could not be reached while other nodes exist. False for every other
    /// error, which is the call's own answer.
    pub(crate) fn on_coordinator_error(
        &self,
        group: &str,
        address: &str,
        error: &ClientError,
    ) -> bool {
        // Lock order: the leader cache, then the coordinators (the only place holding both).
        let verdict = {
            let leaders = lock(&self.shared.cache);
            lock(&self.shared.coordinators)
                .on_error(group, address, error, |hint| leaders.reach(hint))
        };
        match verdict {
            Verdict::Moved | Verdict::Forgotten | Verdict::Loading => true,
            Verdict::Unreachable => self.is_cluster(),
            Verdict::Unrelated => false,
        }
    }

    /// When a group call started now must stop retrying: the request timeout from now, or
    /// [`COORDINATOR_RETRY_TIMEOUT`] without one.
    pub(crate) fn coordinator_deadline(&self) -> Instant {
        Instant::now()
            + self
                .shared
                .timeouts
                .request
                .unwrap_or(COORDINATOR_RETRY_TIMEOUT)
    }

    /// Runs `call` on `group`'s coordinator, and again wherever each failure the coordinator's
    /// move explains points (see [`Router::on_coordinator_error`]), pausing as
    /// [`retry_pause`] says, until it succeeds or `deadline` leaves no time for another pause.
    /// Always tries once. A retried call may have been carried out by a node that then failed
    /// to answer, so `call` must be safe to repeat (commits and offset reads are).
    ///
    /// # Errors
    /// The call's own failure, or the last coordinator error once `deadline` is near.
    pub(crate) async fn on_coordinator<T, F, Fut>(
        &self,
        group: &str,
        deadline: Instant,
        call: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        self.on_coordinator_at(group, deadline, call)
            .await
            .map(|(answer, _)| answer)
    }

    /// [`Router::on_coordinator`], also returning the address of the node that answered: the
    /// group's coordinator, for a call only the coordinator answers.
    ///
    /// # Errors
    /// As [`Router::on_coordinator`].
    pub(crate) async fn on_coordinator_at<T, F, Fut>(
        &self,
        group: &str,
        deadline: Instant,
        mut call: F,
    ) -> Result<(T, Arc<str>), ClientError>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut hinted_before = false;
        let mut retry = 0_u32;
        loop {
            let route = self.coordinator(group).await;
            let error = match call(route.channel).await {
                Ok(answer) => return Ok((answer, route.address)),
                Err(status) => ClientError::from(status),
            };
            if !self.on_coordinator_error(group, &route.address, &error) {
                return Err(error);
            }
            let pause = retry_pause(&error, hinted_before, retry);
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            tracing::debug!(%group, from = %route.address, %error, ?pause, "group call rerouted");
            hinted_before = is_hint(&error);
            if !pause.is_zero() {
                retry = retry.saturating_add(1);
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Every node's address as a metadata read just now lists them (the any node's alone if
    /// the read fails and none was read before).
    ///
    /// # Errors
    /// The metadata read's failure when no node answered it and no earlier read listed nodes.
    pub(crate) async fn nodes(&self) -> Result<Vec<Arc<str>>, ClientError> {
        if let Err(error) = self.refresh_nodes().await {
            if !lock(&self.shared.cache).knows_nodes() {
                return Err(error);
            }
            tracing::debug!(%error, "metadata read failed; using the nodes read before");
        }
        Ok(lock(&self.shared.cache).node_addresses())
    }

    /// True when calls can go to more than one node: the bootstrap list or the metadata names
    /// several.
    fn is_cluster(&self) -> bool {
        self.shared.bootstrap.len() > 1 || lock(&self.shared.cache).is_cluster()
    }

    /// Asks the any node which node coordinates `group`, as the address this client reaches
    /// it at (reading metadata first when only that can tell).
    async fn find_coordinator(&self, group: &str) -> Result<Arc<str>, ClientError> {
        let request = FindCoordinatorRequest {
            group_id: group.to_string(),
        };
        // As for metadata: a paused node must not hold the group's calls forever.
        let deadline = self
            .shared
            .timeouts
            .request
            .unwrap_or(METADATA_REQUEST_TIMEOUT);
        let answer = self
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    let mut client = GroupsClient::new(channel);
                    match tokio::time::timeout(deadline, client.find_coordinator(request)).await {
                        Ok(answer) => Ok(answer?.into_inner()),
                        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                            "no FindCoordinator answer within {deadline:?}"
                        ))),
                    }
                }
            })
            .await;
        // `on_any_node` moved the any node if it had to: this is the node that answered.
        let answered_by = self.any_node().address;
        let answer = match answer {
            Ok(answer) => answer,
            // A node older than FindCoordinator coordinates every group it is asked about.
            Err(ClientError::Broker {
                status: tonic::Code::Unimplemented,
                ..
            }) => return Ok(answered_by),
            Err(error) => return Err(error),
        };
        if answer.address.is_empty() {
            return Err(ClientError::Broker {
                code: ErrorCode::CoordinatorNotAvailable,
                status: tonic::Code::Unavailable,
                message: format!("{answered_by} named no coordinator for group {group:?}"),
                leader: None,
            });
        }
        let known = resolve(
            &lock(&self.shared.cache),
            answer.node_id,
            &answer.address,
            &answered_by,
        );
        if let Some(address) = known {
            return Ok(address);
        }
        if let Err(error) = self.refresh_nodes().await {
            tracing::debug!(%error, "metadata read failed; using the advertised coordinator address");
        }
        let cache = lock(&self.shared.cache);
        Ok(
            resolve(&cache, answer.node_id, &answer.address, &answered_by)
                .unwrap_or_else(|| cache.reach(&answer.address)),
        )
    }

    /// Reads metadata for the nodes (and the cached topics), unless another caller's read
    /// finished while this one waited for its turn.
    async fn refresh_nodes(&self) -> Result<(), ClientError> {
        let reads_before = self.shared.reads.load(Ordering::Acquire);
        let _turn = self.shared.refreshing.lock().await;
        if self.shared.reads.load(Ordering::Acquire) != reads_before
            && lock(&self.shared.cache).knows_nodes()
        {
            return Ok(());
        }
        let topics = lock(&self.shared.cache).topics_cached_or(CONSUMER_OFFSETS_TOPIC);
        self.read_and_apply(&topics).await
    }
}

#[cfg(test)]
mod tests;
