//! `cairn quota ...`: client quotas, per principal or the default, through
//! `cairn_client::Admin`. Every limit is checked here before anything is sent (a number of at
//! least 1, a principal of the form `User:NAME`, exactly one of `--principal` and `--default`),
//! so a typo never reaches the broker; the broker checks the same again.

use cairn_client::quota_entity::Entity;
use cairn_client::{Admin, QuotaEntity, QuotaLimits};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::target::Target;
use crate::topic::Format;
use crate::usage_error::usage;

/// `cairn quota` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set limits for a principal or the default (limits not given are kept).
    #[command(
        after_help = "Examples:\n  cairn quota set --principal User:alice --producer-byte-rate 1048576 --consumer-byte-rate 4194304\n  cairn quota set --default --request-rate 500 --max-topics 20 --max-partitions 200"
    )]
    Set(SetArgs),
    /// Remove every limit of a principal or the default.
    #[command(after_help = "Examples:\n  cairn quota remove --principal User:alice")]
    Remove(EntityArgs),
    /// List every quota, the default first.
    #[command(after_help = "Examples:\n  cairn quota list --format json")]
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Whom a quota is for: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct EntityArgs {
    /// The principal, User:NAME.
    #[arg(long, value_name = "User:NAME")]
    principal: Option<String>,
    /// The default, for principals without a quota of their own (Kafka's <default>).
    #[arg(long)]
    default: bool,
}

/// `cairn quota set`'s arguments. Each limit is at least 1.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Produced bytes per second, on each broker; over it, answers are delayed.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    producer_byte_rate: Option<i64>,
    /// Fetched bytes per second (fetch, subscribe, replay), on each broker.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    consumer_byte_rate: Option<i64>,
    /// Requests per second, on each broker.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    request_rate: Option<i64>,
    /// Topics the principal may create in all; creating more is refused.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    max_topics: Option<i64>,
    /// Partitions the principal may create in all, over all its topics.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    max_partitions: Option<i64>,
}

#[derive(Serialize)]
struct QuotaLine {
    entity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    producer_byte_rate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_byte_rate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_rate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_topics: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_partitions: Option<i64>,
}

/// Runs a `cairn quota` command.
///
/// # Errors
/// A usage error for a malformed principal or no limit; the broker's refusal otherwise.
pub async fn run(target: &Target, command: QuotaCommand) -> anyhow::Result<()> {
    // Everything is checked before connecting: a malformed command never reaches a broker.
    match command {
        QuotaCommand::Set(args) => {
            let (entity, limits) = (entity(&args.entity)?, limits(&args)?);
            let name = entity_name(&entity);
            connect(target).await?.set_quota(entity, limits).await?;
            println!("set quota for {name}");
        }
        QuotaCommand::Remove(args) => {
            let entity = entity(&args)?;
            let name = entity_name(&entity);
            connect(target).await?.remove_quota(entity).await?;
            println!("removed quota for {name}");
        }
        QuotaCommand::List { format } => {
            let lines: Vec<QuotaLine> = connect(target)
                .await?
                .list_quotas()
                .await?
                .into_iter()
                .map(|q| {
                    let limits = q.limits.unwrap_or_default();
                    QuotaLine {
                        entity: q.entity.as_ref().map_or_else(String::new, entity_name),
                        producer_byte_rate: limits.producer_byte_rate,
                        consumer_byte_rate: limits.consumer_byte_rate,
                        request_rate: limits.request_rate,
                        max_topics: limits.max_topics,
                        max_partitions: limits.max_partitions,
                    }
                })
                .collect();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&lines)?),
                Format::Text => {
                    for line in lines {
                        println!("{}", text_line(&line));
                    }
                }
            }
        }
    }
    Ok(())
}

async fn connect(target: &Target) -> anyhow::Result<Admin> {
    Ok(Admin::connect_with(&target.brokers, target.timeouts()).await?)
}

/// The entity the flags name, the principal's form checked.
fn entity(args: &EntityArgs) -> anyhow::Result<QuotaEntity> {
    let entity = match (&args.principal, args.default) {
        (Some(principal), false) => {
            check_principal(principal)?;
            Entity::Principal(principal.clone())
        }
        (None, true) => Entity::Default(true),
        // clap's group refuses both and neither; kept as a usage error, not a panic.
        _ => {
            return Err(usage(
                "give exactly one of --principal User:NAME and --default",
            ));
        }
    };
    Ok(QuotaEntity {
        entity: Some(entity),
    })
}

fn check_principal(principal: &str) -> anyhow::Result<()> {
    let name = principal.strip_prefix("User:").unwrap_or("");
    let valid = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if valid {
        Ok(())
    } else {
        Err(usage(format!(
            "--principal {principal:?}: expected User:NAME with NAME of 1-128 characters [A-Za-z0-9._@-]"
        )))
    }
}

fn limits(args: &SetArgs) -> anyhow::Result<QuotaLimits> {
    let limits = QuotaLimits {
        producer_byte_rate: args.producer_byte_rate,
        consumer_byte_rate: args.consumer_byte_rate,
        request_rate: args.request_rate,
        max_topics: args.max_topics,
        max_partitions: args.max_partitions,
    };
    if limits == QuotaLimits::default() {
        return Err(usage(
            "give at least one limit: --producer-byte-rate, --consumer-byte-rate, --request-rate, --max-topics, --max-partitions",
        ));
    }
    Ok(limits)
}

fn entity_name(entity: &QuotaEntity) -> String {
    match &entity.entity {
        Some(Entity::Principal(p)) => p.clone(),
        Some(Entity::Default(_)) | None => "<default>".to_string(),
    }
}

fn text_line(line: &QuotaLine) -> String {
    let fields = [
        ("producer_byte_rate", line.producer_byte_rate),
        ("consumer_byte_rate", line.consumer_byte_rate),
        ("request_rate", line.request_rate),
        ("max_topics", line.max_topics),
        ("max_partitions", line.max_partitions),
    ];
    let set: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
        .collect();
    format!("{}\t{}", line.entity, set.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_must_be_user_name() {
        for bad in ["alice", "User:", "Group:x", "User:a b", "User:a,b"] {
            assert!(check_principal(bad).is_err(), "{bad}");
        }
        assert!(check_principal("User:alice-1@x.org").is_ok());
    }
}
