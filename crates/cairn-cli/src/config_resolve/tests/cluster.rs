//! The cluster settings: `--peers`, `--node-id` against it, the Raft timings, the default
//! replication factor, and the listen and advertised addresses the peer list implies.

use std::collections::BTreeMap;

use cairn_broker::{ClusterSpecError, RaftTimings};

use super::*;

const PEERS: &str = "1=10.0.0.1:7070,2=10.0.0.2:7070,3=10.0.0.3:7070";

fn peer_map(pairs: &[(u64, &str)]) -> BTreeMap<u64, String> {
    pairs.iter().map(|(id, a)| (*id, a.to_string())).collect()
}

/// The typed cluster error under a resolve failure, with its one-line message.
fn cluster_error(result: Result<ServeConfig, ConfigError>) -> (ClusterSpecError, String) {
    match result {
        Err(err @ ConfigError::Cluster { .. }) => {
            let message = err.to_string();
            assert!(!message.contains('\n'), "{message:?}");
            let ConfigError::Cluster { source, .. } = err else {
                unreachable!()
            };
            (source, message)
        }
        other => panic!("not a cluster error: {other:?}"),
    }
}

#[test]
fn no_peers_is_a_cluster_of_one_as_before() {
    let cfg = resolve(&args(&[]), no_env, None).unwrap();
    assert_eq!(cfg.cluster, ClusterSpec::default());
    assert_eq!(cfg.grpc_addr, addr("127.0.0.1:7070"));
    assert_eq!(cfg.advertised_address, None);
    // --node-id alone names the one node.
    let cfg = resolve(&args(&["--node-id", "9"]), no_env, None).unwrap();
    assert_eq!(cfg.cluster, ClusterSpec::single_node(9).unwrap());
}

#[test]
fn a_peer_list_sets_the_cluster_the_listen_and_the_advertised_address() {
    let cfg = resolve(&args(&["--node-id", "2", "--peers", PEERS]), no_env, None).unwrap();
    assert_eq!(cfg.cluster.node_id(), 2);
    assert_eq!(cfg.cluster.node_count(), 3);
    assert_eq!(
        cfg.cluster.peers(),
        &peer_map(&[
            (1, "10.0.0.1:7070"),
            (2, "10.0.0.2:7070"),
            (3, "10.0.0.3:7070")
        ])
    );
    assert_eq!(cfg.grpc_addr, addr("10.0.0.2:7070"), "its own entry");
    assert_eq!(cfg.advertised_address.as_deref(), Some("10.0.0.2:7070"));
    assert_eq!(cfg.cluster.default_replication_factor(), 3);
    assert_eq!(cfg.cluster.timings(), RaftTimings::default());
    // Given both, they must agree; a wildcard IP on the same port does.
    let cfg = resolve(
        &args(&[
            "--node-id",
            "2",
            "--peers",
            PEERS,
            "--grpc-addr",
            "0.0.0.0:7070",
            "--advertised-address",
            "cairn-2.example.com:7070",
        ]),
        no_env,
        None,
    )
    .unwrap();
    assert_eq!(cfg.grpc_addr, addr("0.0.0.0:7070"));
    assert_eq!(
        cfg.advertised_address.as_deref(),
        Some("cairn-2.example.com:7070")
    );
}

#[test]
fn peers_and_timings_come_from_flag_then_variable_then_file() {
    let from_file = file(
        "node_id = 1\n[cluster]\npeers = \"1=10.0.0.1:1,2=10.0.0.2:1\"\n\
         raft_election_timeout_ms = \"300..600\"\nraft_heartbeat_ms = 100\n\
         default_replication_factor = 1\n",
    );
    let cfg = resolve(&args(&[]), no_env, from_file).unwrap();
    assert_eq!(cfg.cluster.node_count(), 2);
    assert_eq!(cfg.cluster.default_replication_factor(), 1);
    let timings = cfg.cluster.timings();
    assert_eq!(
        (
            timings.election_timeout_min_ms(),
            timings.election_timeout_max_ms(),
            timings.heartbeat_ms()
        ),
        (300, 600, 100)
    );
    let variables = env(&[
        ("CAIRN_PEERS", "1=10.0.0.1:2"),
        ("CAIRN_RAFT_ELECTION_TIMEOUT_MS", "400..800"),
        ("CAIRN_RAFT_HEARTBEAT_MS", "50"),
    ]);
    let cfg = resolve(&args(&[]), variables, from_file).unwrap();
    assert_eq!(cfg.cluster.peers(), &peer_map(&[(1, "10.0.0.1:2")]));
    assert_eq!(cfg.cluster.timings().election_timeout_min_ms(), 400);
    assert_eq!(cfg.cluster.timings().heartbeat_ms(), 50);
    let variables = env(&[("CAIRN_PEERS", "1=10.0.0.1:2")]);
    let flags = args(&["--peers", "1=10.0.0.1:3", "--raft-heartbeat-ms", "70"]);
    let cfg = resolve(&flags, variables, from_file).unwrap();
    assert_eq!(cfg.cluster.peers(), &peer_map(&[(1, "10.0.0.1:3")]));
    assert_eq!(cfg.cluster.timings().heartbeat_ms(), 70);
    assert_eq!(cfg.grpc_addr, addr("10.0.0.1:3"));
}

#[test]
fn the_file_takes_peers_as_a_table_and_the_node_id_in_cluster() {
    let text = "[cluster]\nnode_id = 3\npeers = { 1 = \"a.example:7070\", 2 = \"b.example:7070\", \
                3 = \"10.0.0.3:7070\" }\n";
    let cfg = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(cfg.cluster.node_id(), 3);
    assert_eq!(cfg.cluster.own_address(), Some("10.0.0.3:7070"));
    assert_eq!(cfg.grpc_addr, addr("10.0.0.3:7070"));
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("node_id = 1\n[cluster]\nnode_id = 2\n"),
    ));
    assert!(
        message.contains("[cluster] node_id in config file"),
        "{message}"
    );
    assert!(message.contains("set it once"), "{message}");
}

#[test]
fn the_serve_help_config_example_resolves() {
    let help = crate::cli::SERVE_AFTER_HELP;
    let start = help.find("Config file (TOML):\n").unwrap() + "Config file (TOML):\n".len();
    let example: String = help[start..]
        .lines()
        .map(|line| line.strip_prefix("  ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = resolve(&args(&[]), no_env, file(&example)).unwrap();
    assert_eq!(cfg.cluster.node_count(), 3);
    assert_eq!(cfg.grpc_addr, addr("0.0.0.0:7070"));
}

#[test]
fn bad_peer_lists_are_named_with_their_origin() {
    for (peers, why) in [
        ("1=a:1,2", "peer entry \"2\": no '='"),
        ("0=a:1", "node id \"0\" is not a whole number from 1"),
        ("x=a:1", "node id \"x\""),
        (
            "1=a:1,1=b:2",
            "node id 1 appears twice in the peer list (a:1 and b:2)",
        ),
        (
            "1=a:1,2=a:1",
            "address a:1 appears twice in the peer list (nodes 1 and 2)",
        ),
        ("1=a", "no port"),
        (",", "the peer list is empty"),
    ] {
        let (_, message) = cluster_error(resolve(
            &args(&["--node-id", "1", "--peers", peers]),
            no_env,
            None,
        ));
        assert!(
            message.starts_with(&format!("invalid value {peers:?} for --peers: ")),
            "{message}"
        );
        assert!(message.contains(why), "{peers}: {message}");
    }
    let (_, message) = cluster_error(resolve(
        &args(&["--node-id", "1"]),
        env(&[("CAIRN_PEERS", "1=a:1,1=a:2")]),
        None,
    ));
    assert!(
        message.contains("for environment variable CAIRN_PEERS"),
        "{message}"
    );
    let (_, message) = cluster_error(resolve(
        &args(&[]),
        no_env,
        file("[cluster]\nnode_id = 1\npeers = { 1 = \"a:1\", 0 = \"b:1\" }\n"),
    ));
    assert!(
        message.contains("[cluster] peers in config file") && message.contains("\"0\""),
        "{message}"
    );
}

#[test]
fn the_own_id_must_be_in_the_list_and_given_for_several_nodes() {
    let (err, message) = cluster_error(resolve(
        &args(&["--node-id", "4", "--peers", PEERS]),
        no_env,
        None,
    ));
    assert!(matches!(
        err,
        ClusterSpecError::NotInPeers { node_id: 4, .. }
    ));
    assert_eq!(
        message,
        "--node-id 4 with --peers: this node's id 4 is not in the peer list (its ids: 1, 2, 3)"
    );
    let (err, message) = cluster_error(resolve(&args(&["--peers", PEERS]), no_env, None));
    assert_eq!(err, ClusterSpecError::NodeIdRequired { node_count: 3 });
    assert!(message.contains("give --node-id"), "{message}");
    // A one-entry list names the node by itself.
    let cfg = resolve(&args(&["--peers", "5=127.0.0.1:7070"]), no_env, None).unwrap();
    assert_eq!(cfg.cluster.node_id(), 5);
}

#[test]
fn a_listen_address_that_disagrees_with_the_peer_list_is_refused() {
    for (grpc, why) in [
        ("10.0.0.2:7071", "the ports differ"),
        ("127.0.0.1:7070", "the IP addresses differ"),
        ("10.0.0.2:0", "port 0"),
    ] {
        let (err, message) = cluster_error(resolve(
            &args(&["--node-id", "2", "--peers", PEERS, "--grpc-addr", grpc]),
            no_env,
            None,
        ));
        assert!(matches!(err, ClusterSpecError::ListenMismatch { .. }));
        assert!(
            message.starts_with(&format!("--grpc-addr {grpc} with --peers: ")),
            "{message}"
        );
        assert!(message.contains(why), "{message}");
    }
    // A host name is not resolved: without --grpc-addr there is nothing to listen on.
    let message = error_of(resolve(
        &args(&[
            "--node-id",
            "1",
            "--peers",
            "1=cairn-1.example.com:7070,2=b:7070",
        ]),
        no_env,
        None,
    ));
    assert!(message.contains("give --grpc-addr"), "{message}");
}

#[test]
fn bad_timings_and_replication_factors_are_named() {
    for (flags, why) in [
        (
            &["--raft-election-timeout-ms", "2000..1000"][..],
            "invalid value \"2000..1000\" for --raft-election-timeout-ms",
        ),
        (
            &["--raft-election-timeout-ms", "100..200"],
            "above the heartbeat interval (250 ms)",
        ),
        (
            &["--raft-heartbeat-ms", "1000"],
            "invalid value \"1000\" for --raft-heartbeat-ms",
        ),
        (
            &["--default-replication-factor", "2"],
            "invalid value \"2\" for --default-replication-factor: default replication factor \
             \"2\" must be a whole number from 1 to the node count (1)",
        ),
        (
            &["--default-replication-factor", "0"],
            "from 1 to the node count",
        ),
    ] {
        let (_, message) = cluster_error(resolve(&args(flags), no_env, None));
        assert!(message.contains(why), "{flags:?}: {message}");
    }
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("[cluster]\nraft_heartbeat_ms = \"250\"\n"),
    ));
    assert!(
        message.contains("[cluster] raft_heartbeat_ms in config file")
            && message.contains("integer"),
        "{message}"
    );
    let message = error_of(resolve(&args(&[]), no_env, file("[cluster]\nleader = 1\n")));
    assert!(
        message.contains("unknown key `leader` in [cluster]"),
        "{message}"
    );
}

#[test]
fn the_leader_balance_interval_comes_from_flag_variable_or_file_and_zero_turns_it_off() {
    use std::time::Duration;
    let interval = |cfg: ServeConfig| cfg.cluster.leader_balance().interval;
    let peers = ["--node-id", "1", "--peers", PEERS];
    let cfg = resolve(&args(&peers), no_env, None).unwrap();
    assert_eq!(interval(cfg), Some(Duration::from_secs(10)), "the default");
    let flagged: Vec<&str> = peers
        .iter()
        .copied()
        .chain(["--leader-balance-interval-ms", "0"])
        .collect();
    assert_eq!(
        interval(resolve(&args(&flagged), no_env, None).unwrap()),
        None
    );
    let variables = env(&[("CAIRN_LEADER_BALANCE_INTERVAL_MS", "500")]);
    let cfg = resolve(&args(&peers), variables, None).unwrap();
    assert_eq!(interval(cfg), Some(Duration::from_millis(500)));
    let cfg = resolve(
        &args(&peers),
        no_env,
        file("[cluster]\nleader_balance_interval_ms = 2000\n"),
    )
    .unwrap();
    assert_eq!(interval(cfg), Some(Duration::from_secs(2)));

    let bad: Vec<&str> = peers
        .iter()
        .copied()
        .chain(["--leader-balance-interval-ms", "-5"])
        .collect();
    let (source, message) = cluster_error(resolve(&args(&bad), no_env, None));
    assert_eq!(
        source,
        ClusterSpecError::InvalidLeaderBalanceInterval {
            text: "-5".to_string()
        }
    );
    assert!(
        message.contains("--leader-balance-interval-ms"),
        "{message}"
    );
}
