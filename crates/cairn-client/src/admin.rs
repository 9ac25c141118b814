//! `Admin`: topic administration (create, list, describe, delete, add partitions, alter
//! configs), the cluster's description and preferred-leader balancing over `cairn.v1.Admin`. Any node takes these calls (a cluster forwards them to its
//! controller), so they go to the node the client connected to, and to the next answering
//! address of the bootstrap list or the known nodes when that one cannot be reached.

use std::collections::HashMap;

use crate::routing::AuthChannel;
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::metadata_client::MetadataClient;
use cairn_proto::v1::{
    AddNodeRequest, AddPartitionsRequest, AlterConfigsRequest, BalanceLeadersRequest,
    BalanceLeadersResponse, CreateTopicRequest, DeleteTopicRequest, DescribeClusterRequest,
    DescribeClusterResponse, DescribeTopicRequest, ListTopicsRequest, MetadataRequest,
    MetadataResponse, PartitionReassignment, ReassignPartitionsRequest, RemoveNodeRequest,
    TopicDescription,
};

use crate::connection::Timeouts;
use crate::error::ClientError;
use crate::routing::Router;

/// A topic administration client.
#[derive(Debug, Clone)]
pub struct Admin {
    router: Router,
}

/// An admin API client on `channel`.
fn admin(channel: AuthChannel) -> AdminClient<AuthChannel> {
    AdminClient::new(channel)
}

impl Admin {
    /// Connects to the first reachable broker of `brokers` (`host:port[,host:port...]`).
    ///
    /// # Errors
    /// [`ClientError::Connect`] or [`ClientError::InvalidArgument`].
    pub async fn connect(brokers: &str) -> Result<Admin, ClientError> {
        Admin::connect_with(brokers, Timeouts::default()).await
    }

    /// As [`Admin::connect`], with these deadlines on connecting and on every call.
    ///
    /// # Errors
    /// [`ClientError::Connect`] or [`ClientError::InvalidArgument`].
    pub async fn connect_with(brokers: &str, timeouts: Timeouts) -> Result<Admin, ClientError> {
        Ok(Admin {
            router: Router::connect(brokers, timeouts).await?,
        })
    }

    /// The cluster as the answering broker sees it: its node id and version, every node, and
    /// the partitions of `topics` (empty: every topic but the internal ones).
    ///
    /// # Errors
    /// [`ClientError::Broker`] or a transport failure.
    pub async fn metadata(&self, topics: &[String]) -> Result<MetadataResponse, ClientError> {
        let request = MetadataRequest {
            topics: topics.to_vec(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    let answer = MetadataClient::new(channel).get_metadata(request).await?;
                    Ok(answer.into_inner())
                }
            })
            .await
    }

    /// Creates a topic with `replication_factor` copies of each partition; 0 means the
    /// cluster's default (`min(3, nodes)` unless the broker was told otherwise; 1 on a single
    /// node).
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidTopic`, `TopicAlreadyExists`, `InvalidPartitions`,
    /// `InvalidConfig`, or `InvalidReplicationFactor` (below 1, or above the node count)
    /// naming the problem.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: HashMap<String, String>,
    ) -> Result<TopicDescription, ClientError> {
        let request = CreateTopicRequest {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
        };
        let response = self
            .router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(admin(channel).create_topic(request).await?.into_inner()) }
            })
            .await?;
        response.topic.ok_or_else(|| {
            ClientError::InvalidArgument("the broker sent no topic description".to_string())
        })
    }

    /// Topic names, sorted.
    ///
    /// # Errors
    /// [`ClientError::Broker`] or a transport failure.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>, ClientError> {
        let request = ListTopicsRequest { include_internal };
        self.router
            .on_any_node(|channel| async move {
                Ok(admin(channel)
                    .list_topics(request)
                    .await?
                    .into_inner()
                    .names)
            })
            .await
    }

    /// The cluster as the answering node sees it (Kafka's DescribeCluster): the cluster id,
    /// the controller leader, and every node with its reachability from the answering node and
    /// its replica and leader counts. `answering_node_id` says which node answered: the first
    /// reachable address of the bootstrap list, so a caller that wants one node's view
    /// connects to that node alone. A single node answers a cluster of one (see the proto).
    ///
    /// # Errors
    /// A transport failure on every address; [`ClientError::Broker`] from a broker without
    /// the call (`Unimplemented`).
    pub async fn describe_cluster(&self) -> Result<DescribeClusterResponse, ClientError> {
        self.router
            .on_any_node(|channel| async move {
                Ok(admin(channel)
                    .describe_cluster(DescribeClusterRequest {})
                    .await?
                    .into_inner())
            })
            .await
    }

    /// Adds node `node_id` at `address` (its gRPC address, as in its own `--peers` entry) to
    /// the running cluster; the node must be running, started with `--join`. Answers the
    /// cluster's description.
    ///
    /// # Errors
    /// [`ClientError::Broker`] naming a refusal (an id or address in use, a cluster of one).
    pub async fn add_node(
        &self,
        node_id: i32,
        address: &str,
    ) -> Result<DescribeClusterResponse, ClientError> {
        let request = AddNodeRequest {
            node_id,
            address: address.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(admin(channel).add_node(request).await?.into_inner()) }
            })
            .await
    }

    /// Starts removing node `node_id`: its replicas move to other nodes first. Answers how
    /// many partitions are moving.
    ///
    /// # Errors
    /// [`ClientError::Broker`] naming a refusal (an unknown node, the last node, a partition
    /// that no other node can take).
    pub async fn remove_node(&self, node_id: i32) -> Result<i32, ClientError> {
        self.router
            .on_any_node(|channel| async move {
                Ok(admin(channel)
                    .remove_node(RemoveNodeRequest { node_id })
                    .await?
                    .into_inner()
                    .partitions_moving)
            })
            .await
    }

    /// Moves partitions to new replica sets: (topic, partition, replicas) each, the first
    /// replica the preferred leader. Answers (partitions moving, partitions reordered).
    ///
    /// # Errors
    /// [`ClientError::Broker`] naming the first bad move; nothing moves then.
    pub async fn reassign_partitions(
        &self,
        moves: &[(String, i32, Vec<i32>)],
    ) -> Result<(i32, i32), ClientError> {
        let request = ReassignPartitionsRequest {
            partitions: moves
                .iter()
                .map(|(topic, partition, replicas)| PartitionReassignment {
                    topic: topic.clone(),
                    partition: *partition,
                    replicas: replicas.clone(),
                })
                .collect(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    let answer = admin(channel)
                        .reassign_partitions(request)
                        .await?
                        .into_inner();
                    Ok((answer.moving, answer.reordered))
                }
            })
            .await
    }

    /// Asks the node this client reaches (the first answering address) to move the partition
    /// leaderships it holds back to their preferred replicas now, at most `max_moves` of them
    /// (0: the node's own bound), of `topic` only when given. Each node moves only what it
    /// leads, so balancing the whole cluster takes one call per node: connect to each node's
    /// address (from [`Admin::describe_cluster`]) and check the answer's `answering_node_id`,
    /// since a node that cannot be reached is passed over for the next one.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `UnknownTopicOrPartition` for an unknown topic, or
    /// `InvalidRequest` for a negative `max_moves`; a transport failure.
    pub async fn balance_leaders(
        &self,
        topic: Option<&str>,
        max_moves: i32,
    ) -> Result<BalanceLeadersResponse, ClientError> {
        let request = BalanceLeadersRequest {
            topic: topic.unwrap_or_default().to_string(),
            max_moves,
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(admin(channel).balance_leaders(request).await?.into_inner()) }
            })
            .await
    }

    /// Partitions, leaders, offsets and configs of a topic.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `UnknownTopicOrPartition`.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        let request = DescribeTopicRequest {
            name: name.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(admin(channel).describe_topic(request).await?.into_inner()) }
            })
            .await
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `UnknownTopicOrPartition`.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteTopicRequest {
            name: name.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    admin(channel).delete_topic(request).await?;
                    Ok(())
                }
            })
            .await
    }

    /// Raises a topic's partition count to `total_count`.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidPartitions` when it would not grow.
    pub async fn add_partitions(
        &self,
        name: &str,
        total_count: i32,
    ) -> Result<TopicDescription, ClientError> {
        let request = AddPartitionsRequest {
            name: name.to_string(),
            total_count,
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(admin(channel).add_partitions(request).await?.into_inner()) }
            })
            .await
    }

    /// Sets configs (and returns removed keys to their defaults).
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidConfig` naming the key; nothing changes then.
    pub async fn alter_configs(
        &self,
        name: &str,
        set: HashMap<String, String>,
        delete: Vec<String>,
    ) -> Result<TopicDescription, ClientError> {
        let request = AlterConfigsRequest {
            name: name.to_string(),
            set,
            delete,
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move { Ok(admin(channel).alter_configs(request).await?.into_inner()) }
            })
            .await
    }

    /// Adds user `name` with `password`, or sets the password of an existing user; answers
    /// true if the user is new. The broker stores a salted SCRAM-SHA-256 credential, never
    /// the password; send this only over TLS (or to a loopback-only broker).
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidRequest` for a bad name or empty password, or an
    /// authorization failure.
    pub async fn upsert_user(&self, name: &str, password: &str) -> Result<bool, ClientError> {
        let request = cairn_proto::v1::UpsertUserRequest {
            name: name.to_string(),
            password: password.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    Ok(admin(channel)
                        .upsert_user(request)
                        .await?
                        .into_inner()
                        .created)
                }
            })
            .await
    }

    /// Removes user `name` (its ACLs stay).
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `ResourceNotFound` for an unknown user.
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        let request = cairn_proto::v1::DeleteUserRequest {
            name: name.to_string(),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    admin(channel).delete_user(request).await?;
                    Ok(())
                }
            })
            .await
    }

    /// Every user, by name, with how its password is stored.
    ///
    /// # Errors
    /// [`ClientError::Broker`] or a transport failure.
    pub async fn list_users(&self) -> Result<Vec<cairn_proto::v1::UserDescription>, ClientError> {
        self.router
            .on_any_node(|channel| async move {
                Ok(admin(channel)
                    .list_users(cairn_proto::v1::ListUsersRequest {})
                    .await?
                    .into_inner()
                    .users)
            })
            .await
    }

    /// Adds ACLs, all or none. Returns the broker's warnings about ACLs it accepted but that
    /// may be mistakes (a principal that is no user, for one).
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidRequest` naming the bad field.
    pub async fn create_acls(
        &self,
        acls: Vec<cairn_proto::v1::Acl>,
    ) -> Result<Vec<String>, ClientError> {
        let request = cairn_proto::v1::CreateAclsRequest { acls };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    let answer = admin(channel).create_acls(request).await?;
                    Ok(answer.into_inner().warnings)
                }
            })
            .await
    }

    /// Removes exactly these ACLs.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidRequest` naming a bad field.
    pub async fn delete_acls(&self, acls: Vec<cairn_proto::v1::Acl>) -> Result<(), ClientError> {
        let request = cairn_proto::v1::DeleteAclsRequest { acls };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    admin(channel).delete_acls(request).await?;
                    Ok(())
                }
            })
            .await
    }

    /// Every ACL.
    ///
    /// # Errors
    /// [`ClientError::Broker`] or a transport failure.
    pub async fn list_acls(&self) -> Result<Vec<cairn_proto::v1::Acl>, ClientError> {
        self.router
            .on_any_node(|channel| async move {
                Ok(admin(channel)
                    .list_acls(cairn_proto::v1::ListAclsRequest {})
                    .await?
                    .into_inner()
                    .acls)
            })
            .await
    }

    /// Sets the limits given for a principal or the default, keeping its others.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `InvalidRequest` naming the bad field.
    pub async fn set_quota(
        &self,
        entity: cairn_proto::v1::QuotaEntity,
        limits: cairn_proto::v1::QuotaLimits,
    ) -> Result<(), ClientError> {
        let request = cairn_proto::v1::SetQuotaRequest {
            entity: Some(entity),
            limits: Some(limits),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    admin(channel).set_quota(request).await?;
                    Ok(())
                }
            })
            .await
    }

    /// Removes every limit of a principal or the default.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `ResourceNotFound` if it has none.
    pub async fn remove_quota(
        &self,
        entity: cairn_proto::v1::QuotaEntity,
    ) -> Result<(), ClientError> {
        let request = cairn_proto::v1::RemoveQuotaRequest {
            entity: Some(entity),
        };
        self.router
            .on_any_node(|channel| {
                let request = request.clone();
                async move {
                    admin(channel).remove_quota(request).await?;
                    Ok(())
                }
            })
            .await
    }

    /// Every quota, the default first.
    ///
    /// # Errors
    /// [`ClientError::Broker`] or a transport failure.
    pub async fn list_quotas(&self) -> Result<Vec<cairn_proto::v1::QuotaDescription>, ClientError> {
        self.router
            .on_any_node(|channel| async move {
                Ok(admin(channel)
                    .list_quotas(cairn_proto::v1::ListQuotasRequest {})
                    .await?
                    .into_inner()
                    .quotas)
            })
            .await
    }
}
