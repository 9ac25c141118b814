use bytes::{Buf, Bytes};
use cairn_codec::grpc_frame::prefix;

use super::*;

#[test]
fn a_bytes_field_within_one_piece_is_shared_even_when_the_message_is_split() {
    // A FetchResponse as the broker frames a batch answer: its small fields in one frame and
    // the batch bytes in the next.
    let batches = Bytes::from(vec![7_u8; 4096]);
    let answer = cairn_proto::v1::FetchResponse {
        high_watermark: 9,
        next_offset: 5,
        partition: 2,
        record_batches: batches.clone(),
        ..Default::default()
    };
    // The small fields first, then the batch field's key and length, then its bytes: field
    // order is free in protobuf, and this is the order that lets the bytes travel alone.
    let mut head = cairn_proto::v1::FetchResponse {
        record_batches: Bytes::new(),
        ..answer.clone()
    }
    .encode_to_vec();
    prost::encoding::encode_key(5, prost::encoding::WireType::LengthDelimited, &mut head);
    prost::encoding::encode_varint(batches.len() as u64, &mut head);
    let mut wire = prefix(head.len() + batches.len()).unwrap().to_vec();
    wire.extend_from_slice(&head);
    let data = batches.clone();
    let mut framer = MessageReader::new(1 << 20);
    framer.push(Bytes::from(wire));
    framer.push(data.clone());
    let message = framer.take().unwrap().unwrap();
    assert!(message.remaining() > batches.len());
    let decoded = cairn_proto::v1::FetchResponse::decode(message).unwrap();
    assert_eq!(decoded, answer);
    assert_eq!(decoded.record_batches.as_ptr(), data.as_ptr());
}

#[test]
fn a_broken_stream_maps_to_the_status_callers_retry_or_report() {
    let too_large = FrameError::TooLarge {
        length_bytes: 17,
        limit_bytes: 16,
    };
    assert_eq!(frame_status(&too_large).code(), tonic::Code::OutOfRange);
    assert!(frame_status(&too_large).message().contains("17 bytes"));
    let compressed = frame_status(&FrameError::Compressed { flag: 1 });
    assert_eq!(compressed.code(), tonic::Code::Internal);
    assert!(compressed.message().contains("compressed"), "{compressed}");
}
