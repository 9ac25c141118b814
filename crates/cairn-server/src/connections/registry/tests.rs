use std::net::Ipv4Addr;

use super::*;

fn limits(max_connections: u64, max_connections_per_ip: u64) -> EffectiveLimits {
    EffectiveLimits {
        max_connections,
        max_connections_per_ip,
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
    }
}

fn registry(max_connections: u64, max_connections_per_ip: u64) -> Arc<Registry> {
    Arc::new(Registry::new(
        limits(max_connections, max_connections_per_ip),
        Arc::new(ConnectionMetrics::new()),
    ))
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn admitted(admission: Admission) -> Registration {
    match admission {
        Admission::Admitted(registration) => registration,
        Admission::Refused(reason) => panic!("refused: {reason:?}"),
    }
}

fn refused(admission: Admission) -> RefusedReason {
    match admission {
        Admission::Admitted(_) => panic!("admitted"),
        Admission::Refused(reason) => reason,
    }
}

fn rendered(registry: &Registry) -> String {
    let mut out = String::new();
    registry.metrics.render(&mut out);
    out
}

#[test]
fn per_ip_limit_refuses_that_ip_only_and_frees_on_drop() {
    let registry = registry(100, 2);
    let first = admitted(registry.admit(ip(1)));
    let _second = admitted(registry.admit(ip(1)));
    assert_eq!(
        refused(registry.admit(ip(1))),
        RefusedReason::MaxConnectionsPerIp
    );
    let _other = admitted(registry.admit(ip(2)));
    drop(first);
    let _third = admitted(registry.admit(ip(1)));
    assert!(rendered(&registry).contains("cairn_connections_open 3\n"));
}

#[test]
fn at_the_total_a_connection_still_in_its_handshake_is_evicted_first_oldest_first() {
    let registry = registry(3, 10);
    let old_done = admitted(registry.admit(ip(1)));
    old_done.handshake_done();
    let pending_a = admitted(registry.admit(ip(2)));
    let pending_b = admitted(registry.admit(ip(3)));
    let _new = admitted(registry.admit(ip(4)));
    assert!(pending_a.state().close_requested());
    assert!(!pending_b.state().close_requested());
    assert!(!old_done.state().close_requested());
    assert!(rendered(&registry).contains("cairn_connections_closed_total{reason=\"evicted\"} 1\n"));
    assert!(rendered(&registry).contains("cairn_connections_open 3\n"));
}

#[test]
fn at_the_total_an_idle_connection_is_evicted_and_a_busy_one_never() {
    let registry = registry(2, 10);
    let busy = admitted(registry.admit(ip(1)));
    busy.handshake_done();
    let request = busy.state().request_started();
    let idle = admitted(registry.admit(ip(2)));
    idle.handshake_done();
    let newcomer = admitted(registry.admit(ip(3)));
    assert!(!busy.state().close_requested());
    assert!(idle.state().close_requested());
    // The evicted connection's own drop later must not free a second place.
    drop(idle);
    newcomer.handshake_done();
    let _busy_too = newcomer.state().request_started();
    assert_eq!(
        refused(registry.admit(ip(4))),
        RefusedReason::MaxConnections
    );
    drop(request);
    let _after = admitted(registry.admit(ip(4)));
    assert!(busy.state().close_requested());
}

#[test]
fn request_guard_counts_in_flight_and_stamps_the_end() {
    let registry = registry(10, 10);
    let conn = admitted(registry.admit(ip(1)));
    assert_eq!(conn.state().last_request_end(), None);
    let a = conn.state().request_started();
    let b = conn.state().request_started();
    assert_eq!(conn.state().in_flight_count(), 2);
    drop(a);
    drop(b);
    assert_eq!(conn.state().in_flight_count(), 0);
    assert!(conn.state().last_request_end().is_some());
}
