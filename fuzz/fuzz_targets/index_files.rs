//! Fuzz target `index_files`: a segment's `.index`, `.timeindex` or `.entryindex` replaced by
//! arbitrary bytes in a real, cleanly closed partition directory, then the log reopened with
//! `cairn_log::Log::open` as the broker does at start. Input: `[which file, file bytes...]`
//! (see `cairn_fuzz::log_dir`).
//!
//! Index files are caches of their `.log` (`segments-format.md`, "Indexes"): whatever they
//! hold, the log must open, every read must answer exactly what the undamaged log answers
//! (reads check the batches they land on), and no lookup may panic. Timestamp lookups must
//! answer as the undamaged log too, except after damage to a `.timeindex` itself: one whose
//! tail passes the open-time checks is trusted after a clean shutdown, and a timestamp lowered
//! in its middle makes lookups start past the answer (found by this target; see the README's
//! "Regressions").

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
        Ok(answers) => {
            assert!(
                answers.reads == template.answers.reads,
                "a damaged {name} changed what a read answers"
            );
            // A damaged `.timeindex` whose tail still looks right is trusted after a clean
            // shutdown, and then lookups may answer a later offset (see the README's
            // regressions); no other index may change a lookup.
            assert!(
                name.ends_with(".timeindex") || answers.lookups == template.answers.lookups,
                "a damaged {name} changed what a timestamp lookup answers"
            );
        }
        Err(err) => panic!("a damaged {name} made a read fail: {err}"),
    }
});
