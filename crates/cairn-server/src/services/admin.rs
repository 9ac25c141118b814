//! `cairn.v1.Admin`: topic administration, the cluster's description, membership changes and
//! preferred-leader balancing on demand, mapped onto the broker.

use std::sync::Arc;

use cairn_broker::cluster::{
    ClusterDescription, LeaderBalanceReport, NotMovedReason, Reachability,
};
use cairn_broker::{Broker, TopicInfo};
use cairn_controller::security::acl::AclOperation::{
    Alter, AlterConfigs, Create, Delete, Describe,
};
use cairn_controller::security::acl::CLUSTER_RESOURCE_NAME;
use cairn_controller::security::acl::ResourceType::{Cluster, Topic};
use cairn_proto::v1::admin_server::Admin;
use cairn_proto::v1::{
    AddNodeRequest, AddPartitionsRequest, AlterConfigsRequest, BalanceLeadersRequest,
    BalanceLeadersResponse, ClusterNode, CreateTopicRequest, CreateTopicResponse,
    DeleteTopicRequest, DeleteTopicResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeTopicRequest, LeaderMoved, LeaderNotMoved, LeaderNotMovedReason, ListTopicsRequest,
    ListTopicsResponse, NodeReachability, PartitionDescription, ReassignPartitionsRequest,
    ReassignPartitionsResponse, RemoveNodeRequest, RemoveNodeResponse, TopicDescription,
};
use tonic::{Request, Response, Status};

use crate::auth::{CallerContext, allowed, authorize, authorize_caller};

use crate::status::to_status;

/// The Admin service.
#[derive(Debug, Clone)]
pub struct AdminService {
    broker: Arc<Broker>,
}

impl AdminService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        AdminService { broker }
    }
}

impl AdminService {
    /// Records `topic`'s creator in the creation ledger. A failure is logged, not answered:
    /// the topic exists, and a missing entry only under-counts its creator.
    async fn record_creator(&self, topic: &str, creator: &str, partitions: u64) {
        if let Err(err) = self
            .broker
            .record_topic_creator(topic, creator, partitions)
            .await
        {
            tracing::warn!(topic, creator, %err, "the creation ledger missed a topic");
        }
    }
}

/// The request's principal (`User:NAME`), anonymous if the auth layer put none.
fn principal_of<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<crate::caller::Principal>()
        .map_or_else(
            || crate::caller::ANONYMOUS_PRINCIPAL.to_string(),
            |p| p.name().to_string(),
        )
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn upsert_user(
        &self,
        request: Request<cairn_proto::v1::UpsertUserRequest>,
    ) -> Result<Response<cairn_proto::v1::UpsertUserResponse>, Status> {
        super::admin_security::upsert_user(&self.broker, request.into_inner()).await
    }

    async fn delete_user(
        &self,
        request: Request<cairn_proto::v1::DeleteUserRequest>,
    ) -> Result<Response<cairn_proto::v1::DeleteUserResponse>, Status> {
        super::admin_security::delete_user(&self.broker, request.into_inner()).await
    }

    async fn list_users(
        &self,
        _request: Request<cairn_proto::v1::ListUsersRequest>,
    ) -> Result<Response<cairn_proto::v1::ListUsersResponse>, Status> {
        Ok(Response::new(super::admin_security::list_users(
            &self.broker,
        )))
    }

    async fn create_acls(
        &self,
        request: Request<cairn_proto::v1::CreateAclsRequest>,
    ) -> Result<Response<cairn_proto::v1::CreateAclsResponse>, Status> {
        super::admin_security::create_acls(&self.broker, request.into_inner()).await
    }

    async fn delete_acls(
        &self,
        request: Request<cairn_proto::v1::DeleteAclsRequest>,
    ) -> Result<Response<cairn_proto::v1::DeleteAclsResponse>, Status> {
        super::admin_security::delete_acls(&self.broker, request.into_inner()).await
    }

    async fn list_acls(
        &self,
        _request: Request<cairn_proto::v1::ListAclsRequest>,
    ) -> Result<Response<cairn_proto::v1::ListAclsResponse>, Status> {
        Ok(Response::new(super::admin_security::list_acls(
            &self.broker,
        )))
    }

    async fn set_quota(
        &self,
        request: Request<cairn_proto::v1::SetQuotaRequest>,
    ) -> Result<Response<cairn_proto::v1::SetQuotaResponse>, Status> {
        super::admin_quota::set_quota(&self.broker, request.into_inner()).await
    }

    async fn remove_quota(
        &self,
        request: Request<cairn_proto::v1::RemoveQuotaRequest>,
    ) -> Result<Response<cairn_proto::v1::RemoveQuotaResponse>, Status> {
        super::admin_quota::remove_quota(&self.broker, request.into_inner()).await
    }

    async fn list_quotas(
        &self,
        _request: Request<cairn_proto::v1::ListQuotasRequest>,
    ) -> Result<Response<cairn_proto::v1::ListQuotasResponse>, Status> {
        Ok(Response::new(super::admin_quota::list_quotas(&self.broker)))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        // Kafka's rule: Create on the cluster, or else on the topic.
        let caller = request.extensions().get::<CallerContext>();
        if !allowed(caller, Create, Cluster, CLUSTER_RESOURCE_NAME) {
            authorize_caller(caller, Create, Topic, &request.get_ref().name)?;
        }
        let creator = principal_of(&request);
        let request = request.into_inner();
        // Refused, not delayed: a creation past max_topics or max_partitions (see `quota`).
        let partitions = u64::try_from(request.partitions).unwrap_or(0);
        self.broker
            .check_creation_quota(&creator, 1, partitions)
            .map_err(|e| to_status(&e))?;
        let configs: Vec<(String, String)> = request.configs.into_iter().collect();
        let info = self
            .broker
            .create_topic(
                &request.name,
                i64::from(request.partitions),
                i64::from(request.replication_factor),
                &configs,
            )
            .await
            .map_err(|e| to_status(&e))?;
        let created = info.partitions.len() as u64;
        self.record_creator(&request.name, &creator, created).await;
        Ok(Response::new(CreateTopicResponse {
            topic: Some(describe_in_full(&self.broker, info).await?),
        }))
    }

    async fn list_topics(
        &self,
        request: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        let caller = request.extensions().get::<CallerContext>();
        let names = self
            .broker
            .list_topics(request.get_ref().include_internal)
            .into_iter()
            .filter(|name| allowed(caller, Describe, Topic, name))
            .collect();
        Ok(Response::new(ListTopicsResponse { names }))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        authorize(&request, Describe, Topic, &request.get_ref().name)?;
        let info = self
            .broker
            .describe_topic(&request.into_inner().name)
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(describe_in_full(&self.broker, info).await?))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        authorize(&request, Delete, Topic, &request.get_ref().name)?;
        let name = request.into_inner().name;
        self.broker
            .delete_topic(&name)
            .await
            .map_err(|e| to_status(&e))?;
        if let Err(err) = self.broker.forget_topic_creator(&name).await {
            // The topic is gone; a stale ledger entry only over-counts its creator.
            tracing::warn!(topic = %name, %err, "the creation ledger kept a deleted topic");
        }
        Ok(Response::new(DeleteTopicResponse {}))
    }

    async fn add_partitions(
        &self,
        request: Request<AddPartitionsRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        authorize(&request, Alter, Topic, &request.get_ref().name)?;
        let caller = principal_of(&request);
        let request = request.into_inner();
        // Added partitions count against the topic's creator (the caller if the ledger does
        // not know the topic).
        let creation = self
            .broker
            .security()
            .quotas()
            .creation(&request.name)
            .cloned();
        let creator = creation.as_ref().map_or(caller, |c| c.principal.clone());
        let before = self
            .broker
            .partition_count(&request.name)
            .map_err(|e| to_status(&e))?;
        let adding = u64::try_from(request.total_count)
            .unwrap_or(0)
            .saturating_sub(u64::from(before));
        self.broker
            .check_creation_quota(&creator, 0, adding)
            .map_err(|e| to_status(&e))?;
        let info = self
            .broker
            .add_partitions(&request.name, i64::from(request.total_count))
            .await
            .map_err(|e| to_status(&e))?;
        if creation.is_some() {
            let now = info.partitions.len() as u64;
            self.record_creator(&request.name, &creator, now).await;
        }
        Ok(Response::new(describe_in_full(&self.broker, info).await?))
    }

    async fn alter_configs(
        &self,
        request: Request<AlterConfigsRequest>,
    ) -> Result<Response<TopicDescription>, Status> {
        authorize(&request, AlterConfigs, Topic, &request.get_ref().name)?;
        let request = request.into_inner();
        let set: Vec<(String, String)> = request.set.into_iter().collect();
        let info = self
            .broker
            .alter_configs(&request.name, &set, &request.delete)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(describe_in_full(&self.broker, info).await?))
    }

    async fn describe_cluster(
        &self,
        _request: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        Ok(Response::new(cluster_description(
            self.broker.describe_cluster(),
        )))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let request = request.into_inner();
        let description = self
            .broker
            .add_node(i64::from(request.node_id), &request.address)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(cluster_description(description)))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let moving = self
            .broker
            .remove_node(i64::from(request.into_inner().node_id))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(RemoveNodeResponse {
            partitions_moving: i32::try_from(moving).unwrap_or(i32::MAX),
        }))
    }

    async fn reassign_partitions(
        &self,
        request: Request<ReassignPartitionsRequest>,
    ) -> Result<Response<ReassignPartitionsResponse>, Status> {
        let moves: Vec<cairn_broker::PartitionPlan> = request
            .into_inner()
            .partitions
            .into_iter()
            .map(|p| cairn_broker::PartitionPlan {
                topic: p.topic,
                partition: i64::from(p.partition),
                replicas: p.replicas.into_iter().map(i64::from).collect(),
            })
            .collect();
        let (moving, reordered) = self
            .broker
            .reassign_partitions(moves)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ReassignPartitionsResponse {
            moving: i32::try_from(moving).unwrap_or(i32::MAX),
            reordered: i32::try_from(reordered).unwrap_or(i32::MAX),
        }))
    }

    async fn balance_leaders(
        &self,
        request: Request<BalanceLeadersRequest>,
    ) -> Result<Response<BalanceLeadersResponse>, Status> {
        let request = request.into_inner();
        let topic = (!request.topic.is_empty()).then_some(request.topic.as_str());
        let report = self
            .broker
            .balance_leaders(topic, i64::from(request.max_moves))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(balance_report(report)))
    }
}

/// The API form of a balancing pass's report.
fn balance_report(report: LeaderBalanceReport) -> BalanceLeadersResponse {
    let partition = |p: u32| i32::try_from(p).unwrap_or(i32::MAX);
    BalanceLeadersResponse {
        answering_node_id: report.node_id,
        moved: report
            .moved
            .into_iter()
            .map(|m| LeaderMoved {
                topic: m.topic,
                partition: partition(m.partition),
                from_node_id: m.from,
                to_node_id: m.to,
            })
            .collect(),
        not_moved: report
            .not_moved
            .into_iter()
            .map(|n| LeaderNotMoved {
                detail: n.reason.to_string(),
                reason: not_moved_reason(n.reason) as i32,
                topic: n.topic,
                partition: partition(n.partition),
                leader_node_id: n.leader,
                preferred_node_id: n.preferred,
            })
            .collect(),
    }
}

fn not_moved_reason(reason: NotMovedReason) -> LeaderNotMovedReason {
    match reason {
        NotMovedReason::PreferredNotAVoter => LeaderNotMovedReason::PreferredNotAVoter,
        NotMovedReason::PreferredUnreachable => LeaderNotMovedReason::PreferredUnreachable,
        NotMovedReason::PreferredSettling { .. } => LeaderNotMovedReason::PreferredSettling,
        NotMovedReason::PreferredNotInSync { .. } => LeaderNotMovedReason::PreferredNotInSync,
        NotMovedReason::NotLeading => LeaderNotMovedReason::NotLeading,
        NotMovedReason::NodeLeaving => LeaderNotMovedReason::NodeLeaving,
        NotMovedReason::HandoverTimedOut => LeaderNotMovedReason::HandoverTimedOut,
        NotMovedReason::GroupStopped => LeaderNotMovedReason::GroupStopped,
        NotMovedReason::Deferred => LeaderNotMovedReason::Deferred,
        NotMovedReason::BackingOff => LeaderNotMovedReason::BackingOff,
    }
}

/// The API form of a cluster description: absent ids become `""` and -1, as the proto says.
fn cluster_description(description: ClusterDescription) -> DescribeClusterResponse {
    DescribeClusterResponse {
        cluster_id: description.cluster_id.unwrap_or_default(),
        controller_id: description.controller_id.unwrap_or(-1),
        answering_node_id: description.answering_node_id,
        nodes: description
            .nodes
            .into_iter()
            .map(|node| ClusterNode {
                node_id: node.node_id,
                address: node.address,
                reachability: match node.reachability {
                    Reachability::Alive => NodeReachability::Alive,
                    Reachability::Unreachable => NodeReachability::Unreachable,
                } as i32,
                is_controller: node.is_controller,
                leaving: node.leaving,
                replica_count: i32::try_from(node.replica_count).unwrap_or(i32::MAX),
                leader_count: i32::try_from(node.leader_count).unwrap_or(i32::MAX),
            })
            .collect(),
    }
}

/// [`describe`] plus what an operator asks the Admin service for: each config's source and
/// each partition's size on disk.
async fn describe_in_full(broker: &Broker, info: TopicInfo) -> Result<TopicDescription, Status> {
    let sizes = broker
        .partition_sizes(&info.name)
        .map_err(|e| to_status(&e))?;
    let sources = broker
        .config_sources(&info.name)
        .map_err(|e| to_status(&e))?;
    let mut description = describe(info);
    // A partition added between the two calls has no size yet; it keeps 0.
    for (partition, size) in description.partitions.iter_mut().zip(sizes) {
        partition.size_bytes = i64::try_from(size).unwrap_or(i64::MAX);
    }
    description.config_sources = sources
        .into_iter()
        .map(|(key, source)| (key.to_string(), source.as_str().to_string()))
        .collect();
    Ok(description)
}

/// The API form of a topic description (offsets and configs; no sizes or sources).
pub(crate) fn describe(info: TopicInfo) -> TopicDescription {
    TopicDescription {
        name: info.name,
        partitions: info
            .partitions
            .into_iter()
            .map(|p| PartitionDescription {
                partition: p.partition as i32,
                leader: p.leader,
                replicas: p.replicas,
                log_start_offset: p.log_start_offset.as_i64(),
                high_watermark: p.high_watermark.as_i64(),
                size_bytes: 0,
                in_sync_replicas: p.in_sync_replicas,
                adding_replicas: p.adding_replicas,
                removing_replicas: p.removing_replicas,
            })
            .collect(),
        configs: info.configs.into_iter().collect(),
        config_sources: Default::default(),
    }
}
