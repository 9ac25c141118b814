//! `cairn acl ...`: ACLs with kafka-acls' flags (`--allow-principal`, `--deny-principal`,
//! `--operation`, `--topic`, `--group`, `--cluster`, `--resource-pattern-type`, `--host`),
//! through `cairn_client::Admin`. One command may name several principals, operations and
//! resources: it adds or removes every combination, all or none. Field checks are the
//! broker's, which names the bad field.

use cairn_client::Acl;
use cairn_client::Admin;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::target::Target;
use crate::topic::Format;
use crate::usage_error::usage;

/// The one cluster resource's name.
const CLUSTER_RESOURCE_NAME: &str = "cairn-cluster";

/// `cairn acl` subcommands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Add ACLs.
    #[command(
        after_help = "Examples:\n  cairn acl add --allow-principal User:alice --operation write --topic orders\n  cairn acl add --allow-principal User:bob --operation read --topic pay --resource-pattern-type prefixed\n  cairn acl add --allow-principal User:bob --operation read --group billing\n  cairn acl add --allow-principal User:ops --operation alter --operation describe --cluster"
    )]
    Add(AclArgs),
    /// Remove exactly the ACLs these flags describe.
    #[command(
        after_help = "Examples:\n  cairn acl remove --allow-principal User:alice --operation write --topic orders"
    )]
    Remove(AclArgs),
    /// List every ACL.
    #[command(after_help = "Examples:\n  cairn acl list --format json")]
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// How a resource name matches (kafka-acls' `--resource-pattern-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PatternType {
    /// The name exactly (`*`: every resource of the type).
    #[default]
    Literal,
    /// Every name starting with it.
    Prefixed,
}

/// The flags of `cairn acl add` and `cairn acl remove`.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// Principal to allow, `User:NAME` or `User:*`; repeatable.
    #[arg(long, value_name = "PRINCIPAL")]
    allow_principal: Vec<String>,
    /// Principal to deny (deny wins over allow); repeatable.
    #[arg(long, value_name = "PRINCIPAL")]
    deny_principal: Vec<String>,
    /// Client IP address the ACL is about [default: * (any)].
    #[arg(long, value_name = "IP")]
    host: Option<String>,
    /// Operation: all, read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs; repeatable.
    #[arg(long, value_name = "OPERATION", required = true)]
    operation: Vec<String>,
    /// Topic name (or prefix, or `*`); repeatable.
    #[arg(long, value_name = "NAME")]
    topic: Vec<String>,
    /// Consumer group id (or prefix, or `*`); repeatable.
    #[arg(long, value_name = "NAME")]
    group: Vec<String>,
    /// The cluster itself (user and ACL administration, node-to-node traffic, node changes).
    #[arg(long)]
    cluster: bool,
    /// How --topic and --group names match.
    #[arg(long, value_enum, default_value_t)]
    resource_pattern_type: PatternType,
}

#[derive(Serialize)]
struct AclLine {
    principal: String,
    host: String,
    operation: String,
    resource_type: String,
    resource_name: String,
    pattern_type: String,
    permission: String,
}

/// Runs a `cairn acl` command.
///
/// # Errors
/// A usage error for flags that name no principal or resource; the broker's refusal otherwise.
pub async fn run(target: &Target, command: AclCommand) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    match command {
        AclCommand::Add(args) => {
            let acls = expand(&args)?;
            let count = acls.len();
            let warnings = admin.create_acls(acls).await?;
            println!("added {count} ACL(s)");
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        }
        AclCommand::Remove(args) => {
            let acls = expand(&args)?;
            let count = acls.len();
            admin.delete_acls(acls).await?;
            println!("removed {count} ACL(s) (those that existed)");
        }
        AclCommand::List { format } => {
            let acls: Vec<AclLine> = admin
                .list_acls()
                .await?
                .into_iter()
                .map(|a| AclLine {
                    principal: a.principal,
                    host: a.host,
                    operation: a.operation,
                    resource_type: a.resource_type,
                    resource_name: a.resource_name,
                    pattern_type: a.pattern_type,
                    permission: a.permission,
                })
                .collect();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&acls)?),
                Format::Text => {
                    for a in acls {
                        println!(
                            "{} {} {} from {} on {}:{}:{}",
                            a.permission,
                            a.principal,
                            a.operation,
                            a.host,
                            a.resource_type,
                            a.pattern_type,
                            a.resource_name
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every (principal, operation, resource) combination the flags name, as API ACLs.
fn expand(args: &AclArgs) -> anyhow::Result<Vec<Acl>> {
    let principals: Vec<(&str, &str)> = args
        .allow_principal
        .iter()
        .map(|p| (p.as_str(), "Allow"))
        .chain(args.deny_principal.iter().map(|p| (p.as_str(), "Deny")))
        .collect();
    if principals.is_empty() {
        return Err(usage(
            "name a principal with --allow-principal or --deny-principal",
        ));
    }
    let pattern = match args.resource_pattern_type {
        PatternType::Literal => "Literal",
        PatternType::Prefixed => "Prefixed",
    };
    let mut resources: Vec<(&str, &str, &str)> = Vec::new();
    resources.extend(args.topic.iter().map(|t| ("Topic", t.as_str(), pattern)));
    resources.extend(args.group.iter().map(|g| ("Group", g.as_str(), pattern)));
    if args.cluster {
        resources.push(("Cluster", CLUSTER_RESOURCE_NAME, "Literal"));
    }
    if resources.is_empty() {
        return Err(usage("name a resource with --topic, --group or --cluster"));
    }
    let mut acls = Vec::new();
    for (principal, permission) in &principals {
        for operation in &args.operation {
            for (resource_type, name, pattern) in &resources {
                acls.push(Acl {
                    principal: (*principal).to_string(),
                    host: args.host.clone().unwrap_or_else(|| "*".to_string()),
                    operation: operation.clone(),
                    resource_type: (*resource_type).to_string(),
                    resource_name: (*name).to_string(),
                    pattern_type: (*pattern).to_string(),
                    permission: (*permission).to_string(),
                });
            }
        }
    }
    Ok(acls)
}
