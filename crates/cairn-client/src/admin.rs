//! `Admin`: topic administration (create, list, describe, delete, add partitions, alter
//! configs) over `cairn.v1.Admin`.

use std::collections::HashMap;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::metadata_client::MetadataClient;
use cairn_proto::v1::{
    AddPartitionsRequest, AlterConfigsRequest, CreateTopicRequest, DeleteTopicRequest,
    DescribeTopicRequest, ListTopicsRequest, MetadataRequest, MetadataResponse, TopicDescription,
};
use tonic::transport::Channel;

use crate::connection::{Timeouts, connect_with};
use crate::error::ClientError;

/// A topic administration client.
#[derive(Debug, Clone)]
pub struct Admin {
    client: AdminClient<Channel>,
    metadata: MetadataClient<Channel>,
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
        let channel = connect_with(brokers, timeouts).await?;
        Ok(Admin {
            client: AdminClient::new(channel.clone()),
            metadata: MetadataClient::new(channel),
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
        Ok(self
            .metadata
            .clone()
            .get_metadata(request)
            .await?
            .into_inner())
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
            .client
            .clone()
            .create_topic(request)
            .await?
            .into_inner();
        response.topic.ok_or_else(|| {
            ClientError::InvalidArgument("the broker sent no topic description".to_string())
        })
    }

    /// Topic names, sorted.
    ///
    /// # Errors
    /// [`ClientError::Broker`] or a transport failure.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>, ClientError> {
        Ok(self
            .client
            .clone()
            .list_topics(ListTopicsRequest { include_internal })
            .await?
            .into_inner()
            .names)
    }

    /// Partitions, leaders, offsets and configs of a topic.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `UnknownTopicOrPartition`.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        Ok(self
            .client
            .clone()
            .describe_topic(DescribeTopicRequest {
                name: name.to_string(),
            })
            .await?
            .into_inner())
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// [`ClientError::Broker`] with `UnknownTopicOrPartition`.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        self.client
            .clone()
            .delete_topic(DeleteTopicRequest {
                name: name.to_string(),
            })
            .await?;
        Ok(())
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
        Ok(self
            .client
            .clone()
            .add_partitions(request)
            .await?
            .into_inner())
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
        Ok(self
            .client
            .clone()
            .alter_configs(request)
            .await?
            .into_inner())
    }
}
