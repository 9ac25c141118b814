use super::*;
use crate::cluster_spec::{RaftTimings, parse_peers};

fn single(node_id: u64) -> ClusterSpec {
    ClusterSpec::single_node(node_id).unwrap()
}

fn three_nodes_as(node_id: u64) -> ClusterSpec {
    let peers = parse_peers("1=a:1,2=a:2,3=a:3").unwrap();
    ClusterSpec::new(Some(node_id), peers, RaftTimings::default(), None).unwrap()
}

fn meta(dir: &Path) -> PathBuf {
    dir.join(NODE_META_FILE)
}

#[test]
fn identities_round_trip_through_their_bytes() {
    for identity in [
        NodeMeta {
            node_id: 1,
            cluster_id: None,
        },
        NodeMeta {
            node_id: MAX_NODE_ID,
            cluster_id: Some(ClusterId([0xab; 16])),
        },
    ] {
        let bytes = identity.encode();
        assert_eq!(&bytes[..8], b"CAIRNNOD");
        assert_eq!(NodeMeta::decode(&bytes), Ok(identity));
    }
    assert_eq!(
        ClusterId([0x0f; 16]).to_string(),
        "0f".repeat(16),
        "shown as hex"
    );
}

#[test]
fn every_byte_of_the_file_is_checked() {
    let bytes = NodeMeta {
        node_id: 7,
        cluster_id: Some(ClusterId([1; 16])),
    }
    .encode();
    for position in 0..NODE_META_BYTES {
        let mut damaged = bytes;
        damaged[position] ^= 0x40;
        assert!(
            NodeMeta::decode(&damaged).is_err(),
            "a flip at byte {position} went unnoticed"
        );
    }
    assert!(
        NodeMeta::decode(&bytes[..39])
            .unwrap_err()
            .contains("39 bytes")
    );
    assert!(NodeMeta::decode(&[]).is_err());
}

#[test]
fn fields_a_good_crc_cannot_vouch_for_are_refused() {
    let reseal = |mut bytes: [u8; NODE_META_BYTES]| {
        let crc = crc32c::crc32c(&bytes[..CRC_POS]);
        bytes[CRC_POS..].copy_from_slice(&crc.to_be_bytes());
        bytes
    };
    let good = NodeMeta {
        node_id: 7,
        cluster_id: None,
    }
    .encode();
    let mut version = good;
    version[9] = 2;
    assert!(
        NodeMeta::decode(&reseal(version))
            .unwrap_err()
            .contains("version 2")
    );
    let mut flags = good;
    flags[11] = 0x02;
    assert!(
        NodeMeta::decode(&reseal(flags))
            .unwrap_err()
            .contains("flags")
    );
    let mut node_zero = good;
    node_zero[12..20].fill(0);
    assert!(
        NodeMeta::decode(&reseal(node_zero))
            .unwrap_err()
            .contains("node id 0")
    );
    let mut stray_cluster = good;
    stray_cluster[20] = 1;
    assert!(
        NodeMeta::decode(&reseal(stray_cluster))
            .unwrap_err()
            .contains("flag is clear")
    );
}

#[test]
fn an_empty_directory_is_claimed_by_any_node() {
    let dir = tempfile::tempdir().unwrap();
    // A torn write of an earlier start does not count as data.
    std::fs::write(dir.path().join(NODE_META_TMP_FILE), b"torn").unwrap();
    let identity = check_or_claim(dir.path(), &three_nodes_as(2)).unwrap();
    assert_eq!(identity.node_id, 2);
    assert_eq!(read(dir.path()).unwrap(), Some(identity));
    // Claimed once, it is simply checked afterwards.
    assert_eq!(
        check_or_claim(dir.path(), &three_nodes_as(2)).unwrap(),
        identity
    );
}

#[test]
fn data_without_node_meta_is_adopted_by_a_cluster_of_one_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.topic"), "partitions=1\n").unwrap();
    let err = check_or_claim(dir.path(), &three_nodes_as(1)).unwrap_err();
    assert!(
        matches!(err, NodeMetaError::UnclaimedData { node_count: 3, .. }),
        "{err}"
    );
    assert!(err.is_config_mistake());
    assert!(!meta(dir.path()).exists(), "a refusal writes nothing");
    let identity = check_or_claim(dir.path(), &single(4)).unwrap();
    assert_eq!(identity.node_id, 4);
    assert!(meta(dir.path()).exists());
}

#[test]
fn a_changed_node_id_is_refused_naming_both_ids_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    check_or_claim(dir.path(), &single(1)).unwrap();
    let before = std::fs::read(meta(dir.path())).unwrap();
    let err = check_or_claim(dir.path(), &single(2)).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            NodeMetaError::NodeIdMismatch {
                stored: 1,
                configured: 2,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("node.meta") && message.contains("belongs to node 1"));
    assert!(message.contains("started as node 2"), "{message}");
    assert_eq!(
        std::fs::read(meta(dir.path())).unwrap(),
        before,
        "left as it was"
    );
}

#[test]
fn an_unreadable_node_meta_stops_the_start_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.topic"), "partitions=1\n").unwrap();
    for bytes in [
        &b"garbage"[..],
        &[0u8; NODE_META_BYTES][..],
        &[7u8; 4096][..],
    ] {
        std::fs::write(meta(dir.path()), bytes).unwrap();
        let err = check_or_claim(dir.path(), &single(1)).unwrap_err();
        assert!(matches!(err, NodeMetaError::Unreadable { .. }), "{err}");
        assert!(!err.is_config_mistake());
        assert!(err.to_string().contains("node.meta is unreadable"), "{err}");
        assert_eq!(std::fs::read(meta(dir.path())).unwrap(), bytes);
        assert!(dir.path().join("orders.topic").exists());
    }
}

#[test]
fn the_cluster_id_is_set_once() {
    let dir = tempfile::tempdir().unwrap();
    check_or_claim(dir.path(), &single(3)).unwrap();
    let first = ClusterId([9; 16]);
    let set = set_cluster_id(dir.path(), first).unwrap();
    assert_eq!(set.cluster_id, Some(first));
    assert_eq!(read(dir.path()).unwrap(), Some(set));
    assert_eq!(
        set_cluster_id(dir.path(), first).unwrap(),
        set,
        "idempotent"
    );
    let err = set_cluster_id(dir.path(), ClusterId([8; 16])).unwrap_err();
    assert!(
        matches!(err, NodeMetaError::ClusterIdMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&first.to_string()));
    // The node id check still holds with a cluster id set.
    assert!(check_or_claim(dir.path(), &single(3)).is_ok());
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        set_cluster_id(empty.path(), first),
        Err(NodeMetaError::Io { .. })
    ));
}
