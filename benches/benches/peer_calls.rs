//! Node-to-node calls between two in-process nodes over loopback gRPC (`cairn_server::peer`):
//! what one Raft heartbeat costs the transport, and whether coalescing holds up.
//!
//! Phases, each for `CAIRN_BENCH_SECONDS`:
//! - `closed N`: N groups each send a heartbeat-sized call (64 B, answered with 32 B) and send
//!   the next as soon as the answer comes: calls/s, CPU per call, calls per frame. N = 1 is pure
//!   round-trip latency (no coalescing possible); larger N shows what frames buy.
//! - `heartbeats G`: G groups each on its own timer, one call every 250 ms (the default
//!   heartbeat interval), timers spread over the interval as independent groups' would be: the
//!   CPU share of one core this costs, and calls per frame. `timers only G` runs the same
//!   timers without calling, so the difference is what the transport costs.
//!
//! Both nodes run in this process on one 2-worker runtime, so CPU figures cover both ends of
//! every call (caller and callee), plus the benchmark's own task per group.
//!
//! Run: `cargo bench -p cairn-benches --bench peer_calls` (env `CAIRN_BENCH_SECONDS`, and
//! `CAIRN_BENCH_FRAME_INTERVAL_MS` for the links' `frame_interval_min`, default 1).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_raft::transport::BoxFuture;
use cairn_raft::{GroupId, InboundCalls, NodeId, PeerTransport, RpcKind};
use cairn_server::peer::{
    NodeIdentity, PeerCounter, PeerLimits, PeerLinks, PeerMetrics, PeerServiceHandle, peer_server,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

const REQUEST_BYTES: usize = 64;
const REPLY_BYTES: usize = 32;
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
const CALL_TIMEOUT_MS: u64 = 10_000;

/// A group that answers every call at once with a heartbeat-sized reply.
struct Answering {
    reply: Bytes,
}

impl InboundCalls for Answering {
    fn handle(
        &self,
        _from: NodeId,
        _group: GroupId,
        _kind: RpcKind,
        _payload: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        let reply = self.reply.clone();
        Box::pin(async move { Ok(reply) })
    }
}

/// Node 1's links to node 2, which serves on loopback.
struct Pair {
    links: Arc<PeerLinks>,
    metrics: Arc<PeerMetrics>,
    _handle: PeerServiceHandle,
}

impl Pair {
    async fn start() -> Pair {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let interval_ms: u64 = std::env::var("CAIRN_BENCH_FRAME_INTERVAL_MS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(1);
        let limits = PeerLimits {
            frame_interval_min: Duration::from_millis(interval_ms),
            ..PeerLimits::default()
        };
        let (service, handle) = peer_server(
            Arc::new(NodeIdentity::new(2, None)),
            Arc::new(Answering {
                reply: Bytes::from(vec![1u8; REPLY_BYTES]),
            }),
            limits,
            Arc::new(PeerMetrics::new()),
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let metrics = Arc::new(PeerMetrics::new());
        let links = Arc::new(PeerLinks::new(
            Arc::new(NodeIdentity::new(1, None)),
            BTreeMap::from([(2, addr.to_string())]),
            limits,
            Arc::clone(&metrics),
        ));
        Pair {
            links,
            metrics,
            _handle: handle,
        }
    }

    fn frames_and_calls(&self) -> (u64, u64) {
        (
            self.metrics.count(2, PeerCounter::FramesSent),
            self.metrics.count(2, PeerCounter::CallsSent),
        )
    }
}

fn main() {
    let seconds: f64 = std::env::var("CAIRN_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    let phase = Duration::from_secs_f64(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let pair = Pair::start().await;
        // Open the stream before measuring.
        call(&pair.links, 0).await;
        println!("peer_calls: {seconds}s per phase; calls of {REQUEST_BYTES} B, replies of {REPLY_BYTES} B; both ends in this process");
        println!(
            "{:<18} {:>12} {:>14} {:>12} {:>14}",
            "phase", "calls/s", "CPU us/call", "CPU % core", "calls/frame"
        );
        for groups in [1, 16, 256, 1024] {
            let result = measure(&pair, phase, closed_loop(&pair, groups, phase)).await;
            result.print(&format!("closed {groups}"));
        }
        for groups in [1000, 3000] {
            let result = measure(&pair, phase, heartbeats(&pair, groups, phase, true)).await;
            result.print(&format!("heartbeats {groups}"));
            // The same timers without calls: what the groups' timers cost on their own.
            let result = measure(&pair, phase, heartbeats(&pair, groups, phase, false)).await;
            result.print(&format!("timers only {groups}"));
        }
    });
}

async fn call(links: &PeerLinks, group: u64) {
    let payload = Bytes::from(vec![0u8; REQUEST_BYTES]);
    if let Err(err) = links
        .call(
            2,
            GroupId(group),
            RpcKind::AppendEntries,
            payload,
            CALL_TIMEOUT_MS,
        )
        .await
    {
        panic!("a benchmark call failed: {err}");
    }
}

struct Measured {
    calls: u64,
    frames: u64,
    elapsed: Duration,
    cpu: Duration,
}

impl Measured {
    fn print(&self, phase: &str) {
        let secs = self.elapsed.as_secs_f64();
        let calls = self.calls.max(1) as f64;
        println!(
            "{:<18} {:>12.0} {:>14.2} {:>12.1} {:>14.1}",
            phase,
            self.calls as f64 / secs,
            self.cpu.as_secs_f64() * 1e6 / calls,
            self.cpu.as_secs_f64() * 100.0 / secs,
            calls / self.frames.max(1) as f64,
        );
    }
}

/// Runs `work` and reports what it cost the process.
async fn measure(
    pair: &Pair,
    _phase: Duration,
    work: impl std::future::Future<Output = ()>,
) -> Measured {
    let (frames_before, calls_before) = pair.frames_and_calls();
    let cpu_before = cpu_time();
    let started = Instant::now();
    work.await;
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let (frames_after, calls_after) = pair.frames_and_calls();
    Measured {
        calls: calls_after - calls_before,
        frames: frames_after - frames_before,
        elapsed,
        cpu,
    }
}

/// `groups` tasks, each calling again as soon as its answer comes, for `phase`.
async fn closed_loop(pair: &Pair, groups: u64, phase: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..groups)
        .map(|group| {
            let (links, stop) = (Arc::clone(&pair.links), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    call(&links, group).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
}

/// `groups` tasks on their own heartbeat timers, spread over the interval, for `phase`.
async fn heartbeats(pair: &Pair, groups: u64, phase: Duration, calling: bool) {
    let deadline = tokio::time::Instant::now() + phase;
    let missed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..groups)
        .map(|group| {
            let links = Arc::clone(&pair.links);
            let offset = HEARTBEAT_INTERVAL.mul_f64(group as f64 / groups as f64);
            let missed = Arc::clone(&missed);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(
                    tokio::time::Instant::now() + offset,
                    HEARTBEAT_INTERVAL,
                );
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    let tick = ticks.tick().await;
                    if tick >= deadline {
                        return;
                    }
                    if !calling {
                        continue;
                    }
                    call(&links, group).await;
                    if tokio::time::Instant::now() > tick + HEARTBEAT_INTERVAL {
                        missed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let missed = missed.load(Ordering::Relaxed);
    if missed > 0 {
        println!("  ({missed} heartbeats took longer than the interval)");
    }
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` through the pointer, which points at a zeroed,
    // properly aligned `rusage` we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: zeroed is a valid `rusage` (plain integers), and getrusage succeeded.
    let usage = unsafe { usage.assume_init() };
    let timeval = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}
