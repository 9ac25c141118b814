//! `GroupAdmin`: consumer-group administration over `cairn.v1.Groups`: list, describe (members,
//! assignments, committed offsets and lag), read committed offsets, reset them, delete a group.
//! Answers are the API's own message types, re-exported at the crate root.

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{
    CommittedOffset, DeleteGroupRequest, DescribeGroupRequest, FetchOffsetsRequest,
    GroupDescription, GroupListing, ListGroupsRequest, ResetOffsetsRequest, reset_offsets_request,
};
use tonic::transport::Channel;

use crate::connection::{Timeouts, connect_with};
use crate::consumer::Seek;
use crate::error::ClientError;

/// A consumer-group administration client.
#[derive(Debug, Clone)]
pub struct GroupAdmin {
    client: GroupsClient<Channel>,
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
            client: GroupsClient::new(connect_with(brokers, timeouts).await?),
        })
    }

    /// Every group with members or committed offsets, sorted by id.
    ///
    /// # Errors
    /// [`ClientError`] from the broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let response = self
            .client
            .clone()
            .list_groups(ListGroupsRequest {})
            .await?;
        Ok(response.into_inner().groups)
    }

    /// A group's state, members with their assignments, and offsets with lag.
    ///
    /// # Errors
    /// `GroupIdNotFound`, `InvalidGroupId`.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupRequest {
            group_id: group_id.to_string(),
        };
        Ok(self
            .client
            .clone()
            .describe_group(request)
            .await?
            .into_inner())
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
        Ok(self
            .client
            .clone()
            .fetch_offsets(request)
            .await?
            .into_inner()
            .offsets)
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
        Ok(self
            .client
            .clone()
            .reset_offsets(request)
            .await?
            .into_inner()
            .offsets)
    }

    /// Deletes a group and its committed offsets. Refused while it has members.
    ///
    /// # Errors
    /// `GroupIdNotFound`, `NonEmptyGroup`, `InvalidGroupId`.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ClientError> {
        let request = DeleteGroupRequest {
            group_id: group_id.to_string(),
        };
        self.client.clone().delete_group(request).await?;
        Ok(())
    }
}
