//! Fuzz target `checkpoint_files`: one of a partition's checkpoint files (`log-start`,
//! `cleaner-offset`, `clean-shutdown`; `segments-format.md`, "Checkpoint files") replaced by
//! arbitrary bytes in a real partition directory, then the log reopened with
//! `cairn_log::Log::open`. Input: `[selector, payload...]`: bits 0-1 pick the file; with bit 7
//! set the payload is wrapped in a checkpoint header with a correct CRC (bits 2-3 pick the kind
//! written, so wrong kinds are tried too), so the fuzzer reaches the payload decoders and what
//! the log does with the values, not only the checksum.
//!
//! It checks that nothing panics or over-allocates, that bytes which are not a checkpoint are
//! refused as `CorruptCheckpoint` (an operator error, never a guess), that a log which opens
//! can be read without panicking, and that the clean-shutdown marker, whatever it holds, never
//! changes what the log answers (it only lets the open skip a scan).

#![no_main]

use cairn_fuzz::CappedAllocator;
use cairn_fuzz::log_dir::{Copy, answers, log_config, template};
use cairn_log::{Log, LogError};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// The checkpoint files, in the order of their kinds (`checkpoint.rs`: 1, 2, 3).
const FILES: [&str; 3] = [
    "log-start.checkpoint",
    "clean-shutdown.checkpoint",
    "cleaner-offset.checkpoint",
];
const CLEAN_SHUTDOWN_IDX: usize = 1;

/// `payload` as a checkpoint file of `kind` with a correct CRC: magic, version, kind, length.
fn framed(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"CAIRNCKP".to_vec();
    bytes.extend_from_slice(&1_u16.to_be_bytes());
    bytes.extend_from_slice(&kind.to_be_bytes());
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let file_idx = usize::from(selector & 0x03) % FILES.len();
    let name = FILES[file_idx];
    let wrapped = selector & 0x80 != 0;
    let bytes = if wrapped {
        framed(u16::from((selector >> 2) & 0x03), payload)
    } else {
        payload.to_vec()
    };
    let template = template();
    let copy = Copy::of(&template.files, Some((name, &bytes)));
    match Log::open(copy.path(), log_config(), 0) {
        Ok(log) => {
            let answered = answers(&log);
            if file_idx == CLEAN_SHUTDOWN_IDX {
                match answered {
                    Ok(answers) => assert!(
                        answers == template.answers,
                        "a clean-shutdown marker changed what the log answers"
                    ),
                    Err(err) => panic!("a clean-shutdown marker made a read fail: {err}"),
                }
            }
        }
        Err(err) => {
            let _ = err.to_string();
            assert!(
                wrapped || matches!(err, LogError::CorruptCheckpoint { .. }),
                "a damaged {name} was refused as {err:?}, not CorruptCheckpoint"
            );
            assert!(
                file_idx != CLEAN_SHUTDOWN_IDX,
                "a clean-shutdown marker stopped the log from opening: {err}"
            );
        }
    }
});
