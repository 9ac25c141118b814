//! `ClientError`: what a call to Cairn can fail with. A failure the broker reports carries its
//! stable [`ErrorCode`] (from the status's `google.rpc.ErrorInfo` reason), so callers branch on
//! the code, never on message text.

use cairn_proto::v1::ErrorCode;
use tonic_types::StatusExt;

/// An error from the Cairn client.
#[derive(Debug, thiserror::Error)]
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
        /// For `NotLeader`: the leader's address.
        leader: Option<String>,
    },
    /// No broker of the list could be reached.
    #[error("cannot reach a broker at {brokers}: {source}")]
    Connect {
        /// The addresses tried.
        brokers: String,
        /// The last failure.
        #[source]
        source: tonic::transport::Error,
    },
    /// An argument is invalid before anything is sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// True when the same call may succeed if retried (a full disk or queue, a timeout, a broker
    /// that is starting or moving leadership).
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
                ) || matches!(
                    status,
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                )
            }
            ClientError::Connect { .. } => true,
            ClientError::InvalidArgument(_) => false,
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
        let info = status.get_details_error_info();
        let code = info
            .as_ref()
            .and_then(|info| ErrorCode::from_str_name(&info.reason))
            .unwrap_or(match status.code() {
                tonic::Code::DeadlineExceeded => ErrorCode::RequestTimedOut,
                tonic::Code::Unavailable => ErrorCode::BrokerNotAvailable,
                _ => ErrorCode::Internal,
            });
        let leader = info.and_then(|info| info.metadata.get("leader").cloned());
        ClientError::Broker {
            code,
            status: status.code(),
            message: status.message().to_string(),
            leader,
        }
    }
}
