//! Fuzz target `grpc_frame`: the gRPC message framing of `cairn_codec::grpc_frame` from both
//! ends, on the same bytes. The server's side reads a unary request body with
//! `open_single_message` over the DATA frames it arrived in (and `single_message` over the
//! same bytes in one piece, which must agree); the client's side cuts a stream into messages
//! with `MessageReader`, the bytes arriving in frames of a size the input picks. Input: `[limit hi, limit lo,
//! frame size, wire bytes...]`.
//!
//! It checks that neither side panics or allocates past `cairn_fuzz::MAX_ALLOC_BYTES`, that
//! no message longer than the limit is handed out, that the messages the reader hands out
//! framed again are exactly the bytes it consumed, and that the two sides agree: a body is one
//! valid message for the server exactly when the reader finds one message and nothing after
//! it, and a prefix one refuses the other refuses the same way.

#![no_main]

use bytes::{Buf, Bytes};
use cairn_codec::grpc_frame::{
    FrameError, FramedMessage, MessageReader, PREFIX_BYTES, open_single_message, put_prefix,
    single_message,
};
use cairn_fuzz::CappedAllocator;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    let Some(([limit_hi, limit_lo, frame], wire)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limit = usize::from(u16::from_be_bytes([*limit_hi, *limit_lo]));
    let frame_bytes = usize::from(*frame % 32) + 1;

    let mut reader = MessageReader::new(limit);
    let mut messages: Vec<Bytes> = Vec::new();
    let mut failed: Option<FrameError> = None;
    for piece in wire.chunks(frame_bytes) {
        reader.push(Bytes::copy_from_slice(piece));
        loop {
            match reader.take() {
                Ok(Some(mut message)) => {
                    let length = message.remaining();
                    assert!(length <= limit, "a message of {length} bytes over {limit}");
                    messages.push(message.copy_to_bytes(length));
                }
                Ok(None) => break,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        if failed.is_some() {
            break;
        }
    }

    let mut reframed = Vec::new();
    for message in &messages {
        put_prefix(message.len(), &mut reframed).expect("a small message can be framed");
        reframed.extend_from_slice(message);
    }
    assert_eq!(
        wire.get(..reframed.len()),
        Some(&reframed[..]),
        "the messages handed out are not the bytes consumed"
    );
    if failed.is_none() {
        assert_eq!(reframed.len() + reader.pending_bytes(), wire.len());
    }

    let server = single_message(wire, limit);
    if let Err(err) = &server {
        let _ = err.to_string();
    }
    // The broker reads a body in the frames it came in: the same answer, in pieces.
    let mut pieces: FramedMessage = wire
        .chunks(frame_bytes)
        .map(Bytes::copy_from_slice)
        .collect();
    match (&server, open_single_message(&mut pieces, limit)) {
        (Ok(message), Ok(length)) => {
            assert_eq!(message.len(), length);
            assert_eq!(pieces.copy_to_bytes(length), *message);
        }
        (Err(whole), Err(in_pieces)) => assert_eq!(*whole, in_pieces),
        (whole, in_pieces) => panic!("in one piece: {whole:?}; in pieces: {in_pieces:?}"),
    }
    let one_message = failed.is_none() && messages.len() == 1 && reader.pending_bytes() == 0;
    match &server {
        Ok(message) => {
            assert!(
                one_message,
                "the server took one message, the reader did not"
            );
            assert_eq!(*message, &messages[0][..]);
        }
        Err(FrameError::Compressed { .. } | FrameError::TooLarge { .. }) => {
            // Both read the same first prefix, so the reader refused it too.
            assert!(wire.len() >= PREFIX_BYTES);
            assert_eq!(failed.as_ref(), server.as_ref().err());
            assert!(messages.is_empty());
        }
        Err(_) => assert!(
            !one_message,
            "the reader took one message, the server did not"
        ),
    }
});
