//! `cairn group`: list consumer groups, describe one (state, members and their partitions,
//! committed offsets and lag), move a group's committed offsets (or show where they would move
//! with `--dry-run`), delete a group. Resetting and deleting are refused by the broker while
//! the group has members.

use std::collections::BTreeMap;

use anyhow::Context;
use cairn_client::{Consumer, GroupAdmin, GroupDescription, GroupState, Seek};
use clap::Subcommand;
use serde::Serialize;

use crate::position::Position;
use crate::target::Target;
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
        after_help = "Examples:\n  cairn group reset-offsets inventory --topic orders --to earliest\n  cairn group reset-offsets inventory --topic orders --partition 2 --to 1500\n  cairn group reset-offsets inventory --topic orders --to -100 --dry-run\n  cairn group reset-offsets inventory --topic orders --to 2026-12-01T10:00:00Z"
    )]
    ResetOffsets {
        /// The group.
        group: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// Where to: earliest, latest, an offset, -N (N before each partition's end), +N (N
        /// after its start), @UNIX_MS or an ISO-8601 time (the first record at or after it).
        #[arg(long, value_name = "POSITION", allow_hyphen_values = true)]
        to: String,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<i32>,
        /// Show each partition's current and new offset without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
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
    /// The coordinator's address: the node that answered.
    coordinator: String,
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
pub async fn run(target: &Target, command: GroupCommand) -> anyhow::Result<()> {
    // Parse what can be parsed before connecting, so a typo is reported as such.
    let position = match &command {
        GroupCommand::ResetOffsets { to, partition, .. } => {
            if partition.is_some_and(|p| p < 0) {
                crate::usage_error::usage_bail!("--partition must not be negative");
            }
            Some(Position::parse("--to", to)?)
        }
        _ => None,
    };
    let admin = GroupAdmin::connect_with(&target.brokers, target.timeouts()).await?;
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
            let (described, coordinator) = admin.describe_group_at(&group).await?;
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&to_json(described, coordinator))?
                )?,
                Format::Text => print_text(&described, &coordinator)?,
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            dry_run,
            format,
            ..
        } => {
            let Some(position) = position else {
                anyhow::bail!("internal: reset position not parsed");
            };
            let reset = Reset {
                group: &group,
                topic: &topic,
                partitions: partition.into_iter().collect(),
                position,
            };
            let moves = reset.run(target, &admin, dry_run).await?;
            print_moves(&moves, format, dry_run)?;
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            outln!("deleted group {group}")?;
        }
    }
    Ok(())
}

/// A reset of a group's committed offsets on one topic.
struct Reset<'a> {
    group: &'a str,
    topic: &'a str,
    /// Empty: every partition.
    partitions: Vec<i32>,
    position: Position,
}

/// One partition's committed offset before and after a reset.
#[derive(Debug, Serialize)]
struct Move {
    topic: String,
    partition: i32,
    /// `None` when the group had committed nothing for it.
    old: Option<i64>,
    new: i64,
}

impl Reset<'_> {
    /// Resets (or, for a dry run, works out) the offsets and returns each partition's move.
    /// The broker resolves absolute positions itself when resetting; relative ones, and every
    /// position of a dry run, are resolved here from the partitions' offsets.
    async fn run(
        &self,
        target: &Target,
        admin: &GroupAdmin,
        dry_run: bool,
    ) -> anyhow::Result<Vec<Move>> {
        let old: BTreeMap<(String, i32), i64> = match admin.committed_offsets(self.group).await {
            Ok(offsets) => offsets
                .into_iter()
                .filter(|o| o.offset >= 0)
                .map(|o| ((o.topic, o.partition), o.offset))
                .collect(),
            // A group that never committed has nothing to show as "old".
            Err(err) if err.code() == Some(cairn_client::ErrorCode::GroupIdNotFound) => {
                BTreeMap::new()
            }
            Err(err) => return Err(err.into()),
        };
        let old_of = |partition: i32| old.get(&(self.topic.to_string(), partition)).copied();
        let new: BTreeMap<i32, i64> = match (self.position, dry_run) {
            (Position::Absolute(seek), false) => admin
                .reset_offsets(self.group, self.topic, &self.partitions, seek)
                .await?
                .into_iter()
                .map(|o| (o.partition, o.offset))
                .collect(),
            _ => {
                let resolved = self.resolve(target).await?;
                if !dry_run {
                    for (&partition, &offset) in &resolved {
                        admin
                            .reset_offsets(
                                self.group,
                                self.topic,
                                &[partition],
                                Seek::Offset(offset),
                            )
                            .await
                            .with_context(|| format!("resetting {}/{partition}", self.topic))?;
                    }
                }
                resolved
            }
        };
        Ok(new
            .into_iter()
            .map(|(partition, offset)| Move {
                topic: self.topic.to_string(),
                partition,
                old: old_of(partition),
                new: offset,
            })
            .collect())
    }

    /// The offset the position names in each partition, from the partitions' own offsets.
    async fn resolve(&self, target: &Target) -> anyhow::Result<BTreeMap<i32, i64>> {
        let consumer = Consumer::assign_with(
            &target.brokers,
            self.topic,
            &self.partitions,
            Seek::Earliest,
            target.timeouts(),
        )
        .await?;
        let starts = consumer.positions().clone();
        let ends = consumer
            .list_offsets(&self.partitions, Seek::Latest)
            .await?;
        let by_time = match self.position {
            Position::Absolute(Seek::Timestamp(ms)) => Some(
                consumer
                    .list_offsets(&self.partitions, Seek::Timestamp(ms))
                    .await?,
            ),
            _ => None,
        };
        let mut resolved = BTreeMap::new();
        for (&partition, &start) in &starts {
            let end = ends.get(&partition).copied().unwrap_or(start);
            let offset = match self.position {
                Position::Absolute(Seek::Earliest) => start,
                Position::Absolute(Seek::Latest) => end,
                Position::Absolute(Seek::Offset(offset)) => {
                    if offset < start || offset > end {
                        anyhow::bail!(
                            "--to {offset} is outside {}/{partition}, which holds offsets {start} to {end}",
                            self.topic
                        );
                    }
                    offset
                }
                Position::Absolute(Seek::Timestamp(_)) => by_time
                    .as_ref()
                    .and_then(|found| found.get(&partition).copied())
                    .filter(|offset| *offset >= 0)
                    .unwrap_or(end),
                relative => relative.relative_offset(start, end).unwrap_or(end),
            };
            resolved.insert(partition, offset);
        }
        Ok(resolved)
    }
}

fn print_moves(moves: &[Move], format: Format, dry_run: bool) -> anyhow::Result<()> {
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(moves)?)?,
        Format::Text => {
            if dry_run {
                outln!("dry run: nothing was changed")?;
            }
            outln!(
                "{:<30} {:>9} {:>12} {:>12}",
                "TOPIC",
                "PARTITION",
                "OLD",
                "NEW"
            )?;
            for m in moves {
                let old = m.old.map_or_else(|| "-".to_string(), |o| o.to_string());
                outln!(
                    "{:<30} {:>9} {:>12} {:>12}",
                    m.topic,
                    m.partition,
                    old,
                    m.new
                )?;
            }
        }
    }
    Ok(())
}

fn to_json(g: GroupDescription, coordinator: String) -> GroupJson {
    GroupJson {
        group: g.group_id,
        coordinator,
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

fn print_text(g: &GroupDescription, coordinator: &str) -> std::io::Result<()> {
    outln!(
        "group {}  coordinator {coordinator}  state {}  epoch {}  session timeout {} ms",
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
