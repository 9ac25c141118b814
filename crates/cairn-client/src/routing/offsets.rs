//! `ListOffsets` in a cluster: a topic's partitions have different leaders, and only a
//! partition's leader answers for it, so the lookup is split into one request per leader and
//! the partitions a node refused as not its own are asked again, after the router has learnt
//! where they went.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::{ErrorCode, ListOffsetsRequest, OffsetSpec};

use super::leader_cache::METADATA_MAX_AGE;
use super::router::{Route, Router};
use crate::error::ClientError;

/// Rounds of asking before a partition whose leader keeps moving or cannot be reached is
/// answered with the last error (about 6 s of backoff in all: an election's length).
pub const OFFSETS_ATTEMPTS: u32 = 8;
/// The first pause between rounds; it doubles up to [`OFFSETS_BACKOFF_MAX`].
const OFFSETS_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between rounds.
const OFFSETS_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What one partition's lookup gave: its offset, or the error its leader answered with.
pub(crate) type PartitionOffsets = BTreeMap<i32, Result<i64, ClientError>>;

/// The offsets `spec` finds in `partitions` of `topic` (empty: every partition), each asked
/// of its leader.
///
/// # Errors
/// A refusal of a whole request (an unknown topic, an invalid spec), or a transport failure
/// of a node when no other node can answer for its partitions. Per-partition refusals come
/// back inside the map.
pub(crate) async fn list_offsets(
    router: &Router,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<PartitionOffsets, ClientError> {
    let mut pending: BTreeSet<i32> = partitions.iter().copied().collect();
    if pending.is_empty() {
        match router.partition_count(topic, METADATA_MAX_AGE).await? {
            Some(count) => pending = (0..i32::try_from(count).unwrap_or(i32::MAX)).collect(),
            // The topic is not in the metadata: its node says why, in its own words.
            None => return ask(&router.any_node(), topic, Vec::new(), spec, timestamp_ms).await,
        }
    }
    let mut found = PartitionOffsets::new();
    for attempt in 1..=OFFSETS_ATTEMPTS {
        let mut by_leader: BTreeMap<Arc<str>, (Route, Vec<i32>)> = BTreeMap::new();
        for &partition in &pending {
            let route = router.route(topic, partition).await;
            by_leader
                .entry(Arc::clone(&route.address))
                .or_insert_with(|| (route, Vec::new()))
                .1
                .push(partition);
        }
        for (route, asked) in by_leader.into_values() {
            match ask(&route, topic, asked.clone(), spec, timestamp_ms).await {
                Ok(answers) => {
                    for (partition, answer) in answers {
                        let moved = answer.as_ref().is_err_and(|err| {
                            err.code() == Some(ErrorCode::NotLeader)
                                && router.on_error(topic, partition, &route.address, err)
                        });
                        // A partition that moved is asked again, unless this was the last round.
                        if (!moved || attempt == OFFSETS_ATTEMPTS) && pending.remove(&partition) {
                            found.insert(partition, answer);
                        }
                    }
                }
                Err(err) => {
                    let mut rerouted = false;
                    for &partition in &asked {
                        rerouted |= router.on_error(topic, partition, &route.address, &err);
                    }
                    if !rerouted || attempt == OFFSETS_ATTEMPTS {
                        return Err(err);
                    }
                }
            }
        }
        if pending.is_empty() || attempt == OFFSETS_ATTEMPTS {
            break;
        }
        let pause = OFFSETS_BACKOFF
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(OFFSETS_BACKOFF_MAX);
        tokio::time::sleep(pause).await;
    }
    Ok(found)
}

/// One `ListOffsets` to `route`'s node.
async fn ask(
    route: &Route,
    topic: &str,
    partitions: Vec<i32>,
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<PartitionOffsets, ClientError> {
    let request = ListOffsetsRequest {
        topic: topic.to_string(),
        partitions,
        spec: spec as i32,
        timestamp_ms,
    };
    let response = ConsumerClient::new(route.channel.clone())
        .list_offsets(request)
        .await?
        .into_inner();
    Ok(response
        .offsets
        .into_iter()
        .map(|answer| {
            let result = if answer.error_code == ErrorCode::None as i32 {
                Ok(answer.offset)
            } else {
                Err(ClientError::Broker {
                    code: ErrorCode::try_from(answer.error_code).unwrap_or(ErrorCode::Internal),
                    status: tonic::Code::NotFound,
                    message: answer.error_message,
                    leader: None,
                })
            };
            (answer.partition, result)
        })
        .collect())
}
