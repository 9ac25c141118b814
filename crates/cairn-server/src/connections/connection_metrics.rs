//! Connection counters for `GET /metrics`: the gRPC connections open now, those refused at
//! accept and those the broker closed, each by reason, and failed accepts per listener. Plain
//! atomics, written by the accept loops and the connections, rendered by `http`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a new connection was refused (accepted, then closed at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedReason {
    /// Every connection up to the total limit was busy, so none could make room.
    MaxConnections,
    /// Its client IP address already had the most connections allowed.
    MaxConnectionsPerIp,
}

impl RefusedReason {
    const ALL: [RefusedReason; 2] = [
        RefusedReason::MaxConnections,
        RefusedReason::MaxConnectionsPerIp,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            RefusedReason::MaxConnections => "max_connections",
            RefusedReason::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

/// Why the broker closed a connection it had let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedReason {
    /// It did not finish its HTTP/2 handshake in time.
    HandshakeTimeout,
    /// It had no request in flight and ended none for the idle timeout.
    IdleTimeout,
    /// It was idle when the total limit was reached and a new connection needed its place.
    Evicted,
}

impl ClosedReason {
    const ALL: [ClosedReason; 3] = [
        ClosedReason::HandshakeTimeout,
        ClosedReason::IdleTimeout,
        ClosedReason::Evicted,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            ClosedReason::HandshakeTimeout => "handshake_timeout",
            ClosedReason::IdleTimeout => "idle_timeout",
            ClosedReason::Evicted => "evicted",
        }
    }
}

/// A listening port, as the `listener` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The gRPC API.
    Grpc,
    /// The HTTP admin endpoint.
    Http,
}

impl Listener {
    const ALL: [Listener; 2] = [Listener::Grpc, Listener::Http];

    /// The `listener` label (and the name in log lines).
    pub fn label(self) -> &'static str {
        match self {
            Listener::Grpc => "grpc",
            Listener::Http => "http",
        }
    }
}

/// The connection counters (see the module doc).
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    open_count: AtomicU64,
    refused: [AtomicU64; RefusedReason::ALL.len()],
    closed: [AtomicU64; ClosedReason::ALL.len()],
    accept_errors: [AtomicU64; Listener::ALL.len()],
}

impl ConnectionMetrics {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of gRPC connections open.
    pub fn set_open(&self, open_count: u64) {
        self.open_count.store(open_count, Ordering::Relaxed);
    }

    /// Counts one refused connection.
    pub fn count_refused(&self, reason: RefusedReason) {
        // A fieldless enum's discriminant is its place in `ALL`, which lists it in order.
        let idx = reason as usize;
        self.refused[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one connection closed by the broker.
    pub fn count_closed(&self, reason: ClosedReason) {
        // A fieldless enum's discriminant is its place in `ALL`, which lists it in order.
        let idx = reason as usize;
        self.closed[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed `accept(2)` on `listener`.
    pub fn count_accept_error(&self, listener: Listener) {
        // A fieldless enum's discriminant is its place in `ALL`, which lists it in order.
        let idx = listener as usize;
        self.accept_errors[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP cairn_connections_open gRPC connections open now.\n\
             # TYPE cairn_connections_open gauge\n",
        );
        let _ = writeln!(
            out,
            "cairn_connections_open {}",
            self.open_count.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP cairn_connections_refused_total gRPC connections accepted and closed at once, by the limit that refused them.\n\
             # TYPE cairn_connections_refused_total counter\n",
        );
        for (reason, count) in RefusedReason::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "cairn_connections_refused_total{{reason=\"{}\"}} {}",
                reason.label(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP cairn_connections_closed_total gRPC connections the broker closed after letting them in, by reason.\n\
             # TYPE cairn_connections_closed_total counter\n",
        );
        for (reason, count) in ClosedReason::ALL.iter().zip(&self.closed) {
            let _ = writeln!(
                out,
                "cairn_connections_closed_total{{reason=\"{}\"}} {}",
                reason.label(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP cairn_accept_errors_total Failed accepts (such as EMFILE: out of descriptors), by listener; each is followed by a pause.\n\
             # TYPE cairn_accept_errors_total counter\n",
        );
        for (listener, count) in Listener::ALL.iter().zip(&self.accept_errors) {
            let _ = writeln!(
                out,
                "cairn_accept_errors_total{{listener=\"{}\"}} {}",
                listener.label(),
                count.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_counted_under_its_own_label() {
        let metrics = ConnectionMetrics::new();
        metrics.set_open(7);
        metrics.count_refused(RefusedReason::MaxConnectionsPerIp);
        metrics.count_refused(RefusedReason::MaxConnectionsPerIp);
        metrics.count_closed(ClosedReason::IdleTimeout);
        metrics.count_accept_error(Listener::Http);
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "cairn_connections_open 7",
            "cairn_connections_refused_total{reason=\"max_connections\"} 0",
            "cairn_connections_refused_total{reason=\"max_connections_per_ip\"} 2",
            "cairn_connections_closed_total{reason=\"handshake_timeout\"} 0",
            "cairn_connections_closed_total{reason=\"idle_timeout\"} 1",
            "cairn_connections_closed_total{reason=\"evicted\"} 0",
            "cairn_accept_errors_total{listener=\"grpc\"} 0",
            "cairn_accept_errors_total{listener=\"http\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
        }
    }
}
