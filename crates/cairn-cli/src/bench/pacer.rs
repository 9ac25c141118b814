//! Precise waits for `bench produce --rate`: a record's latency counts from its scheduled send
//! time, so every microsecond the bench oversleeps is reported as the broker's.
//!
//! Tokio's timer rounds a deadline up to its next millisecond tick, which would add up to a
//! millisecond to every record at a fixed rate: at 200 records/s more than the broker's whole
//! fsync. So:
//! - At low rates (sends at least a millisecond apart) the wait is a `timerfd` with nanosecond
//!   expiry registered with the runtime's reactor, so the task yields like any other and the
//!   worker parked in `epoll` is woken by the timer itself, and its last [`SPIN_BEFORE`] is a
//!   spin, since a parked vCPU wakes tens of microseconds late on a virtual machine. A thread
//!   sleep inside `block_in_place` instead handed the worker's queue to another thread, so the
//!   send that followed woke a worker for its request (client context switches over 2,000
//!   requests: 20,281 that way, 10,126 sleeping on the worker, 8,035 with the timerfd).
//! - At higher rates sends are microseconds apart: a spin would burn the core they share, and
//!   the reactor answers the timer only between the producer's tasks (ack p50 at 20,000/s went
//!   0.65 -> 1.83 ms with the timerfd), so the wait is a thread sleep outside the worker
//!   (`block_in_place`), precise at the cost of a hand-off per record.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

/// How long before a send the wait turns into a spin, at low rates.
const SPIN_BEFORE: Duration = Duration::from_micros(60);

/// Waits until given instants to within microseconds (see the module docs).
pub(super) struct Pacer {
    /// The timer, at low rates; `None` at high rates, or where no `timerfd` could be made: the
    /// wait is then a thread sleep outside the worker.
    timer: Option<AsyncFd<OwnedFd>>,
    /// Whether the last stretch of each wait is a spin (low rates only).
    spin_tail: bool,
}

impl Pacer {
    /// A pacer for sends `interval` apart: the timer and the spin tail are used only when sends
    /// are at least a millisecond apart (the spin then costs at most 6% of a core).
    pub(super) fn new(interval: Duration) -> Pacer {
        let low_rate = interval >= Duration::from_millis(1);
        if !low_rate {
            return Pacer {
                timer: None,
                spin_tail: false,
            };
        }
        let registered = new_timerfd().and_then(|fd| {
            // SAFETY: an `OwnedFd` keeps its descriptor open, and returns the same one from
            // `as_raw_fd`, for as long as it lives, which is as long as the `AsyncFd`.
            unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
        });
        let timer = match registered {
            Ok(timer) => Some(timer),
            Err(err) => {
                tracing::warn!(%err, "no timerfd for pacing; falling back to thread sleeps");
                None
            }
        };
        Pacer {
            timer,
            spin_tail: true,
        }
    }

    /// Returns at `instant` (or at once if it has passed).
    pub(super) async fn wait_until(&self, instant: Instant) {
        let wake_at = if self.spin_tail {
            instant.checked_sub(SPIN_BEFORE).unwrap_or(instant)
        } else {
            instant
        };
        let left = wake_at.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            let slept = match &self.timer {
                Some(timer) => sleep_on(timer, left).await,
                None => Err(io::Error::other("no timerfd")),
            };
            if slept.is_err() {
                tokio::task::block_in_place(|| {
                    precise_thread_sleeps();
                    std::thread::sleep(wake_at.saturating_duration_since(Instant::now()));
                });
            }
        }
        if self.spin_tail {
            spin_until(instant);
        }
    }
}

/// Asks Linux to wake this thread's sleeps on time: it lets a sleeping thread oversleep by its
/// timer slack, 50 µs by default, and 1 ns asks for the wake-up when due. A thread's setting:
/// call it on threads of the bench's own, not on a pooled one that others reuse.
pub(super) fn precise_thread_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_u64) };
}

/// Sleeps this thread until `instant` as the pacer does at low rates (a sleep, then a spin over
/// its last [`SPIN_BEFORE`]), for the benches that pace a thread of their own rather than a
/// task; the thread should have called [`precise_thread_sleeps`].
pub(super) fn sleep_thread_until(instant: Instant) {
    let wake_at = instant.checked_sub(SPIN_BEFORE).unwrap_or(instant);
    std::thread::sleep(wake_at.saturating_duration_since(Instant::now()));
    spin_until(instant);
}

fn spin_until(instant: Instant) {
    while Instant::now() < instant {
        std::hint::spin_loop();
    }
}

/// A non-blocking `CLOCK_MONOTONIC` timerfd (the clock `Instant` reads on Linux).
fn new_timerfd() -> io::Result<OwnedFd> {
    // SAFETY: timerfd_create takes two integer arguments and returns a new descriptor or -1.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by timerfd_create, is valid, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms `timer` to fire once after `left` (non-zero) and waits for it through the reactor.
async fn sleep_on(timer: &AsyncFd<OwnedFd>, left: Duration) -> io::Result<()> {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(left.subsec_nanos().max(1)),
        },
    };
    // SAFETY: the descriptor is a live timerfd; `spec` is a valid itimerspec for the call's
    // duration, and a null old-value pointer is allowed. Re-arming resets the expiry count.
    let armed = unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if armed < 0 {
        return Err(io::Error::last_os_error());
    }
    loop {
        let mut ready = timer.readable().await?;
        match ready.try_io(|fd| read_expirations(fd.as_raw_fd())) {
            Ok(result) => return result.map(|_| ()),
            Err(_would_block) => continue,
        }
    }
}

/// Reads (and so clears) the timer's expiry count; `WouldBlock` if it has not fired yet.
fn read_expirations(fd: i32) -> io::Result<u64> {
    let mut count = [0_u8; 8];
    // SAFETY: `count` is 8 writable bytes, the size a timerfd read needs.
    let read = unsafe { libc::read(fd, count.as_mut_ptr().cast(), count.len()) };
    if read == 8 {
        Ok(u64::from_ne_bytes(count))
    } else {
        Err(io::Error::last_os_error())
    }
}
