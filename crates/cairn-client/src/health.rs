//! Asking one broker whether it serves, through the standard `grpc.health.v1.Health/Check`
//! that load balancers, Kubernetes probes and container health checks speak. One broker per
//! call, unlike the other clients' "first that answers": a health check must say which broker
//! of a list is down, not that some other one is up.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::connection::{Timeouts, broker_addresses, connect_with};
use crate::error::ClientError;

/// What a broker answered to a health check of the server as a whole (service name `""`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// It accepts requests.
    Serving,
    /// It answers but does not accept requests (starting or shutting down).
    NotServing,
    /// It answered with a status this client does not know.
    Unknown,
}

impl HealthStatus {
    /// The status as `grpc.health.v1` spells it, for output.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Serving => "SERVING",
            HealthStatus::NotServing => "NOT_SERVING",
            HealthStatus::Unknown => "UNKNOWN",
        }
    }
}

/// Asks the broker at `broker` (exactly one `host:port`) for the health of the server as a
/// whole.
///
/// The call has no deadline of its own beyond the connect timeout: a caller that must not
/// wait on a broker that accepts connections but never answers wraps it in its own timeout.
///
/// # Errors
/// [`ClientError::InvalidArgument`] unless `broker` is one well-formed address;
/// [`ClientError::Connect`] when it cannot be reached; [`ClientError::Broker`] when it answers
/// the check with an error (for example a server without the health service).
pub async fn check_health(broker: &str) -> Result<HealthStatus, ClientError> {
    check_health_with(broker, Timeouts::default()).await
}

/// As [`check_health`], connecting with `timeouts` (its deadlines and TLS).
///
/// # Errors
/// As [`check_health`].
pub async fn check_health_with(
    broker: &str,
    timeouts: Timeouts,
) -> Result<HealthStatus, ClientError> {
    let addresses = broker_addresses(broker)?;
    if addresses.len() != 1 {
        return Err(ClientError::InvalidArgument(format!(
            "a health check asks one broker, not {} ({broker:?})",
            addresses.len()
        )));
    }
    let mut client = HealthClient::new(connect_with(broker, timeouts).await?);
    let answer = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    Ok(match ServingStatus::try_from(answer.status) {
        Ok(ServingStatus::Serving) => HealthStatus::Serving,
        Ok(ServingStatus::NotServing) => HealthStatus::NotServing,
        Ok(ServingStatus::Unknown | ServingStatus::ServiceUnknown) | Err(_) => {
            HealthStatus::Unknown
        }
    })
}

/// A partition a broker reports as not well (`cairn.v1.Metadata/GetNodeHealth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTrouble {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// `STOPPED` (takes no requests; the node is NOT_SERVING) or `DAMAGED` (serves, but reads of
    /// its damaged batches answer CORRUPT_MESSAGE).
    pub state: &'static str,
    /// Why, in the broker's words.
    pub reason: String,
    /// For damage: the segment file and position of the first damaged batch found.
    pub location: String,
    /// For damage: the lowest offset the damaged batch may hold.
    pub offset: i64,
    /// Reads answered CORRUPT_MESSAGE since the broker started.
    pub corrupt_reads: u64,
}

/// Asks the broker at `broker` (one `host:port`) which of its partitions are stopped or
/// damaged. Empty when all are well.
///
/// # Errors
/// As [`check_health`]; a broker older than this call answers UNIMPLEMENTED.
pub async fn node_health(broker: &str) -> Result<Vec<PartitionTrouble>, ClientError> {
    node_health_with(broker, Timeouts::default()).await
}

/// As [`node_health`], connecting with `timeouts` (its deadlines and TLS).
///
/// # Errors
/// As [`node_health`].
pub async fn node_health_with(
    broker: &str,
    timeouts: Timeouts,
) -> Result<Vec<PartitionTrouble>, ClientError> {
    use cairn_proto::v1::metadata_client::MetadataClient;
    use cairn_proto::v1::{NodeHealthRequest, PartitionState};

    let addresses = broker_addresses(broker)?;
    if addresses.len() != 1 {
        return Err(ClientError::InvalidArgument(format!(
            "a health check asks one broker, not {} ({broker:?})",
            addresses.len()
        )));
    }
    let mut client = MetadataClient::new(connect_with(broker, timeouts).await?);
    let answer = client
        .get_node_health(NodeHealthRequest {})
        .await?
        .into_inner();
    Ok(answer
        .partitions
        .into_iter()
        .map(|p| PartitionTrouble {
            state: match p.state() {
                PartitionState::Stopped => "STOPPED",
                PartitionState::Damaged => "DAMAGED",
                PartitionState::Unspecified => "UNKNOWN",
            },
            topic: p.topic,
            partition: p.partition,
            reason: p.reason,
            location: p.location,
            offset: p.offset,
            corrupt_reads: p.corrupt_reads,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_list_or_nothing_is_refused_before_anything_is_sent() {
        for bad in ["", "a:1,b:2"] {
            let err = check_health(bad).await.unwrap_err();
            assert!(
                matches!(err, ClientError::InvalidArgument(_)),
                "{bad:?}: {err}"
            );
        }
    }
}
