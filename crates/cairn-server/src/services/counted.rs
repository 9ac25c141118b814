//! [`CountedAdmin`] and [`CountedGroups`]: the Admin and Groups services behind a thin layer
//! that counts every call by method and gRPC code in [`Metrics`], so the services themselves
//! stay about mapping requests onto the broker. A deleted topic's series are dropped here too,
//! once the delete succeeded.

use std::sync::Arc;

use cairn_proto::v1 as api;
use cairn_proto::v1::admin_server::Admin;
use cairn_proto::v1::groups_server::Groups;
use tonic::{Request, Response, Status};

use super::{AdminService, GroupsService};
use crate::metrics::Metrics;

/// The Admin service, counted in `cairn_admin_requests_total`.
#[derive(Debug, Clone)]
pub struct CountedAdmin {
    inner: AdminService,
    metrics: Arc<Metrics>,
}

impl CountedAdmin {
    /// `inner`, counting its calls in `metrics`.
    pub fn new(inner: AdminService, metrics: Arc<Metrics>) -> Self {
        CountedAdmin { inner, metrics }
    }

    fn counted<T>(&self, method: &str, result: Result<T, Status>) -> Result<T, Status> {
        self.metrics.admin_requests.counted(method, result)
    }
}

#[tonic::async_trait]
impl Admin for CountedAdmin {
    async fn upsert_user(
        &self,
        request: Request<api::UpsertUserRequest>,
    ) -> Result<Response<api::UpsertUserResponse>, Status> {
        self.counted("UpsertUser", self.inner.upsert_user(request).await)
    }

    async fn delete_user(
        &self,
        request: Request<api::DeleteUserRequest>,
    ) -> Result<Response<api::DeleteUserResponse>, Status> {
        self.counted("DeleteUser", self.inner.delete_user(request).await)
    }

    async fn list_users(
        &self,
        request: Request<api::ListUsersRequest>,
    ) -> Result<Response<api::ListUsersResponse>, Status> {
        self.counted("ListUsers", self.inner.list_users(request).await)
    }

    async fn create_acls(
        &self,
        request: Request<api::CreateAclsRequest>,
    ) -> Result<Response<api::CreateAclsResponse>, Status> {
        self.counted("CreateAcls", self.inner.create_acls(request).await)
    }

    async fn delete_acls(
        &self,
        request: Request<api::DeleteAclsRequest>,
    ) -> Result<Response<api::DeleteAclsResponse>, Status> {
        self.counted("DeleteAcls", self.inner.delete_acls(request).await)
    }

    async fn list_acls(
        &self,
        request: Request<api::ListAclsRequest>,
    ) -> Result<Response<api::ListAclsResponse>, Status> {
        self.counted("ListAcls", self.inner.list_acls(request).await)
    }

    async fn set_quota(
        &self,
        request: Request<api::SetQuotaRequest>,
    ) -> Result<Response<api::SetQuotaResponse>, Status> {
        self.counted("SetQuota", self.inner.set_quota(request).await)
    }

    async fn remove_quota(
        &self,
        request: Request<api::RemoveQuotaRequest>,
    ) -> Result<Response<api::RemoveQuotaResponse>, Status> {
        self.counted("RemoveQuota", self.inner.remove_quota(request).await)
    }

    async fn list_quotas(
        &self,
        request: Request<api::ListQuotasRequest>,
    ) -> Result<Response<api::ListQuotasResponse>, Status> {
        self.counted("ListQuotas", self.inner.list_quotas(request).await)
    }

    async fn create_topic(
        &self,
        request: Request<api::CreateTopicRequest>,
    ) -> Result<Response<api::CreateTopicResponse>, Status> {
        self.counted("CreateTopic", self.inner.create_topic(request).await)
    }

    async fn list_topics(
        &self,
        request: Request<api::ListTopicsRequest>,
    ) -> Result<Response<api::ListTopicsResponse>, Status> {
        self.counted("ListTopics", self.inner.list_topics(request).await)
    }

    async fn describe_topic(
        &self,
        request: Request<api::DescribeTopicRequest>,
    ) -> Result<Response<api::TopicDescription>, Status> {
        self.counted("DescribeTopic", self.inner.describe_topic(request).await)
    }

    async fn delete_topic(
        &self,
        request: Request<api::DeleteTopicRequest>,
    ) -> Result<Response<api::DeleteTopicResponse>, Status> {
        let name = request.get_ref().name.clone();
        let result = self.inner.delete_topic(request).await;
        if result.is_ok() {
            self.metrics.forget_topic(&name);
        }
        self.counted("DeleteTopic", result)
    }

    async fn add_partitions(
        &self,
        request: Request<api::AddPartitionsRequest>,
    ) -> Result<Response<api::TopicDescription>, Status> {
        self.counted("AddPartitions", self.inner.add_partitions(request).await)
    }

    async fn alter_configs(
        &self,
        request: Request<api::AlterConfigsRequest>,
    ) -> Result<Response<api::TopicDescription>, Status> {
        self.counted("AlterConfigs", self.inner.alter_configs(request).await)
    }

    async fn describe_cluster(
        &self,
        request: Request<api::DescribeClusterRequest>,
    ) -> Result<Response<api::DescribeClusterResponse>, Status> {
        self.counted(
            "DescribeCluster",
            self.inner.describe_cluster(request).await,
        )
    }

    async fn add_node(
        &self,
        request: Request<api::AddNodeRequest>,
    ) -> Result<Response<api::DescribeClusterResponse>, Status> {
        self.counted("AddNode", self.inner.add_node(request).await)
    }

    async fn remove_node(
        &self,
        request: Request<api::RemoveNodeRequest>,
    ) -> Result<Response<api::RemoveNodeResponse>, Status> {
        self.counted("RemoveNode", self.inner.remove_node(request).await)
    }

    async fn reassign_partitions(
        &self,
        request: Request<api::ReassignPartitionsRequest>,
    ) -> Result<Response<api::ReassignPartitionsResponse>, Status> {
        self.counted(
            "ReassignPartitions",
            self.inner.reassign_partitions(request).await,
        )
    }

    async fn balance_leaders(
        &self,
        request: Request<api::BalanceLeadersRequest>,
    ) -> Result<Response<api::BalanceLeadersResponse>, Status> {
        self.counted("BalanceLeaders", self.inner.balance_leaders(request).await)
    }
}

/// The Groups service, counted in `cairn_group_requests_total`.
#[derive(Debug, Clone)]
pub struct CountedGroups {
    inner: GroupsService,
    metrics: Arc<Metrics>,
}

impl CountedGroups {
    /// `inner`, counting its calls in `metrics`.
    pub fn new(inner: GroupsService, metrics: Arc<Metrics>) -> Self {
        CountedGroups { inner, metrics }
    }

    fn counted<T>(&self, method: &str, result: Result<T, Status>) -> Result<T, Status> {
        self.metrics.group_requests.counted(method, result)
    }
}

#[tonic::async_trait]
impl Groups for CountedGroups {
    async fn heartbeat(
        &self,
        request: Request<api::HeartbeatRequest>,
    ) -> Result<Response<api::HeartbeatResponse>, Status> {
        self.counted("Heartbeat", self.inner.heartbeat(request).await)
    }

    async fn commit_offsets(
        &self,
        request: Request<api::CommitOffsetsRequest>,
    ) -> Result<Response<api::CommitOffsetsResponse>, Status> {
        self.counted("CommitOffsets", self.inner.commit_offsets(request).await)
    }

    async fn fetch_offsets(
        &self,
        request: Request<api::FetchOffsetsRequest>,
    ) -> Result<Response<api::FetchOffsetsResponse>, Status> {
        self.counted("FetchOffsets", self.inner.fetch_offsets(request).await)
    }

    async fn list_groups(
        &self,
        request: Request<api::ListGroupsRequest>,
    ) -> Result<Response<api::ListGroupsResponse>, Status> {
        self.counted("ListGroups", self.inner.list_groups(request).await)
    }

    async fn describe_group(
        &self,
        request: Request<api::DescribeGroupRequest>,
    ) -> Result<Response<api::GroupDescription>, Status> {
        self.counted("DescribeGroup", self.inner.describe_group(request).await)
    }

    async fn reset_offsets(
        &self,
        request: Request<api::ResetOffsetsRequest>,
    ) -> Result<Response<api::ResetOffsetsResponse>, Status> {
        self.counted("ResetOffsets", self.inner.reset_offsets(request).await)
    }

    async fn delete_group(
        &self,
        request: Request<api::DeleteGroupRequest>,
    ) -> Result<Response<api::DeleteGroupResponse>, Status> {
        self.counted("DeleteGroup", self.inner.delete_group(request).await)
    }

    async fn find_coordinator(
        &self,
        request: Request<api::FindCoordinatorRequest>,
    ) -> Result<Response<api::FindCoordinatorResponse>, Status> {
        self.counted(
            "FindCoordinator",
            self.inner.find_coordinator(request).await,
        )
    }
}
