//! `cairn bench rpc-floor`: what one paced producer's request to an fsyncing server costs over
//! loopback in three stacks of increasing weight, before any of Cairn's own code runs, so the
//! broker's figure at 200 records/s can be read against what its stack alone allows.
//!
//! Each stack runs the same exchange: one request in flight, each carrying one record laid out
//! as the log would write it, sent at its scheduled time; the server writes the request's
//! bytes at the next place in a laid-out file, `fdatasync`s them, and answers; the client
//! counts the record's latency from its scheduled time to the answer. The stacks:
//! - `threads`: a blocking thread at each end, a length prefix on the socket, the client
//!   sleeping to its send time as `bench floor` does. The least any implementation pays.
//! - `tokio`: the same exchange on tokio tasks, the server on a runtime of its own with a
//!   worker per core, as the broker has, the client paced by the bench's own
//!   [`super::pacer::Pacer`]. What the async runtime's wake-ups through `epoll` add.
//! - `h2`: gRPC's shape over HTTP/2 with the `h2` crate, which the broker's server and the
//!   producer's connection both use, with the broker's window and frame sizes: a POST with the
//!   gRPC headers, a length-prefixed message, an answer with a message and a `grpc-status`
//!   trailer. Arranged as Cairn is (see `grpc_h2`). What HTTP/2 adds.
//!
//! The server times each write and `fdatasync` itself, so every stack reports the disk's
//! latency at the run's pace beside its own round trip: the round trip less the disk is the
//! stack's share. Both ends run in this process, so its CPU time is both ends' CPU; the
//! server's share is read from its threads' CPU clocks. At rates up to 1,000/s the client's
//! share includes the pacer's spin before each send (60 µs), as `bench produce`'s does.
//!
//! The client connects before the server starts accepting (the connection waits in the
//! backlog), so a client that cannot connect fails the run instead of leaving the server
//! waiting; a failed run reports the server's error first, since a server that fails closes
//! the connection and the client sees only that.

mod grpc_h2;
mod threads;
mod tokio_tcp;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::cpu_ceiling::process_cpu_time;
use super::fsync_baseline::{laid_out, next_position};
use super::produce_flags::batch_bytes;
use super::report::{Percentiles, latency_histogram, record_latency};
use super::{OutputFormat, flag_within};
use crate::usage_error::usage_bail;

/// Size of each run's laid-out file; writes wrap to its start.
const FILE_BYTES: u64 = 64 << 20;

/// `cairn bench rpc-floor` arguments.
#[derive(Debug, Args)]
pub struct BenchRpcFloorArgs {
    /// Directory for the scratch files, removed afterwards: put it on the broker's disk.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Which stacks to run; `all` runs each in turn, every round.
    #[arg(long, value_enum, default_value_t = StackChoice::All)]
    pub stack: StackChoice,
    /// Records (and so requests) per second, one in flight (1 to 100,000).
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Records per stack and round (1 to 10,000,000).
    #[arg(long, default_value_t = 2_000)]
    pub records: u64,
    /// Bytes of each record's value (1 to 1,048,576).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Rounds; with `--stack all` the stacks are interleaved, one of each per round (1 to 20).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// Which stacks `bench rpc-floor` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StackChoice {
    /// Blocking threads and a length prefix on a loopback socket.
    Threads,
    /// Tokio tasks and a length prefix.
    Tokio,
    /// gRPC's shape over HTTP/2 (`h2`) on tokio.
    H2,
    /// Each of the above in turn.
    All,
}

impl StackChoice {
    fn stacks(self) -> Vec<Stack> {
        match self {
            StackChoice::Threads => vec![Stack::Threads],
            StackChoice::Tokio => vec![Stack::Tokio],
            StackChoice::H2 => vec![Stack::H2],
            StackChoice::All => vec![Stack::Threads, Stack::Tokio, Stack::H2],
        }
    }
}

/// One stack measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Threads,
    Tokio,
    H2,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Threads => "threads",
            Stack::Tokio => "tokio",
            Stack::H2 => "h2",
        }
    }

    /// Runs this stack's exchange over `disk`.
    async fn run(self, shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
        match self {
            Stack::Threads => tokio::task::spawn_blocking(move || threads::run(shape, disk))
                .await
                .context("the threads stack's runner panicked")?,
            Stack::Tokio => tokio_tcp::run(shape, disk).await,
            Stack::H2 => grpc_h2::run(shape, disk).await,
        }
    }
}

/// A run's shape, checked.
#[derive(Clone, Copy, Debug)]
struct Shape {
    records: u64,
    rate: u64,
    /// Bytes of each request's payload: a batch of one record, as the log writes it.
    payload_bytes: usize,
}

impl Shape {
    /// Time between sends.
    fn interval(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / self.rate)
    }

    /// When record `k` is due, from the run's start.
    fn due(&self, start: Instant, k: u64) -> Instant {
        let nanos = u128::from(k) * 1_000_000_000 / u128::from(self.rate);
        let after = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        // Flags cap the run at 10^7 records at 1/s: 116 days, far inside `Instant`'s range.
        start.checked_add(after).unwrap_or(start)
    }

    /// Requests are at least a millisecond apart: the pacing spins its last stretch.
    fn low_rate(&self) -> bool {
        self.interval() >= Duration::from_millis(1)
    }
}

fn check(args: &BenchRpcFloorArgs) -> anyhow::Result<Shape> {
    flag_within("rate", args.rate, 1, 100_000)?;
    flag_within("records", args.records, 1, 10_000_000)?;
    flag_within("record-size", args.record_size as u64, 1, 1 << 20)?;
    flag_within("rounds", u64::from(args.rounds), 1, 20)?;
    if !args.dir.is_dir() {
        usage_bail!("--dir {}: no such directory", args.dir.display());
    }
    let payload_bytes = usize::try_from(batch_bytes(1, args.record_size))
        .context("the size of a one-record batch")?;
    Ok(Shape {
        records: args.records,
        rate: args.rate,
        payload_bytes,
    })
}

/// The server's file: each request's payload written at the next place and `fdatasync`ed,
/// each write and sync timed.
struct Disk {
    file: File,
    position: u64,
    synced: Histogram<u64>,
}

impl Disk {
    fn new(path: &Path) -> anyhow::Result<Disk> {
        Ok(Disk {
            file: laid_out(path, FILE_BYTES)?,
            position: 0,
            synced: latency_histogram()?,
        })
    }

    /// Writes and syncs `payload`, as the log does before it acknowledges.
    fn write(&mut self, payload: &[u8]) -> io::Result<()> {
        let started = Instant::now();
        self.file.write_all_at(payload, self.position)?;
        self.file.sync_data()?;
        record_latency(&mut self.synced, started.elapsed());
        self.position = next_position(self.position, payload.len() as u64, FILE_BYTES);
        Ok(())
    }
}

/// What the server of one stack did: its file, and the CPU its threads spent.
struct ServerRun {
    disk: Disk,
    cpu: Duration,
}

/// The CPU time a live thread of this process has spent so far.
///
/// # Safety
/// `thread` must not have ended: its id could be reused, or name nothing.
unsafe fn thread_cpu(thread: libc::pthread_t) -> anyhow::Result<Duration> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the caller promises `thread` is live; `clock` is a writable clockid_t.
    let rc = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc)).context("a server thread's CPU clock");
    }
    // SAFETY: the timespec is plain data that clock_gettime fills in.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `clock` came from pthread_getcpuclockid; `now` is writable.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return Err(io::Error::last_os_error()).context("reading a server thread's CPU clock");
    }
    Ok(Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    ))
}

/// What the client of one stack measured.
struct ClientRun {
    /// Scheduled send to answer, per record.
    latency: Histogram<u64>,
    /// Actual send to answer, per request.
    service: Histogram<u64>,
}

impl ClientRun {
    fn new() -> anyhow::Result<ClientRun> {
        Ok(ClientRun {
            latency: latency_histogram()?,
            service: latency_histogram()?,
        })
    }

    /// Counts one exchange: due at `due`, sent at `sent`, answered now.
    fn answered(&mut self, due: Instant, sent: Instant) {
        let now = Instant::now();
        record_latency(&mut self.latency, now.saturating_duration_since(due));
        record_latency(&mut self.service, now.saturating_duration_since(sent));
    }
}

/// One stack's figures from one round.
struct StackRun {
    stack: Stack,
    round: u32,
    latency: Percentiles,
    service: Percentiles,
    synced: Percentiles,
    /// Both ends' CPU.
    cpu: Duration,
    /// The server's share of it.
    server_cpu: Duration,
    records: u64,
}

impl StackRun {
    fn per_request_micros(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.records.max(1) as f64
    }

    fn to_json(&self) -> Value {
        json!({
            "stack": self.stack.name(), "round": self.round,
            "latency_ms": self.latency.to_json(), "service_time_ms": self.service.to_json(),
            "write_and_fdatasync_ms": self.synced.to_json(),
            "service_p50_over_fdatasync_p50_ms": self.service.p50 - self.synced.p50,
            "cpu_seconds": self.cpu.as_secs_f64(),
            "server_cpu_seconds": self.server_cpu.as_secs_f64(),
            "cpu_micros_per_request": self.per_request_micros(self.cpu),
            "server_cpu_micros_per_request": self.per_request_micros(self.server_cpu),
        })
    }

    fn to_text(&self) -> String {
        format!(
            "round {} {:>7}: ack p50 {:.3} ms p99 {:.3} ms; service p50 {:.3} ms p99 {:.3} ms; server's write+fdatasync p50 {:.3} ms p99 {:.3} ms; service p50 over it {:.3} ms; CPU per request {:.0} µs, the server's {:.0} µs",
            self.round,
            self.stack.name(),
            self.latency.p50,
            self.latency.p99,
            self.service.p50,
            self.service.p99,
            self.synced.p50,
            self.synced.p99,
            self.service.p50 - self.synced.p50,
            self.per_request_micros(self.cpu),
            self.per_request_micros(self.server_cpu),
        )
    }
}

/// Runs `cairn bench rpc-floor`.
///
/// # Errors
/// A flag out of range (before anything is written), or a scratch file or loopback socket
/// that cannot be made, written or synced.
pub async fn run(args: BenchRpcFloorArgs) -> anyhow::Result<()> {
    let shape = check(&args)?;
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bench-rpc-floor-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a scratch directory in {}", args.dir.display()))?;
    if args.format == OutputFormat::Text {
        println!(
            "rpc-floor: {} records of {} bytes ({}-byte writes) at {} records/s, one in flight, per stack and round",
            shape.records, args.record_size, shape.payload_bytes, args.rate
        );
    }
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for stack in args.stack.stacks() {
            let path = scratch.path().join(format!("{}-{round}", stack.name()));
            let disk = Disk::new(&path)?;
            let cpu_before = process_cpu_time()?;
            let (client, server) = stack.run(shape, disk).await?;
            let run = StackRun {
                stack,
                round,
                latency: Percentiles::of(&client.latency),
                service: Percentiles::of(&client.service),
                synced: Percentiles::of(&server.disk.synced),
                cpu: process_cpu_time()?.saturating_sub(cpu_before),
                server_cpu: server.cpu,
                records: shape.records,
            };
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            if args.format == OutputFormat::Text {
                println!("{}", run.to_text());
            }
            runs.push(run);
        }
    }
    if args.format == OutputFormat::Json {
        let runs: Vec<Value> = runs.iter().map(StackRun::to_json).collect();
        println!(
            "{}",
            json!({
                "rate": args.rate, "records": shape.records, "record_size": args.record_size,
                "write_bytes": shape.payload_bytes, "rounds": args.rounds, "runs": runs,
            })
        );
    }
    Ok(())
}

/// A server runtime like the broker's, a worker per core apart from the client's, and what
/// its threads have spent. Dropping it stops the runtime without waiting for it, which an
/// async caller may do (dropping a `Runtime` there would panic).
struct ServerRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    threads: Arc<Mutex<ServerThreads>>,
}

/// The server runtime's threads: those alive, and the CPU of those that ended.
#[derive(Default)]
struct ServerThreads {
    live: Vec<libc::pthread_t>,
    ended: Duration,
}

fn server_runtime() -> anyhow::Result<ServerRuntime> {
    let threads = Arc::new(Mutex::new(ServerThreads::default()));
    let (started, stopped) = (Arc::clone(&threads), Arc::clone(&threads));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("rpc-floor-server")
        .on_thread_start(move || {
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() };
            if let Ok(mut threads) = started.lock() {
                threads.live.push(me);
            }
        })
        .on_thread_stop(move || {
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() };
            if let Ok(mut threads) = stopped.lock() {
                threads.live.retain(|thread| *thread != me);
                // SAFETY: this thread is running this very call.
                let spent = unsafe { thread_cpu(me) }.unwrap_or_default();
                threads.ended += spent;
            }
        })
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    Ok(ServerRuntime {
        runtime: Some(runtime),
        threads,
    })
}

impl ServerRuntime {
    fn handle(&self) -> anyhow::Result<&tokio::runtime::Runtime> {
        self.runtime
            .as_ref()
            .context("the server's runtime is already stopped")
    }

    /// A loopback listener registered with this runtime's reactor, so the server's I/O is its
    /// own.
    fn listener(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let _entered = self.handle()?.enter();
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback socket")?;
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        tokio::net::TcpListener::from_std(listener).context("registering the listener")
    }

    /// Starts the server's task on this runtime.
    fn spawn(
        &self,
        server: impl Future<Output = anyhow::Result<Disk>> + Send + 'static,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Disk>>> {
        Ok(self.handle()?.spawn(server))
    }

    /// The CPU this runtime's threads have spent so far.
    fn cpu(&self) -> anyhow::Result<Duration> {
        // Held while the clocks are read: a thread that ends takes the lock first to leave the
        // list, so every thread read here is alive.
        let threads = self
            .threads
            .lock()
            .map_err(|_| anyhow::anyhow!("a server thread panicked while starting or ending"))?;
        let mut cpu = threads.ended;
        for thread in &threads.live {
            // SAFETY: listed threads are alive while the lock is held (above).
            cpu += unsafe { thread_cpu(*thread) }?;
        }
        Ok(cpu)
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits for the server's task and reads what its runtime's threads spent.
async fn finish_server(
    server: &ServerRuntime,
    task: tokio::task::JoinHandle<anyhow::Result<Disk>>,
) -> anyhow::Result<ServerRun> {
    let disk = task.await.context("the server's task panicked")??;
    Ok(ServerRun {
        disk,
        cpu: server.cpu()?,
    })
}

/// Runs a stack whose ends are tokio tasks: the server's on a runtime of its own, as the
/// broker's is, the client's on the caller's. The client connects before the server starts
/// accepting (as in `threads`), then `send` runs while `serve` answers.
async fn run_on_tokio<Serve, Send>(
    shape: Shape,
    disk: Disk,
    serve: impl FnOnce(tokio::net::TcpListener, Disk, Shape) -> Serve,
    send: impl FnOnce(tokio::net::TcpStream, std::net::SocketAddr, Shape) -> Send,
) -> anyhow::Result<(ClientRun, ServerRun)>
where
    Serve: Future<Output = anyhow::Result<Disk>> + std::marker::Send + 'static,
    Send: Future<Output = anyhow::Result<ClientRun>>,
{
    let server = server_runtime()?;
    let listener = server.listener()?;
    let address = listener.local_addr().context("the listener's address")?;
    let socket = tokio::net::TcpStream::connect(address)
        .await
        .context("connecting to the server")?;
    let task = server.spawn(serve(listener, disk, shape))?;
    let client = send(socket, address, shape).await;
    // The client's socket is closed by now, which ends the server's connection.
    let served = finish_server(&server, task).await;
    outcome(client, served)
}

/// Checks a request's length prefix against the run's request size, so a bad prefix cannot
/// make the server allocate what it says.
fn check_declared(prefix: [u8; 4], expected: usize) -> anyhow::Result<()> {
    let declared = u32::from_be_bytes(prefix) as usize;
    if declared != expected {
        anyhow::bail!("a request declared {declared} bytes; this run's are {expected}");
    }
    Ok(())
}

/// Both ends' outcomes as the run's: the server's failure first, since a server that fails
/// closes the connection and the client sees only that.
fn outcome(
    client: anyhow::Result<ClientRun>,
    server: anyhow::Result<ServerRun>,
) -> anyhow::Result<(ClientRun, ServerRun)> {
    match (client, server) {
        (Ok(client), Ok(server)) => Ok((client, server)),
        (Ok(_), Err(server)) => Err(server.context("the server failed")),
        (Err(client), Err(server)) => Err(server.context(format!(
            "the server failed (and the client then: {client:#})"
        ))),
        (Err(client), Ok(_)) => Err(client.context("the client failed")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn args(dir: &Path) -> BenchRpcFloorArgs {
        BenchRpcFloorArgs {
            dir: dir.to_path_buf(),
            stack: StackChoice::All,
            rate: 2_000,
            records: 40,
            record_size: 100,
            rounds: 1,
            format: OutputFormat::Json,
        }
    }

    #[test]
    fn flags_out_of_range_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for (change, named) in [
            (
                (|a: &mut BenchRpcFloorArgs| a.rate = 0) as fn(&mut BenchRpcFloorArgs),
                "--rate 0",
            ),
            (|a| a.records = 0, "--records 0"),
            (|a| a.record_size = 2 << 20, "--record-size 2097152"),
            (|a| a.rounds = 21, "--rounds 21"),
            (|a| a.dir = a.dir.join("missing"), "no such directory"),
        ] {
            let mut args = args(dir.path());
            change(&mut args);
            let err = check(&args).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    async fn measured(stack: Stack) {
        let dir = tempfile::tempdir().unwrap();
        let shape = check(&args(dir.path())).unwrap();
        let disk = Disk::new(&dir.path().join("file")).unwrap();
        let started = Instant::now();
        let (client, server) = stack.run(shape, disk).await.unwrap();
        assert!(
            started.elapsed() >= shape.interval() * 39,
            "{stack:?}: sent on schedule, 0.5 ms apart"
        );
        assert_eq!(client.latency.len(), 40, "{stack:?}: every record answered");
        assert_eq!(client.service.len(), 40);
        assert_eq!(
            server.disk.synced.len(),
            40,
            "{stack:?}: every request synced"
        );
        assert_eq!(server.disk.position, 40 * shape.payload_bytes as u64);
        assert!(
            server.cpu > Duration::ZERO,
            "{stack:?}: the server's CPU is read"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_stack_writes_syncs_and_answers_every_request() {
        for stack in StackChoice::All.stacks() {
            measured(stack).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_fails_fails_the_run_with_its_own_error() {
        for stack in StackChoice::All.stacks() {
            let dir = tempfile::tempdir().unwrap();
            let shape = check(&args(dir.path())).unwrap();
            let mut disk = Disk::new(&dir.path().join("file")).unwrap();
            // A read-only descriptor: the first write fails with EBADF.
            disk.file = std::fs::File::open(dir.path().join("file")).unwrap();
            let err = stack.run(shape, disk).await.err().unwrap();
            let chain = format!("{err:#}");
            assert!(
                chain.starts_with("the server failed") && chain.contains("writing and syncing"),
                "{stack:?}: {chain}"
            );
        }
    }

    #[test]
    fn records_are_due_on_schedule_without_drift() {
        let shape = Shape {
            records: 10,
            rate: 3,
            payload_bytes: 1,
        };
        let start = Instant::now();
        assert_eq!(shape.due(start, 0), start);
        assert_eq!(shape.due(start, 3), start + Duration::from_secs(1));
        assert_eq!(
            shape.due(start, 10_000_000),
            start + Duration::from_nanos(3_333_333_333_333_333)
        );
    }

    #[test]
    fn writes_wrap_before_passing_the_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = Disk::new(&dir.path().join("file")).unwrap();
        disk.position = FILE_BYTES - 150;
        disk.write(&[7_u8; 100]).unwrap();
        assert_eq!(disk.position, 0, "another 100 bytes would pass the end");
        assert_eq!(disk.synced.len(), 1);
    }
}
