//! Fuzz target `index_files`: a segment's `.index`, `.timeindex` or `.entryindex` replaced by
//! arbitrary bytes in a real, cleanly closed partition directory, then the log reopened with
//! `cairn_log::Log::open` as the broker does at start. Input: `[which file, file bytes...]`
//! (see `cairn_fuzz::log_dir`).
//!
//! Index files are caches of their `.log` (`segments-format.md`, "Indexes"): whatever they
//! hold, the log must open, and every read and timestamp lookup must answer exactly what the
//! undamaged log answers. A file that fails the open-time checks is rebuilt; one that passes
//! them must be right.

#![no_main]

use cairn_fuzz::CappedAllocator;
use cairn_fuzz::log_dir::{Copy, answers, index_file_names, log_config, template};
use cairn_log::Log;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let names = index_file_names();
    let name = names[usize::from(selector) % names.len()];
    let template = template();
    let copy = Copy::of(&template.files, Some((name, bytes)));
    let log = match Log::open(copy.path(), log_config(), 0) {
        Ok(log) => log,
        Err(err) => panic!("a damaged {name} stopped the log from opening: {err}"),
    };
    match answers(&log) {
        Ok(answers) => assert!(
            answers == template.answers,
            "a damaged {name} changed what the log answers"
        ),
        Err(err) => panic!("a damaged {name} made a read fail: {err}"),
    }
});
