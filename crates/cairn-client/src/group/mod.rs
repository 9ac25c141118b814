//! [`GroupConsumer`]: a member of a consumer group (the model of Kafka's KIP-848). The broker
//! assigns partitions; this side reconciles inside `poll`: it commits and gives up revoked
//! partitions before taking new ones, starts new ones at the group's committed offsets (or
//! `auto.offset.reset`), fetches stored batches with its member epoch (so a fenced member
//! cannot read), one fetch sent ahead ([`FetchAhead`]), decodes them here, and commits what
//! `poll` returned (at-least-once) on an interval, on revoke and on close.
//!
//! Fetches and offset lookups go to each partition's leader (the `routing` module), as a
//! plain [`crate::Consumer`]'s do; the group calls (heartbeat, commits, committed offsets,
//! leave) go to the group's coordinator, and follow it when it moves. A new coordinator does
//! not know the member: the heartbeat task rejoins, and the partitions the member gets then
//! start at the committed offsets read from the new coordinator, so records polled since the
//! last commit are read again (at-least-once) and none are skipped.
//!
//! - `config`: [`GroupConsumerConfig`], [`RebalanceListener`], [`TopicPartition`];
//! - `heartbeat`: the background heartbeat task and the membership it shares with `poll`;
//! - `fetch_round`: one round of fetches over the assigned partitions, decoded.

mod config;
mod fetch_round;
mod heartbeat;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{
    CommitOffsetsRequest, ErrorCode, FetchOffsetsRequest, OffsetCommit, OffsetSpec,
};

pub use config::{
    GroupConsumerConfig, NoopListener, OffsetReset, RebalanceListener, TopicPartition,
};
use heartbeat::{Heartbeat, leave, to_wire};

use crate::consumer::ConsumedRecord;
use crate::error::ClientError;
use crate::fetch_ahead::FetchAhead;
use crate::routing::Router;

/// Where a newly assigned partition starts.
struct Start {
    /// The first offset to read.
    position: i64,
    /// The group's committed offset, when it has one.
    committed: Option<i64>,
    /// The high watermark when the partition was assigned.
    end: i64,
}

/// Longest a single fetch waits inside `poll`, so rebalances are acted on promptly.
const MAX_FETCH_WAIT: Duration = Duration::from_millis(100);

/// A member of a consumer group, reading the partitions the group assigns it.
pub struct GroupConsumer {
    cfg: GroupConsumerConfig,
    router: Router,
    heartbeat: Option<Heartbeat>,
    listener: Box<dyn RebalanceListener>,
    /// Next offset to read per owned partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// Positions as last committed, to skip commits that would change nothing.
    committed: BTreeMap<TopicPartition, i64>,
    /// High watermarks captured when each partition was assigned.
    ends_at_assignment: BTreeMap<TopicPartition, i64>,
    next_partition: usize,
    last_commit: Instant,
    /// The fetch the next round will most likely start with, sent ahead.
    ahead: FetchAhead,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.cfg.group_id)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// Connects and joins `cfg.group_id`, subscribed to `topics`. Partitions arrive in later
    /// `poll` calls.
    ///
    /// # Errors
    /// [`ClientError`] for an unreachable broker or an invalid argument.
    pub async fn subscribe(
        brokers: &str,
        cfg: GroupConsumerConfig,
        topics: &[&str],
        listener: Box<dyn RebalanceListener>,
    ) -> Result<GroupConsumer, ClientError> {
        if topics.is_empty() {
            return Err(ClientError::InvalidArgument(
                "subscribe needs at least one topic".to_string(),
            ));
        }
        let router = Router::connect(brokers, cfg.timeouts.clone()).await?;
        let topics = topics.iter().map(|t| t.to_string()).collect();
        let heartbeat = Heartbeat::start(router.clone(), &cfg, topics);
        Ok(GroupConsumer {
            cfg,
            router,
            heartbeat: Some(heartbeat),
            listener,
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            ends_at_assignment: BTreeMap::new(),
            next_partition: 0,
            last_commit: Instant::now(),
            ahead: FetchAhead::default(),
        })
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset to read per owned partition.
    pub fn positions(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.positions
    }

    /// Moves the position of an owned partition: the next `poll` reads from `offset`, and an
    /// auto-commit commits it. Used to give back records that were fetched but not processed.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] when the partition is not owned or the offset negative.
    pub fn seek(&mut self, partition: &TopicPartition, offset: i64) -> Result<(), ClientError> {
        if offset < 0 {
            return Err(ClientError::InvalidArgument(format!(
                "seek to negative offset {offset}"
            )));
        }
        match self.positions.get_mut(partition) {
            Some(position) => {
                *position = offset;
                Ok(())
            }
            None => Err(ClientError::InvalidArgument(format!(
                "{}-{} is not assigned to this member",
                partition.topic, partition.partition
            ))),
        }
    }

    /// This member's id and epoch (empty and 0 until the group answered the join).
    pub fn member(&self) -> (String, i32) {
        self.heartbeat
            .as_ref()
            .map(|h| {
                let m = h.shared.lock().unwrap_or_else(|e| e.into_inner());
                (m.member_id.clone(), m.epoch)
            })
            .unwrap_or_default()
    }

    /// When the latest heartbeat the coordinator answered was sent; `None` until one was.
    /// A caller that must not wait forever on a coordinator that never answers (the member
    /// keeps retrying its heartbeats) gives up when this stays `None` or grows old.
    pub fn last_answered_heartbeat(&self) -> Option<Instant> {
        self.heartbeat.as_ref().and_then(|h| {
            h.shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .answered_heartbeat_sent
        })
    }

    /// The high watermark of an owned partition when it was assigned to this member.
    pub fn end_at_assignment(&self, partition: &TopicPartition) -> Option<i64> {
        self.ends_at_assignment.get(partition).copied()
    }

    /// True when this member has its whole assignment and has read every owned partition up
    /// to the high watermark captured when it was assigned (for `--until-end`).
    pub fn caught_up(&self) -> bool {
        let Some(heartbeat) = &self.heartbeat else {
            return true;
        };
        let (joined, complete, assigned) = {
            let m = heartbeat.shared.lock().unwrap_or_else(|e| e.into_inner());
            (m.joined, m.complete, m.assigned.clone())
        };
        joined
            && complete
            && assigned == self.assignment()
            && self
                .positions
                .iter()
                .all(|(p, pos)| self.ends_at_assignment.get(p).is_some_and(|end| pos >= end))
    }

    /// Reconciles the assignment, commits if the auto-commit interval passed, and reads what
    /// is available from the owned partitions, waiting up to `max_wait` when nothing is.
    ///
    /// # Errors
    /// A fatal group error (bad group id, unknown topic), or a fetch failure that is not about
    /// membership.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>, ClientError> {
        let deadline = Instant::now() + max_wait;
        loop {
            self.reconcile(deadline).await?;
            if self.cfg.enable_auto_commit
                && self.last_commit.elapsed() >= self.cfg.auto_commit_interval
                && let Err(err) = self.commit().await
            {
                tracing::warn!(group = %self.cfg.group_id, %err, "auto-commit failed");
            }
            let records = self.fetch_round(deadline).await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// Commits the positions of every owned partition (what `poll` returned so far), to the
    /// group's coordinator. While the coordinator moves (`NOT_COORDINATOR`, an election, a
    /// new coordinator loading the group, an unreachable coordinator in a cluster) the commit
    /// follows it and is retried, until the request timeout (or
    /// [`crate::COORDINATOR_RETRY_TIMEOUT`] without one) has passed since the call; then the
    /// last such error is returned, and [`ClientError::is_retriable`] is true for it. Auto-commits
    /// (on the interval, before a revoke, on close) take the same path.
    ///
    /// # Errors
    /// [`ClientError`] from the broker: a fenced member's commit is refused (a new coordinator
    /// refuses it with `UnknownMemberId` until the member has rejoined). Such a refusal fences
    /// the member at once: the next `poll` drops its partitions without committing (the
    /// listener hears `on_partitions_lost`) and takes them again at the committed offsets
    /// after the rejoin. A coordinator that stayed unavailable, as above. Both are
    /// [`ClientError::is_retriable`]: the member carries on, and a later commit may succeed.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        self.drop_lost();
        let positions = self.positions.clone();
        self.commit_positions(&positions).await
    }

    /// Commits the given offsets (the next offset to read per partition) with `metadata`,
    /// following the coordinator as [`GroupConsumer::commit`] does.
    ///
    /// # Errors
    /// [`ClientError`] from the broker, as for [`GroupConsumer::commit`]; `FencedMemberEpoch`
    /// without sending anything when the member was found fenced since the last call (its
    /// partitions are dropped: the offsets given may be another member's to commit now).
    pub async fn commit_offsets(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
        metadata: &str,
    ) -> Result<(), ClientError> {
        if self.drop_lost() {
            // Retriable, as the refusal that fenced the member: it is rejoining, and a commit
            // of what it reads after that may succeed.
            return Err(ClientError::Broker {
                code: ErrorCode::FencedMemberEpoch,
                status: tonic::Code::FailedPrecondition,
                message: "this member was fenced and lost its partitions; nothing was committed"
                    .to_string(),
                leader: None,
            });
        }
        self.send_commit(offsets, metadata).await
    }

    /// Commits (with auto-commit), tells the listener every partition is revoked, and leaves
    /// the group so its partitions move at once instead of after the session timeout.
    ///
    /// # Errors
    /// The commit's or the leave's failure (the member is stopped either way).
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.drop_lost();
        let committed = if self.cfg.enable_auto_commit {
            self.commit().await
        } else {
            Ok(())
        };
        let revoked: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        if !revoked.is_empty() {
            self.listener.on_partitions_revoked(&revoked);
        }
        let left = match self.heartbeat.take() {
            Some(mut heartbeat) => {
                heartbeat.stop().await;
                let member_id = heartbeat
                    .shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .member_id
                    .clone();
                leave(&self.router, &self.cfg.group_id, &member_id).await
            }
            None => Ok(()),
        };
        committed.and(left)
    }

    async fn commit_positions(
        &mut self,
        positions: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ClientError> {
        let changed: BTreeMap<TopicPartition, i64> = positions
            .iter()
            .filter(|(p, pos)| self.committed.get(*p) != Some(*pos))
            .map(|(p, pos)| (p.clone(), *pos))
            .collect();
        self.last_commit = Instant::now();
        if changed.is_empty() {
            return Ok(());
        }
        self.send_commit(&changed, "").await
    }

    async fn send_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
        metadata: &str,
    ) -> Result<(), ClientError> {
        let (member_id, member_epoch) = self.member();
        let fence_count = self.heartbeat.as_ref().map(|h| {
            h.shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .fence_count
        });
        let request = CommitOffsetsRequest {
            group_id: self.cfg.group_id.clone(),
            member_id,
            member_epoch,
            offsets: offsets
                .iter()
                .map(|(p, offset)| OffsetCommit {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: *offset,
                    metadata: metadata.to_string(),
                })
                .collect(),
        };
        // Safe to send again: the same offsets under the same member epoch, and a coordinator
        // that has since seen the member rejoin refuses the stale epoch.
        let group = self.cfg.group_id.clone();
        let deadline = self.router.coordinator_deadline();
        let committed = self
            .router
            .on_coordinator(&group, deadline, |channel| {
                let request = request.clone();
                async move { GroupsClient::new(channel).commit_offsets(request).await }
            })
            .await;
        if let Err(err) = committed {
            if matches!(
                err.code(),
                Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch)
            ) && let Some(heartbeat) = &self.heartbeat
            {
                // The coordinator (perhaps a new one) does not know this member at the epoch
                // the commit carried. Unless the heartbeat task has fenced it since the commit
                // was sent, the member is fenced now: the next poll drops its partitions
                // before fetching more records it could not commit, and the heartbeat task,
                // woken, rejoins at once instead of after its interval or backoff.
                {
                    let mut m = heartbeat.shared.lock().unwrap_or_else(|e| e.into_inner());
                    if member_epoch != 0 && Some(m.fence_count) == fence_count {
                        m.fence();
                    }
                }
                heartbeat.wake.notify_one();
            }
            return Err(err);
        }
        for (p, offset) in offsets {
            self.committed.insert(p.clone(), *offset);
        }
        Ok(())
    }

    /// Acts on what the coordinator said: drops lost partitions, commits and gives up revoked
    /// ones, then takes newly assigned ones at their committed offsets. When those cannot be
    /// read by `deadline` for a reason that may pass (the coordinator is moving), the new
    /// partitions wait for the next call: none is taken from a guess.
    async fn reconcile(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let Some(heartbeat) = &self.heartbeat else {
            return Err(ClientError::Closed);
        };
        let shared = std::sync::Arc::clone(&heartbeat.shared);
        let wake = std::sync::Arc::clone(&heartbeat.wake);
        if let Some(err) = shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fatal
            .clone()
        {
            return Err(err);
        }
        self.drop_lost();
        let assigned = shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .assigned
            .clone();
        let revoked: BTreeMap<TopicPartition, i64> = self
            .positions
            .iter()
            .filter(|(p, _)| !assigned.contains(*p))
            .map(|(p, pos)| (p.clone(), *pos))
            .collect();
        if !revoked.is_empty() {
            if self.cfg.enable_auto_commit
                && let Err(err) = self.commit_positions(&revoked).await
            {
                tracing::warn!(group = %self.cfg.group_id, %err, "commit before revoke failed");
            }
            for p in revoked.keys() {
                self.positions.remove(p);
                self.committed.remove(p);
                self.ends_at_assignment.remove(p);
            }
            self.set_owned(&shared, &wake);
            let revoked: Vec<TopicPartition> = revoked.into_keys().collect();
            self.listener.on_partitions_revoked(&revoked);
        }
        let added: Vec<TopicPartition> = assigned
            .iter()
            .filter(|p| !self.positions.contains_key(*p))
            .cloned()
            .collect();
        if !added.is_empty() {
            let starts = match self.start_positions(&added, deadline).await {
                Ok(starts) => starts,
                Err(err) if err.is_retriable() => {
                    tracing::debug!(group = %self.cfg.group_id, %err, "start positions not read yet; retrying at the next poll");
                    return Ok(());
                }
                Err(err) => return Err(err),
            };
            for (p, start) in starts {
                self.positions.insert(p.clone(), start.position);
                // Only a real commit counts as committed: a position from `auto.offset.reset`
                // must be committed too, or a successor would reset again and skip records.
                if let Some(committed) = start.committed {
                    self.committed.insert(p.clone(), committed);
                }
                self.ends_at_assignment.insert(p, start.end);
            }
            self.set_owned(&shared, &wake);
            self.listener.on_partitions_assigned(&added);
        }
        Ok(())
    }

    /// When the coordinator fenced this member, forgets every partition without committing
    /// (another member may own them now) and tells the listener. True if it did.
    fn drop_lost(&mut self) -> bool {
        let Some(heartbeat) = &self.heartbeat else {
            return false;
        };
        let (shared, wake) = (
            std::sync::Arc::clone(&heartbeat.shared),
            std::sync::Arc::clone(&heartbeat.wake),
        );
        let lost = std::mem::take(&mut shared.lock().unwrap_or_else(|e| e.into_inner()).lost);
        if !lost {
            return false;
        }
        self.ahead.cancel();
        let dropped: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        self.positions.clear();
        self.committed.clear();
        self.ends_at_assignment.clear();
        self.set_owned(&shared, &wake);
        if !dropped.is_empty() {
            self.listener.on_partitions_lost(&dropped);
        }
        true
    }

    fn set_owned(
        &self,
        shared: &std::sync::Arc<std::sync::Mutex<heartbeat::Membership>>,
        wake: &tokio::sync::Notify,
    ) {
        shared.lock().unwrap_or_else(|e| e.into_inner()).owned = self.assignment();
        // Tell the coordinator at once: a revocation completes, or a grant is acknowledged.
        wake.notify_one();
    }

    /// Where each partition starts: the committed offset, read from the coordinator (following
    /// it until `deadline`, or for one attempt when that has passed), or the
    /// `auto_offset_reset` position; and its high watermark.
    async fn start_positions(
        &mut self,
        partitions: &[TopicPartition],
        deadline: Instant,
    ) -> Result<BTreeMap<TopicPartition, Start>, ClientError> {
        let request = FetchOffsetsRequest {
            group_id: self.cfg.group_id.clone(),
            partitions: to_wire(&partitions.iter().cloned().collect()),
        };
        let committed = self
            .router
            .on_coordinator(&self.cfg.group_id, deadline, |channel| {
                let request = request.clone();
                async move {
                    let answer = GroupsClient::new(channel).fetch_offsets(request).await?;
                    Ok(answer.into_inner())
                }
            })
            .await?;
        let committed: BTreeMap<TopicPartition, i64> = committed
            .offsets
            .into_iter()
            .filter(|c| c.offset >= 0)
            .map(|c| {
                (
                    TopicPartition {
                        topic: c.topic,
                        partition: c.partition,
                    },
                    c.offset,
                )
            })
            .collect();
        let mut out = BTreeMap::new();
        let topics: BTreeSet<&String> = partitions.iter().map(|p| &p.topic).collect();
        for topic in topics {
            let mine: Vec<i32> = partitions
                .iter()
                .filter(|p| &p.topic == topic)
                .map(|p| p.partition)
                .collect();
            let ends = self.list_offsets(topic, &mine, OffsetSpec::Latest).await?;
            let reset = match self.cfg.auto_offset_reset {
                OffsetReset::Earliest => {
                    self.list_offsets(topic, &mine, OffsetSpec::Earliest)
                        .await?
                }
                OffsetReset::Latest => ends.clone(),
            };
            for partition in mine {
                let p = TopicPartition {
                    topic: topic.clone(),
                    partition,
                };
                let end = ends.get(&partition).copied().unwrap_or(0);
                let committed = committed.get(&p).copied();
                let position = committed
                    .or_else(|| reset.get(&partition).copied())
                    .unwrap_or(0);
                out.insert(
                    p,
                    Start {
                        position,
                        committed,
                        end,
                    },
                );
            }
        }
        Ok(out)
    }

    async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let answers =
            crate::routing::list_offsets(&self.router, topic, partitions, spec, 0).await?;
        Ok(answers
            .into_iter()
            .filter_map(|(partition, offset)| Some((partition, offset.ok()?)))
            .collect())
    }

    /// True while the coordinator cannot have expired this member: a heartbeat it answered was
    /// sent less than a session timeout ago.
    fn surely_a_member(&self) -> bool {
        self.heartbeat.as_ref().is_some_and(|h| {
            let m = h.shared.lock().unwrap_or_else(|e| e.into_inner());
            m.answered_heartbeat_sent
                .is_some_and(|sent| sent.elapsed() < self.cfg.session_timeout)
        })
    }
}

#[cfg(test)]
mod tests;
