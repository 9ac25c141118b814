use super::*;

fn peers(text: &str) -> BTreeMap<u64, String> {
    parse_peers(text).unwrap()
}

fn three() -> BTreeMap<u64, String> {
    peers("1=10.0.0.1:7070,2=10.0.0.2:7070,3=cairn-3.example.com:7070")
}

#[test]
fn a_peer_list_parses_with_spaces_and_empty_entries() {
    let parsed = peers(" 2=b:2 ,, 1=a:1,3=[::1]:3");
    let expected: Vec<(u64, &str)> = vec![(1, "a:1"), (2, "b:2"), (3, "[::1]:3")];
    let got: Vec<(u64, &str)> = parsed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(got, expected);
}

#[test]
fn malformed_peer_entries_are_named() {
    for (text, named, why) in [
        ("1=a:1,2", "\"2\"", "no '='"),
        ("1=a", "\"1=a\"", "no port"),
        ("1=a:0", "\"1=a:0\"", "from 1 to 65535"),
        ("1=a:x", "\"1=a:x\"", "from 1 to 65535"),
        ("1=:7070", "\"1=:7070\"", "no host"),
        ("1=http://a:1", "\"1=http://a:1\"", "URL scheme"),
        ("1=::1:7070", "\"1=::1:7070\"", "in brackets"),
        ("1=a b:1", "\"1=a b:1\"", "letters, digits"),
    ] {
        let err = parse_peers(text).unwrap_err();
        assert!(
            matches!(err, ClusterSpecError::MalformedPeer { .. }),
            "{text}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(named) && message.contains(why),
            "{text}: {message}"
        );
    }
}

#[test]
fn node_ids_of_zero_negative_or_words_are_refused() {
    for id in [
        "0",
        "-1",
        "x",
        "",
        "1.5",
        "2147483648",
        "99999999999999999999",
    ] {
        let err = parse_peers(&format!("{id}=a:1")).unwrap_err();
        assert_eq!(
            err,
            ClusterSpecError::InvalidNodeId {
                text: id.to_string()
            },
            "{id}"
        );
        assert!(err.to_string().contains(&format!("{id:?}")), "{err}");
    }
    assert_eq!(parse_node_id("2147483647"), Ok(MAX_NODE_ID));
}

#[test]
fn duplicate_ids_and_addresses_are_named() {
    assert_eq!(
        parse_peers("1=a:1,2=b:2,1=c:3").unwrap_err(),
        ClusterSpecError::DuplicateNodeId {
            node_id: 1,
            first: "a:1".to_string(),
            second: "c:3".to_string()
        }
    );
    let err = parse_peers("1=host-a:1,2=HOST-A:1").unwrap_err();
    assert_eq!(
        err,
        ClusterSpecError::DuplicateAddress {
            address: "HOST-A:1".to_string(),
            first: 1,
            second: 2
        }
    );
    assert!(err.to_string().contains("nodes 1 and 2"), "{err}");
    // The same host on another port is another node (several nodes on one machine).
    assert_eq!(peers("1=a:1,2=a:2").len(), 2);
}

#[test]
fn an_empty_or_oversized_list_is_refused() {
    assert_eq!(
        parse_peers(" , ").unwrap_err(),
        ClusterSpecError::EmptyPeers
    );
    let long: Vec<String> = (1..=MAX_PEERS as u64 + 1)
        .map(|id| format!("{id}=h:{id}"))
        .collect();
    assert_eq!(
        parse_peers(&long.join(",")).unwrap_err(),
        ClusterSpecError::TooManyPeers {
            count: MAX_PEERS + 1
        }
    );
}

#[test]
fn the_default_is_a_cluster_of_one_as_before() {
    let spec = ClusterSpec::default();
    assert_eq!(spec.node_id(), 1);
    assert!(spec.is_single_node() && spec.peers().is_empty());
    assert_eq!(spec.own_address(), None);
    assert_eq!(spec.default_replication_factor(), 1);
    assert_eq!(spec.timings(), RaftTimings::default());
    assert_eq!(
        ClusterSpec::new(None, BTreeMap::new(), RaftTimings::default(), None),
        Ok(spec)
    );
    let named = ClusterSpec::single_node(7).unwrap();
    assert_eq!((named.node_id(), named.wire_node_id()), (7, 7));
    assert!(ClusterSpec::single_node(0).is_err());
}

#[test]
fn the_own_id_must_be_listed_and_given_for_several_nodes() {
    let timings = RaftTimings::default();
    let err = ClusterSpec::new(Some(4), three(), timings, None).unwrap_err();
    assert_eq!(
        err,
        ClusterSpecError::NotInPeers {
            node_id: 4,
            ids: "1, 2, 3".to_string()
        }
    );
    assert_eq!(
        ClusterSpec::new(None, three(), timings, None).unwrap_err(),
        ClusterSpecError::NodeIdRequired { node_count: 3 }
    );
    // A list of one names the node itself.
    let alone = ClusterSpec::new(None, peers("5=a:1"), timings, None).unwrap();
    assert_eq!((alone.node_id(), alone.own_address()), (5, Some("a:1")));
    assert!(alone.is_single_node());
    let spec = ClusterSpec::new(Some(2), three(), timings, None).unwrap();
    assert_eq!(spec.own_address(), Some("10.0.0.2:7070"));
    assert_eq!(spec.node_count(), 3);
}

#[test]
fn the_default_replication_factor_is_at_most_three_and_fits_the_cluster() {
    let timings = RaftTimings::default();
    let five = peers("1=a:1,2=a:2,3=a:3,4=a:4,5=a:5");
    let spec = ClusterSpec::new(Some(1), five.clone(), timings, None).unwrap();
    assert_eq!(spec.default_replication_factor(), 3);
    let two = peers("1=a:1,2=a:2");
    let spec = ClusterSpec::new(Some(1), two.clone(), timings, None).unwrap();
    assert_eq!(spec.default_replication_factor(), 2);
    let spec = ClusterSpec::new(Some(1), five, timings, Some("5")).unwrap();
    assert_eq!(spec.default_replication_factor(), 5);
    for bad in ["0", "3", "-1", "x"] {
        assert_eq!(
            ClusterSpec::new(Some(1), two.clone(), timings, Some(bad)).unwrap_err(),
            ClusterSpecError::InvalidDefaultReplicationFactor {
                text: bad.to_string(),
                node_count: 2
            }
        );
    }
}

#[test]
fn a_replication_factor_above_the_node_count_or_below_one_is_refused() {
    let one = ClusterSpec::default();
    assert_eq!(one.replication_factor(0), Ok(1), "0 is the default");
    assert_eq!(one.replication_factor(1), Ok(1));
    for requested in [2, -1, i64::MAX, i64::MIN] {
        let err = one.replication_factor(requested).unwrap_err();
        assert_eq!(
            err,
            ClusterSpecError::InvalidReplicationFactor {
                requested,
                node_count: 1
            }
        );
    }
    let message = one.replication_factor(2).unwrap_err().to_string();
    assert!(
        message.contains("replication factor 2") && message.contains("1 node "),
        "{message}"
    );
    let spec = ClusterSpec::new(Some(1), three(), RaftTimings::default(), None).unwrap();
    assert_eq!(spec.replication_factor(3), Ok(3));
    assert!(spec.replication_factor(4).is_err());
}

#[test]
fn raft_timings_default_and_parse() {
    let defaults = RaftTimings::parse(None, None).unwrap();
    assert_eq!(defaults, RaftTimings::default());
    assert_eq!(
        (
            defaults.election_timeout_min_ms(),
            defaults.election_timeout_max_ms(),
            defaults.heartbeat_ms()
        ),
        (1000, 2000, 250)
    );
    let fast = RaftTimings::parse(Some(" 150..300 "), Some("50")).unwrap();
    assert_eq!(
        fast.to_string(),
        "election timeout 150..300 ms, heartbeat 50 ms"
    );
}

#[test]
fn bad_raft_timings_say_why() {
    for (election, heartbeat, why) in [
        (Some("1000"), None, "MIN..MAX"),
        (Some("a..b"), None, "whole milliseconds"),
        (Some("0..10"), Some("1"), "at least 1 ms"),
        (Some("2000..1000"), None, "below the upper end"),
        (Some("1000..1000"), None, "below the upper end"),
        (Some("1000..600001"), None, "at most 600000"),
        (
            Some("100..200"),
            None,
            "above the heartbeat interval (250 ms)",
        ),
        (None, Some("0"), "from 1"),
        (None, Some("x"), "from 1"),
        (
            None,
            Some("1000"),
            "below the election timeout's lower end (1000 ms)",
        ),
    ] {
        let err = RaftTimings::parse(election, heartbeat).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(why),
            "{election:?} {heartbeat:?}: {message}"
        );
    }
}

#[test]
fn the_listen_address_must_be_the_listed_one() {
    let spec = ClusterSpec::new(Some(3), three(), RaftTimings::default(), None).unwrap();
    let listen = |text: &str| text.parse::<SocketAddr>().unwrap();
    // A host name is not resolved: the port decides.
    assert!(spec.check_listen_address(listen("0.0.0.0:7070")).is_ok());
    assert!(spec.check_listen_address(listen("10.9.9.9:7070")).is_ok());
    let err = spec
        .check_listen_address(listen("0.0.0.0:7071"))
        .unwrap_err();
    assert!(err.to_string().contains("the ports differ"), "{err}");
    assert!(
        err.to_string()
            .contains("cairn-3.example.com:7070 (node 3)")
    );
    let spec = ClusterSpec::new(Some(1), three(), RaftTimings::default(), None).unwrap();
    assert!(spec.check_listen_address(listen("10.0.0.1:7070")).is_ok());
    assert!(spec.check_listen_address(listen("0.0.0.0:7070")).is_ok());
    assert!(spec.check_listen_address(listen("[::]:7070")).is_ok());
    let err = spec
        .check_listen_address(listen("127.0.0.1:7070"))
        .unwrap_err();
    assert!(err.to_string().contains("IP addresses differ"), "{err}");
    let err = spec.check_listen_address(listen("10.0.0.1:0")).unwrap_err();
    assert!(err.to_string().contains("port 0"), "{err}");
    assert_eq!(spec.own_socket_addr(), Some(listen("10.0.0.1:7070")));
    // A cluster of one without a list checks nothing.
    assert!(
        ClusterSpec::default()
            .check_listen_address(listen("127.0.0.1:0"))
            .is_ok()
    );
}
