//! `GroupAdmin`: consumer-group administration over `cairn.v1.Groups`: list, describe (members,
//! assignments, committed offsets and lag), read committed offsets, reset them, delete a group.
//! Answers are the API's own message types, re-exported at the crate root. The calls go to
//! the node the client connected to, and fail over along the bootstrap list and the known
//! nodes when it cannot be reached, as [`crate::Admin`]'s do.

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{
    CommittedOffset, DeleteGroupRequest, DescribeGroupRequest, FetchOffsetsRequest,
    GroupDescription, GroupListing, ListGroupsRequest, ResetOffsetsRequest, reset_offsets_request,
};
use tonic::transport::Channel;

use crate::connection::Timeouts;
use crate::consumer::Seek;
use crate::error::ClientError;
use crate::routing::Router;

/// A consumer-group administration client.
#[derive(Debug, Clone)]
pub struct GroupAdmin {
    router: Router,
}

/// A groups API client on `channel`.
fn groups(channel: Channel) -> GroupsClient<Channel> {
    GroupsClient::new(channel)
}

impl GroupAdmin {
    /// Connects to the first reachable broker of `brokers`.
    ///
    /// # Errors
    /// [`ClientError::Connect`] or [`ClientError::InvalidArgument`].
    pub async fn connect(brokers: &str) -> Result<GroupAdmin, ClientError> {
        GroupAdmin::connect_with(brokers, Timeouts::default()).await
    }

    /// As [`GroupAdmin::connect`], with these deadlines on connecting and on every call.
    ///
    /// # Errors
    /// [`ClientError::Connect`] or [`ClientError::InvalidArgument`].
    pub async fn connect_with(
        brokers: &str,
        timeouts: Timeouts,
    ) -> Result<GroupAdmin, ClientError> {
        Ok(GroupAdmin {
            router: Router::connect(brokers, timeouts).await?,
        })
    }

    /// Every group with members or committed offsets, sorted by id.
    ///
    /// # Errors
    /// [`ClientError`] from the broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        self.router
            .on_any_node(|channel| async move {
                let answer = groups(channel).list_groups(ListGroupsRequest {}).await?;
                Ok(answer.into_inner().groups)
            })
            .await
    }

    /// A group's state, members with their assignments, and offsets with lag.
    ///
    /// # Errors
    /// `GroupIdNotFound`, `InvalidGroupId`.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupRequest {
            group_id: group_id.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(groups(channel).describe_group(request).await?.into_inner()) }
            })
            .await
    }

    /// A group's committed offsets (every one).
    ///
    /// # Errors
    /// `GroupIdNotFound`, `InvalidGroupId`.
    pub async fn committed_offsets(
        &self,
        group_id: &str,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let request = FetchOffsetsRequest {
            group_id: group_id.to_string(),
            partitions: Vec::new(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    Ok(groups(channel)
                        .fetch_offsets(request)
                        .await?
                        .into_inner()
                        .offsets)
                }
            })
            .await
    }

    /// Moves a group's committed offsets of `topic` (all partitions when `partitions` is
    /// empty) to the [`Seek`] position. Refused while the group has members.
    ///
    /// # Errors
    /// `NonEmptyGroup`, `UnknownTopicOrPartition`, `OffsetOutOfRange`, `InvalidGroupId`.
    pub async fn reset_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: &[i32],
        to: Seek,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let to = match to {
            Seek::Earliest => reset_offsets_request::To::Earliest(true),
            Seek::Latest => reset_offsets_request::To::Latest(true),
            Seek::Offset(o) => reset_offsets_request::To::Offset(o),
            Seek::Timestamp(ms) => reset_offsets_request::To::TimestampMs(ms),
        };
        let request = ResetOffsetsRequest {
            group_id: group_id.to_string(),
            topic: topic.to_string(),
            partitions: partitions.to_vec(),
            to: Some(to),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    Ok(groups(channel)
                        .reset_offsets(request)
                        .await?
                        .into_inner()
                        .offsets)
                }
            })
            .await
    }

    /// Deletes a group and its committed offsets. Refused while it has members.
    ///
    /// # Errors
    /// `GroupIdNotFound`, `NonEmptyGroup`, `InvalidGroupId`.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ClientError> {
        let request = DeleteGroupRequest {
            group_id: group_id.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    groups(channel).delete_group(request).await?;
                    Ok(())
                }
            })
            .await
    }
}
