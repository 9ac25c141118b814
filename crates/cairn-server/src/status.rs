//! The one place broker and log errors become API errors: a stable [`ErrorCode`] and a fitting
//! gRPC status code, and a `tonic::Status` carrying a `google.rpc.ErrorInfo` whose `reason` is
//! the code's name (see `proto/cairn/v1/common.proto`).

use std::collections::HashMap;

use cairn_broker::{BrokerError, SequenceError};
use cairn_log::LogError;
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
        BrokerError::InvalidRequest(_) => (ErrorCode::InvalidRequest, Code::InvalidArgument),
        BrokerError::ShuttingDown => (ErrorCode::BrokerNotAvailable, Code::Unavailable),
        BrokerError::Io { .. } => (ErrorCode::Internal, Code::Internal),
        BrokerError::Log(log) => classify_log(log),
        BrokerError::KeylessRecordOnCompactedTopic { .. } => {
            (ErrorCode::InvalidRecord, Code::InvalidArgument)
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
        BrokerError::CorruptRecords { .. } => (ErrorCode::CorruptMessage, Code::DataLoss),
    }
}

fn classify_log(err: &LogError) -> (ErrorCode, Code) {
    match err {
        LogError::InvalidBatch(_) => (ErrorCode::InvalidRecord, Code::InvalidArgument),
        LogError::BatchTooLarge { .. } => (ErrorCode::RecordTooLarge, Code::InvalidArgument),
        LogError::CorruptBatch { .. } => (ErrorCode::CorruptMessage, Code::DataLoss),
        LogError::OffsetOutOfRange { .. } => (ErrorCode::OffsetOutOfRange, Code::OutOfRange),
        LogError::NegativeMaxBytes(_) => (ErrorCode::InvalidRequest, Code::InvalidArgument),
        LogError::InvalidConfig { .. } => (ErrorCode::InvalidConfig, Code::InvalidArgument),
        LogError::DiskFull { .. } => (ErrorCode::DiskFull, Code::ResourceExhausted),
        LogError::QueueFull | LogError::SegmentFull { .. } => {
            (ErrorCode::Throttled, Code::ResourceExhausted)
        }
        LogError::Closed => (ErrorCode::BrokerNotAvailable, Code::Unavailable),
        LogError::Poisoned { .. }
        | LogError::Io { .. }
        | LogError::DamagedSegment { .. }
        | LogError::CorruptCheckpoint { .. }
        | LogError::Locked { .. } => (ErrorCode::KafkaStorageError, Code::Unavailable),
        LogError::Rejected(reason) => match reason.downcast_ref::<SequenceError>() {
            Some(SequenceError::OutOfOrder { .. }) => {
                (ErrorCode::OutOfOrderSequence, Code::FailedPrecondition)
            }
            Some(SequenceError::FencedEpoch { .. }) => {
                (ErrorCode::InvalidProducerEpoch, Code::FailedPrecondition)
            }
            Some(SequenceError::UnknownProducer { .. }) => {
                (ErrorCode::UnknownProducerId, Code::FailedPrecondition)
            }
            Some(SequenceError::SeveralBatches) | None => {
                (ErrorCode::InvalidRequest, Code::InvalidArgument)
            }
        },
        LogError::TruncateBelowHighWatermark { .. }
        | LogError::InvalidHighWatermark { .. }
        | LogError::CleanerKeyMapFull { .. } => (ErrorCode::Internal, Code::Internal),
    }
}

/// A gRPC status for `err`, with its ErrorInfo.
pub fn to_status(err: &BrokerError) -> tonic::Status {
    let (code, grpc) = classify(err);
    status(code, grpc, err.to_string())
}

/// A gRPC status with an ErrorInfo for `code`.
pub fn status(code: ErrorCode, grpc: Code, message: impl Into<String>) -> tonic::Status {
    let details = ErrorDetails::with_error_info(code.as_str_name(), ERROR_DOMAIN, HashMap::new());
    tonic::Status::with_error_details(grpc, message, details)
}

/// An INVALID_REQUEST status naming what is wrong with the request.
pub fn invalid_request(message: impl Into<String>) -> tonic::Status {
    status(ErrorCode::InvalidRequest, Code::InvalidArgument, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_error_code_name_as_reason() {
        let status = to_status(&BrokerError::UnknownTopic {
            topic: "orders".into(),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("orders"));
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }
}
