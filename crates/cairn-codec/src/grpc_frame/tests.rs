use super::*;

fn framed(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        put_prefix(message.len(), &mut out).unwrap();
        out.extend_from_slice(message);
    }
    out
}

fn whole(mut message: FramedMessage) -> Bytes {
    let length = message.remaining();
    message.copy_to_bytes(length)
}

#[test]
fn the_prefix_is_a_zero_flag_and_a_big_endian_length() {
    assert_eq!(prefix(0x0102_0304).unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(read_prefix([0, 1, 2, 3, 4], usize::MAX), Ok(0x0102_0304));
    assert_eq!(
        prefix(1 << 32),
        Err(FrameError::Unframeable {
            length_bytes: 1 << 32
        })
    );
}

#[test]
fn a_message_within_one_frame_is_a_slice_of_it() {
    let wire = Bytes::from(framed(&[b"first", b"second"]));
    let mut reader = MessageReader::new(1 << 20);
    reader.push(wire.clone());
    let first = whole(reader.take().unwrap().unwrap());
    assert_eq!(&first[..], b"first");
    // Shares the frame's buffer rather than copying it.
    assert_eq!(first.as_ptr(), wire[PREFIX_BYTES..].as_ptr());
    assert_eq!(&whole(reader.take().unwrap().unwrap())[..], b"second");
    assert!(reader.take().unwrap().is_none());
    assert_eq!(reader.pending_bytes(), 0);
}

#[test]
fn messages_split_anywhere_are_gathered_in_order() {
    let messages: [&[u8]; 4] = [b"", b"a", b"a much longer message body", b"xyz"];
    let wire = framed(&messages);
    // Every way of cutting the wire bytes into two frames, and into single bytes.
    for cut in 0..=wire.len() {
        let mut reader = MessageReader::new(1 << 20);
        reader.push(Bytes::copy_from_slice(&wire[..cut]));
        let mut got = Vec::new();
        while let Some(message) = reader.take().unwrap() {
            got.push(whole(message));
        }
        reader.push(Bytes::copy_from_slice(&wire[cut..]));
        while let Some(message) = reader.take().unwrap() {
            got.push(whole(message));
        }
        let got: Vec<&[u8]> = got.iter().map(|m| &m[..]).collect();
        assert_eq!(got, messages, "cut at {cut}");
    }
    let mut reader = MessageReader::new(1 << 20);
    let mut got = Vec::new();
    for byte in &wire {
        reader.push(Bytes::copy_from_slice(&[*byte]));
        while let Some(message) = reader.take().unwrap() {
            got.push(whole(message));
        }
    }
    let got: Vec<&[u8]> = got.iter().map(|m| &m[..]).collect();
    assert_eq!(got, messages);
}

#[test]
fn compressed_and_oversized_messages_are_refused_from_their_prefix_alone() {
    let mut reader = MessageReader::new(1 << 20);
    reader.push(Bytes::from_static(&[1, 0, 0, 0, 1]));
    assert_eq!(
        reader.take().unwrap_err(),
        FrameError::Compressed { flag: 1 }
    );

    // Only the prefix has arrived: the length alone is enough to refuse.
    let mut reader = MessageReader::new(16);
    reader.push(Bytes::from(framed(&[&[0_u8; 17]])[..PREFIX_BYTES].to_vec()));
    assert_eq!(
        reader.take().unwrap_err(),
        FrameError::TooLarge {
            length_bytes: 17,
            limit_bytes: 16
        }
    );
}

#[test]
fn a_unary_body_holds_exactly_one_message() {
    let body = framed(&[b"request"]);
    assert_eq!(single_message(&body, 1 << 20), Ok(&b"request"[..]));
    assert_eq!(
        single_message(&body[..body.len() - 1], 1 << 20),
        Err(FrameError::Truncated {
            available_bytes: body.len() - 1,
            needed_bytes: body.len()
        })
    );
    assert!(matches!(
        single_message(&[], 1 << 20),
        Err(FrameError::Truncated { .. })
    ));
    let two = framed(&[b"one", b"two"]);
    assert_eq!(
        single_message(&two, 1 << 20),
        Err(FrameError::TrailingBytes { extra_bytes: 8 })
    );
    assert!(matches!(
        single_message(&body, 3),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn a_unary_body_in_pieces_is_opened_where_it_lies() {
    let body = framed(&[b"request"]);
    // The prefix itself split across two pieces, the message across the second and third.
    let (first, rest) = body.split_at(2);
    let (second, third) = rest.split_at(6);
    let mut pieces = first.chain(second).chain(third);
    assert_eq!(open_single_message(&mut pieces, 1 << 20), Ok(7));
    assert_eq!(pieces.copy_to_bytes(pieces.remaining()), &b"request"[..]);

    let mut short = (&body[..3]).chain(&body[3..body.len() - 1]);
    assert_eq!(
        open_single_message(&mut short, 1 << 20),
        Err(FrameError::Truncated {
            available_bytes: body.len() - 1,
            needed_bytes: body.len()
        })
    );
}
