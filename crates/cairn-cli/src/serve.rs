//! `cairn serve`: the I/O edge around `config_resolve`. It reads the environment and the config
//! file, resolves the settings, installs the signal handlers, and runs `cairn_server::run` until
//! SIGTERM or SIGINT. It makes no decisions of its own about settings.
//!
//! The invariant: the signal handlers are installed before the server starts, so a signal sent
//! as soon as the ready line appears still shuts the server down cleanly.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::path::Path;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::cli::ServeArgs;
use crate::config_error::ConfigError;
use crate::config_resolve::{self, ConfigFile, MAX_CONFIG_FILE_BYTES};

/// Runs a broker with the settings from `args`, the environment and the config file, until
/// SIGTERM or SIGINT; then a node in a cluster hands its leaderships over to other nodes, and
/// the server finishes in-flight appends and closes the logs.
///
/// # Errors
/// A [`ConfigError`] (in the chain) for a bad setting or an unreadable config file, before
/// anything is opened; otherwise the server's error, for example a port already in use.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let env = |var: &str| std::env::var_os(var);
    let path = config_resolve::config_path(&args, env)?;
    let text = path.as_deref().map(read_config_file).transpose()?;
    let file = path
        .as_deref()
        .zip(text.as_deref())
        .map(|(path, text)| ConfigFile { path, text });
    let cfg = config_resolve::resolve(&args, env, file)?;
    if cfg.cluster.joins_existing_cluster() && cfg.cluster.is_single_node() {
        anyhow::bail!(
            "--join needs --peers with this node's entry and at least one member of the cluster it joins"
        );
    }
    let log_format = config_resolve::resolve_log_format(&args, env, file)?;
    crate::logging::init(log_format)?;
    info!(
        data_dir = %cfg.data_dir.display(),
        grpc_addr = %cfg.grpc_addr,
        http_addr = %cfg.http_addr,
        node_id = cfg.cluster.node_id(),
        nodes = cfg.cluster.node_count(),
        peers = %peers_text(&cfg.cluster),
        raft = %cfg.cluster.timings(),
        default_replication_factor = cfg.cluster.default_replication_factor(),
        advertised_address = cfg.advertised_address.as_deref().unwrap_or("(bound gRPC address)"),
        config_file = %path.as_deref().map_or("(none)".into(), |p| p.display().to_string()),
        %log_format,
        "starting broker"
    );
    if cfg.producer_id_expiration.duration() < cairn_client::DEFAULT_DELIVERY_TIMEOUT {
        warn!(
            producer_id_expiration_ms = cfg.producer_id_expiration.duration().as_millis(),
            "producer ids expire sooner than a producer's default delivery timeout (120 s): a first batch retried after its producer was forgotten is written again"
        );
    }
    // Every connection and segment file costs a descriptor, and the default connection limit
    // is derived from this limit, so raise it before the server reads it. Failing to raise it
    // is not fatal: the server then works, with fewer connections, under the old limit.
    if let Err(err) = cairn_server::descriptor_limit::raise_to_hard() {
        warn!(%err, "serving under the current open-file limit");
    }
    let shutdown = shutdown_signal().context("cannot install the SIGTERM and SIGINT handlers")?;
    cairn_server::run(cfg, shutdown).await?;
    info!("broker stopped");
    Ok(())
}

/// The peer list as `--peers` takes it, or `(none: a cluster of one)`.
fn peers_text(cluster: &cairn_broker::ClusterSpec) -> String {
    if cluster.peers().is_empty() {
        return "(none: a cluster of one)".to_string();
    }
    let entries: Vec<String> = cluster
        .peers()
        .iter()
        .map(|(id, address)| format!("{id}={address}"))
        .collect();
    entries.join(",")
}

/// Reads the config file whole, up to [`MAX_CONFIG_FILE_BYTES`].
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut text = String::new();
    // Read one byte past the limit, so a file of exactly the limit is accepted and a longer one
    // is told apart without reading it all.
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::FileTooLarge {
            path: path.to_path_buf(),
            max_bytes: MAX_CONFIG_FILE_BYTES,
        });
    }
    Ok(text)
}

/// Installs SIGTERM and SIGINT handlers and returns a future that resolves on the first of
/// either. Once the handlers are installed the signals no longer end the process by default, so
/// a second signal, during a shutdown that hangs, exits at once with status 128 + its number.
///
/// # Errors
/// The OS refused a handler.
fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(
            signal = name,
            "shutting down: finishing in-flight appends (signal again to exit at once)"
        );
        tokio::spawn(async move {
            let (name, status) = tokio::select! {
                _ = terminate.recv() => ("SIGTERM", 128 + 15),
                _ = interrupt.recv() => ("SIGINT", 128 + 2),
            };
            warn!(
                signal = name,
                "second signal: exiting before the shutdown finished"
            );
            std::process::exit(status);
        });
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn read_config_file_reads_a_file_at_the_limit() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let text = format!("# {}\n", "x".repeat(MAX_CONFIG_FILE_BYTES as usize - 3));
        assert_eq!(text.len() as u64, MAX_CONFIG_FILE_BYTES);
        file.write_all(text.as_bytes()).unwrap();
        assert_eq!(read_config_file(file.path()).unwrap(), text);
    }

    #[test]
    fn read_config_file_rejects_a_file_past_the_limit() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let text = "#".repeat(MAX_CONFIG_FILE_BYTES as usize + 1);
        file.write_all(text.as_bytes()).unwrap();
        let err = read_config_file(file.path()).unwrap_err();
        assert!(matches!(err, ConfigError::FileTooLarge { .. }), "{err}");
    }

    #[test]
    fn read_config_file_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.toml");
        let err = read_config_file(&path).unwrap_err().to_string();
        assert!(err.starts_with("cannot read config file "), "{err}");
        assert!(err.contains("missing.toml"), "{err}");
    }
}
