//! The TLS configurations in force, and their reload. New handshakes take the configuration
//! current when they start; connections already open keep the one they were made with, so a
//! reload never drops one. A reload that fails (a half-written file, a key that no longer
//! matches) is logged and the configuration in force stays.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::configs::{TlsConfigs, TlsFiles};
use super::error::TlsError;

/// How often the files' metadata is read to see whether they changed.
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The configurations in force for one node (see the module doc). Clones share them.
#[derive(Clone, Debug)]
pub struct TlsState {
    files: TlsFiles,
    current: Arc<RwLock<Arc<TlsConfigs>>>,
    /// Reloads that failed, the configuration in force kept.
    reload_failures: Arc<AtomicU64>,
}

/// What identifies one version of a file: a rotation writes a new file (new inode) or rewrites
/// it (new mtime, usually new length).
type Fingerprint = Option<(u64, i64, i64, u64)>;

impl TlsState {
    /// Loads `files` for the first time.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that cannot be used; the node must not start.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let configs = files.load(now_unix_secs())?;
        log_loaded(&files, &configs);
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(Arc::new(configs))),
            reload_failures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The configurations new connections use.
    pub fn current(&self) -> Arc<TlsConfigs> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether this node verifies client certificates (mTLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Re-reads the files; on success new connections use them, on failure nothing changes.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that cannot be used.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = self.files.load(now_unix_secs()).inspect_err(|_| {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
        })?;
        log_loaded(&self.files, &configs);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(configs);
        Ok(())
    }

    /// Reloads whenever a file's metadata changes (checked every [`RELOAD_POLL_INTERVAL`]) and
    /// on SIGHUP, until the task is aborted.
    pub fn spawn_watch(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        // Installed here, not in the task: SIGHUP's default action ends the process, so the
        // handler must be in place before `run` prints its ready line.
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(hangup) => Some(hangup),
            Err(err) => {
                tracing::warn!(%err, "no SIGHUP handler: TLS files reload only when they change");
                None
            }
        };
        let mut seen = state.fingerprints();
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(RELOAD_POLL_INTERVAL);
            loop {
                let signalled = tokio::select! {
                    _ = poll.tick() => false,
                    Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                };
                let now = state.fingerprints();
                if !signalled && now == seen {
                    continue;
                }
                seen = now;
                match state.reload() {
                    Ok(()) => tracing::info!(signalled, "TLS certificate and key reloaded"),
                    Err(err) => tracing::error!(
                        %err,
                        "TLS reload failed; the certificate in force stays in use"
                    ),
                }
            }
        })
    }

    /// The TLS figures of `/metrics`, in Prometheus text: when the certificate in force expires
    /// (for an alert well before it does) and how many reloads failed.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP cairn_tls_certificate_not_after_seconds When the node's TLS certificate in force expires (Unix time).\n# TYPE cairn_tls_certificate_not_after_seconds gauge\ncairn_tls_certificate_not_after_seconds {}",
            self.current().not_after_unix_secs
        );
        let _ = writeln!(
            out,
            "# HELP cairn_tls_reload_failures_total Reloads of the TLS files that failed (the files in force stayed).\n# TYPE cairn_tls_reload_failures_total counter\ncairn_tls_reload_failures_total {}",
            self.reload_failures.load(Ordering::Relaxed)
        );
        out
    }

    fn fingerprints(&self) -> Vec<Fingerprint> {
        let mut paths: Vec<&Path> = vec![&self.files.cert, &self.files.key];
        if let Some(ca) = &self.files.client_ca {
            paths.push(ca);
        }
        paths
            .into_iter()
            .map(|path| {
                std::fs::metadata(path)
                    .ok()
                    .map(|meta| (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.len()))
            })
            .collect()
    }
}

fn log_loaded(files: &TlsFiles, configs: &TlsConfigs) {
    let days_left = (configs.not_after_unix_secs - now_unix_secs()) / 86_400;
    tracing::info!(
        cert = %files.cert.display(),
        client_ca = ?files.client_ca.as_ref().map(|path| path.display().to_string()),
        days_left,
        "TLS 1.3 certificate loaded"
    );
    if days_left < 7 {
        tracing::warn!(cert = %files.cert.display(), days_left, "TLS certificate expires soon");
    }
}

fn now_unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}
