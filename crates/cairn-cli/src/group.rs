//! `cairn group`: list consumer groups, describe one (state, members and their partitions,
//! committed offsets and lag), move a group's committed offsets, delete a group. Resetting and
//! deleting are refused by the broker while the group has members.

use anyhow::bail;
use cairn_client::{GroupAdmin, GroupDescription, GroupState};
use clap::Subcommand;
use serde::Serialize;

use crate::consume::seek;
use crate::topic::Format;

/// `cairn group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the groups with members or committed offsets.
    #[command(after_help = "Examples:\n  cairn group list --format json")]
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a group's state, members, assignments, committed offsets and lag.
    #[command(after_help = "Examples:\n  cairn group describe inventory --format json")]
    Describe {
        /// The group.
        group: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Move a group's committed offsets for a topic (the group must have no members).
    #[command(
        after_help = "Examples:\n  cairn group reset-offsets inventory --topic orders --to earliest\n  cairn group reset-offsets inventory --topic orders --partition 2 --to 1500\n  cairn group reset-offsets inventory --topic orders --to @1767225600000"
    )]
    ResetOffsets {
        /// The group.
        group: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// Where to: earliest, latest, an offset, or @UNIX_MS (first record at or after it).
        #[arg(
            long,
            value_name = "earliest|latest|OFFSET|@UNIX_MS",
            allow_hyphen_values = true
        )]
        to: String,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<i32>,
    },
    /// Delete a group and its committed offsets (the group must have no members).
    #[command(after_help = "Examples:\n  cairn group delete inventory")]
    Delete {
        /// The group.
        group: String,
    },
}

#[derive(Serialize)]
struct GroupJson {
    group: String,
    state: &'static str,
    members: Vec<MemberJson>,
    offsets: Vec<OffsetJson>,
}

#[derive(Serialize)]
struct MemberJson {
    member_id: String,
    client_id: String,
    host: String,
    assignments: Vec<AssignmentJson>,
}

#[derive(Serialize)]
struct AssignmentJson {
    topic: String,
    partition: i32,
}

#[derive(Serialize)]
struct OffsetJson {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: i64,
    lag: i64,
}

#[derive(Serialize)]
struct ListingJson {
    group: String,
    state: &'static str,
    members: i32,
}

fn state_name(state: i32) -> &'static str {
    match GroupState::try_from(state) {
        Ok(GroupState::Empty) => "empty",
        Ok(GroupState::Assigning) => "assigning",
        Ok(GroupState::Stable) => "stable",
        Ok(GroupState::Dead) => "dead",
        Err(_) => "unknown",
    }
}

/// Runs a `cairn group` subcommand.
///
/// # Errors
/// An unreachable broker, an unknown or malformed group, a group with members (reset, delete).
pub async fn run(brokers: &str, command: GroupCommand) -> anyhow::Result<()> {
    // Parse what can be parsed before connecting, so a typo is reported as such.
    let target = match &command {
        GroupCommand::ResetOffsets { to, .. } => Some(seek("--to", to)?),
        _ => None,
    };
    let admin = GroupAdmin::connect(brokers).await?;
    match command {
        GroupCommand::List { format } => {
            let groups = admin.list_groups().await?;
            match format {
                Format::Json => {
                    let json: Vec<ListingJson> = groups
                        .into_iter()
                        .map(|g| ListingJson {
                            group: g.group_id,
                            state: state_name(g.state),
                            members: g.member_count,
                        })
                        .collect();
                    outln!("{}", serde_json::to_string_pretty(&json)?)?;
                }
                Format::Text => {
                    for g in groups {
                        outln!(
                            "{}\t{}\t{} member(s)",
                            g.group_id,
                            state_name(g.state),
                            g.member_count
                        )?;
                    }
                }
            }
        }
        GroupCommand::Describe { group, format } => {
            let described = admin.describe_group(&group).await?;
            match format {
                Format::Json => outln!("{}", serde_json::to_string_pretty(&to_json(described))?)?,
                Format::Text => print_text(&described)?,
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            ..
        } => {
            let Some(target) = target else {
                bail!("internal: reset target not parsed");
            };
            let partitions: Vec<i32> = partition.into_iter().collect();
            let offsets = admin
                .reset_offsets(&group, &topic, &partitions, target)
                .await?;
            for o in offsets {
                outln!("{}\t{}\t{}", o.topic, o.partition, o.offset)?;
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            outln!("deleted group {group}")?;
        }
    }
    Ok(())
}

fn to_json(g: GroupDescription) -> GroupJson {
    GroupJson {
        group: g.group_id,
        state: state_name(g.state),
        members: g
            .members
            .into_iter()
            .map(|m| MemberJson {
                member_id: m.member_id,
                client_id: m.client_id,
                host: m.host,
                assignments: m
                    .assignment
                    .into_iter()
                    .flat_map(|tp| {
                        let topic = tp.topic;
                        tp.partitions
                            .into_iter()
                            .map(move |partition| AssignmentJson {
                                topic: topic.clone(),
                                partition,
                            })
                    })
                    .collect(),
            })
            .collect(),
        offsets: g
            .offsets
            .into_iter()
            .map(|o| OffsetJson {
                topic: o.topic,
                partition: o.partition,
                committed: (o.committed >= 0).then_some(o.committed),
                end: o.end,
                lag: o.lag,
            })
            .collect(),
    }
}

fn print_text(g: &GroupDescription) -> std::io::Result<()> {
    outln!(
        "group {}  state {}  epoch {}  session timeout {} ms",
        g.group_id,
        state_name(g.state),
        g.group_epoch,
        g.session_timeout_ms
    )?;
    outln!("members:")?;
    if g.members.is_empty() {
        outln!("  (none)")?;
    }
    for m in &g.members {
        let owned: Vec<String> = m
            .assignment
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |p| format!("{}-{p}", tp.topic))
            })
            .collect();
        outln!(
            "  {}  client {}  host {}  epoch {}  partitions [{}]",
            m.member_id,
            m.client_id,
            m.host,
            m.member_epoch,
            owned.join(", ")
        )?;
    }
    outln!("offsets:")?;
    outln!(
        "  {:<30} {:>9} {:>12} {:>12} {:>10}",
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "END",
        "LAG"
    )?;
    for o in &g.offsets {
        let committed = if o.committed >= 0 {
            o.committed.to_string()
        } else {
            "-".to_string()
        };
        outln!(
            "  {:<30} {:>9} {:>12} {:>12} {:>10}",
            o.topic,
            o.partition,
            committed,
            o.end,
            o.lag
        )?;
    }
    Ok(())
}
