//! `ClientError`: what a call to Cairn can fail with. A failure the broker reports carries its
//! stable [`ErrorCode`] (from the status's `google.rpc.ErrorInfo` reason), so callers branch on
//! the code, never on message text.

use std::time::Duration;

use cairn_codec::batch::BatchError;
use cairn_proto::v1::ErrorCode;
use tonic_types::StatusExt;

/// An error from the Cairn client.
///
/// `Clone`, because one failed request fails every record of its batch and each record's
/// delivery result carries the error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker refused or failed the call.
    #[error("{message} ({code:?})")]
    Broker {
        /// The stable error code (`ErrorCode::Internal` if the broker sent none).
        code: ErrorCode,
        /// The gRPC status code.
        status: tonic::Code,
        /// The broker's explanation.
        message: String,
        /// For `NotLeader`: the leader's address; for `NotCoordinator`: the coordinator's
        /// (`host:port`, from the status's ErrorInfo metadata "leader", when the node knew it).
        leader: Option<String>,
    },
    /// No broker of the list could be reached: each address was tried once, in order, each
    /// within the connect timeout.
    #[error("cannot reach a broker at {}", show_attempts(attempts))]
    Connect {
        /// Every address tried, in order, with why it failed.
        attempts: Vec<ConnectAttempt>,
    },
    /// A produced record was not acknowledged within the producer's delivery timeout
    /// (retries included). It may or may not have been written.
    #[error("record not acknowledged within the delivery timeout of {timeout:?} ({attempts} attempts{})", last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    DeliveryTimeout {
        /// The producer's delivery timeout.
        timeout: Duration,
        /// How many times its batch was sent.
        attempts: u32,
        /// The last failure, if the batch was ever sent and answered.
        last_error: Option<Box<ClientError>>,
    },
    /// The producer was closed, or its background task stopped, before the record was
    /// acknowledged.
    #[error("the producer is closed")]
    Closed,
    /// An argument is invalid before anything is sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A TLS file (CA, client certificate or key) cannot be used.
    #[error("TLS file {path}: {reason}")]
    Tls {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// Fetched record batches failed the client's own checks (framing, CRC-32C, header
    /// consistency, a malformed record, decompression): the bytes were damaged on the way or
    /// the broker served a bad batch. Nothing from the damaged batch was handed out.
    #[error("corrupt data fetched from {topic}/{partition} at offset {offset}: {source}")]
    CorruptBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset the fetch asked for.
        offset: i64,
        /// What is wrong with the bytes.
        #[source]
        source: BatchError,
    },
    /// A checkpoint's text is not in the checkpoint format (see `Checkpoint::parse`).
    #[error("line {line}: {reason}")]
    MalformedCheckpoint {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint was taken on another topic than the one it is applied to.
    #[error("the checkpoint is for topic {checkpoint_topic:?}, not {topic:?}")]
    CheckpointTopicMismatch {
        /// The topic being read.
        topic: String,
        /// The topic the checkpoint names.
        checkpoint_topic: String,
    },
    /// A checkpoint names a partition the topic does not have.
    #[error("the checkpoint names partition {partition}, but topic {topic} has {partition_count} partitions (0 to {})", partition_count - 1)]
    CheckpointUnknownPartition {
        /// The topic.
        topic: String,
        /// The partition the checkpoint names.
        partition: i32,
        /// How many partitions the topic has.
        partition_count: i32,
    },
    /// A checkpoint's offset for a partition is outside what the partition holds now: below its
    /// log start (retention deleted those records) or past its high watermark (the checkpoint
    /// is from another incarnation of the topic).
    #[error(
        "the checkpoint's offset {offset} for {topic}/{partition} is out of range: the partition holds offsets {log_start} to {high_watermark}"
    )]
    CheckpointOffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The checkpoint's offset.
        offset: i64,
        /// The partition's log start offset.
        log_start: i64,
        /// The partition's high watermark.
        high_watermark: i64,
    },
}

/// One failed attempt to connect to a broker of the bootstrap list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectAttempt {
    /// The address, `host:port`.
    pub address: String,
    /// Why it failed: the transport error and its causes, on one line.
    pub reason: String,
}

fn show_attempts(attempts: &[ConnectAttempt]) -> String {
    let shown: Vec<String> = attempts
        .iter()
        .map(|attempt| format!("{} ({})", attempt.address, attempt.reason))
        .collect();
    shown.join(", ")
}

impl ClientError {
    /// True when the same call may succeed if retried (a full disk or queue, a timeout, a broker
    /// that is starting or moving leadership, a group coordinator that moved, is being elected
    /// or is loading the group). A group member's refusals (`UnknownMemberId`,
    /// `FencedMemberEpoch`, `StaleMemberEpoch`) count too: a [`crate::GroupConsumer`] rejoins by
    /// itself (as it must after its coordinator moved, since a new coordinator does not know
    /// it), and its next commit, under the new member epoch, may succeed. The refused commit's
    /// offsets are not committed; the records since the last commit are read again.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, status, .. } => {
                matches!(
                    code,
                    ErrorCode::DiskFull
                        | ErrorCode::Throttled
                        | ErrorCode::RequestTimedOut
                        | ErrorCode::NotLeader
                        | ErrorCode::BrokerNotAvailable
                        | ErrorCode::NotCoordinator
                        | ErrorCode::CoordinatorNotAvailable
                        | ErrorCode::CoordinatorLoadInProgress
                        | ErrorCode::UnknownMemberId
                        | ErrorCode::FencedMemberEpoch
                        | ErrorCode::StaleMemberEpoch
                ) || matches!(
                    status,
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                )
            }
            ClientError::Connect { .. } => true,
            ClientError::InvalidArgument(_)
            | ClientError::Tls { .. }
            | ClientError::DeliveryTimeout { .. }
            | ClientError::Closed
            | ClientError::CorruptBatch { .. }
            | ClientError::MalformedCheckpoint { .. }
            | ClientError::CheckpointTopicMismatch { .. }
            | ClientError::CheckpointUnknownPartition { .. }
            | ClientError::CheckpointOffsetOutOfRange { .. } => false,
        }
    }

    /// True when the broker may have carried out the call although it answered with this error
    /// (a lost answer or an expired deadline), as opposed to a refusal that wrote nothing.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            // A typed refusal (a code other than these) means the broker wrote nothing; a
            // timeout, or a status with no code (transport failure), leaves it open.
            ClientError::Broker { code, status, .. } => {
                *code == ErrorCode::RequestTimedOut
                    || *code == ErrorCode::BrokerNotAvailable
                        && matches!(
                            status,
                            tonic::Code::Unavailable
                                | tonic::Code::DeadlineExceeded
                                | tonic::Code::Cancelled
                                | tonic::Code::Unknown
                                | tonic::Code::Internal
                        )
            }
            ClientError::DeliveryTimeout { .. } => true,
            ClientError::Connect { .. }
            | ClientError::InvalidArgument(_)
            | ClientError::Tls { .. }
            | ClientError::Closed
            | ClientError::CorruptBatch { .. }
            | ClientError::MalformedCheckpoint { .. }
            | ClientError::CheckpointTopicMismatch { .. }
            | ClientError::CheckpointUnknownPartition { .. }
            | ClientError::CheckpointOffsetOutOfRange { .. } => false,
        }
    }

    /// An error found by the client itself, with the code the broker would have used.
    pub(crate) fn local(code: ErrorCode, message: impl Into<String>) -> ClientError {
        ClientError::Broker {
            code,
            status: tonic::Code::InvalidArgument,
            message: message.into(),
            leader: None,
        }
    }

    /// The same error, its message prefixed with `topic/partition: ` when the broker's own
    /// message may not say which partition it is about (an offset out of range, say).
    pub(crate) fn in_partition(self, topic: &str, partition: i32) -> ClientError {
        match self {
            ClientError::Broker {
                code,
                status,
                message,
                leader,
            } => ClientError::Broker {
                code,
                status,
                message: format!("{topic}/{partition}: {message}"),
                leader,
            },
            other => other,
        }
    }

    /// The stable error code, if the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        // The channel's own request deadline (`Timeouts::request`) surfaces as a CANCELLED
        // status whose source is tonic's `TimeoutExpired`: it is a timeout, not a cancel.
        if is_request_timeout(&status) {
            return ClientError::Broker {
                code: ErrorCode::RequestTimedOut,
                status: tonic::Code::DeadlineExceeded,
                message: "no answer within the request timeout".to_string(),
                leader: None,
            };
        }
        let info = status.get_details_error_info();
        let code = info
            .as_ref()
            .and_then(|info| ErrorCode::from_str_name(&info.reason))
            // Every refusal of the broker carries its code; a status without one came from
            // the transport (a reset connection surfaces as `internal: h2 protocol error`).
            .unwrap_or(match status.code() {
                tonic::Code::DeadlineExceeded => ErrorCode::RequestTimedOut,
                tonic::Code::Unavailable
                | tonic::Code::Internal
                | tonic::Code::Unknown
                | tonic::Code::Cancelled => ErrorCode::BrokerNotAvailable,
                _ => ErrorCode::Internal,
            });
        let leader = info.and_then(|info| info.metadata.get("leader").cloned());
        ClientError::Broker {
            code,
            status: status.code(),
            message: with_causes(&status),
            leader,
        }
    }
}

/// `status`'s message followed by each cause under it that adds something: tonic's own words
/// for a transport failure ("h2 protocol error: http2 error") name nothing, while the causes
/// carry what happened, such as the broker's GOAWAY text saying which connection limit refused
/// the client.
fn with_causes(status: &tonic::Status) -> String {
    line_with_causes(
        status.message().to_string(),
        std::error::Error::source(status),
    )
}

/// `head` followed by each error of the chain from `source` down whose text `head` does not
/// already hold, on one line.
pub(crate) fn line_with_causes(
    mut head: String,
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(cause) = source {
        let text = cause.to_string();
        if !head.contains(&text) {
            head.push_str(": ");
            head.push_str(&text);
        }
        source = cause.source();
    }
    head
}

/// True when `status` is the client channel's request deadline running out.
pub(crate) fn is_request_timeout(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_without_a_code_is_a_transport_failure_with_an_unknown_outcome() {
        let reset = ClientError::from(tonic::Status::internal("h2 protocol error: http2 error"));
        assert_eq!(reset.code(), Some(ErrorCode::BrokerNotAvailable));
        assert!(reset.is_retriable() && reset.outcome_unknown());
        let timeout = ClientError::from(tonic::Status::deadline_exceeded("late"));
        assert_eq!(timeout.code(), Some(ErrorCode::RequestTimedOut));
        assert!(timeout.is_retriable() && timeout.outcome_unknown());
        let bad = ClientError::from(tonic::Status::invalid_argument("nope"));
        assert!(!bad.is_retriable() && !bad.outcome_unknown());
    }

    /// A status as the broker sends it: `code`'s name as the ErrorInfo reason, with `metadata`.
    fn broker_status(
        status: tonic::Code,
        code: ErrorCode,
        metadata: &[(&str, &str)],
    ) -> tonic::Status {
        let metadata = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>();
        tonic::Status::with_error_details(
            status,
            "refused",
            tonic_types::ErrorDetails::with_error_info(code.as_str_name(), "cairn", metadata),
        )
    }

    #[test]
    fn coordinator_errors_are_retriable_refusals_and_not_coordinator_carries_the_hint() {
        let moved = ClientError::from(broker_status(
            tonic::Code::FailedPrecondition,
            ErrorCode::NotCoordinator,
            &[("leader", "n2:7070"), ("leader_id", "2")],
        ));
        assert_eq!(moved.code(), Some(ErrorCode::NotCoordinator));
        assert!(
            matches!(&moved, ClientError::Broker { leader: Some(l), .. } if l == "n2:7070"),
            "{moved:?}"
        );
        assert!(moved.is_retriable() && !moved.outcome_unknown());
        for code in [
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::CoordinatorLoadInProgress,
        ] {
            let error = ClientError::from(broker_status(tonic::Code::Unavailable, code, &[]));
            assert_eq!(error.code(), Some(code));
            assert!(
                error.is_retriable() && !error.outcome_unknown(),
                "{error:?}"
            );
        }
        // Retriable by its code alone, whatever the status says.
        let moved_local = ClientError::local(ErrorCode::NotCoordinator, "moved");
        assert!(moved_local.is_retriable());
        // A member a new coordinator does not know rejoins; its next commit may succeed.
        let unknown = ClientError::from(broker_status(
            tonic::Code::FailedPrecondition,
            ErrorCode::UnknownMemberId,
            &[],
        ));
        assert!(unknown.is_retriable() && !unknown.outcome_unknown());
        let bad_group = ClientError::local(ErrorCode::InvalidGroupId, "bad");
        assert!(!bad_group.is_retriable());
    }

    #[test]
    fn a_typed_refusal_wrote_nothing() {
        let refusal = ClientError::local(ErrorCode::RecordTooLarge, "too big");
        assert!(!refusal.is_retriable() && !refusal.outcome_unknown());
        let full = ClientError::local(ErrorCode::DiskFull, "full");
        assert!(full.is_retriable() && !full.outcome_unknown());
    }
}
