//! `GroupAdmin`: consumer-group administration over `cairn.v1.Groups`: list, describe (members,
//! assignments, committed offsets and lag), read committed offsets, reset them, delete a group.
//! Answers are the API's own message types, re-exported at the crate root.
//!
//! A call about one group goes to the group's coordinator (the router's `coordinator`), and
//! follows it while it moves, retrying the coordinator errors (`NOT_COORDINATOR`,
//! `COORDINATOR_NOT_AVAILABLE`, `COORDINATOR_LOAD_IN_PROGRESS`, an unreachable coordinator in a
//! cluster) until the request timeout, or [`crate::COORDINATOR_RETRY_TIMEOUT`] without one.
//! Listing asks every node, since each lists only the groups it coordinates.

use cairn_proto::v1::groups_client::GroupsClient;
use std::collections::BTreeMap;
use std::future::Future;

use crate::routing::AuthChannel;
use cairn_proto::v1::{
    CommittedOffset, DeleteGroupRequest, DescribeGroupRequest, FetchOffsetsRequest,
    GroupDescription, GroupListing, ListGroupsRequest, ResetOffsetsRequest, reset_offsets_request,
};

use crate::connection::Timeouts;
use crate::consumer::Seek;
use crate::error::ClientError;
use crate::routing::{Router, is_transport_failure};

/// A consumer-group administration client.
#[derive(Debug, Clone)]
pub struct GroupAdmin {
    router: Router,
}

/// A groups API client on `channel`.
fn groups(channel: AuthChannel) -> GroupsClient<AuthChannel> {
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

    /// Every group with members or committed offsets, sorted by id. In a cluster each node
    /// lists the groups it coordinates, so this reads the metadata for the nodes and asks each
    /// of them (at once), merging the answers; a group two nodes list while its coordinator
    /// moves appears once, as the node that lists more members has it. A node that cannot be
    /// reached is left out (its groups move to other nodes, which list them once they lead
    /// them); on a single node, one call to it.
    ///
    /// # Errors
    /// [`ClientError`] from a node that answered with a refusal, or the last transport failure
    /// when no node answered.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let nodes = self.router.nodes().await?;
        if nodes.len() <= 1 {
            let listed = self
                .router
                .on_any_node(|channel| async move {
                    let answer = groups(channel).list_groups(ListGroupsRequest {}).await?;
                    Ok(answer.into_inner().groups)
                })
                .await?;
            return Ok(merge_listings([listed]));
        }
        let mut calls = tokio::task::JoinSet::new();
        for node in nodes {
            let route = self.router.route_to(node);
            calls.spawn(async move {
                let answer = groups(route.channel)
                    .list_groups(ListGroupsRequest {})
                    .await;
                (route.address, answer.map(|a| a.into_inner().groups))
            });
        }
        let mut listings = Vec::new();
        let mut unreachable = None;
        while let Some(joined) = calls.join_next().await {
            let Ok((address, answer)) = joined else {
                // A task only ends without its answer if it panicked or was cancelled.
                continue;
            };
            match answer.map_err(ClientError::from) {
                Ok(listed) => listings.push(listed),
                Err(error) if is_transport_failure(&error) => {
                    tracing::warn!(node = %address, %error, "node not listed: unreachable");
                    unreachable = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        match unreachable {
            Some(error) if listings.is_empty() => Err(error),
            _ => Ok(merge_listings(listings)),
        }
    }

    /// Runs `call` on `group_id`'s coordinator, following it as the module doc says.
    async fn on_coordinator<T, F, Fut>(&self, group_id: &str, call: F) -> Result<T, ClientError>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = self.router.coordinator_deadline();
        self.router.on_coordinator(group_id, deadline, call).await
    }

    /// A group's state, members with their assignments, and offsets with lag.
    ///
    /// # Errors
    /// `GroupIdNotFound`, `InvalidGroupId`.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, ClientError> {
        self.describe_group_at(group_id)
            .await
            .map(|(description, _)| description)
    }

    /// [`GroupAdmin::describe_group`], and the address (`host:port`) of the group's coordinator,
    /// the node that answered it.
    ///
    /// # Errors
    /// As [`GroupAdmin::describe_group`].
    pub async fn describe_group_at(
        &self,
        group_id: &str,
    ) -> Result<(GroupDescription, String), ClientError> {
        let request = DescribeGroupRequest {
            group_id: group_id.to_string(),
        };
        let deadline = self.router.coordinator_deadline();
        let (description, coordinator) = self
            .router
            .on_coordinator_at(group_id, deadline, |channel| {
                let request = request.clone();
                async move { Ok(groups(channel).describe_group(request).await?.into_inner()) }
            })
            .await?;
        Ok((description, coordinator.to_string()))
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
        self.on_coordinator(group_id, |channel| {
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
        self.on_coordinator(group_id, |channel| {
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

    /// Deletes a group and its committed offsets. Refused while it has members. A delete that
    /// an unreachable coordinator may have carried out before failing is sent again to the
    /// next one, which may then answer `GroupIdNotFound`.
    ///
    /// # Errors
    /// `GroupIdNotFound`, `NonEmptyGroup`, `InvalidGroupId`.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), ClientError> {
        let request = DeleteGroupRequest {
            group_id: group_id.to_string(),
        };
        self.on_coordinator(group_id, |channel| {
            let request = request.clone();
            async move {
                groups(channel).delete_group(request).await?;
                Ok(())
            }
        })
        .await
    }
}

/// The groups of several nodes' listings, once each, sorted by id. A group two nodes list (its
/// coordinator moved between their answers, or the former one has not yet dropped it) is
/// taken as the node with more members lists it: members rejoin at the new coordinator, and
/// the former one's view empties.
fn merge_listings(listings: impl IntoIterator<Item = Vec<GroupListing>>) -> Vec<GroupListing> {
    let mut merged: BTreeMap<String, GroupListing> = BTreeMap::new();
    for listing in listings.into_iter().flatten() {
        match merged.get(&listing.group_id) {
            Some(kept) if kept.member_count >= listing.member_count => {}
            _ => {
                merged.insert(listing.group_id.clone(), listing);
            }
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use cairn_proto::v1::GroupState;

    use super::*;

    fn listing(group_id: &str, state: GroupState, member_count: i32) -> GroupListing {
        GroupListing {
            group_id: group_id.to_string(),
            state: state as i32,
            member_count,
        }
    }

    #[test]
    fn listings_of_several_nodes_merge_by_group_preferring_more_members() {
        let node1 = vec![
            listing("billing", GroupState::Stable, 2),
            listing("orders", GroupState::Empty, 0),
        ];
        let node2 = vec![
            listing("audit", GroupState::Empty, 0),
            listing("orders", GroupState::Stable, 3),
        ];
        let node3 = vec![listing("billing", GroupState::Empty, 0)];
        let merged = merge_listings([node1, node2, node3]);
        assert_eq!(
            merged,
            vec![
                listing("audit", GroupState::Empty, 0),
                listing("billing", GroupState::Stable, 2),
                listing("orders", GroupState::Stable, 3),
            ]
        );
    }

    #[test]
    fn a_single_listing_is_sorted_and_unchanged() {
        let merged = merge_listings([vec![
            listing("b", GroupState::Stable, 1),
            listing("a", GroupState::Empty, 0),
        ]]);
        let ids: Vec<&str> = merged.iter().map(|g| g.group_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
