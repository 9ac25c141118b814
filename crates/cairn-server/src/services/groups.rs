//! `cairn.v1.Groups`: consumer-group heartbeats, offset commits and group administration,
//! mapped onto the broker's coordinator.

use cairn_controller::security::acl::AclOperation::{Delete, Describe, Read};
use cairn_controller::security::acl::ResourceType::{Group, Topic};

use crate::auth::{CallerContext, allowed, authorize};
use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_broker::{
    Broker, CommittedOffset, GroupState, HeartbeatInput, OffsetCommit, ResetTo, TopicPartition,
};
use cairn_proto::v1 as api;
use cairn_proto::v1::groups_server::Groups;
use tonic::{Request, Response, Status};

use crate::status::{invalid_request, to_status};

/// The Groups service.
#[derive(Debug, Clone)]
pub struct GroupsService {
    broker: Arc<Broker>,
}

impl GroupsService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        GroupsService { broker }
    }
}

#[tonic::async_trait]
impl Groups for GroupsService {
    async fn heartbeat(
        &self,
        request: Request<api::HeartbeatRequest>,
    ) -> Result<Response<api::HeartbeatResponse>, Status> {
        // Joining and staying in a group is Read on the group (Kafka's JoinGroup/Heartbeat);
        // the topics it subscribes to are read by fetches, which are checked themselves.
        authorize(&request, Read, Group, &request.get_ref().group_id)?;
        let host = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let request = request.into_inner();
        let subscribed = (request.member_epoch == 0 || request.subscription_changed)
            .then(|| request.subscribed_topics.iter().cloned().collect());
        let input = HeartbeatInput {
            member_id: request.member_id,
            member_epoch: request.member_epoch,
            client_id: request.client_id,
            host,
            subscribed,
            owned: partitions_from(&request.owned_partitions)?,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
        };
        let out = self
            .broker
            .group_heartbeat(&request.group_id, input)
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::HeartbeatResponse {
            member_id: out.member_id,
            member_epoch: out.member_epoch,
            heartbeat_interval_ms: out.heartbeat_interval_ms,
            assignment: partitions_to(&out.assignment),
            session_timeout_ms: out.session_timeout_ms,
            assignment_complete: out.assignment_complete,
        }))
    }

    async fn commit_offsets(
        &self,
        request: Request<api::CommitOffsetsRequest>,
    ) -> Result<Response<api::CommitOffsetsResponse>, Status> {
        // Kafka's OffsetCommit: Read on the group and on each topic committed.
        authorize(&request, Read, Group, &request.get_ref().group_id)?;
        for offset in &request.get_ref().offsets {
            authorize(&request, Read, Topic, &offset.topic)?;
        }
        let request = request.into_inner();
        let commits = request
            .offsets
            .into_iter()
            .map(|o| {
                Ok(OffsetCommit {
                    partition: partition(&o.topic, o.partition)?,
                    offset: o.offset,
                    metadata: o.metadata,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.broker
            .commit_offsets(
                &request.group_id,
                &request.member_id,
                request.member_epoch,
                &commits,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<api::FetchOffsetsRequest>,
    ) -> Result<Response<api::FetchOffsetsResponse>, Status> {
        // Kafka's OffsetFetch: Describe on the group and on each topic asked for.
        authorize(&request, Describe, Group, &request.get_ref().group_id)?;
        for entry in &request.get_ref().partitions {
            authorize(&request, Describe, Topic, &entry.topic)?;
        }
        let request = request.into_inner();
        let wanted: Vec<TopicPartition> =
            partitions_from(&request.partitions)?.into_iter().collect();
        let offsets = self
            .broker
            .fetch_offsets(&request.group_id, &wanted)
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::FetchOffsetsResponse {
            offsets: offsets.into_iter().map(committed_to).collect(),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<api::ListGroupsRequest>,
    ) -> Result<Response<api::ListGroupsResponse>, Status> {
        let caller = request.extensions().get::<CallerContext>();
        let groups = self
            .broker
            .list_groups()
            .into_iter()
            .filter(|g| allowed(caller, Describe, Group, &g.group))
            .map(|g| api::GroupListing {
                group_id: g.group,
                state: state_to(g.state) as i32,
                member_count: i32::try_from(g.members).unwrap_or(i32::MAX),
            })
            .collect();
        Ok(Response::new(api::ListGroupsResponse { groups }))
    }

    async fn describe_group(
        &self,
        request: Request<api::DescribeGroupRequest>,
    ) -> Result<Response<api::GroupDescription>, Status> {
        authorize(&request, Describe, Group, &request.get_ref().group_id)?;
        let group = self
            .broker
            .describe_group(&request.into_inner().group_id)
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::GroupDescription {
            group_id: group.group,
            state: state_to(group.state) as i32,
            group_epoch: group.epoch,
            session_timeout_ms: group.session_timeout_ms,
            members: group
                .members
                .into_iter()
                .map(|m| api::GroupMember {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    host: m.host,
                    member_epoch: m.member_epoch,
                    subscribed_topics: m.subscribed.into_iter().collect(),
                    assignment: partitions_to(&m.assignment),
                    pending: partitions_to(&m.pending),
                })
                .collect(),
            offsets: group
                .offsets
                .into_iter()
                .map(|o| api::PartitionLag {
                    topic: o.partition.topic,
                    partition: o.partition.partition as i32,
                    committed: o.committed.unwrap_or(-1),
                    end: o.end,
                    lag: o.lag,
                })
                .collect(),
        }))
    }

    async fn reset_offsets(
        &self,
        request: Request<api::ResetOffsetsRequest>,
    ) -> Result<Response<api::ResetOffsetsResponse>, Status> {
        // Kafka's AlterConsumerGroupOffsets: Read on the group and the topic.
        authorize(&request, Read, Group, &request.get_ref().group_id)?;
        authorize(&request, Read, Topic, &request.get_ref().topic)?;
        let request = request.into_inner();
        let to = match request.to {
            Some(api::reset_offsets_request::To::Earliest(true)) => ResetTo::Earliest,
            Some(api::reset_offsets_request::To::Latest(true)) => ResetTo::Latest,
            Some(api::reset_offsets_request::To::Offset(offset)) => ResetTo::Offset(offset),
            Some(api::reset_offsets_request::To::TimestampMs(ms)) => ResetTo::Timestamp(ms),
            _ => {
                return Err(invalid_request(
                    "say where to reset: earliest, latest, offset or timestamp_ms",
                ));
            }
        };
        let partitions: Vec<i64> = request.partitions.iter().map(|&p| i64::from(p)).collect();
        let offsets = self
            .broker
            .reset_offsets(&request.group_id, &request.topic, &partitions, to)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::ResetOffsetsResponse {
            offsets: offsets.into_iter().map(committed_to).collect(),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<api::DeleteGroupRequest>,
    ) -> Result<Response<api::DeleteGroupResponse>, Status> {
        authorize(&request, Delete, Group, &request.get_ref().group_id)?;
        self.broker
            .delete_group(&request.into_inner().group_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::DeleteGroupResponse {}))
    }

    async fn find_coordinator(
        &self,
        request: Request<api::FindCoordinatorRequest>,
    ) -> Result<Response<api::FindCoordinatorResponse>, Status> {
        authorize(&request, Describe, Group, &request.get_ref().group_id)?;
        let node = self
            .broker
            .find_coordinator(&request.into_inner().group_id)
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(api::FindCoordinatorResponse {
            node_id: node.node_id,
            address: node.advertised_address,
        }))
    }
}

fn partition(topic: &str, partition: i32) -> Result<TopicPartition, Status> {
    Ok(TopicPartition {
        topic: topic.to_string(),
        partition: u32::try_from(partition)
            .map_err(|_| invalid_request(format!("negative partition {partition} of {topic}")))?,
    })
}

fn partitions_from(list: &[api::TopicPartitions]) -> Result<BTreeSet<TopicPartition>, Status> {
    let mut out = BTreeSet::new();
    for entry in list {
        for &p in &entry.partitions {
            out.insert(partition(&entry.topic, p)?);
        }
    }
    Ok(out)
}

/// Groups partitions by topic, in order.
fn partitions_to(set: &BTreeSet<TopicPartition>) -> Vec<api::TopicPartitions> {
    let mut out: Vec<api::TopicPartitions> = Vec::new();
    for p in set {
        match out.last_mut() {
            Some(last) if last.topic == p.topic => last.partitions.push(p.partition as i32),
            _ => out.push(api::TopicPartitions {
                topic: p.topic.clone(),
                partitions: vec![p.partition as i32],
            }),
        }
    }
    out
}

fn committed_to(c: CommittedOffset) -> api::CommittedOffset {
    let (offset, metadata, commit_timestamp_ms) = match c.committed {
        Some(v) => (v.offset, v.metadata, v.commit_timestamp_ms),
        None => (-1, String::new(), 0),
    };
    api::CommittedOffset {
        topic: c.partition.topic,
        partition: c.partition.partition as i32,
        offset,
        metadata,
        commit_timestamp_ms,
    }
}

fn state_to(state: GroupState) -> api::GroupState {
    match state {
        GroupState::Empty => api::GroupState::Empty,
        GroupState::Assigning => api::GroupState::Assigning,
        GroupState::Stable => api::GroupState::Stable,
        GroupState::Dead => api::GroupState::Dead,
    }
}
