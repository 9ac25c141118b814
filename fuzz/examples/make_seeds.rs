//! Writes the seed inputs under `fuzz/seeds/<target>/`: real batches made by `BatchBuilder` with
//! every codec, a meta entry from `encode_meta_entry`, and a run of them laid out as a segment
//! is, so the fuzzers start from valid bytes rather than having to discover the format; and,
//! in `file_seeds`, what Cairn writes for every other decoder a target covers.
//!
//! Run it with `cargo run --example make_seeds` from `fuzz/`. The output is deterministic (fixed
//! timestamps and contents), so rerunning it leaves `git status` clean unless the format changed.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use cairn_codec::batch::{
    BATCH_HEADER_BYTES, Batch, BatchBuilder, Compression, ProducerFields, RecordInput,
    encode_meta_entry, rewrite_assigned_fields,
};
use cairn_codec::{LeaderEpoch, Offset};

#[path = "make_seeds/file_seeds.rs"]
mod file_seeds;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// `batch_records` reads byte 1 as attribute bits; this one is the control bit.
const CONTROL_FLAG: u8 = 0x20;

fn main() -> Result<()> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let decode_dir = seeds.join("batch_decode");
    let records_dir = seeds.join("batch_records");
    fs::create_dir_all(&decode_dir)?;
    fs::create_dir_all(&records_dir)?;

    let mut segment = Vec::new();
    let mut next_offset = 0u64;
    for codec in CODECS {
        let batch = build_batch(codec)?;
        let name = format!("records-{}.bin", codec_name(codec));
        fs::write(decode_dir.join(name), &batch)?;
        append_to_segment(&mut segment, &batch, &mut next_offset)?;
    }
    let meta = encode_meta_entry(b"raft:membership:node-1,node-2,node-3", BASE_TIMESTAMP_MS)?;
    fs::write(decode_dir.join("meta-entry.bin"), &meta)?;
    append_to_segment(&mut segment, &meta, &mut next_offset)?;
    fs::write(decode_dir.join("segment-run.bin"), &segment)?;

    // batch_records takes [recordCount, flags, records section...]; the section is the same
    // bytes behind every codec, so one uncompressed copy seeds them all.
    let plain = Batch::validate(build_batch(Compression::None)?)?;
    let section = plain.records(1 << 20)?;
    let record_count = u8::try_from(plain.record_count())?;
    write_records_seed(
        &records_dir,
        "records.bin",
        [record_count, 0],
        section.as_bytes(),
    )?;
    write_records_seed(
        &records_dir,
        "compacted-gap.bin",
        [record_count, 3],
        section.as_bytes(),
    )?;
    write_records_seed(
        &records_dir,
        "control.bin",
        [record_count, CONTROL_FLAG],
        section.as_bytes(),
    )?;
    // Compressed sections too: wrapped as they are, they reach each decompressor with a stream
    // it can parse, so mutations explore the codec's framing rather than failing on its magic.
    for codec in &CODECS[1..] {
        let batch = build_batch(*codec)?;
        let compressed = batch
            .get(BATCH_HEADER_BYTES..)
            .ok_or("batch without records")?;
        let name = format!("compressed-{}.bin", codec_name(*codec));
        write_records_seed(&records_dir, &name, [record_count, 0], compressed)?;
    }
    let payload = Batch::validate(meta)?
        .meta_payload()
        .unwrap_or_default()
        .to_vec();
    write_records_seed(&records_dir, "meta-entry.bin", [0, CONTROL_FLAG], &payload)?;
    file_seeds::write(&seeds)?;
    println!("seeds written under {}", seeds.display());
    Ok(())
}

/// A batch with the shapes a decoder must handle: keys and null keys, values and tombstones,
/// headers with null values, timestamps out of order, and idempotent producer fields.
fn build_batch(codec: Compression) -> Result<Bytes> {
    let mut builder = BatchBuilder::new(codec);
    builder.set_producer(ProducerFields {
        producer_id: 4_000,
        producer_epoch: 2,
        base_sequence: 17,
    });
    let trace: &[(&[u8], Option<&[u8]>)] =
        &[(b"trace-id", Some(b"0af7651916cd43dd")), (b"retry", None)];
    let records = [
        RecordInput {
            key: Some(b"order-1"),
            value: Some(b"{\"status\":\"created\",\"amount\":1250}"),
            headers: trace,
            timestamp_ms: BASE_TIMESTAMP_MS,
        },
        RecordInput {
            key: None,
            value: Some(b"no key: spread by the partitioner"),
            headers: &[],
            timestamp_ms: BASE_TIMESTAMP_MS + 5,
        },
        RecordInput {
            key: Some(b"order-1"),
            value: None,
            headers: &[(b"tombstone", Some(b"1"))],
            timestamp_ms: BASE_TIMESTAMP_MS - 3,
        },
        RecordInput {
            key: Some(b""),
            value: Some(b""),
            headers: &[],
            timestamp_ms: BASE_TIMESTAMP_MS + 1_000,
        },
    ];
    for record in &records {
        builder.push(record)?;
    }
    Ok(builder.build()?)
}

/// Appends `batch` to `segment` with the base offset and leader epoch the log would assign.
fn append_to_segment(segment: &mut Vec<u8>, batch: &Bytes, next_offset: &mut u64) -> Result<()> {
    let start = segment.len();
    segment.extend_from_slice(batch);
    let assigned = segment
        .get_mut(start..)
        .ok_or("segment shorter than its own tail")?;
    if !rewrite_assigned_fields(assigned, Offset(*next_offset), LeaderEpoch(3)) {
        return Err("batch shorter than its header".into());
    }
    *next_offset += Batch::validate(batch.clone())?.offset_count();
    Ok(())
}

fn write_records_seed(dir: &Path, name: &str, prefix: [u8; 2], section: &[u8]) -> Result<()> {
    let mut seed = prefix.to_vec();
    seed.extend_from_slice(section);
    fs::write(dir.join(name), seed)?;
    Ok(())
}

fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}
