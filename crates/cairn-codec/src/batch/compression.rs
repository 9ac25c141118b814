//! The compression codecs Kafka defines for the records section of a batch. The log stores
//! compressed batches exactly as they came; it decompresses only to iterate records.
//!
//! Formats follow what Kafka's own Java client writes, so batches round-trip with it: gzip is a
//! gzip member, lz4 is the LZ4 frame format, zstd is a zstd frame, and snappy is the xerial
//! "snappy-java" stream framing (raw snappy blocks are accepted on read too, as librdkafka
//! writes them).

use std::io::{BufRead, Read, Write};

use super::error::BatchError;

/// Most bytes one batch's records section may decompress to, wherever Cairn decompresses one
/// (produce checks, fetches, the client, timestamp lookups, the cleaner, the offsets topic). A
/// larger section is refused as [`BatchError::DecompressedTooLarge`] rather than allowed to
/// exhaust memory: a compressed batch of a few KiB can claim gigabytes. 64 MiB is far above any
/// batch a producer sends (`max.message.bytes` counts compressed bytes, 1 MiB by default, and
/// real data compresses 2-10x) and small enough for a few to be decompressed at once.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// A compression codec, as coded in bits 0-2 of the batch attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Code 0: records stored as they are.
    #[default]
    None,
    /// Code 1: gzip.
    Gzip,
    /// Code 2: snappy (xerial framing).
    Snappy,
    /// Code 3: LZ4 frame.
    Lz4,
    /// Code 4: zstd.
    Zstd,
}

/// The xerial snappy-java stream header: magic, then version 1 and compatible version 1.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
/// snappy-java's default block size; blocks are compressed independently.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

impl Compression {
    /// The codec for an attributes code.
    ///
    /// # Errors
    /// [`BatchError::UnknownCompression`] for codes Kafka does not define.
    pub fn from_code(code: u8) -> Result<Compression, BatchError> {
        match code {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The attributes code of this codec.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Parses a codec name as Kafka's `compression.type` spells it.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Compresses `input` with `codec`, appending to `out`.
///
/// # Errors
/// [`BatchError::Compress`] if the encoder fails (it does not for in-memory buffers in practice).
pub fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    let fail = |reason: String| BatchError::Compress { codec, reason };
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            encoder.write_all(input).map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))?;
        }
        Compression::Snappy => compress_xerial_snappy(input, out).map_err(fail)?,
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(out);
            encoder.write_all(input).map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))?;
        }
        Compression::Zstd => {
            let compressed = zstd::bulk::compress(input, 3).map_err(|e| fail(e.to_string()))?;
            out.extend_from_slice(&compressed);
        }
    }
    Ok(())
}

/// Decompresses `input` into a new buffer of at most `limit_bytes` bytes.
///
/// # Errors
/// [`BatchError::Decompress`] for malformed input, [`BatchError::DecompressedTooLarge`] when the
/// output would pass `limit_bytes` (so a small batch cannot make the broker allocate gigabytes).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let fail = |reason: String| BatchError::Decompress { codec, reason };
    match codec {
        Compression::None => {
            if input.len() > limit_bytes {
                return Err(BatchError::DecompressedTooLarge { limit_bytes });
            }
            Ok(input.to_vec())
        }
        // A gzip stream may hold several members; all of them are the records.
        Compression::Gzip => read_limited(
            flate2::read::MultiGzDecoder::new(input),
            input.len(),
            limit_bytes,
            fail,
        ),
        // The decoder lends out each block it decompressed (BufRead), which is appended to
        // the output as it is: `read_to_end` through `Read` zeroed and regrew the output,
        // and `memset`, `memmove` and `realloc` were a third of lz4's time in a replay.
        Compression::Lz4 => append_limited(
            lz4_flex::frame::FrameDecoder::new(input),
            input.len(),
            limit_bytes,
            fail,
        ),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(input).map_err(|e| fail(e.to_string()))?;
            // A frame header declares its window size and the decoder allocates it up front:
            // ten bytes could otherwise claim 128 MiB (found by fuzzing). A window larger than
            // the output allowed is never needed; 8 MiB covers what Kafka clients write.
            decoder
                .window_log_max(zstd_window_log_max(limit_bytes))
                .map_err(|e| fail(e.to_string()))?;
            read_limited(decoder, input.len(), limit_bytes, fail)
        }
        Compression::Snappy => decompress_snappy(input, limit_bytes).map_err(|e| match e {
            SnappyFailure::TooLarge => BatchError::DecompressedTooLarge { limit_bytes },
            SnappyFailure::Malformed(reason) => fail(reason),
        }),
    }
}

/// The largest zstd window (as a power of two) worth allocating to produce `limit_bytes`.
fn zstd_window_log_max(limit_bytes: usize) -> u32 {
    const MIN_WINDOW_LOG: u32 = 23;
    const MAX_WINDOW_LOG: u32 = 27;
    let needed = usize::BITS - limit_bytes.saturating_sub(1).leading_zeros();
    needed.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
}

/// Output bytes per input byte reserved before decompressing: order-like JSON events compress
/// about 4:1 with lz4, more with zstd; a larger ratio costs only a regrowth.
const EXPECTED_RATIO: usize = 5;

/// The output capacity to reserve before decompressing `input_bytes`: sized for the usual
/// ratio up front, so that the output is not regrown (and copied) by doubling from empty, and
/// never past the limit.
fn expected_output_bytes(input_bytes: usize, limit_bytes: usize) -> usize {
    input_bytes.saturating_mul(EXPECTED_RATIO).min(limit_bytes)
}

fn read_limited(
    reader: impl Read,
    input_bytes: usize,
    limit_bytes: usize,
    fail: impl Fn(String) -> BatchError,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(expected_output_bytes(input_bytes, limit_bytes));
    // Read one byte past the limit so that "exactly at the limit" and "over it" differ.
    let cap = u64::try_from(limit_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    if out.len() > limit_bytes {
        return Err(BatchError::DecompressedTooLarge { limit_bytes });
    }
    Ok(out)
}

/// As `read_limited`, for a decoder that lends out what it decompressed.
fn append_limited(
    mut reader: impl BufRead,
    input_bytes: usize,
    limit_bytes: usize,
    fail: impl Fn(String) -> BatchError,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(expected_output_bytes(input_bytes, limit_bytes));
    loop {
        let block = reader.fill_buf().map_err(|e| fail(e.to_string()))?;
        if block.is_empty() {
            return Ok(out);
        }
        if block.len() > limit_bytes - out.len() {
            return Err(BatchError::DecompressedTooLarge { limit_bytes });
        }
        out.extend_from_slice(block);
        let taken = block.len();
        reader.consume(taken);
    }
}

fn compress_xerial_snappy(input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_BYTES) {
        let compressed = encoder.compress_vec(block).map_err(|e| e.to_string())?;
        let length = i32::try_from(compressed.len()).map_err(|e| e.to_string())?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(())
}

enum SnappyFailure {
    TooLarge,
    Malformed(String),
}

fn decompress_snappy(input: &[u8], limit_bytes: usize) -> Result<Vec<u8>, SnappyFailure> {
    let malformed = |reason: &str| SnappyFailure::Malformed(reason.to_string());
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    let mut decode_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), SnappyFailure> {
        let len = snap::raw::decompress_len(block).map_err(|e| malformed(&e.to_string()))?;
        if out.len().saturating_add(len) > limit_bytes {
            return Err(SnappyFailure::TooLarge);
        }
        let start = out.len();
        out.resize(start + len, 0);
        let written = decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| malformed(&e.to_string()))?;
        out.truncate(start + written);
        Ok(())
    };
    if !input.starts_with(&XERIAL_MAGIC) {
        decode_block(input, &mut out)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| malformed("short xerial header"))?;
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("short xerial block length"))?;
        let block_len = usize::try_from(i32::from_be_bytes(*len_bytes))
            .map_err(|_| malformed("negative xerial block length"))?;
        let block = tail
            .get(..block_len)
            .ok_or_else(|| malformed("xerial block past the end"))?;
        decode_block(block, &mut out)?;
        rest = &tail[block_len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in ALL {
            let mut out = Vec::new();
            compress(codec, &input, &mut out).unwrap();
            assert_eq!(
                decompress(codec, &out, input.len()).unwrap(),
                input,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let input = vec![7u8; 1 << 20];
        for codec in ALL {
            let mut out = Vec::new();
            compress(codec, &input, &mut out).unwrap();
            let err = decompress(codec, &out, 1000).unwrap_err();
            assert_eq!(
                err,
                BatchError::DecompressedTooLarge { limit_bytes: 1000 },
                "{codec:?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage = [
            0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xff,
        ];
        for codec in ALL {
            let _ = decompress(codec, &garbage, 1 << 20);
            let _ = decompress(codec, &garbage[..5], 1 << 20);
        }
        assert!(decompress(Compression::Lz4, b"not lz4", 1 << 20).is_err());
    }

    #[test]
    fn unknown_codes_are_typed_errors() {
        for code in 5..8 {
            assert_eq!(
                Compression::from_code(code),
                Err(BatchError::UnknownCompression(code))
            );
        }
    }
}
