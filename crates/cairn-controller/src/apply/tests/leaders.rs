//! ReportLeader.

use super::*;
use crate::reply::Outcome;
#[test]
fn report_leader_records_leader_epoch_and_isr() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 3)).unwrap();
    let reply = metadata.apply(report(1, 2, 4, vec![2, 1])).unwrap();
    assert_eq!(reply.outcome, Outcome::LeaderRecorded);
    let partition = &metadata.topic("t").unwrap().partitions[0];
    assert_eq!(partition.leader, Some(2));
    assert_eq!(partition.leader_epoch, 4);
    assert_eq!(partition.isr, vec![2, 1]);

    // The same leader may report a new in-sync set within its epoch.
    metadata.apply(report(1, 2, 4, vec![2, 1, 3])).unwrap();
    assert_eq!(
        metadata.topic("t").unwrap().partitions[0].isr,
        vec![2, 1, 3]
    );
}

#[test]
fn report_leader_older_than_held_is_ignored() {
    let mut metadata = cluster(3);
    metadata.apply(create("t", 1, 3)).unwrap();
    metadata.apply(report(1, 2, 4, vec![2])).unwrap();
    let before = metadata.clone();
    let reply = metadata.apply(report(1, 1, 3, vec![1, 2, 3])).unwrap();
    assert_eq!(reply.outcome, Outcome::StaleLeaderReport { held_epoch: 4 });
    assert_eq!(metadata, before);
}

#[test]
fn report_leader_refusals() {
    let mut metadata = cluster(4);
    metadata.apply(create("t", 1, 3)).unwrap();
    metadata.apply(report(1, 2, 4, vec![2])).unwrap();
    let outsider = *[1, 2, 3, 4]
        .iter()
        .find(|n| {
            !metadata.topic("t").unwrap().partitions[0]
                .replicas
                .contains(n)
        })
        .unwrap();
    let cases = [
        (
            report(9, 1, 1, vec![1]),
            ControllerError::UnknownGroup { group: GroupId(9) },
        ),
        (
            report(0, 1, 1, vec![1]),
            ControllerError::UnknownGroup { group: GroupId(0) },
        ),
        (
            report(1, outsider, 5, vec![outsider]),
            ControllerError::NotAReplica {
                group: GroupId(1),
                node: outsider,
            },
        ),
        (
            report(1, 2, 5, vec![2, 77]),
            ControllerError::NotAReplica {
                group: GroupId(1),
                node: 77,
            },
        ),
        (
            report(1, 2, 5, vec![2, 2]),
            ControllerError::DuplicateIsrMember {
                group: GroupId(1),
                node: 2,
            },
        ),
        (
            report(1, 2, 5, vec![]),
            ControllerError::LeaderNotInIsr {
                group: GroupId(1),
                leader: 2,
            },
        ),
        (
            report(1, 1, 4, vec![1]),
            ControllerError::ConflictingLeader {
                group: GroupId(1),
                epoch: 4,
                held_leader: 2,
                reported_leader: 1,
            },
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(refused(&mut metadata, command), expected);
    }
}

#[test]
fn report_leader_for_a_deleted_topic_is_refused() {
    let mut metadata = cluster(1);
    metadata.apply(create("t", 1, 1)).unwrap();
    metadata
        .apply(Command::DeleteTopic { name: "t".into() })
        .unwrap();
    assert_eq!(
        refused(&mut metadata, report(1, 1, 1, vec![1])),
        ControllerError::UnknownGroup { group: GroupId(1) }
    );
}
