//! `cairn user ...`: the users that authenticate by password, through `cairn_client::Admin`.
//! The new user's password is read from a file or an environment variable, never from the
//! command line (where `ps` and shell history would keep it), and is never printed.
//!
//! The flags are `--new-password-file`/`--new-password-env` because `--password-file` and
//! `--password-env` are the global flags of the caller's own password (with `--user`).

use std::path::PathBuf;

use cairn_client::Admin;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::target::Target;
use crate::topic::Format;
use crate::usage_error::usage;

/// `cairn user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or set the password of an existing one.
    #[command(
        after_help = "Examples:\n  cairn user add alice --new-password-file alice.pw\n  cairn user add alice --new-password-env ALICE_PW"
    )]
    Add(AddArgs),
    /// Remove a user (its ACLs stay).
    #[command(after_help = "Examples:\n  cairn user remove alice")]
    Remove {
        /// The user name.
        name: String,
    },
    /// List users and how their passwords are stored (never the stored keys).
    #[command(after_help = "Examples:\n  cairn user list --format json")]
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// `cairn user add`'s arguments.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user name ([A-Za-z0-9._@-], 1-128 characters).
    name: String,
    /// File whose first line is the new user's password.
    #[arg(long, value_name = "FILE", conflicts_with = "new_password_env")]
    new_password_file: Option<PathBuf>,
    /// Environment variable holding the new user's password.
    #[arg(long, value_name = "VAR")]
    new_password_env: Option<String>,
}

#[derive(Serialize)]
struct UserLine {
    name: String,
    mechanism: String,
    iterations: u32,
}

/// Runs a `cairn user` command.
///
/// # Errors
/// A usage error for a missing or unreadable password; the broker's refusal otherwise.
pub async fn run(target: &Target, command: UserCommand) -> anyhow::Result<()> {
    let admin = Admin::connect_with(&target.brokers, target.timeouts()).await?;
    match command {
        UserCommand::Add(args) => {
            let password = new_password(&args)?;
            let created = admin.upsert_user(&args.name, &password).await?;
            println!(
                "{} user {}",
                if created { "added" } else { "updated" },
                args.name
            );
        }
        UserCommand::Remove { name } => {
            admin.delete_user(&name).await?;
            println!("removed user {name}");
        }
        UserCommand::List { format } => {
            let users: Vec<UserLine> = admin
                .list_users()
                .await?
                .into_iter()
                .map(|u| UserLine {
                    name: u.name,
                    mechanism: u.mechanism,
                    iterations: u.iterations,
                })
                .collect();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&users)?),
                Format::Text => {
                    for user in users {
                        println!(
                            "{}\t{} ({} iterations)",
                            user.name, user.mechanism, user.iterations
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn new_password(args: &AddArgs) -> anyhow::Result<String> {
    let password = match (&args.new_password_file, &args.new_password_env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| {
                usage(format!(
                    "cannot read --new-password-file {}: {e}",
                    path.display()
                ))
            })?
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| usage(format!("--new-password-env {var}: the variable is not set")))?,
        (None, None) => {
            return Err(usage(
                "give the new password with --new-password-file or --new-password-env",
            ));
        }
    };
    if password.is_empty() {
        return Err(usage("the new password is empty"));
    }
    Ok(password)
}
