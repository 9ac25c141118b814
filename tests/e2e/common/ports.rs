//! Listen addresses for test nodes that must be known before the nodes start (a cluster's
//! peer list names them all up front).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback address nothing listens on, for a node to listen on later.
///
/// Not a port-0 bind released at once: that port comes from the ephemeral range, which every
/// outgoing connection also draws from, so between the release and the node's start a peer's
/// connection could take it and the node would fail to listen ("no ready line", seen in CI).
/// Ports below the ephemeral range are never given to outgoing connections; each is checked
/// free and handed out once per test process.
pub fn free_address() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FLOOR: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(FLOOR);
    if span >= 1_000 {
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span {
            let port = FLOOR + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
            if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return format!("127.0.0.1:{port}");
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}
