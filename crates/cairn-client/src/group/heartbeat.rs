//! The background heartbeat of a group member. It runs on its own task so that slow record
//! processing between polls never lets the session time out (as in Kafka's consumer, whose
//! heartbeat thread is separate from `poll`). It only talks to the coordinator and records what
//! it says in [`Membership`]; the polling side acts on it (revoke, assign, drop lost
//! partitions) and reports back what it owns.
//!
//! Each beat asks the router for the group's coordinator and reports a failure back to it, so
//! after `NOT_COORDINATOR` the next beat goes to the node named, and after an election to the
//! node `FindCoordinator` names then. A new coordinator does not know this member and answers
//! `UNKNOWN_MEMBER_ID`: the member rejoins like any fenced member, and the polling side takes
//! its partitions again at the committed offsets, which the new coordinator holds.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{ErrorCode, HeartbeatRequest, TopicPartitions};
use tokio::sync::Notify;

use super::config::{GroupConsumerConfig, TopicPartition};
use crate::error::ClientError;
use crate::routing::{Router, retry_pause};

/// Wait before retrying after a heartbeat failed for a reason that may pass, other than a
/// coordinator move (whose pauses `retry_pause` gives).
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// What the member and its coordinator last agreed, shared by the heartbeat task and `poll`.
#[derive(Debug, Default)]
pub(crate) struct Membership {
    /// The member id, chosen here once (as KIP-848 clients do) and kept for every rejoin, so a
    /// retried or repeated join replaces this member's earlier incarnation at once instead of
    /// leaving it to hold partitions until its session times out.
    pub member_id: String,
    /// The member epoch (0 while joining).
    pub epoch: i32,
    /// What the coordinator last said this member may own.
    pub assigned: BTreeSet<TopicPartition>,
    /// True when `assigned` is the member's whole target.
    pub complete: bool,
    /// What the polling side owns now (reported on every heartbeat).
    pub owned: BTreeSet<TopicPartition>,
    /// Set when the coordinator forgot or fenced this member: the polling side must drop every
    /// partition without committing. The task has already rejoined.
    pub lost: bool,
    /// A failure that retrying cannot fix (a bad group id, an unknown topic...).
    pub fatal: Option<ClientError>,
    /// True once a join was answered.
    pub joined: bool,
    /// When the last heartbeat the coordinator answered was sent. The coordinator cannot have
    /// expired this member before that plus the session timeout, which is what lets `poll`
    /// trust a fetch answer it got ahead of time.
    pub answered_heartbeat_sent: Option<Instant>,
    /// How many times this member was fenced: a caller that saw the membership before a call
    /// tells by it whether the heartbeat task has fenced (and maybe rejoined) since, which the
    /// epoch alone cannot (a new coordinator may give the old epoch number again).
    pub fence_count: u64,
}

impl Membership {
    /// The coordinator does not know this member (or not under its epoch): every partition is
    /// lost (the polling side drops them without committing) and the next beat rejoins.
    pub fn fence(&mut self) {
        self.fence_count += 1;
        self.lost = true;
        self.epoch = 0;
        self.assigned.clear();
        self.complete = false;
        self.joined = false;
    }
}

/// The running heartbeat task.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    pub shared: Arc<Mutex<Membership>>,
    pub wake: Arc<Notify>,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts heartbeating to the group's coordinator, as `router` finds it: the first beat
    /// joins the group.
    pub fn start(router: Router, cfg: &GroupConsumerConfig, topics: Vec<String>) -> Heartbeat {
        let shared = Arc::new(Mutex::new(Membership {
            member_id: new_member_id(&cfg.client_id),
            ..Membership::default()
        }));
        let wake = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            router,
            cfg.clone(),
            topics,
            Arc::clone(&shared),
            Arc::clone(&wake),
            Arc::clone(&stop),
        ));
        Heartbeat {
            shared,
            wake,
            stop,
            task,
        }
    }

    /// Stops the task (without leaving the group) and waits for it.
    pub async fn stop(&mut self) {
        self.stop.notify_one();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        // Dropped without `close`: stop heartbeating; the broker times the session out.
        self.task.abort();
    }
}

async fn run(
    router: Router,
    cfg: GroupConsumerConfig,
    topics: Vec<String>,
    shared: Arc<Mutex<Membership>>,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
) {
    // Consecutive reroutes, for `retry_pause`: reset by every answer.
    let mut reroutes = 0_u32;
    let mut hinted_before = false;
    loop {
        let request = {
            let m = shared.lock().unwrap_or_else(|e| e.into_inner());
            HeartbeatRequest {
                group_id: cfg.group_id.clone(),
                member_id: m.member_id.clone(),
                member_epoch: m.epoch,
                client_id: cfg.client_id.clone(),
                subscribed_topics: if m.epoch == 0 {
                    topics.clone()
                } else {
                    Vec::new()
                },
                subscription_changed: false,
                owned_partitions: to_wire(&m.owned),
                session_timeout_ms: millis(cfg.session_timeout),
                rebalance_timeout_ms: millis(cfg.rebalance_timeout),
            }
        };
        let route = router.coordinator(&cfg.group_id).await;
        let sent = Instant::now();
        let answer = GroupsClient::new(route.channel).heartbeat(request).await;
        let wait = match answer {
            Ok(response) => {
                reroutes = 0;
                hinted_before = false;
                let response = response.into_inner();
                let mut m = shared.lock().unwrap_or_else(|e| e.into_inner());
                m.answered_heartbeat_sent = Some(sent);
                m.member_id = response.member_id;
                m.epoch = response.member_epoch;
                m.assigned = from_wire(&response.assignment);
                m.complete = response.assignment_complete;
                m.joined = true;
                Duration::from_millis(u64::from(response.heartbeat_interval_ms.max(50)))
            }
            Err(status) => {
                let err = ClientError::from(status);
                let rerouted = router.on_coordinator_error(&cfg.group_id, &route.address, &err);
                let mut m = shared.lock().unwrap_or_else(|e| e.into_inner());
                match err.code() {
                    Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch) => {
                        tracing::warn!(group = %cfg.group_id, member = %m.member_id, %err, "fenced by the coordinator; rejoining");
                        m.fence();
                        Duration::ZERO
                    }
                    _ if rerouted => {
                        tracing::debug!(group = %cfg.group_id, from = %route.address, %err, "heartbeat rerouted");
                        let pause = retry_pause(&err, hinted_before, reroutes);
                        hinted_before = crate::routing::is_hint(&err);
                        if !pause.is_zero() {
                            reroutes = reroutes.saturating_add(1);
                        }
                        pause
                    }
                    _ if err.is_retriable() || matches!(err, ClientError::Connect { .. }) => {
                        tracing::debug!(group = %cfg.group_id, %err, "heartbeat failed; retrying");
                        RETRY_BACKOFF
                    }
                    _ => {
                        m.fatal = Some(err);
                        return;
                    }
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = stop.notified() => return,
        }
    }
}

/// Sends the heartbeat that leaves the group to its coordinator, following it while it moves
/// (until the router's coordinator deadline). A coordinator that does not know the member
/// (it took over after the member's last beat) counts as left: the member is not in the group.
///
/// # Errors
/// The coordinator's refusal, or the last coordinator error once the deadline is near.
pub(crate) async fn leave(
    router: &Router,
    group_id: &str,
    member_id: &str,
) -> Result<(), ClientError> {
    if member_id.is_empty() {
        return Ok(());
    }
    let request = HeartbeatRequest {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
        member_epoch: -1,
        ..HeartbeatRequest::default()
    };
    let left = router
        .on_coordinator(group_id, router.coordinator_deadline(), |channel| {
            let request = request.clone();
            async move { GroupsClient::new(channel).heartbeat(request).await }
        })
        .await;
    match left {
        Err(err) if err.code() == Some(ErrorCode::UnknownMemberId) => Ok(()),
        Err(err) => Err(err),
        Ok(_) => Ok(()),
    }
}

pub(crate) fn to_wire(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for p in set {
        match out.last_mut() {
            Some(last) if last.topic == p.topic => last.partitions.push(p.partition),
            _ => out.push(TopicPartitions {
                topic: p.topic.clone(),
                partitions: vec![p.partition],
            }),
        }
    }
    out
}

pub(crate) fn from_wire(list: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    list.iter()
        .flat_map(|tp| {
            tp.partitions.iter().map(|&partition| TopicPartition {
                topic: tp.topic.clone(),
                partition,
            })
        })
        .collect()
}

/// A member id unlikely to collide: the client id (shortened) and 64 random bits from the
/// standard library's per-process hash keys and the clock.
fn new_member_id(client_id: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    let prefix: String = client_id
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    format!("{prefix}-{:016x}", hasher.finish())
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::sync::atomic::Ordering;

    use super::*;
    use crate::connection::Timeouts;
    use crate::routing::fake_cluster::FakeCluster;

    /// Waits (up to ten seconds) until `done` holds of the membership.
    async fn wait_for(heartbeat: &Heartbeat, what: &str, done: impl Fn(&Membership) -> bool) {
        for _ in 0..1000 {
            if done(&heartbeat.shared.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} did not happen");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeats_follow_a_moved_coordinator_and_rejoin_there() {
        let cluster = FakeCluster::start(2, Some(2), |port| format!("127.0.0.1:{port}")).await;
        let router = Router::connect(cluster.address(1), Timeouts::default())
            .await
            .unwrap();
        let cfg = GroupConsumerConfig::new("g");
        let mut heartbeat = Heartbeat::start(router, &cfg, vec!["orders".to_string()]);
        wait_for(&heartbeat, "the join at node 2", |m| {
            m.joined && m.epoch == 1
        })
        .await;
        assert_eq!(cluster.nodes[&1].heartbeats.load(Ordering::SeqCst), 0);

        // Node 1 takes over: node 2 names it, and node 1 does not know the member.
        cluster.elect(Some(1));
        wait_for(&heartbeat, "the member being told it was lost", |m| m.lost).await;
        heartbeat.shared.lock().unwrap().lost = false;
        wait_for(&heartbeat, "the rejoin at node 1", |m| {
            m.joined && m.epoch == 1
        })
        .await;
        let node1 = &cluster.nodes[&1];
        wait_for(&heartbeat, "heartbeats to node 1 after the rejoin", |_| {
            node1.heartbeats.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert!(heartbeat.shared.lock().unwrap().fatal.is_none());
        assert_eq!(cluster.finds(), 1, "the hint was enough");
        heartbeat.stop().await;
    }
}
