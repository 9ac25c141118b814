//! The Produce call's bytes: the request with the record batch sent as it is, not copied into
//! it, and the answer decoded as tonic's generated client would.
//!
//! tonic's generated client encodes a message with prost into its own buffer, so the batch (the
//! whole request, near enough) is copied once per send: profiled at 1,000 x 1 KiB per request,
//! that copy was 11% of the producer's CPU. Protobuf lets a message's fields come in any order
//! and a `bytes` field be written as its tag, its length and then its bytes, so the request goes
//! out as two chunks: a small one (the gRPC frame header, the other fields encoded by prost, the
//! batch field's tag and length) and the batch's own `Bytes`, which h2 writes without copying.
//! [`crate::produce_channel::ProduceChannel`] sends them; the answer is decoded by tonic's own
//! decoder, so its statuses and error details are tonic's.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cairn_proto::v1::{ProduceRequest, ProduceResponse};

use http_body::Body;
use prost::Message;
use tonic::codec::{BufferSettings, Streaming};
use tonic::codegen::StdError;
use tonic::{Code, Status};
use tonic_prost::ProstDecoder;

/// The Produce method's path.
pub(crate) const PRODUCE_PATH: &str = "/cairn.v1.Producer/Produce";
/// `ProduceRequest.record_batch`: field 5, wire type 2 (length-delimited).
const RECORD_BATCH_TAG: u8 = (5 << 3) | 2;
/// The largest `grpc-timeout` value in milliseconds the header's eight digits can carry.
const MAX_TIMEOUT_MILLIS: u128 = 99_999_999;

/// The request's HTTP head: a gRPC call to `uri` (the broker's Produce method) that the broker
/// gives up on after `timeout`, carrying `authorization` when the client has credentials.
///
/// # Errors
/// `INTERNAL` if the head cannot be built (a bad URI).
pub(crate) fn request_head(
    uri: http::Uri,
    timeout: Duration,
    authorization: Option<http::HeaderValue>,
) -> Result<http::Request<()>, Status> {
    let millis = timeout.as_millis().clamp(1, MAX_TIMEOUT_MILLIS);
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header("grpc-timeout", format!("{millis}m"));
    if let Some(authorization) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, authorization);
    }
    builder
        .body(())
        .map_err(|e| Status::internal(format!("cannot build the produce request: {e}")))
}

/// The broker's answer to a produce request, from its HTTP response.
///
/// # Errors
/// The call's [`Status`]: the broker's refusal, an answer that is not gRPC, or one that does
/// not decode (or exceeds `max_response_bytes`).
pub(crate) async fn answer<B>(
    response: http::Response<B>,
    max_response_bytes: usize,
) -> Result<ProduceResponse, Status>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError>,
{
    // A refusal before any message comes as a "trailers-only" answer: its status is in the
    // headers, and there is no body to decode.
    if let Some(status) = Status::from_header_map(response.headers())
        && status.code() != Code::Ok
    {
        return Err(status);
    }
    let status_code = response.status();
    if status_code != http::StatusCode::OK {
        return Err(not_grpc(status_code));
    }
    let mut answer = Streaming::new_response(
        ProstDecoder::<ProduceResponse>::new(BufferSettings::default()),
        response.into_body(),
        status_code,
        None,
        Some(max_response_bytes),
    );
    let message = answer
        .message()
        .await?
        .ok_or_else(|| Status::internal("the broker's produce answer carried no message"))?;
    // Reads to the trailers, where a failure after the message would show.
    answer.trailers().await?;
    Ok(message)
}

/// The status of an HTTP answer without a gRPC status (a proxy's, or a server that is not a
/// broker's gRPC port), coded as gRPC's HTTP mapping (and tonic) code it, so that only the
/// answers that say "try again" are retried.
fn not_grpc(status_code: http::StatusCode) -> Status {
    let code = match status_code {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!(
            "the server answered HTTP {status_code} without a gRPC status: is this address \
             the broker's gRPC port?"
        ),
    )
}

/// Everything before the batch: the gRPC frame header (uncompressed, and the whole message's
/// length), `request`'s other fields, and the batch field's tag and length.
pub(crate) fn head(request: &ProduceRequest, batch_len: usize) -> Result<Bytes, Status> {
    let fields = request.encoded_len();
    let batch_field = 1 + prost::encoding::encoded_len_varint(batch_len as u64) + batch_len;
    let message_len = u32::try_from(fields + batch_field)
        .map_err(|_| Status::invalid_argument("the produce request exceeds 4 GiB"))?;
    let mut head = BytesMut::with_capacity(5 + fields + 11);
    head.put_u8(0);
    head.put_u32(message_len);
    request
        .encode(&mut head)
        .map_err(|e| Status::internal(format!("cannot encode the produce request: {e}")))?;
    head.put_u8(RECORD_BATCH_TAG);
    prost::encoding::encode_varint(batch_len as u64, &mut head);
    Ok(head.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::v1::produce_request::Payload;

    /// The two chunks, joined, are exactly a gRPC frame of the request prost would encode with
    /// the batch in it, so the broker cannot tell them apart.
    #[test]
    fn the_split_request_decodes_as_the_whole_one() {
        for batch_len in [0_usize, 1, 127, 128, 16_384, 1 << 20] {
            let batch = Bytes::from(vec![0xAB; batch_len]);
            let fields = ProduceRequest {
                topic: "orders".to_string(),
                partition: Some(3),
                acks: 2,
                payload: None,
                producer: None,
                compression: String::new(),
            };
            let head = head(&fields, batch.len()).expect("encodes");
            let mut frame = head.to_vec();
            frame.extend_from_slice(&batch);
            assert_eq!(frame[0], 0, "uncompressed");
            let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
            assert_eq!(len, frame.len() - 5);
            let decoded = ProduceRequest::decode(&frame[5..]).expect("decodes");
            let whole = ProduceRequest {
                payload: Some(Payload::RecordBatch(batch.clone())),
                ..fields
            };
            assert_eq!(decoded, whole);
            assert_eq!(len, whole.encoded_len());
        }
    }
}
