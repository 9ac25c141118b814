//! The background heartbeat of a group member. It runs on its own task so that slow record
//! processing between polls never lets the session time out (as in Kafka's consumer, whose
//! heartbeat thread is separate from `poll`). It only talks to the coordinator and records what
//! it says in [`Membership`]; the polling side acts on it (revoke, assign, drop lost
//! partitions) and reports back what it owns.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{ErrorCode, HeartbeatRequest, TopicPartitions};
use tokio::sync::Notify;
use tonic::transport::Channel;

use super::config::{GroupConsumerConfig, TopicPartition};
use crate::error::ClientError;

/// Wait before retrying after a heartbeat failed for a reason that may pass.
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
    /// Starts heartbeating: the first beat joins the group.
    pub fn start(
        client: GroupsClient<Channel>,
        cfg: &GroupConsumerConfig,
        topics: Vec<String>,
    ) -> Heartbeat {
        let shared = Arc::new(Mutex::new(Membership {
            member_id: new_member_id(&cfg.client_id),
            ..Membership::default()
        }));
        let wake = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            client,
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
    mut client: GroupsClient<Channel>,
    cfg: GroupConsumerConfig,
    topics: Vec<String>,
    shared: Arc<Mutex<Membership>>,
    wake: Arc<Notify>,
    stop: Arc<Notify>,
) {
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
        let sent = Instant::now();
        let wait = match client.heartbeat(request).await {
            Ok(response) => {
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
                let mut m = shared.lock().unwrap_or_else(|e| e.into_inner());
                match err.code() {
                    Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch) => {
                        tracing::warn!(group = %cfg.group_id, member = %m.member_id, %err, "fenced by the coordinator; rejoining");
                        m.lost = true;
                        m.epoch = 0;
                        m.assigned.clear();
                        m.complete = false;
                        m.joined = false;
                        Duration::ZERO
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

/// Sends the heartbeat that leaves the group.
pub(crate) async fn leave(
    client: &mut GroupsClient<Channel>,
    group_id: &str,
    member_id: &str,
) -> Result<(), ClientError> {
    if member_id.is_empty() {
        return Ok(());
    }
    client
        .heartbeat(HeartbeatRequest {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            member_epoch: -1,
            ..HeartbeatRequest::default()
        })
        .await?;
    Ok(())
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
