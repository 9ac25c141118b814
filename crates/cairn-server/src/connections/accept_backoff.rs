//! Accepting with back-off. When `accept(2)` fails for want of a resource (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM), the pending connection stays queued and the listener stays readable, so
//! retrying at once spins a core without ever succeeding: this pauses instead, a little longer
//! after each failure in a row, and says so at WARN at most once per [`WARN_INTERVAL`].
//!
//! It does not drop or refuse anything itself: the queued connections wait in the kernel's
//! backlog until a descriptor is free again.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::connection_metrics::{ConnectionMetrics, Listener};

/// The pause after the first failed accept of a run.
pub const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause: long enough that a stuck limit costs nothing, short enough that service
/// resumes within a second of a descriptor being freed.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Least time between two WARN lines about failing accepts (and about refusals).
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Logs a condition at WARN at most once per [`WARN_INTERVAL`], with how often it happened in
/// between, so a flood is visible in the log without filling it.
#[derive(Debug, Default)]
pub(crate) struct WarnThrottle {
    last_warned: Option<Instant>,
    suppressed_count: u64,
}

impl WarnThrottle {
    /// Counts one occurrence; returns how many occurred since the last WARN (this one
    /// included) when it is time to log again.
    pub(crate) fn tick(&mut self) -> Option<u64> {
        self.tick_at(Instant::now())
    }

    fn tick_at(&mut self, now: Instant) -> Option<u64> {
        self.suppressed_count += 1;
        let due = self
            .last_warned
            .is_none_or(|last| now.duration_since(last) >= WARN_INTERVAL);
        if !due {
            return None;
        }
        self.last_warned = Some(now);
        Some(std::mem::take(&mut self.suppressed_count))
    }
}

/// One listener's accept state: the next pause and the log throttle.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    listener: Listener,
    metrics: Arc<ConnectionMetrics>,
    pause: Duration,
    warn: WarnThrottle,
}

impl AcceptBackoff {
    /// A fresh state for `listener`, counting failures into `metrics`.
    pub(crate) fn new(listener: Listener, metrics: Arc<ConnectionMetrics>) -> Self {
        Self {
            listener,
            metrics,
            pause: FIRST_PAUSE,
            warn: WarnThrottle::default(),
        }
    }

    /// Accepts the next connection, pausing after each failure (see the module doc); returns
    /// only on success, which resets the pause.
    pub(crate) async fn accept(&mut self, listener: &TcpListener) -> (TcpStream, SocketAddr) {
        loop {
            match listener.accept().await {
                Ok(accepted) => {
                    self.pause = FIRST_PAUSE;
                    return accepted;
                }
                // The peer gave up between SYN and accept: that connection is gone from the
                // queue, so trying the next one at once cannot spin.
                Err(err) if is_connection_error(&err) => {
                    tracing::debug!(listener = self.listener.label(), %err, "accept: peer gone");
                }
                Err(err) => {
                    self.metrics.count_accept_error(self.listener);
                    if let Some(failure_count) = self.warn.tick() {
                        tracing::warn!(
                            listener = self.listener.label(),
                            %err,
                            failure_count,
                            pause_ms = self.pause.as_millis() as u64,
                            "accept failed; pausing before the next try (raise the descriptor \
                             limit or lower max connections if this is EMFILE or ENFILE)"
                        );
                    }
                    tokio::time::sleep(self.pause).await;
                    self.pause = next_pause(self.pause);
                }
            }
        }
    }
}

/// The pause after `pause`: doubled, up to [`MAX_PAUSE`].
fn next_pause(pause: Duration) -> Duration {
    pause.saturating_mul(2).min(MAX_PAUSE)
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_doubles_up_to_the_maximum() {
        let mut pause = FIRST_PAUSE;
        let mut pauses = Vec::new();
        for _ in 0..12 {
            pauses.push(pause);
            pause = next_pause(pause);
        }
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
    }

    #[test]
    fn emfile_is_not_a_connection_error() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(!is_connection_error(&emfile));
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }

    #[test]
    fn warn_throttle_reports_once_per_interval_with_the_count() {
        let start = Instant::now();
        let mut throttle = WarnThrottle::default();
        assert_eq!(throttle.tick_at(start), Some(1));
        assert_eq!(throttle.tick_at(start), None);
        assert_eq!(throttle.tick_at(start + WARN_INTERVAL / 2), None);
        assert_eq!(throttle.tick_at(start + WARN_INTERVAL), Some(3));
        assert_eq!(throttle.tick_at(start + WARN_INTERVAL), None);
    }
}
