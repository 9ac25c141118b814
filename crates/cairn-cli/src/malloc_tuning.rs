//! Tells glibc's allocator to keep freed buffers for reuse instead of handing them back to the
//! kernel, before the `cairn` binary starts any work.
//!
//! Why: every HTTP/2 DATA frame a replay or a subscription receives lands in a buffer of its
//! own (up to a MiB; `h2` allocates one per frame while earlier frames are still referenced),
//! and glibc's defaults either map such a buffer fresh or trim the arena once it is freed. The
//! next frame then lands in pages the kernel must fault in and zero: measured on a 1 M-record
//! replay (BENCHMARKS.md), 10,000 page faults per replay and about 30% of the client's CPU.
//! With buffers under 4 MiB served from the arenas and up to 64 MiB of free arena kept, the
//! same replay takes about 750 and the client a third less CPU. The cost is memory the process keeps after a burst, which a
//! broker or a long replay reuses anyway.
//!
//! A `GLIBC_TUNABLES` variable that sets any `glibc.malloc.*` tunable wins: the operator's
//! choice is left alone. Other C libraries (musl) and other systems are not tuned.

/// Allocations at or above this size are mapped on their own; below it they come from the
/// arenas, whose freed memory is reused warm.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 4 << 20;
/// Free memory at an arena's top kept before glibc trims it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: libc::c_int = 64 << 20;

/// Applies the tuning (see the module documentation); call it first thing in `main`.
pub fn keep_freed_buffers() {
    let operator_tuned = std::env::var("GLIBC_TUNABLES")
        .map(|tunables| tunables.contains("glibc.malloc."))
        .unwrap_or(false);
    if operator_tuned {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        // Setting either one also stops glibc from adjusting them on its own, which is what
        // lets a freed frame buffer stay in the arena.
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}
