//! Seeds for the targets beyond record batches: gRPC framing, the files of a partition
//! directory (index and checkpoint files, taken from `cairn_fuzz::log_dir`'s real template
//! log), offset records, topic files, replay checkpoints and `node.meta`. Each is what Cairn itself writes,
//! so the fuzzers start from valid inputs and mutate from there.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cairn_broker::TopicConfig;
use cairn_broker::fuzzing::{OffsetKey, encode_key, encode_value};
use cairn_broker::node_meta::{ClusterId, NodeMeta};
use cairn_broker::{OffsetValue, TopicPartition};
use cairn_client::Checkpoint;
use cairn_codec::grpc_frame::put_prefix;
use cairn_fuzz::log_dir::{index_file_names, template};

use super::Result;

/// Writes every seed of these targets under `seeds/<target>/`.
pub fn write(seeds: &Path) -> Result<()> {
    grpc_frame(&seeds.join("grpc_frame"))?;
    index_files(&seeds.join("index_files"))?;
    checkpoint_files(&seeds.join("checkpoint_files"))?;
    offset_record(&seeds.join("offset_record"))?;
    topic_config(&seeds.join("topic_config"))?;
    replay_checkpoint(&seeds.join("replay_checkpoint"))?;
    node_meta(&seeds.join("node_meta"))?;
    Ok(())
}

fn seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// `[limit hi, limit lo, frame size, wire...]`, as the `grpc_frame` target reads it.
fn wire(limit: u16, frame: u8, messages: &[&[u8]]) -> Result<Vec<u8>> {
    let mut out = limit.to_be_bytes().to_vec();
    out.push(frame);
    for message in messages {
        put_prefix(message.len(), &mut out)?;
        out.extend_from_slice(message);
    }
    Ok(out)
}

fn grpc_frame(dir: &Path) -> Result<()> {
    // A FetchRequest's protobuf bytes (topic "orders", partition 2, offset 42).
    let request: &[u8] = &[
        0x0a, 6, b'o', b'r', b'd', b'e', b'r', b's', 0x10, 2, 0x18, 42,
    ];
    seed(dir, "unary-request.bin", &wire(4096, 31, &[request])?)?;
    seed(
        dir,
        "stream-in-small-frames.bin",
        &wire(4096, 2, &[request, b"", &[7; 100]])?,
    )?;
    seed(dir, "over-the-limit.bin", &wire(16, 31, &[&[1; 17]])?)?;
    let mut compressed = wire(4096, 31, &[request])?;
    if let Some(flag) = compressed.get_mut(3) {
        *flag = 1;
    }
    seed(dir, "compressed.bin", &compressed)
}

fn index_files(dir: &Path) -> Result<()> {
    let files = &template().files;
    for (idx, name) in index_file_names().into_iter().enumerate() {
        let Some((_, bytes)) = files.iter().find(|(file, _)| file == name) else {
            continue;
        };
        let mut input = vec![u8::try_from(idx)?];
        input.extend_from_slice(bytes);
        seed(dir, &format!("{name}.bin"), &input)?;
    }
    Ok(())
}

fn checkpoint_files(dir: &Path) -> Result<()> {
    // Raw: the template's own clean-shutdown marker, as the file the log wrote (selector 1).
    if let Some((_, marker)) = template()
        .files
        .iter()
        .find(|(name, _)| name == "clean-shutdown.checkpoint")
    {
        let mut input = vec![1_u8];
        input.extend_from_slice(marker);
        seed(dir, "clean-shutdown-raw.bin", &input)?;
    }
    // Wrapped: two big-endian u64s, the payload of every checkpoint kind, for each file with
    // its own kind (kind k is file k - 1).
    for (file_idx, name) in ["log-start", "clean-shutdown", "cleaner-offset"]
        .into_iter()
        .enumerate()
    {
        let kind = u8::try_from(file_idx + 1)?;
        let mut input = vec![0x80 | (kind << 2) | u8::try_from(file_idx)?];
        input.extend_from_slice(&3_u64.to_be_bytes());
        input.extend_from_slice(&3_u64.to_be_bytes());
        seed(dir, &format!("{name}-wrapped.bin"), &input)?;
    }
    Ok(())
}

fn offset_record(dir: &Path) -> Result<()> {
    let key = OffsetKey {
        group: "billing".to_string(),
        partition: TopicPartition {
            topic: "orders".to_string(),
            partition: 3,
        },
    };
    seed(dir, "key.bin", &encode_key(&key))?;
    let value = OffsetValue {
        offset: 1_234,
        leader_epoch: 2,
        metadata: "resumed after deploy".to_string(),
        commit_timestamp_ms: 1_700_000_000_000,
    };
    seed(dir, "value.bin", &encode_value(&value))
}

fn topic_config(dir: &Path) -> Result<()> {
    let mut config = TopicConfig::default();
    config.set("cleanup.policy", "compact,delete")?;
    config.set("retention.ms", "86400000")?;
    config.set("max.message.bytes", "2097152")?;
    let text = format!("partitions=6\n{}", config.to_file_text());
    seed(dir, "topic-file.txt", text.as_bytes())
}

fn replay_checkpoint(dir: &Path) -> Result<()> {
    let offsets = BTreeMap::from([(0, 1_000), (1, 0), (7, 42)]);
    let checkpoint = Checkpoint::new("orders", offsets)?;
    seed(dir, "checkpoint.txt", checkpoint.to_text().as_bytes())
}

/// A node's identity before the controller named its cluster, and after.
fn node_meta(dir: &Path) -> Result<()> {
    let unnamed = NodeMeta {
        node_id: 1,
        cluster_id: None,
    };
    seed(dir, "node-1.bin", &unnamed.encode())?;
    let joined = NodeMeta {
        node_id: 3,
        cluster_id: Some(ClusterId(*b"cairn-cluster-01")),
    };
    seed(dir, "node-3-joined.bin", &joined.encode())
}
