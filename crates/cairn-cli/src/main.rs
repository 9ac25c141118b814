//! `cairn`: the Cairn command-line tool. `cairn serve` runs a broker; the other subcommands are
//! clients of a running one.
//!
//! Code map:
//! - `cli`: the command-line grammar (clap derives); it checks no values.
//! - `topic`, `produce`, `consume` (and `consume_group` for `--group`), `group`, `replay`,
//!   `bench`, `health`, `cluster`: the client subcommands, one module each, over
//!   `cairn-client`.
//! - `target`: the broker list and the `--timeout`/`--connect-timeout` deadlines every client
//!   command runs under; `usage_error`: `UsageError`, a flag value that cannot work (exit 2).
//! - `position`: the one parser of positions (`--from`, `--to`): earliest, latest, offsets,
//!   `-N`/`+N`, `@UNIX_MS` and ISO-8601 times.
//! - `encoding`, `record_input`, `record_output`, `template`: records as the command line
//!   reads and writes them, byte for byte (text, base64, hex; JSON Lines; kcat-style templates).
//! - `malloc_tuning`: keeps glibc from returning received frame buffers to the kernel.
//! - `config_error`: `ConfigError`, a bad flag, variable or config file, as one line.
//! - `config_resolve`: `serve`'s settings from flags, `CAIRN_*` variables, the TOML config file
//!   and defaults, per key, in that order. Pure, so every precedence case is a unit test.
//! - `serve`: the I/O around it: reads the environment and the file, installs the log and the
//!   signal handlers, runs `cairn_server::run`.
//! - `logging`: the stderr log, text or JSON Lines, filtered by `RUST_LOG`; `serve` installs it
//!   once its settings are resolved, every other command at start, as text.
//!
//! Invariants: logs go to stderr, so stdout carries only what scripts read (the server's ready
//! line). A failure is one line on stderr, `error: ...`, and the exit status says whose it is:
//! 2 for a usage or config mistake (clap's own usage errors too, and a data directory that
//! belongs to another node id), 1 for anything else.

/// `println!` that hands back the write's error instead of panicking: stdout may be a pipe
/// whose reader has gone (`cairn topic list | head -1`). `main` ends quietly on that error.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod acl;
mod bench;
mod cli;
mod cluster;
mod config_error;
mod config_resolve;
mod consume;
mod consume_group;
mod encoding;
mod group;
mod health;
mod logging;
mod malloc_tuning;
mod outage;
mod position;
mod produce;
mod quota;
mod record_input;
mod record_output;
mod replay;
mod serve;
mod target;
mod template;
mod topic;
mod usage_error;
mod user;

use std::process::ExitCode;

use cairn_broker::node_meta::NodeMetaError;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config_error::ConfigError;
use crate::target::{DEFAULT_CONNECT_TIMEOUT, Target};
use crate::usage_error::UsageError;

/// Exit status for a bad flag, variable or config file, as clap uses for usage errors.
const EXIT_USAGE: u8 = 2;
/// Exit status for any other failure.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    malloc_tuning::keep_freed_buffers();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    // The command runs as a task on the runtime's workers, not on this thread: a task a worker
    // wakes or spawns runs next on that worker, while one this thread spawns must wake a
    // parked worker first (tens of microseconds per hand-off, which showed in `bench produce`'s
    // latency at a low rate).
    runtime.block_on(async {
        tokio::spawn(run())
            .await
            .unwrap_or(ExitCode::from(EXIT_FAILURE))
    })
}

/// Parses the command line and runs the command.
async fn run() -> ExitCode {
    // Prints help or a usage error itself, exiting 0 or 2.
    let cli = Cli::parse();
    // `serve` installs its log once its settings (the log format among them) are resolved.
    if !matches!(cli.command, Command::Serve(_))
        && let Err(err) = logging::init(logging::LogFormat::Text)
    {
        eprintln!("error: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    let credentials = match crate::target::credentials(
        cli.user.as_deref(),
        cli.password_file.as_deref(),
        cli.password_env.as_deref(),
    ) {
        Ok(credentials) => credentials,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // `serve` reads the TLS files as its own certificate (see `cli::TlsArgs`), never as a
    // client's.
    let tls = if matches!(cli.command, Command::Serve(_)) {
        Ok(None)
    } else {
        target::client_tls(&cli.tls, |var| std::env::var_os(var))
    };
    let tls = match tls {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let target = Target {
        brokers: cli.broker,
        timeout: cli.timeout,
        connect_timeout: cli.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        credentials,
        tls,
    };
    let result = match cli.command {
        Command::Serve(mut args) => {
            args.tls = cli.tls;
            serve::serve(args).await
        }
        Command::Topic(command) => topic::run(&target, command).await,
        Command::Produce(args) => produce::run(&target, args).await,
        Command::Consume(args) => consume::run(&target, args).await,
        Command::Replay(args) => replay::run(&target, args).await,
        Command::Bench(command) => bench::run(&target, command).await,
        Command::Group(command) => group::run(&target, command).await,
        Command::User(command) => user::run(&target, command).await,
        Command::Acl(command) => acl::run(&target, command).await,
        Command::Quota(command) => quota::run(&target, command).await,
        Command::Health(args) => health::run(&target, args).await,
        Command::Cluster(command) => cluster::run(&target, command).await,
    };
    let result = result.map_err(|err| target.explain(err));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped reading: as for any Unix tool in a pipeline, that
        // ends the command without a complaint.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            let usage = err.chain().any(|cause| {
                cause.is::<ConfigError>()
                    || cause.is::<UsageError>()
                    // A data directory that is another node's: the flags are what to fix.
                    || cause
                        .downcast_ref::<NodeMetaError>()
                        .is_some_and(NodeMetaError::is_config_mistake)
            });
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILURE })
        }
    }
}

/// True when `err` comes from writing to a pipe nobody reads any more.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, `outer: inner: ...`.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // Many errors show their source in their own message and also return it from
        // `source()` (`cannot listen on ...: Address already in use`): print it once.
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    // A message with a line break of its own (some OS and library messages) is folded.
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct ShowsItsSource(#[source] std::io::Error);

    #[test]
    fn one_line_prints_a_shown_source_once() {
        let err = anyhow::Error::new(ShowsItsSource(std::io::Error::other("inner")));
        assert_eq!(one_line(&err), "outer: inner");
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing stdout");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!(
            "broken pipe, in words only"
        )));
    }

    #[test]
    fn one_line_joins_context_and_folds_line_breaks() {
        let err = anyhow::Error::new(std::io::Error::other("two\nlines")).context("reading");
        assert_eq!(one_line(&err), "reading: two lines");
    }
}
