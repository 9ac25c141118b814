//! The one place refusals become API errors: a stable [`ErrorCode`] and a fitting gRPC status
//! code, and a `tonic::Status` carrying a `google.rpc.ErrorInfo` whose `reason` is the code's
//! name (see `proto/cairn/v1/common.proto`).
//!
//! Three rules hold for every answer, whoever built it:
//! - echoed input is cut short (`shorten`): messages and ErrorInfo values leave with at most a
//!   64-character prefix of any name or value the client sent;
//! - the transport's own refusals (an undecodable message, one over the size limit, an unknown
//!   method) get their code and ErrorInfo here too: [`StatusLayer`] rewrites every status that
//!   left a service without an ErrorInfo through [`transport_status`];
//! - every INTERNAL or UNAVAILABLE answer is logged with its RPC and its whole cause, by
//!   [`StatusLayer`], so no service can forget to.

mod layer;
mod shorten;

pub use layer::{StatusLayer, StatusService};
pub use shorten::{ECHO_PREFIX_CHARS, MESSAGE_MAX_CHARS, shorten_message, shorten_value};

use std::collections::HashMap;
use std::sync::Arc;

use cairn_broker::{BrokerError, LeaderHint, StorageErrorKind};
use cairn_proto::v1::ErrorCode;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every ErrorInfo Cairn sends.
pub const ERROR_DOMAIN: &str = "cairn.io";

/// The API error code and gRPC status code of a broker error.
pub fn classify(err: &BrokerError) -> (ErrorCode, Code) {
    match err {
        BrokerError::InvalidTopicName { .. } => (ErrorCode::InvalidTopic, Code::InvalidArgument),
        BrokerError::UnknownConfig { .. }
        | BrokerError::InvalidConfig { .. }
        | BrokerError::ConfigFileTooLarge { .. }
        | BrokerError::MalformedConfigLine { .. }
        | BrokerError::InvalidConfigLine { .. } => {
            (ErrorCode::InvalidConfig, Code::InvalidArgument)
        }
        BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. } => {
            (ErrorCode::UnknownTopicOrPartition, Code::NotFound)
        }
        BrokerError::TopicExists { .. } => (ErrorCode::TopicAlreadyExists, Code::AlreadyExists),
        BrokerError::InvalidPartitions { .. } => {
            (ErrorCode::InvalidPartitions, Code::InvalidArgument)
        }
        BrokerError::InvalidReplicationFactor { .. } => {
            (ErrorCode::InvalidReplicationFactor, Code::InvalidArgument)
        }
        BrokerError::InvalidRequest(_)
        | BrokerError::DuplicatePartition { .. }
        | BrokerError::InvalidUser { .. }
        | BrokerError::InvalidAcl { .. }
        | BrokerError::InvalidQuota { .. } => (ErrorCode::InvalidRequest, Code::InvalidArgument),
        BrokerError::UnknownUser { .. } | BrokerError::UnknownQuota { .. } => {
            (ErrorCode::ResourceNotFound, Code::NotFound)
        }
        BrokerError::CreationQuotaExceeded { .. } => {
            (ErrorCode::QuotaExceeded, Code::ResourceExhausted)
        }
        // Only met at open, before any request is served.
        BrokerError::NodeMeta(_) => (ErrorCode::Internal, Code::Internal),
        BrokerError::InsufficientDiskSpace { .. } => (ErrorCode::DiskFull, Code::ResourceExhausted),
        BrokerError::TooManyPartitions { .. } => {
            (ErrorCode::InvalidPartitions, Code::ResourceExhausted)
        }
        BrokerError::ShuttingDown => (ErrorCode::BrokerNotAvailable, Code::Unavailable),
        BrokerError::ControllerUnavailable(_) => (ErrorCode::BrokerNotAvailable, Code::Unavailable),
        BrokerError::NotYetReplicated { .. } => {
            (ErrorCode::UnsupportedOperation, Code::Unimplemented)
        }
        BrokerError::PartitionStopped { .. } => (ErrorCode::KafkaStorageError, Code::Unavailable),
        BrokerError::AppendOutcomeUnknown { .. } => {
            (ErrorCode::RequestTimedOut, Code::DeadlineExceeded)
        }
        BrokerError::Io { source, .. } if is_disk_full(source) => {
            (ErrorCode::DiskFull, Code::ResourceExhausted)
        }
        BrokerError::Io { .. } => (ErrorCode::Internal, Code::Internal),
        BrokerError::Log(storage) => classify_storage(storage.kind()),
        // FAILED_PRECONDITION, as `common.proto` promises for NOT_LEADER: the request is fine
        // but this node is the wrong one to take it; the client must act (refresh metadata, or
        // go to the leader named in the ErrorInfo) before sending again. UNAVAILABLE would
        // invite a blind retry to the same node.
        BrokerError::NotLeader { .. } => (ErrorCode::NotLeader, Code::FailedPrecondition),
        BrokerError::NotCoordinator { .. } => (ErrorCode::NotCoordinator, Code::FailedPrecondition),
        BrokerError::CoordinatorNotAvailable { .. } => {
            (ErrorCode::CoordinatorNotAvailable, Code::Unavailable)
        }
        BrokerError::CoordinatorLoadInProgress { .. } => {
            (ErrorCode::CoordinatorLoadInProgress, Code::Unavailable)
        }
        BrokerError::KeylessRecordOnCompactedTopic { .. } => {
            (ErrorCode::InvalidRecord, Code::InvalidArgument)
        }
        BrokerError::InvalidTimestamp { .. } => {
            (ErrorCode::InvalidTimestamp, Code::InvalidArgument)
        }
        BrokerError::InternalTopic { .. } => (ErrorCode::InvalidTopic, Code::InvalidArgument),
        BrokerError::InvalidGroupId { .. } => (ErrorCode::InvalidGroupId, Code::InvalidArgument),
        BrokerError::UnknownGroup { .. } => (ErrorCode::GroupIdNotFound, Code::NotFound),
        BrokerError::UnknownMember { .. } => (ErrorCode::UnknownMemberId, Code::FailedPrecondition),
        BrokerError::FencedMemberEpoch { .. } => {
            (ErrorCode::FencedMemberEpoch, Code::FailedPrecondition)
        }
        BrokerError::StaleMemberEpoch { .. } => {
            (ErrorCode::StaleMemberEpoch, Code::FailedPrecondition)
        }
        BrokerError::PartitionNotAssigned { .. } => {
            (ErrorCode::PartitionNotAssigned, Code::FailedPrecondition)
        }
        BrokerError::GroupBusy { .. } => (ErrorCode::GroupBusy, Code::Unavailable),
        BrokerError::NonEmptyGroup { .. } => (ErrorCode::NonEmptyGroup, Code::FailedPrecondition),
        BrokerError::OffsetMetadataTooLarge { .. } => {
            (ErrorCode::OffsetMetadataTooLarge, Code::InvalidArgument)
        }
        BrokerError::OffsetNotInRange { .. } => (ErrorCode::OffsetOutOfRange, Code::OutOfRange),
        BrokerError::UnknownProducerId { .. } => {
            (ErrorCode::UnknownProducerId, Code::FailedPrecondition)
        }
        BrokerError::TransactionsUnsupported => {
            (ErrorCode::TransactionsUnsupported, Code::Unimplemented)
        }
        BrokerError::CorruptRecords { .. } => (ErrorCode::CorruptMessage, Code::DataLoss),
    }
}

/// True for the OS's "no space left on device" (ENOSPC) and "quota exceeded" (EDQUOT), which a
/// writer meets the same way: one retriable DISK_FULL whether a produce or a create met it.
fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The API error code and gRPC status code of a kind of storage failure.
fn classify_storage(kind: StorageErrorKind) -> (ErrorCode, Code) {
    match kind {
        StorageErrorKind::InvalidBatch => (ErrorCode::InvalidRecord, Code::InvalidArgument),
        StorageErrorKind::BatchTooLarge => (ErrorCode::RecordTooLarge, Code::InvalidArgument),
        StorageErrorKind::CorruptBatch => (ErrorCode::CorruptMessage, Code::DataLoss),
        StorageErrorKind::OffsetOutOfRange => (ErrorCode::OffsetOutOfRange, Code::OutOfRange),
        StorageErrorKind::InvalidRequest => (ErrorCode::InvalidRequest, Code::InvalidArgument),
        StorageErrorKind::InvalidConfig => (ErrorCode::InvalidConfig, Code::InvalidArgument),
        StorageErrorKind::DiskFull => (ErrorCode::DiskFull, Code::ResourceExhausted),
        StorageErrorKind::Busy => (ErrorCode::Throttled, Code::ResourceExhausted),
        StorageErrorKind::Closed => (ErrorCode::BrokerNotAvailable, Code::Unavailable),
        StorageErrorKind::Unavailable => (ErrorCode::KafkaStorageError, Code::Unavailable),
        StorageErrorKind::OutOfOrderSequence => {
            (ErrorCode::OutOfOrderSequence, Code::FailedPrecondition)
        }
        StorageErrorKind::FencedProducerEpoch => {
            (ErrorCode::InvalidProducerEpoch, Code::FailedPrecondition)
        }
        StorageErrorKind::UnknownProducer => {
            (ErrorCode::UnknownProducerId, Code::FailedPrecondition)
        }
        StorageErrorKind::Internal => (ErrorCode::Internal, Code::Internal),
    }
}

/// A gRPC status for `err`, with its ErrorInfo: the message and the metadata values (which
/// name the topic, group, member... the error is about) cut by [`shorten_message`] and
/// [`shorten_value`]. The whole error, sources included, rides along as the status's `source`,
/// where [`StatusLayer`] finds it to log.
pub fn to_status(err: &BrokerError) -> tonic::Status {
    let (code, grpc) = classify(err);
    let mut status = status_with_metadata(code, grpc, err.to_string(), subject(err));
    status.set_source(Arc::new(Cause::of(err)));
    status
}

/// [`to_status`] for an error of a call on one partition: when the error does not name the
/// partition itself (a log's "offset -1 is out of range", a record too large), its metadata
/// and message are given the request's `topic` and `partition`, as common.proto promises.
pub fn to_status_in(err: &BrokerError, topic: &str, partition: i64) -> tonic::Status {
    let mut metadata = subject(err);
    if metadata.iter().any(|(key, _)| *key == "topic") {
        return to_status(err);
    }
    metadata.push(("topic", topic.to_string()));
    metadata.push(("partition", partition.to_string()));
    let (code, grpc) = classify(err);
    let text = err.to_string();
    let message = if text.contains(&format!("{topic}-{partition}")) {
        text
    } else {
        format!("{topic}-{partition}: {text}")
    };
    let mut status = status_with_metadata(code, grpc, message, metadata);
    status.set_source(Arc::new(Cause::of(err)));
    status
}

/// The message an error gets where it is reported one by one (a partition's result in a
/// produce or list-offsets answer): cut as in [`to_status`].
pub fn message(err: &BrokerError) -> String {
    shorten_message(&err.to_string())
}

/// A gRPC status with an ErrorInfo for `code`; `message` is cut by [`shorten_message`].
pub fn status(code: ErrorCode, grpc: Code, message: impl Into<String>) -> tonic::Status {
    status_with_metadata(code, grpc, message.into(), Vec::new())
}

/// A gRPC status with an ErrorInfo for `code` whose metadata holds `metadata` (each value cut
/// by [`shorten_value`]); `message` is cut by [`shorten_message`].
pub fn status_with_metadata(
    code: ErrorCode,
    grpc: Code,
    message: String,
    metadata: Vec<(&'static str, String)>,
) -> tonic::Status {
    let metadata: HashMap<String, String> = metadata
        .into_iter()
        .map(|(key, value)| (key.to_string(), shorten_value(&value)))
        .collect();
    let details = ErrorDetails::with_error_info(code.as_str_name(), ERROR_DOMAIN, metadata);
    tonic::Status::with_error_details(grpc, shorten_message(&message), details)
}

/// An INVALID_REQUEST status naming what is wrong with the request.
pub fn invalid_request(message: impl Into<String>) -> tonic::Status {
    status(ErrorCode::InvalidRequest, Code::InvalidArgument, message)
}

/// The status a refusal that left without an ErrorInfo is answered with. Such a status comes
/// from tonic itself, or from a service Cairn did not write (health, reflection):
/// - prost's "failed to decode Protobuf message" and tonic's other refusals of the client's
///   bytes (INTERNAL in tonic, "as per the gRPC status code doc", though the client is at
///   fault) become INVALID_ARGUMENT/INVALID_REQUEST, as the Fetch route answers;
/// - "decoded message length too large" (OUT_OF_RANGE in tonic) becomes
///   RESOURCE_EXHAUSTED/REQUEST_TOO_LARGE, the code gRPC's own implementations use;
/// - UNIMPLEMENTED (an unknown service or method, request compression) gets
///   UNSUPPORTED_OPERATION;
/// - on `cairn.v1` methods, any other code gets the reason that code stands for (INTERNAL when
///   none fits); on other services (health's NOT_FOUND for an unknown service name) the status
///   is theirs and only its message is cut.
///
/// Returns `None` when the status already carries an ErrorInfo or is OK: it stays as it is.
pub fn transport_status(rpc: &str, answered: &tonic::Status) -> Option<tonic::Status> {
    if answered.code() == Code::Ok || answered.get_details_error_info().is_some() {
        return None;
    }
    let message = answered.message();
    let (code, grpc) = match answered.code() {
        Code::Internal if CLIENT_FAULTS.iter().any(|fault| message.starts_with(fault)) => {
            (ErrorCode::InvalidRequest, Code::InvalidArgument)
        }
        Code::OutOfRange if message.starts_with(TONIC_TOO_LARGE) => {
            (ErrorCode::RequestTooLarge, Code::ResourceExhausted)
        }
        Code::ResourceExhausted if message.starts_with(TONIC_DECOMPRESSED_TOO_LARGE) => {
            (ErrorCode::RequestTooLarge, Code::ResourceExhausted)
        }
        Code::Unimplemented => (ErrorCode::UnsupportedOperation, Code::Unimplemented),
        _ if !rpc.starts_with(CAIRN_RPC_PREFIX) => {
            let shortened = shorten_message(message);
            if shortened == message {
                return None;
            }
            let mut kept = tonic::Status::with_details(
                answered.code(),
                shortened,
                answered.details().to_vec().into(),
            );
            *kept.metadata_mut() = answered.metadata().clone();
            return Some(kept);
        }
        Code::InvalidArgument => (ErrorCode::InvalidRequest, Code::InvalidArgument),
        Code::DeadlineExceeded | Code::Cancelled => (ErrorCode::RequestTimedOut, answered.code()),
        Code::Unavailable => (ErrorCode::BrokerNotAvailable, Code::Unavailable),
        Code::ResourceExhausted => (ErrorCode::Throttled, Code::ResourceExhausted),
        other => (ErrorCode::Internal, other),
    };
    // The path is the client's to choose: quoted, so a long one is cut like any echo.
    let message = if message.is_empty() {
        format!("{rpc:?}: {}", code.as_str_name())
    } else {
        message.to_string()
    };
    Some(status(code, grpc, message))
}

/// How the INTERNAL statuses tonic answers for the client's own bytes begin: prost's
/// `DecodeError` (passed on by tonic's codec), a bad gRPC frame, a body cut short, a unary call
/// without its message, a compressed message that does not decompress.
const CLIENT_FAULTS: [&str; 5] = [
    "failed to decode Protobuf message",
    "protocol error:",
    "Unexpected EOF decoding stream",
    "Missing request message",
    "Error decompressing:",
];
/// How tonic's decoder starts the message of a request over `max_decoding_message_size`.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";
/// How tonic's decoder starts the message of a compressed request that decompresses past the
/// size limit.
const TONIC_DECOMPRESSED_TOO_LARGE: &str = "Error decompressing: size limit";
/// The path prefix of Cairn's own methods.
const CAIRN_RPC_PREFIX: &str = "/cairn.v1.";

/// What an error is about, as ErrorInfo metadata: the names a client may want to act on
/// without parsing the message.
fn subject(err: &BrokerError) -> Vec<(&'static str, String)> {
    match err {
        BrokerError::InvalidTopicName { name, .. } | BrokerError::TopicExists { name } => {
            vec![("topic", name.clone())]
        }
        BrokerError::UnknownTopic { topic }
        | BrokerError::InternalTopic { topic }
        | BrokerError::InvalidPartitions { topic, .. }
        | BrokerError::KeylessRecordOnCompactedTopic { topic } => vec![("topic", topic.clone())],
        BrokerError::UnknownPartition {
            topic, partition, ..
        } => vec![
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ],
        BrokerError::PartitionStopped {
            topic, partition, ..
        }
        | BrokerError::AppendOutcomeUnknown {
            topic, partition, ..
        } => vec![
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ],
        BrokerError::OffsetNotInRange {
            topic, partition, ..
        } => vec![
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ],
        BrokerError::DuplicatePartition { topic, partition } => vec![
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ],
        BrokerError::InvalidTimestamp { record_idx, .. } => {
            vec![("record_index", record_idx.to_string())]
        }
        BrokerError::UnknownConfig { key } => vec![("config", key.clone())],
        BrokerError::InvalidUser { name, .. } | BrokerError::UnknownUser { name } => {
            vec![("user", name.clone())]
        }
        BrokerError::InvalidAcl { field, .. } | BrokerError::InvalidQuota { field, .. } => {
            vec![("field", field.clone())]
        }
        BrokerError::UnknownQuota { entity } => vec![("entity", entity.clone())],
        BrokerError::CreationQuotaExceeded {
            limit, principal, ..
        } => vec![("limit", limit.clone()), ("principal", principal.clone())],
        BrokerError::InvalidConfig { key, .. } => vec![("config", (*key).to_string())],
        BrokerError::InvalidGroupId { group, .. }
        | BrokerError::UnknownGroup { group }
        | BrokerError::NonEmptyGroup { group, .. }
        | BrokerError::GroupBusy { group }
        | BrokerError::CoordinatorNotAvailable { group }
        | BrokerError::CoordinatorLoadInProgress { group } => vec![("group_id", group.clone())],
        BrokerError::UnknownMember { group, member }
        | BrokerError::FencedMemberEpoch { group, member, .. }
        | BrokerError::StaleMemberEpoch { group, member, .. } => {
            vec![("group_id", group.clone()), ("member_id", member.clone())]
        }
        BrokerError::PartitionNotAssigned {
            group,
            member,
            topic,
            partition,
        } => vec![
            ("group_id", group.clone()),
            ("member_id", member.clone()),
            ("topic", topic.clone()),
            ("partition", partition.to_string()),
        ],
        BrokerError::UnknownProducerId { producer_id } => {
            vec![("producer_id", producer_id.to_string())]
        }
        // A partition's sequence refusal (OUT_OF_ORDER_SEQUENCE, INVALID_PRODUCER_EPOCH) names
        // its producer as the broker's own UNKNOWN_PRODUCER_ID does; `to_status_in` adds the
        // topic and partition.
        BrokerError::Log(storage) => storage
            .producer_id()
            .map(|producer_id| vec![("producer_id", producer_id.to_string())])
            .unwrap_or_default(),
        BrokerError::NotLeader {
            topic,
            partition,
            leader,
        } => {
            let mut metadata = vec![
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            if let Some(LeaderHint { node_id, address }) = leader {
                metadata.push(("leader_id", node_id.to_string()));
                if let Some(address) = address {
                    metadata.push(("leader", address.clone()));
                }
            }
            metadata
        }
        BrokerError::NotCoordinator { group, coordinator } => {
            let mut metadata = vec![("group_id", group.clone())];
            if let Some(LeaderHint { node_id, address }) = coordinator {
                metadata.push(("leader_id", node_id.to_string()));
                if let Some(address) = address {
                    metadata.push(("leader", address.clone()));
                }
            }
            metadata
        }
        _ => Vec::new(),
    }
}

/// The whole text of an error and its sources, uncut: what the log shows for an INTERNAL or
/// UNAVAILABLE answer.
#[derive(Debug)]
pub struct Cause(String);

impl Cause {
    /// `err` and each source it does not already show in its own message.
    pub fn of(err: &(dyn std::error::Error + 'static)) -> Cause {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let shown = cause.to_string();
            if !text.contains(&shown) {
                text.push_str(": ");
                text.push_str(&shown);
            }
            source = cause.source();
        }
        Cause(text)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

#[cfg(test)]
mod tests;
