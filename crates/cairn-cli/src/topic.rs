//! `cairn topic ...`: topic administration through `cairn_client::Admin`, with human output by
//! default and `--format json` for scripts.

use std::collections::{BTreeMap, HashMap};

use cairn_client::{Admin, TopicDescription};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::target::Target;
use crate::usage_error::{usage, usage_bail};

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// `cairn topic` subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    #[command(
        after_help = "Examples:\n  cairn topic create orders --partitions 6 --config retention.ms=604800000\n  cairn topic create payments --partitions 3 --replication-factor 3"
    )]
    Create {
        /// The topic name ([a-zA-Z0-9._-], 1-249 characters).
        name: String,
        /// Number of partitions, from 1 to 1024.
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        partitions: i32,
        /// Copies of each partition, from 1 to the cluster's node count (a single node holds 1)
        /// [default: the cluster's --default-replication-factor].
        #[arg(long, value_name = "R", allow_negative_numbers = true)]
        replication_factor: Option<i32>,
        /// A config that differs from the default (Kafka's names), repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts.
    #[command(after_help = "Examples:\n  cairn topic list\n  cairn topic list --format json")]
    List {
        /// Include internal topics (names starting with __).
        #[arg(long)]
        internal: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a topic's partitions (offsets, size on disk) and configs (each with its source:
    /// topic, broker default or built-in default).
    #[command(after_help = "Examples:\n  cairn topic describe orders --format json")]
    Describe(DescribeArgs),
    /// Delete a topic and its data.
    #[command(after_help = "Examples:\n  cairn topic delete orders")]
    Delete {
        /// The topic.
        name: String,
    },
    /// Change topic configs.
    #[command(
        after_help = "Examples:\n  cairn topic alter orders --config retention.ms=3600000 --delete-config segment.bytes"
    )]
    Alter {
        /// The topic.
        name: String,
        /// A config to set, repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// A config to return to its default, repeatable.
        #[arg(long = "delete-config", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Raise a topic's partition count.
    #[command(after_help = "Examples:\n  cairn topic add-partitions orders --to 12")]
    AddPartitions {
        /// The topic.
        name: String,
        /// The new total number of partitions, up to 1024.
        #[arg(long, allow_negative_numbers = true)]
        to: i32,
    },
    /// Move partitions to other nodes (a cluster only). New replicas join each partition's
    /// group, catch up, and take over; the ones left out then drop their copies. Writes go
    /// on meanwhile.
    #[command(after_help = "Examples:
  cairn topic reassign orders --partition 0 --replicas 2,3,4
  cairn topic reassign orders --partition 1 --replicas 4,1,2 --partition 2 --replicas 3,4,1

The first replica is the preferred leader. List as many replicas as the topic's replication factor.
Watch the move with `cairn topic describe` (its replicas change when it is done).")]
    Reassign {
        /// The topic.
        name: String,
        /// A partition to move, repeatable; each takes the --replicas at the same place.
        #[arg(long = "partition", value_name = "N", required = true)]
        partitions: Vec<i32>,
        /// The partition's new replicas, node ids separated by commas, repeatable.
        #[arg(long = "replicas", value_name = "ID,ID,...", required = true)]
        replicas: Vec<String>,
    },
}

/// `cairn topic describe` arguments.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The topic.
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Refuses a partition count no topic can have, before connecting (a usage error, exit 2).
fn check_partition_count(flag: &str, count: i32) -> anyhow::Result<()> {
    let most = cairn_broker::MAX_PARTITIONS_PER_TOPIC;
    if count < 1 || count.unsigned_abs() > most {
        usage_bail!("{flag} {count}: a topic has from 1 to {most} partitions");
    }
    Ok(())
}

/// Runs a topic subcommand against `brokers`.
///
/// # Errors
/// Bad arguments, an unreachable broker, or the broker's refusal (with its reason).
pub async fn run(target: &Target, command: TopicCommand) -> anyhow::Result<()> {
    // Check what can be checked before connecting, so a typo is reported as such.
    match &command {
        TopicCommand::Create {
            configs,
            replication_factor,
            partitions,
            ..
        } => {
            parse_configs(configs)?;
            check_partition_count("--partitions", *partitions)?;
            if let Some(factor) = replication_factor.filter(|factor| *factor < 1) {
                usage_bail!(
                    "--replication-factor {factor}: a topic needs at least 1 copy of each \
                     partition (leave the flag out for the cluster's default)"
                );
            }
        }
        TopicCommand::Alter { configs, .. } => {
            parse_configs(configs)?;
        }
        TopicCommand::AddPartitions { to, .. } => {
            check_partition_count("--to", *to)?;
        }
        _ => {}
    }
    if let TopicCommand::Alter {
        configs, delete, ..
    } = &command
        && configs.is_empty()
        && delete.is_empty()
    {
        usage_bail!("nothing to change: give --config KEY=VALUE or --delete-config KEY");
    }
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let topic = admin
                .create_topic(
                    &name,
                    partitions,
                    // 0 asks for the cluster's default, as the API defines it.
                    replication_factor.unwrap_or(0),
                    parse_configs(&configs)?,
                )
                .await?;
            outln!(
                "created topic {} with {} partitions",
                topic.name,
                topic.partitions.len()
            )?;
        }
        TopicCommand::List { internal, format } => list(&admin, internal, format).await?,
        TopicCommand::Describe(args) => {
            print_description(&admin.describe_topic(&args.name).await?, args.format)?
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            outln!("deleted topic {name}")?;
        }
        TopicCommand::Alter {
            name,
            configs,
            delete,
        } => {
            let topic = admin
                .alter_configs(&name, parse_configs(&configs)?, delete)
                .await?;
            print_description(&topic, Format::Text)?;
        }
        TopicCommand::Reassign {
            name,
            partitions,
            replicas,
        } => {
            let moves = reassignment_plan(&name, &partitions, &replicas)?;
            let (moving, reordered) = admin.reassign_partitions(&moves).await?;
            outln!(
                "reassignment started: {moving} partitions moving, {reordered} with a new preferred leader only"
            )?;
        }
        TopicCommand::AddPartitions { name, to } => {
            let topic = admin.add_partitions(&name, to).await?;
            outln!(
                "topic {} now has {} partitions",
                topic.name,
                topic.partitions.len()
            )?;
        }
    }
    Ok(())
}

/// One listed topic.
#[derive(Serialize)]
struct ListedJson {
    name: String,
    partitions: usize,
}

/// `topic list`: names from ListTopics, partition counts from the Metadata service.
async fn list(admin: &Admin, internal: bool, format: Format) -> anyhow::Result<()> {
    let names = admin.list_topics(internal).await?;
    let metadata = if names.is_empty() {
        Vec::new()
    } else {
        admin.metadata(&names).await?.topics
    };
    let listed: Vec<ListedJson> = names
        .into_iter()
        .map(|name| {
            // A topic deleted between the two calls has no metadata: it lists with 0.
            let partitions = metadata
                .iter()
                .find(|t| t.name == name)
                .map_or(0, |t| t.partitions.len());
            ListedJson { name, partitions }
        })
        .collect();
    match format {
        Format::Json => outln!("{}", serde_json::to_string(&listed)?)?,
        Format::Text => {
            let width = listed
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(0)
                .max(4);
            outln!("{:<width$}  PARTITIONS", "NAME")?;
            for topic in &listed {
                outln!("{:<width$}  {:>10}", topic.name, topic.partitions)?;
            }
        }
    }
    Ok(())
}

fn parse_configs(configs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    configs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| usage(format!("--config {pair:?} is not KEY=VALUE")))?;
            Ok((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Node ids as `1,2,3`, or `-` for none.
fn node_list(nodes: &[i32]) -> String {
    if nodes.is_empty() {
        return "-".to_string();
    }
    nodes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The JSON shape of `topic describe`.
#[derive(Serialize)]
struct DescribeJson<'a> {
    name: &'a str,
    partitions: Vec<PartitionJson>,
    configs: BTreeMap<&'a str, &'a str>,
    /// Per key: topic, broker or default.
    config_sources: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct PartitionJson {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    in_sync_replicas: Vec<i32>,
    /// During a reassignment: nodes joining and leaving the replica set (empty otherwise).
    adding_replicas: Vec<i32>,
    removing_replicas: Vec<i32>,
    log_start_offset: i64,
    high_watermark: i64,
    size_bytes: i64,
}

fn print_description(topic: &TopicDescription, format: Format) -> anyhow::Result<()> {
    let partitions: Vec<PartitionJson> = topic
        .partitions
        .iter()
        .map(|p| PartitionJson {
            partition: p.partition,
            leader: p.leader,
            replicas: p.replicas.clone(),
            in_sync_replicas: p.in_sync_replicas.clone(),
            adding_replicas: p.adding_replicas.clone(),
            removing_replicas: p.removing_replicas.clone(),
            log_start_offset: p.log_start_offset,
            high_watermark: p.high_watermark,
            size_bytes: p.size_bytes,
        })
        .collect();
    let sources: BTreeMap<&str, &str> = topic
        .config_sources
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let configs: BTreeMap<&str, &str> = topic
        .configs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match format {
        Format::Json => {
            let json = DescribeJson {
                name: &topic.name,
                partitions,
                configs,
                config_sources: sources,
            };
            outln!("{}", serde_json::to_string(&json)?)?;
        }
        Format::Text => {
            let total: i64 = partitions.iter().map(|p| p.size_bytes).sum();
            outln!(
                "topic {}  partitions {}  size {total} bytes",
                topic.name,
                partitions.len()
            )?;
            outln!(
                "{:>9} {:>6} {:>10} {:>10} {:>16} {:>16} {:>14}",
                "PARTITION",
                "LEADER",
                "REPLICAS",
                "ISR",
                "LOG START",
                "HIGH WATERMARK",
                "SIZE (BYTES)"
            )?;
            for p in &partitions {
                // No leader yet (-1) and no in-sync copy read better as "-" than as blanks.
                let leader = if p.leader < 0 {
                    "-".to_string()
                } else {
                    p.leader.to_string()
                };
                outln!(
                    "{:>9} {:>6} {:>10} {:>10} {:>16} {:>16} {:>14}",
                    p.partition,
                    leader,
                    node_list(&p.replicas),
                    node_list(&p.in_sync_replicas),
                    p.log_start_offset,
                    p.high_watermark,
                    p.size_bytes
                )?;
            }
            for p in partitions.iter().filter(|p| !p.adding_replicas.is_empty()) {
                outln!(
                    "partition {} is moving: adding {}, then removing {}",
                    p.partition,
                    node_list(&p.adding_replicas),
                    node_list(&p.removing_replicas)
                )?;
            }
            outln!("configs (source: topic, broker default, or built-in default):")?;
            for (key, value) in configs {
                let source = sources.get(key).copied().unwrap_or("unknown");
                outln!("  {key}={value}  ({source})")?;
            }
        }
    }
    Ok(())
}

/// The moves `cairn topic reassign` asks for: each `--partition` with the `--replicas` at the
/// same place.
fn reassignment_plan(
    topic: &str,
    partitions: &[i32],
    replicas: &[String],
) -> anyhow::Result<Vec<(String, i32, Vec<i32>)>> {
    if partitions.len() != replicas.len() {
        anyhow::bail!(
            "{} --partition and {} --replicas given; give one --replicas for each --partition",
            partitions.len(),
            replicas.len()
        );
    }
    partitions
        .iter()
        .zip(replicas)
        .map(|(partition, list)| {
            let nodes = list
                .split(',')
                .map(|id| {
                    id.trim().parse::<i32>().map_err(|_| {
                        anyhow::anyhow!(
                            "--replicas {list:?}: {id:?} is not a node id; expected ids such as 1,2,3"
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<i32>>>()?;
            Ok((topic.to_string(), *partition, nodes))
        })
        .collect()
}

#[cfg(test)]
mod reassign_tests {
    use super::reassignment_plan;

    #[test]
    fn a_plan_pairs_partitions_with_replica_lists() {
        let plan = reassignment_plan("t", &[0, 2], &["1,2,3".into(), "4, 5,6".into()]).unwrap();
        assert_eq!(
            plan,
            vec![
                ("t".to_string(), 0, vec![1, 2, 3]),
                ("t".to_string(), 2, vec![4, 5, 6])
            ]
        );
        let error = reassignment_plan("t", &[0], &["1,x".into()]).unwrap_err();
        assert!(
            error.to_string().contains("\"x\" is not a node id"),
            "{error}"
        );
        assert!(reassignment_plan("t", &[0, 1], &["1".into()]).is_err());
    }
}
