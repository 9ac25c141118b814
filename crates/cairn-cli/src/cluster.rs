//! `cairn cluster info`: what the broker answering says about the cluster, from the Metadata
//! service: its node id and software version, every node with its address, and every topic with
//! its partition count (internal topics excluded, as the service leaves them out).
//!
//! `cairn cluster describe`: the cluster as the answering node sees it, from the Admin
//! service's DescribeCluster: the cluster id, the controller leader, and every node with its
//! reachability, whether it is the controller, and its replica and leader counts.
//!
//! `cairn cluster balance-leaders`: leaderships back to their preferred replicas now, on every
//! node (`balance_leaders`).

mod balance_leaders;

use anyhow::Context as _;
use cairn_client::{Admin, DescribeClusterResponse, NodeReachability};
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
    /// Show the cluster id, the controller leader, and every node as the answering node sees
    /// it: alive or unreachable, controller or not, replicas and leaderships held.
    #[command(
        after_help = "Examples:\n  cairn cluster describe\n  cairn --broker 127.0.0.1:7172 cluster describe --format json\n\nReachability is the answering node's view (its liveness probes); ask another node for its own."
    )]
    Describe {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add a node to the running cluster. Start it first with `cairn serve --join` and its
    /// own --node-id and --peers entry; this makes it a member, after which new topics and
    /// `cairn topic reassign` place replicas on it.
    #[command(
        after_help = "Examples:\n  cairn cluster add-node --node-id 4 --address 10.0.0.4:7070"
    )]
    AddNode {
        /// The new node's id, used by no node of the cluster.
        #[arg(long, value_name = "ID")]
        node_id: i32,
        /// The new node's gRPC address, HOST:PORT, as in its --peers entry.
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
    },
    /// Remove a node: each partition replica it holds moves to another node first, then it
    /// leaves the cluster (stop its process after that). Refused, with nothing moved, when a
    /// partition would be left short of its replication factor.
    #[command(
        after_help = "Examples:\n  cairn cluster remove-node --node-id 3\n  cairn cluster remove-node --node-id 3 --wait"
    )]
    RemoveNode {
        /// The node's id.
        #[arg(long, value_name = "ID")]
        node_id: i32,
        /// Wait until the node has left the cluster (its replicas moved), printing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Move partition leaderships back to their preferred replicas (the first replica of each
    /// partition) now, where those are alive and in sync; every node is asked in turn, and
    /// reports what moved and why the rest stayed.
    #[command(
        name = "balance-leaders",
        after_help = "Examples:\n  cairn cluster balance-leaders\n  cairn cluster balance-leaders --topic orders --max-moves 10 --format json\n\nNodes also do this on their own every --leader-balance-interval-ms (default 10 s) once a returning node has answered for three intervals; this command does not wait. A pass that moves many leaderships may need a longer --timeout."
    )]
    BalanceLeaders {
        /// Only this topic's partitions (default: every topic, internal ones too).
        #[arg(long)]
        topic: Option<String>,
        /// Most leaderships each node moves; 0 means the node's own bound (64).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
        max_moves: i32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Serialize)]
struct DescribeJson {
    /// The cluster id; `null` on a single node or before the cluster forms.
    cluster_id: Option<String>,
    /// The controller leader's node id; `null` while there is none (and on a single node).
    controller_id: Option<i32>,
    /// The node that answered.
    answering_node_id: i32,
    nodes: Vec<DescribedNodeJson>,
}

#[derive(Serialize)]
struct DescribedNodeJson {
    node_id: i32,
    address: String,
    /// "alive" or "unreachable".
    state: &'static str,
    is_controller: bool,
    replicas: i32,
    leaders: i32,
    /// Whether it is being removed (its replicas are moving away).
    leaving: bool,
}

impl DescribeJson {
    /// The API answer in the command's terms; an unknown reachability value (a newer broker)
    /// is an error rather than a guess.
    fn from_response(response: DescribeClusterResponse) -> anyhow::Result<DescribeJson> {
        let nodes = response
            .nodes
            .into_iter()
            .map(|node| {
                let state = match NodeReachability::try_from(node.reachability) {
                    Ok(NodeReachability::Alive) => "alive",
                    Ok(NodeReachability::Unreachable) => "unreachable",
                    Err(_) => anyhow::bail!(
                        "node {} has a reachability this client does not know ({})",
                        node.node_id,
                        node.reachability
                    ),
                };
                Ok(DescribedNodeJson {
                    node_id: node.node_id,
                    address: node.address,
                    state,
                    is_controller: node.is_controller,
                    replicas: node.replica_count,
                    leaders: node.leader_count,
                    leaving: node.leaving,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(DescribeJson {
            cluster_id: (!response.cluster_id.is_empty()).then_some(response.cluster_id),
            controller_id: (response.controller_id >= 0).then_some(response.controller_id),
            answering_node_id: response.answering_node_id,
            nodes,
        })
    }
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
    let format = match command {
        ClusterCommand::BalanceLeaders {
            topic,
            max_moves,
            format,
        } => return balance_leaders::run(target, topic.as_deref(), max_moves, format).await,
        ClusterCommand::Info { format } => format,
        ClusterCommand::Describe { format } => return describe(target, format).await,
        ClusterCommand::AddNode { node_id, address } => {
            return add_node(target, node_id, &address).await;
        }
        ClusterCommand::RemoveNode { node_id, wait } => {
            return remove_node(target, node_id, wait).await;
        }
    };
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

/// Runs `cairn cluster describe`.
async fn describe(target: &Target, format: Format) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    let response = admin
        .describe_cluster()
        .await
        .context("describing the cluster")?;
    let described = DescribeJson::from_response(response)?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&described)?)?,
        Format::Text => {
            outln!(
                "cluster {}, controller {}, as node {} sees it",
                described.cluster_id.as_deref().unwrap_or("(none)"),
                described
                    .controller_id
                    .map_or_else(|| "(none)".to_string(), |id| id.to_string()),
                described.answering_node_id
            )?;
            outln!(
                "{:>4}  {:<21}  {:<11}  {:<10}  {:>8}  {:>7}",
                "NODE",
                "ADDRESS",
                "STATE",
                "CONTROLLER",
                "REPLICAS",
                "LEADERS"
            )?;
            for node in &described.nodes {
                outln!(
                    "{:>4}  {:<21}  {:<11}  {:<10}  {:>8}  {:>7}",
                    node.node_id,
                    node.address,
                    if node.leaving {
                        format!("{},leaving", node.state)
                    } else {
                        node.state.to_string()
                    },
                    if node.is_controller { "yes" } else { "" },
                    node.replicas,
                    node.leaders
                )?;
            }
        }
    }
    Ok(())
}

/// Runs `cairn cluster add-node`.
async fn add_node(target: &Target, node_id: i32, address: &str) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    let response = admin
        .add_node(node_id, address)
        .await
        .with_context(|| format!("adding node {node_id} at {address}"))?;
    outln!(
        "node {node_id} added; the cluster has {} nodes",
        response.nodes.len()
    )?;
    Ok(())
}

/// How often `remove-node --wait` looks at the cluster.
const REMOVAL_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs `cairn cluster remove-node`.
async fn remove_node(target: &Target, node_id: i32, wait: bool) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    let moving = admin
        .remove_node(node_id)
        .await
        .with_context(|| format!("removing node {node_id}"))?;
    outln!("removing node {node_id}: {moving} partitions moving to other nodes")?;
    if !wait {
        return Ok(());
    }
    let mut last_shown = None;
    loop {
        let described = admin.describe_cluster().await?;
        match described.nodes.iter().find(|n| n.node_id == node_id) {
            None => break,
            Some(node) => {
                if last_shown != Some(node.replica_count) {
                    outln!(
                        "  node {node_id} still holds {} replicas",
                        node.replica_count
                    )?;
                    last_shown = Some(node.replica_count);
                }
            }
        }
        tokio::time::sleep(REMOVAL_POLL).await;
    }
    // Gone from the node list is not yet settled: a removed controller, or leaderships the
    // node held, are re-elected on the others a few seconds later, and until then `cluster
    // describe` and `topic describe` would still name it. Return once nothing does.
    let mut said = false;
    while still_named(&admin, node_id).await? {
        if !said {
            outln!(
                "  node {node_id} has no replicas left; waiting for the controller and leaders it held to move"
            )?;
            said = true;
        }
        tokio::time::sleep(REMOVAL_POLL).await;
    }
    outln!("node {node_id} has left the cluster; its process can be stopped")?;
    Ok(())
}

/// Whether the cluster, as the node answering sees it, still names `node_id` as its
/// controller, or has no controller yet, or names it leader of some partition, the offsets
/// topic's included.
async fn still_named(admin: &Admin, node_id: i32) -> anyhow::Result<bool> {
    let described = admin.describe_cluster().await?;
    if described.controller_id == node_id || described.controller_id < 0 {
        return Ok(true);
    }
    let mut topics = admin.metadata(&[]).await?.topics;
    // A listing leaves the internal offsets topic out; asked by name it is answered (or left
    // out while no group has made it). A caller not allowed to describe it is refused: the
    // wait then goes by the other topics, as it did before.
    if let Ok(offsets) = admin.metadata(&[OFFSETS_TOPIC.to_string()]).await {
        topics.extend(offsets.topics);
    }
    Ok(topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| p.leader_id == node_id))
}

/// The broker's internal topic of committed group offsets, left out of metadata listings.
const OFFSETS_TOPIC: &str = "__consumer_offsets";
