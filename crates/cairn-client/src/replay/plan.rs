//! Where each partition's replay starts and ends: from the earliest offsets (or a checkpoint)
//! to the high watermarks captured at start. Pure, so that every way a checkpoint can fail to
//! fit its topic is a unit test; the lookups themselves are the caller's.

use std::collections::BTreeMap;

use super::checkpoint::Checkpoint;
use crate::error::ClientError;

/// One partition's range: offsets `[start, end)` are replayed (`end` is the high watermark
/// captured when the replay began).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartitionPlan {
    /// The partition.
    pub(crate) partition: i32,
    /// The first offset to read.
    pub(crate) start: i64,
    /// The captured end.
    pub(crate) end: i64,
}

/// The range of every partition of `topic`, given its log start offsets and high watermarks
/// (which must name the same partitions, 0 to n-1) and an optional checkpoint.
///
/// # Errors
/// [`ClientError::CheckpointTopicMismatch`], [`ClientError::CheckpointUnknownPartition`] or
/// [`ClientError::CheckpointOffsetOutOfRange`] when the checkpoint does not fit; and
/// [`ClientError::InvalidArgument`] if the broker's two answers disagree on the partitions.
pub(crate) fn plan(
    topic: &str,
    earliest: &BTreeMap<i32, i64>,
    latest: &BTreeMap<i32, i64>,
    checkpoint: Option<&Checkpoint>,
) -> Result<Vec<PartitionPlan>, ClientError> {
    if earliest.len() != latest.len() || earliest.keys().ne(latest.keys()) {
        return Err(ClientError::InvalidArgument(format!(
            "the broker listed different partitions of {topic} for the earliest and latest offsets"
        )));
    }
    let partition_count = i32::try_from(earliest.len()).unwrap_or(i32::MAX);
    if let Some(checkpoint) = checkpoint {
        if checkpoint.topic() != topic {
            return Err(ClientError::CheckpointTopicMismatch {
                topic: topic.to_string(),
                checkpoint_topic: checkpoint.topic().to_string(),
            });
        }
        if let Some(&partition) = checkpoint
            .offsets()
            .keys()
            .find(|p| !earliest.contains_key(p))
        {
            return Err(ClientError::CheckpointUnknownPartition {
                topic: topic.to_string(),
                partition,
                partition_count,
            });
        }
    }
    let mut plans = Vec::with_capacity(earliest.len());
    for (&partition, &log_start) in earliest {
        let high_watermark = latest.get(&partition).copied().unwrap_or(log_start);
        let start = match checkpoint.and_then(|c| c.offset(partition)) {
            Some(offset) if offset < log_start || offset > high_watermark => {
                return Err(ClientError::CheckpointOffsetOutOfRange {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    log_start,
                    high_watermark,
                });
            }
            Some(offset) => offset,
            None => log_start,
        };
        plans.push(PartitionPlan {
            partition,
            start,
            end: high_watermark.max(start),
        });
    }
    Ok(plans)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn offsets(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn without_a_checkpoint_every_partition_runs_from_its_log_start_to_its_watermark() {
        let plans = plan(
            "t",
            &offsets(&[(0, 0), (1, 5)]),
            &offsets(&[(0, 10), (1, 5)]),
            None,
        )
        .unwrap();
        assert_eq!(
            plans,
            [
                PartitionPlan {
                    partition: 0,
                    start: 0,
                    end: 10
                },
                PartitionPlan {
                    partition: 1,
                    start: 5,
                    end: 5
                },
            ]
        );
    }

    #[test]
    fn a_checkpoint_moves_the_start_of_the_partitions_it_names() {
        let checkpoint = Checkpoint::new("t", offsets(&[(1, 7)])).unwrap();
        let plans = plan(
            "t",
            &offsets(&[(0, 0), (1, 0)]),
            &offsets(&[(0, 10), (1, 10)]),
            Some(&checkpoint),
        )
        .unwrap();
        assert_eq!(plans[0].start, 0);
        assert_eq!(plans[1].start, 7);
        // At the watermark exactly: nothing left to read, and not an error.
        let done = Checkpoint::new("t", offsets(&[(0, 10)])).unwrap();
        let plans = plan("t", &offsets(&[(0, 0)]), &offsets(&[(0, 10)]), Some(&done)).unwrap();
        assert_eq!(
            plans[0],
            PartitionPlan {
                partition: 0,
                start: 10,
                end: 10
            }
        );
    }

    #[test]
    fn a_checkpoint_that_does_not_fit_is_refused_with_a_typed_error() {
        let earliest = offsets(&[(0, 5), (1, 0)]);
        let latest = offsets(&[(0, 10), (1, 10)]);
        let other = Checkpoint::new("u", BTreeMap::new()).unwrap();
        assert!(matches!(
            plan("t", &earliest, &latest, Some(&other)),
            Err(ClientError::CheckpointTopicMismatch { .. })
        ));
        let unknown = Checkpoint::new("t", offsets(&[(2, 0)])).unwrap();
        assert!(matches!(
            plan("t", &earliest, &latest, Some(&unknown)),
            Err(ClientError::CheckpointUnknownPartition {
                partition: 2,
                partition_count: 2,
                ..
            })
        ));
        for offset in [4, 11] {
            let out = Checkpoint::new("t", offsets(&[(0, offset)])).unwrap();
            assert!(matches!(
                plan("t", &earliest, &latest, Some(&out)),
                Err(ClientError::CheckpointOffsetOutOfRange {
                    partition: 0,
                    log_start: 5,
                    high_watermark: 10,
                    ..
                })
            ));
        }
    }
}
