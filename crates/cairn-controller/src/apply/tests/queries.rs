//! The queries and the snapshot of a state built by commands.

use super::*;
#[test]
fn replicas_of_lists_what_a_node_hosts_in_group_order() {
    let mut metadata = cluster(3);
    metadata.apply(create("b", 3, 2)).unwrap();
    metadata.apply(create("a", 3, 2)).unwrap();
    for node in 1..=3 {
        let hosted = metadata.replicas_of(node);
        assert_eq!(hosted.len(), 4, "node {node}: 12 replicas over 3 nodes");
        assert!(hosted.windows(2).all(|w| w[0].group < w[1].group));
        for assignment in &hosted {
            assert!(assignment.replicas.contains(&node));
            let found = metadata.partition_of_group(assignment.group).unwrap();
            assert_eq!(found.topic, assignment.topic);
            assert_eq!(found.partition, assignment.partition);
        }
    }
    assert!(metadata.replicas_of(9).is_empty());
}

#[test]
fn snapshot_round_trips_and_refuses_damage() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 3, 2)).unwrap();
    let leader = metadata.topic("t").unwrap().partitions[1].replicas[1];
    metadata.apply(report(2, leader, 7, vec![leader])).unwrap();
    metadata
        .apply(Command::AllocateProducerIds {
            node: 3,
            block_len: 5,
        })
        .unwrap();
    let bytes = metadata.to_snapshot();
    assert_eq!(ClusterMetadata::from_snapshot(&bytes).unwrap(), metadata);

    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(r#"{"v":1,"metadata":{"cluster_id":"c1","#),
        "{text}"
    );
    let newer = text.replacen(r#"{"v":1"#, r#"{"v":2"#, 1);
    assert!(matches!(
        ClusterMetadata::from_snapshot(newer.as_bytes()),
        Err(ControllerError::UnsupportedVersion { found: 2, .. })
    ));
    let truncated = &text.as_bytes()[..text.len() / 2];
    assert!(matches!(
        ClusterMetadata::from_snapshot(truncated),
        Err(ControllerError::Decode { .. })
    ));
    // Group 2's id also given to group 1: valid JSON, broken invariant.
    let reused = text.replacen(r#""group":1,"#, r#""group":2,"#, 1);
    assert_ne!(reused, text);
    assert!(matches!(
        ClusterMetadata::from_snapshot(reused.as_bytes()),
        Err(ControllerError::CorruptSnapshot { .. })
    ));
}
