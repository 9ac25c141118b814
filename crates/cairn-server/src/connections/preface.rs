//! What "the HTTP/2 handshake is done" means for the handshake timeout: the client has sent the
//! 24-byte connection preface and its first frame whole (RFC 9113 §3.4: that frame must be
//! SETTINGS). It only counts bytes; h2 itself checks them and closes the connection if they are
//! wrong, so a client cannot pass this check and then hold the connection without speaking
//! HTTP/2.
//!
//! Nothing is buffered: the 9-byte frame header is collected in a fixed array, and the frame's
//! payload is counted, not kept.

/// The client connection preface, RFC 9113 §3.4.
const PREFACE_BYTES: usize = 24;
/// An HTTP/2 frame header: 24-bit length, type, flags, stream id (RFC 9113 §4.1).
const FRAME_HEADER_BYTES: usize = 9;

/// How far a new connection is through its handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PrefaceProgress {
    /// Bytes seen so far, up to the end of the first frame's header.
    header_seen_bytes: usize,
    /// The first frame's header as far as it has arrived.
    header: [u8; FRAME_HEADER_BYTES],
    /// Payload bytes of the first frame still to come, once its header is whole.
    payload_left_bytes: Option<usize>,
}

impl PrefaceProgress {
    /// Takes the next bytes read from the client; returns true once the preface and the whole
    /// first frame have arrived (and stays true).
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while self.payload_left_bytes.is_none() && !bytes.is_empty() {
            let wanted = PREFACE_BYTES + FRAME_HEADER_BYTES - self.header_seen_bytes;
            let (taken, rest) = bytes.split_at(wanted.min(bytes.len()));
            for &byte in taken {
                let header_idx = self.header_seen_bytes.checked_sub(PREFACE_BYTES);
                if let Some(slot) = header_idx.and_then(|idx| self.header.get_mut(idx)) {
                    *slot = byte;
                }
                self.header_seen_bytes += 1;
            }
            bytes = rest;
            if self.header_seen_bytes == PREFACE_BYTES + FRAME_HEADER_BYTES {
                let [a, b, c, ..] = self.header;
                self.payload_left_bytes = Some(usize::from_be_bytes([0, 0, 0, 0, 0, a, b, c]));
            }
        }
        match &mut self.payload_left_bytes {
            Some(left) => {
                *left = left.saturating_sub(bytes.len());
                *left == 0
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn settings_frame(payload_bytes: usize) -> Vec<u8> {
        let len = u32::try_from(payload_bytes).unwrap().to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], 0x4, 0, 0, 0, 0, 0];
        frame.resize(FRAME_HEADER_BYTES + payload_bytes, 0);
        frame
    }

    #[test]
    fn preface_constant_matches_the_rfc() {
        assert_eq!(PREFACE.len(), PREFACE_BYTES);
    }

    #[test]
    fn done_after_preface_and_an_empty_settings_frame_in_one_read() {
        let mut progress = PrefaceProgress::default();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(settings_frame(0));
        assert!(progress.feed(&bytes));
    }

    #[test]
    fn not_done_until_the_last_payload_byte_arrives_byte_by_byte() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(settings_frame(12));
        let mut progress = PrefaceProgress::default();
        let (last, before) = bytes.split_last().unwrap();
        for byte in before {
            assert!(!progress.feed(std::slice::from_ref(byte)));
        }
        assert!(progress.feed(std::slice::from_ref(last)));
        // Later bytes (requests) keep it done.
        assert!(progress.feed(b"more"));
        assert!(progress.feed(&[]));
    }

    #[test]
    fn preface_alone_is_not_a_handshake() {
        let mut progress = PrefaceProgress::default();
        assert!(!progress.feed(PREFACE));
        assert!(!progress.feed(&[]));
    }

    #[test]
    fn a_large_declared_payload_must_arrive_whole() {
        let mut progress = PrefaceProgress::default();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(&settings_frame(0xff_ffff)[..FRAME_HEADER_BYTES]);
        assert!(!progress.feed(&bytes));
        assert!(!progress.feed(&vec![0; 0xff_fffe]));
        assert!(progress.feed(&[0]));
    }
}
