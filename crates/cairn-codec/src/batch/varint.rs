//! Zig-zag varints as Kafka's record format uses them (protobuf's encoding): `varint` for 32-bit
//! and `varlong` for 64-bit fields. Reads are checked and never panic on short or overlong input.

/// Reads a zig-zag varint (at most 5 bytes) from the front of `buf`, returning the value and the
/// number of bytes used, or `None` if the input ends early or the encoding is overlong.
#[inline]
pub fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let (raw, used) = read_unsigned(buf, 5)?;
    let raw = u32::try_from(raw).ok()?;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Reads a zig-zag varlong (at most 10 bytes) from the front of `buf`.
#[inline]
pub fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let (raw, used) = read_unsigned(buf, 10)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

// Inlined into the record reader, which calls it five times per record, across crates.
#[inline]
fn read_unsigned(buf: &[u8], max_bytes: usize) -> Option<(u64, usize)> {
    // Most lengths and deltas fit in one byte.
    if let Some(&byte) = buf.first()
        && byte & 0x80 == 0
    {
        return Some((u64::from(byte), 1));
    }
    let mut value: u64 = 0;
    for (idx, byte) in buf.iter().take(max_bytes).enumerate() {
        let shift = 7 * idx as u32;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value, idx + 1));
        }
    }
    None
}

/// Appends `value` as a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` as a zig-zag varlong.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// The encoded size of `value` as a zig-zag varint.
pub fn varint_bytes(value: i32) -> usize {
    unsigned_bytes(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// The encoded size of `value` as a zig-zag varlong.
pub fn varlong_bytes(value: i64) -> usize {
    unsigned_bytes(((value << 1) ^ (value >> 63)) as u64)
}

fn write_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn unsigned_bytes(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        let mut out = Vec::new();
        write_varint(&mut out, -1);
        write_varint(&mut out, 1);
        write_varint(&mut out, 300);
        assert_eq!(out, vec![0x01, 0x02, 0xd8, 0x04]);
    }

    #[test]
    fn overlong_and_short_inputs_are_rejected() {
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
        assert_eq!(read_varint(&[0x80]), None);
        assert_eq!(read_varint(&[]), None);
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_bytes(v));
            prop_assert_eq!(read_varint(&out), Some((v, out.len())));
        }

        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_bytes(v));
            prop_assert_eq!(read_varlong(&out), Some((v, out.len())));
        }
    }
}
