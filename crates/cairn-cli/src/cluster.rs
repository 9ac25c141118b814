//! `cairn cluster info`: what the broker answering says about the cluster, from the Metadata
//! service: its node id and software version, every node with its address, and every topic with
//! its partition count (internal topics excluded, as the service leaves them out).

use cairn_client::Admin;
use clap::Subcommand;
use serde::Serialize;

use crate::target::Target;
use crate::topic::Format;

/// `cairn cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the answering node (id, version), the nodes and the topics with partition counts.
    #[command(after_help = "Examples:\n  cairn cluster info\n  cairn cluster info --format json")]
    Info {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Serialize)]
struct InfoJson {
    /// The broker's version.
    version: String,
    /// This command's own version.
    client_version: &'static str,
    /// The id of the node that answered.
    node_id: i32,
    nodes: Vec<NodeJson>,
    topics: Vec<TopicJson>,
}

#[derive(Serialize)]
struct NodeJson {
    node_id: i32,
    address: String,
}

#[derive(Serialize)]
struct TopicJson {
    name: String,
    partitions: usize,
}

/// Runs a `cairn cluster` subcommand.
///
/// # Errors
/// An unreachable or silent broker.
pub async fn run(target: &Target, command: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Info { format } = command;
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    let metadata = admin.metadata(&[]).await?;
    let info = InfoJson {
        // A broker from before the field existed sends nothing.
        version: if metadata.version.is_empty() {
            "unknown".to_string()
        } else {
            metadata.version
        },
        client_version: env!("CARGO_PKG_VERSION"),
        node_id: metadata.node_id,
        nodes: metadata
            .nodes
            .into_iter()
            .map(|n| NodeJson {
                node_id: n.node_id,
                address: n.address,
            })
            .collect(),
        topics: metadata
            .topics
            .into_iter()
            .map(|t| TopicJson {
                name: t.name,
                partitions: t.partitions.len(),
            })
            .collect(),
    };
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&info)?)?,
        Format::Text => {
            let address = info
                .nodes
                .iter()
                .find(|n| n.node_id == info.node_id)
                .map_or("?", |n| n.address.as_str());
            outln!(
                "node {} at {address}, cairn {} (this client: {})",
                info.node_id,
                info.version,
                info.client_version
            )?;
            outln!("nodes:")?;
            for node in &info.nodes {
                outln!("  {}  {}", node.node_id, node.address)?;
            }
            let partitions: usize = info.topics.iter().map(|t| t.partitions).sum();
            outln!("topics: {} with {partitions} partitions", info.topics.len())?;
            for topic in &info.topics {
                outln!("  {}  {}", topic.name, topic.partitions)?;
            }
        }
    }
    Ok(())
}
