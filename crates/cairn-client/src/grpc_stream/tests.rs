use super::*;

fn framed(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.push(0);
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
    }
    out
}

fn whole(mut message: Segments) -> Bytes {
    let length = message.remaining();
    message.copy_to_bytes(length)
}

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
    let mut prefix = vec![0_u8];
    prefix.extend_from_slice(&((head.len() + batches.len()) as u32).to_be_bytes());
    prefix.extend_from_slice(&head);
    let wire = prefix;
    let head = wire.len();
    let data = batches.clone();
    let mut framer = Framer::new(1 << 20);
    framer.push(Bytes::copy_from_slice(&wire[..head]));
    framer.push(data.clone());
    let decoded = cairn_proto::v1::FetchResponse::decode(framer.take().unwrap().unwrap()).unwrap();
    assert_eq!(decoded, answer);
    assert_eq!(decoded.record_batches.as_ptr(), data.as_ptr());
}

#[test]
fn a_message_within_one_frame_is_a_slice_of_it() {
    let wire = Bytes::from(framed(&[b"first", b"second"]));
    let mut framer = Framer::new(1 << 20);
    framer.push(wire.clone());
    let first = whole(framer.take().unwrap().unwrap());
    assert_eq!(&first[..], b"first");
    // Shares the frame's buffer rather than copying it.
    assert_eq!(first.as_ptr(), wire[PREFIX_BYTES..].as_ptr());
    assert_eq!(&whole(framer.take().unwrap().unwrap())[..], b"second");
    assert!(framer.take().unwrap().is_none());
    assert_eq!(framer.pending_bytes, 0);
}

#[test]
fn messages_split_anywhere_are_gathered_in_order() {
    let messages: [&[u8]; 4] = [b"", b"a", b"a much longer message body", b"xyz"];
    let wire = framed(&messages);
    // Every way of cutting the wire bytes into two frames, and into single bytes.
    for cut in 0..=wire.len() {
        let mut framer = Framer::new(1 << 20);
        framer.push(Bytes::copy_from_slice(&wire[..cut]));
        let mut got = Vec::new();
        while let Some(message) = framer.take().unwrap() {
            got.push(whole(message));
        }
        framer.push(Bytes::copy_from_slice(&wire[cut..]));
        while let Some(message) = framer.take().unwrap() {
            got.push(whole(message));
        }
        let got: Vec<&[u8]> = got.iter().map(|m| &m[..]).collect();
        assert_eq!(got, messages, "cut at {cut}");
    }
    let mut framer = Framer::new(1 << 20);
    let mut got = Vec::new();
    for byte in &wire {
        framer.push(Bytes::copy_from_slice(&[*byte]));
        while let Some(message) = framer.take().unwrap() {
            got.push(whole(message));
        }
    }
    let got: Vec<&[u8]> = got.iter().map(|m| &m[..]).collect();
    assert_eq!(got, messages);
}

#[test]
fn compressed_and_oversized_messages_are_refused() {
    let mut framer = Framer::new(1 << 20);
    framer.push(Bytes::from_static(&[1, 0, 0, 0, 1, 7]));
    let err = framer.take().unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    assert!(err.message().contains("compressed"), "{err}");

    let mut framer = Framer::new(16);
    framer.push(Bytes::from(framed(&[&[0_u8; 17]])));
    let err = framer.take().unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    assert!(err.message().contains("17 bytes"), "{err}");
}
