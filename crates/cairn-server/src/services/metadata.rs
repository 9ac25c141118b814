//! `cairn.v1.Metadata`: which nodes exist and who leads each partition. Every fact comes from
//! the broker (each partition's leadership, the nodes it knows); nothing is made up here. On a
//! single node, that node leads everything; the shape is the cluster's, so clients need not
//! change later.

use std::sync::Arc;

use cairn_broker::{Broker, PartitionCondition, PartitionProblem};
use cairn_controller::security::acl::AclOperation::Describe;
use cairn_controller::security::acl::ResourceType::Topic;
use cairn_proto::v1::metadata_server::Metadata;
use cairn_proto::v1::{
    MetadataRequest, MetadataResponse, Node, NodeHealthRequest, NodeHealthResponse,
    PartitionHealth, PartitionMetadata, PartitionState, TopicMetadata,
};
use tonic::{Request, Response, Status};

use crate::auth::{CallerContext, allowed, authorize_caller};

/// The Metadata service.
#[derive(Debug, Clone)]
pub struct MetadataService {
    broker: Arc<Broker>,
}

impl MetadataService {
    /// A service over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        MetadataService { broker }
    }
}

#[tonic::async_trait]
impl Metadata for MetadataService {
    async fn get_metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let caller = request.extensions().get::<CallerContext>().cloned();
        let asked = request.into_inner().topics;
        // As Kafka: a listing leaves out the topics the caller may not describe; a topic asked
        // for by name and not describable is refused by name, so a client learns why.
        let names: Vec<String> = if asked.is_empty() {
            self.broker
                .list_topics(false)
                .into_iter()
                .filter(|name| allowed(caller.as_ref(), Describe, Topic, name))
                .collect()
        } else {
            for name in &asked {
                authorize_caller(caller.as_ref(), Describe, Topic, name)?;
            }
            asked
        };
        let node_id = self.broker.node_id();
        let topics = names
            .iter()
            .filter_map(|name| self.broker.describe_topic(name).ok())
            .map(|info| TopicMetadata {
                name: info.name,
                partitions: info
                    .partitions
                    .into_iter()
                    .map(|p| PartitionMetadata {
                        partition: i32::try_from(p.partition).unwrap_or(i32::MAX),
                        leader_id: p.leader,
                        leader_epoch: p.leader_epoch.0,
                        replicas: p.replicas,
                        in_sync_replicas: p.in_sync_replicas,
                    })
                    .collect(),
            })
            .collect();
        let nodes = self
            .broker
            .nodes()
            .into_iter()
            .map(|node| Node {
                node_id: node.node_id,
                address: node.advertised_address,
            })
            .collect();
        Ok(Response::new(MetadataResponse {
            nodes,
            topics,
            node_id,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn get_node_health(
        &self,
        _request: Request<NodeHealthRequest>,
    ) -> Result<Response<NodeHealthResponse>, Status> {
        let problems = self.broker.problems();
        Ok(Response::new(NodeHealthResponse {
            node_id: self.broker.node_id(),
            serving: crate::health::node_serving(&self.broker, &problems),
            partitions: problems.into_iter().map(partition_health).collect(),
        }))
    }
}

fn partition_health(problem: PartitionProblem) -> PartitionHealth {
    let mut health = PartitionHealth {
        topic: problem.topic,
        partition: i32::try_from(problem.partition).unwrap_or(i32::MAX),
        corrupt_reads: problem.corrupt_reads,
        ..PartitionHealth::default()
    };
    match problem.condition {
        PartitionCondition::Stopped { reason } => {
            health.set_state(PartitionState::Stopped);
            health.reason = reason;
        }
        PartitionCondition::Damaged(damage) => {
            health.set_state(PartitionState::Damaged);
            health.reason = damage.reason;
            health.location = damage.location;
            health.offset = i64::try_from(damage.offset).unwrap_or(i64::MAX);
        }
    }
    health
}
