//! A group member's fetch round: one fetch per assigned partition to its leader, sent with the
//! member epoch so a fenced member reads nothing, one sent ahead, and the stored batches
//! decoded here.

use std::time::{Duration, Instant};

use cairn_proto::v1::{ErrorCode, FetchFormat, FetchRequest, OffsetSpec};

use super::{GroupConsumer, MAX_FETCH_WAIT, OffsetReset, TopicPartition};
use crate::batches::{CrcCheck, FetchedBatches};
use crate::consumer::{ConsumedRecord, REROUTE_PAUSE, consumer_client};
use crate::error::ClientError;
use crate::fetch_ahead::likely_next;

impl GroupConsumer {
    /// Tries each owned partition once, the last one with a short wait; returns the first
    /// records found.
    pub(super) async fn fetch_round(
        &mut self,
        deadline: Instant,
    ) -> Result<Vec<ConsumedRecord>, ClientError> {
        let partitions: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        if partitions.is_empty() {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(MAX_FETCH_WAIT);
            tokio::time::sleep(wait).await;
            return Ok(Vec::new());
        }
        let (member_id, member_epoch) = self.member();
        let mut rerouted = false;
        for step in 0..partitions.len() {
            let index = (self.next_partition + step) % partitions.len();
            let p = &partitions[index];
            let last = step + 1 == partitions.len();
            let wait = if last {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(MAX_FETCH_WAIT)
            } else {
                Duration::ZERO
            };
            let Some(&offset) = self.positions.get(p) else {
                continue;
            };
            let max_wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            let request = self.fetch_request(p, offset, max_wait_ms, &member_id, member_epoch);
            let ahead = if self.surely_a_member() {
                self.ahead.take(&request).await
            } else {
                // The answer was checked against this member's epoch when it was read; if the
                // coordinator may have expired the member since, only a fetch now may tell.
                self.ahead.cancel();
                None
            };
            let route = self.router.route(&p.topic, p.partition).await;
            let answer = match ahead {
                Some(response) => Ok(response),
                None => consumer_client(route.channel.clone())
                    .fetch(request)
                    .await
                    .map(|r| r.into_inner()),
            };
            let response = match answer {
                Ok(response) => response,
                Err(status) => {
                    let err = ClientError::from(status);
                    if self
                        .router
                        .on_error(&p.topic, p.partition, &route.address, &err)
                    {
                        // The position stays: the next round asks the new leader.
                        rerouted = true;
                        continue;
                    }
                    match err.code() {
                        // Membership moved under us: the heartbeat task will say how.
                        Some(
                            ErrorCode::UnknownMemberId
                            | ErrorCode::FencedMemberEpoch
                            | ErrorCode::StaleMemberEpoch
                            | ErrorCode::PartitionNotAssigned,
                        ) => return Ok(Vec::new()),
                        Some(ErrorCode::OffsetOutOfRange) => {
                            let spec = match self.cfg.auto_offset_reset {
                                OffsetReset::Earliest => OffsetSpec::Earliest,
                                OffsetReset::Latest => OffsetSpec::Latest,
                            };
                            let reset = self.list_offsets(&p.topic, &[p.partition], spec).await?;
                            if let Some(&to) = reset.get(&p.partition) {
                                tracing::warn!(topic = %p.topic, partition = p.partition, from = offset, to, "offset out of range; reset");
                                self.positions.insert(p.clone(), to);
                            }
                            continue;
                        }
                        _ => return Err(err),
                    }
                }
            };
            let ahead = likely_next(&partitions, index, &self.positions, &response);
            if let Some((tp, offset)) = ahead {
                let request = self.fetch_request(&tp, offset, 0, &member_id, member_epoch);
                let leader = self.router.route(&tp.topic, tp.partition).await;
                self.ahead.send(&consumer_client(leader.channel), request);
            }
            // Stored batches, checked and decoded here: the broker only reads and sends.
            let batches = FetchedBatches::decode(
                &p.topic,
                p.partition,
                offset,
                None,
                response,
                CrcCheck::OnArrival,
            )?;
            let records = batches
                .records()
                .map(|r| r.map(|r| r.to_record(&p.topic)))
                .collect::<Result<Vec<ConsumedRecord>, ClientError>>()?;
            // The position moves only once every record decoded: a corrupt batch is refused
            // again at the next poll instead of being skipped.
            self.positions.insert(p.clone(), batches.next_offset());
            if !records.is_empty() {
                self.next_partition = (index + 1) % partitions.len();
                return Ok(records);
            }
        }
        if rerouted {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(REROUTE_PAUSE)).await;
        }
        Ok(Vec::new())
    }

    /// A fetch of stored batches of `p` from `offset`, as this member at `member_epoch`.
    fn fetch_request(
        &self,
        p: &TopicPartition,
        offset: i64,
        max_wait_ms: u32,
        member_id: &str,
        member_epoch: i32,
    ) -> FetchRequest {
        FetchRequest {
            topic: p.topic.clone(),
            partition: p.partition,
            offset,
            max_bytes: self.cfg.max_partition_fetch_bytes,
            max_wait_ms,
            format: FetchFormat::RecordBatches as i32,
            group_id: self.cfg.group_id.clone(),
            member_id: member_id.to_string(),
            member_epoch,
            ..Default::default()
        }
    }
}
