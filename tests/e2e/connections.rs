//! Connections and descriptors through the real binary: under a 1,024-descriptor limit (soft
//! and hard, so the broker cannot raise it) a flood of idle connections neither locks out a new
//! client nor spins the broker; accepts failing with EMFILE pause instead of spinning; the
//! per-IP limit refuses and counts; the handshake timeout closes silent connections; the idle
//! timeout closes an idle HTTP/2 connection but never one with a request in flight. Each is
//! checked on `/metrics`.
//!
//! CPU is checked as a bound on CPU seconds the broker used over a few seconds of wall time
//! (from `/proc/<pid>/stat`), generous enough that only a spinning loop fails it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{DescribeGroupRequest, HeartbeatRequest, SubscribeRequest};
use common::*;

/// The descriptor limit the broker runs under in the exhaustion tests (systemd's default).
const BROKER_NOFILE: u64 = 1024;
/// Idle connections opened in those tests: more than the broker has descriptors.
const IDLE_CONNECTION_COUNT: usize = 1100;
/// Most CPU the broker may use over [`CPU_WINDOW`] while the flood sits idle; a spinning accept
/// loop uses about the whole window.
const CPU_BOUND_SECONDS: f64 = 0.5;
const CPU_WINDOW: Duration = Duration::from_secs(3);
/// The client side of an HTTP/2 handshake: the preface and an empty SETTINGS frame.
const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

struct Broker {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
    dir: tempfile::TempDir,
}

impl Broker {
    /// What the broker has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairn serve EXTRA...`; with `nofile`, under that descriptor limit (soft, hard).
fn start(extra: &[&str], nofile: Option<(u64, u64)>) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    command.args(extra).stderr(log);
    if let Some((soft, hard)) = nofile {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit is async-signal-safe and touches only the struct we pass.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = command.spawn().unwrap();
    let ready = wait_ready(&mut child);
    let addr = |key: &str| -> SocketAddr { ready_field(&ready, key).parse().unwrap() };
    Broker {
        grpc: addr("grpc="),
        http: addr("http="),
        child,
        dir,
    }
}

/// Lets this test process hold the flood's sockets: raises its own soft limit to the hard one.
/// Returns false (after saying so loudly) when the hard limit is too low to run the test.
fn own_descriptors_suffice(needed: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit touch only the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    if limit.rlim_max < needed {
        eprintln!(
            "SKIPPED: this test needs {needed} descriptors, but the hard limit is {}",
            limit.rlim_max
        );
        return false;
    }
    true
}

/// One series' value from `/metrics`, e.g. `cairn_connections_refused_total{reason="x"}`.
fn metric(http: SocketAddr, series: &str) -> u64 {
    let mut stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Waits until `ready` holds, polling; panics after [`PATIENCE`] with `what`.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads from `stream` until the broker closes it (EOF or reset); panics if it stays open
/// for [`PATIENCE`].
fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 4096];
    let mut read = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return read,
            Ok(n) => read.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return read,
            Err(err) => panic!("the broker did not close the connection: {err}"),
        }
    }
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf reads a constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / ticks_per_second as f64
}

fn open_descriptor_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Asserts the broker stays near idle over [`CPU_WINDOW`].
fn assert_near_idle(broker: &Broker, context: &str) {
    let before = cpu_seconds(broker.child.id());
    thread::sleep(CPU_WINDOW);
    let used = cpu_seconds(broker.child.id()) - before;
    assert!(
        used < CPU_BOUND_SECONDS,
        "{context}: the broker used {used:.2} s of CPU in {CPU_WINDOW:?}"
    );
}

/// Opens `count` TCP connections to `addr`; every other one finishes its HTTP/2 handshake, so
/// the flood holds both kinds of idle connection.
fn flood(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|idx| {
            let mut stream = TcpStream::connect(addr).unwrap();
            if idx % 2 == 0 {
                // The broker may already have closed it to make room; that is fine.
                let _ = stream.write_all(H2_PREFACE_AND_SETTINGS);
            }
            stream
        })
        .collect()
}

fn create_topic(grpc: SocketAddr) {
    cli_ok(
        &grpc.to_string(),
        &["topic", "create", "orders", "--partitions", "1"],
    );
}

/// A new client produces and reads back through the CLI.
fn new_client_produces_and_fetches(grpc: SocketAddr) {
    create_topic(grpc);
    produce_orders(&grpc.to_string(), 0..100, 7);
    let consumed = consume_all_orders(&grpc.to_string());
    assert_eq!(consumed.lines().count(), 100, "{consumed}");
}

fn closed_total(http: SocketAddr, reason: &str) -> u64 {
    metric(
        http,
        &format!("cairn_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

fn refused_total(http: SocketAddr, reason: &str) -> u64 {
    metric(
        http,
        &format!("cairn_connections_refused_total{{reason=\"{reason}\"}}"),
    )
}

#[test]
fn idle_flood_past_the_descriptor_limit_leaves_room_for_a_new_client_without_spinning() {
    if !own_descriptors_suffice(4 * IDLE_CONNECTION_COUNT as u64) {
        return;
    }
    let broker = start(&[], Some((BROKER_NOFILE, BROKER_NOFILE)));
    let idle = flood(broker.grpc, IDLE_CONNECTION_COUNT);
    // Every flood connection was let in and is still open, or was closed (to make room or
    // on a timeout), or was refused.
    wait_until("the broker has taken every flood connection", || {
        let closed: u64 = ["evicted", "handshake_timeout", "idle_timeout"]
            .iter()
            .map(|reason| closed_total(broker.http, reason))
            .sum();
        let refused: u64 = ["max_connections", "max_connections_per_ip"]
            .iter()
            .map(|reason| refused_total(broker.http, reason))
            .sum();
        metric(broker.http, "cairn_connections_open") + closed + refused
            >= IDLE_CONNECTION_COUNT as u64
    });
    let open = metric(broker.http, "cairn_connections_open");
    assert!(
        open <= BROKER_NOFILE / 2,
        "{open} connections open under a {BROKER_NOFILE}-descriptor limit"
    );
    assert!(closed_total(broker.http, "evicted") > 0);
    assert_near_idle(&broker, "with an idle flood at the connection limit");
    new_client_produces_and_fetches(broker.grpc);
    drop(idle);
}

#[test]
fn accepts_failing_with_emfile_pause_instead_of_spinning() {
    if !own_descriptors_suffice(4 * IDLE_CONNECTION_COUNT as u64) {
        return;
    }
    // A connection limit above the descriptor limit, so accepts run into EMFILE; silent
    // connections stay until the (long) handshake timeout.
    let broker = start(
        &[
            "--max-connections",
            "100000",
            "--handshake-timeout-ms",
            "3600000",
        ],
        Some((BROKER_NOFILE, BROKER_NOFILE)),
    );
    let pid = broker.child.id();
    let idle: Vec<TcpStream> = (0..IDLE_CONNECTION_COUNT)
        .map(|_| TcpStream::connect(broker.grpc).unwrap())
        .collect();
    wait_until("the broker runs out of descriptors", || {
        open_descriptor_count(pid) as u64 >= BROKER_NOFILE - 1
    });
    assert_near_idle(&broker, "with every descriptor in use");
    // Freeing the descriptors lets the broker serve again, and it counted the failures.
    drop(idle);
    wait_until("the broker frees the descriptors", || {
        (open_descriptor_count(pid) as u64) < BROKER_NOFILE / 2
    });
    assert!(metric(broker.http, "cairn_accept_errors_total{listener=\"grpc\"}") > 0);
    let log = broker.log();
    assert!(
        log.contains("WARN")
            && log.contains("accept failed")
            && log.contains("Too many open files"),
        "{log}"
    );
    new_client_produces_and_fetches(broker.grpc);
}

/// Connects to `target` from the loopback address `source`.
fn connect_from(source: &str, target: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(target).await.unwrap()
    });
    let stream = runtime.block_on(async { stream.into_std() }).unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

#[test]
fn per_ip_limit_refuses_the_excess_from_that_ip_only_and_counts_it() {
    let broker = start(
        &[
            "--max-connections-per-ip",
            "2",
            "--handshake-timeout-ms",
            "3600000",
        ],
        None,
    );
    let kept: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(broker.grpc).unwrap())
        .collect();
    wait_until("two connections are open", || {
        metric(broker.http, "cairn_connections_open") == 2
    });
    // Told why before it is closed: a GOAWAY whose text names the limit.
    let told = read_until_closed(TcpStream::connect(broker.grpc).unwrap());
    let told = String::from_utf8_lossy(&told);
    assert!(
        told.contains("already has 2 connections open (--max-connections-per-ip)"),
        "{told:?}"
    );
    assert_eq!(refused_total(broker.http, "max_connections_per_ip"), 1);
    assert_eq!(refused_total(broker.http, "max_connections"), 0);
    // A client refused so fails at once and says which limit, not "broken pipe" retries
    // until its deadline.
    let refused = cli_with_input(
        &broker.grpc.to_string(),
        &["--timeout", "30s", "produce", "orders"],
        b"x\n",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    // The GOAWAY's text when the client read it before the close, else the probe's guess;
    // both name the limit.
    assert!(stderr.contains("--max-connections-per-ip"), "{stderr}");
    assert!(!stderr.contains("gRPC address"), "{stderr}");
    // Its channel may dial again once before it gives up.
    let refused = refused_total(broker.http, "max_connections_per_ip");
    assert!((2..=3).contains(&refused), "{refused}");
    let other_ip = connect_from("127.0.0.2", broker.grpc);
    wait_until("the other IP's connection is open", || {
        metric(broker.http, "cairn_connections_open") == 3
    });
    assert_eq!(
        refused_total(broker.http, "max_connections_per_ip"),
        refused
    );
    drop((kept, other_ip));
}

#[test]
fn handshake_timeout_closes_silent_and_half_handshaken_connections() {
    let broker = start(&["--handshake-timeout-ms", "300"], None);
    let silent = TcpStream::connect(broker.grpc).unwrap();
    let mut preface_only = TcpStream::connect(broker.grpc).unwrap();
    preface_only
        .write_all(&H2_PREFACE_AND_SETTINGS[..24])
        .unwrap();
    read_until_closed(silent);
    read_until_closed(preface_only);
    wait_until("both closes are counted", || {
        closed_total(broker.http, "handshake_timeout") == 2
    });
    assert_eq!(closed_total(broker.http, "idle_timeout"), 0);
    // The client sees the close as the socket goes, a moment before the place is freed.
    wait_until("no connection is open", || {
        metric(broker.http, "cairn_connections_open") == 0
    });
}

#[test]
fn idle_timeout_closes_an_idle_http2_connection_but_not_one_with_a_stream_open() {
    let broker = start(&["--connections-max-idle-ms", "1000"], None);
    create_topic(broker.grpc);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A Subscribe stream on the empty topic: a request in flight, with nothing to send.
    let mut updates = runtime.block_on(async {
        let mut client = ConsumerClient::connect(format!("http://{}", broker.grpc))
            .await
            .unwrap();
        client
            .subscribe(SubscribeRequest {
                topic: "orders".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
                ..SubscribeRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
    });
    // Opened after the stream, so the stream's connection was idle at least as long.
    let mut idle = TcpStream::connect(broker.grpc).unwrap();
    idle.write_all(H2_PREFACE_AND_SETTINGS).unwrap();
    read_until_closed(idle);
    wait_until("the close is counted", || {
        closed_total(broker.http, "idle_timeout") >= 1
    });
    assert_eq!(closed_total(broker.http, "idle_timeout"), 1);
    assert_eq!(closed_total(broker.http, "handshake_timeout"), 0);
    // The stream's connection is still open: records produced now arrive on it.
    produce_orders(&broker.grpc.to_string(), 0..5, 1);
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let update = tokio::time::timeout_at(deadline, updates.message())
                .await
                .expect("no records on the stream")
                .unwrap()
                .expect("the stream ended");
            if update.next_offset >= 5 {
                break;
            }
        }
    });
    assert_eq!(closed_total(broker.http, "idle_timeout"), 1);
}

/// An HTTP/2 PING frame (8 bytes of opaque data, on stream 0).
const H2_PING: &[u8] = b"\0\0\x08\x06\0\0\0\0\0cairn-pg";

#[test]
fn pings_alone_do_not_keep_a_connection_from_the_idle_timeout() {
    // Idle counts calls, not bytes: the answers to the broker's keepalive PINGs (or, here, a
    // client's own PINGs) had kept every pinged connection open for good.
    let broker = start(&["--connections-max-idle-ms", "1000"], None);
    let mut pinging = TcpStream::connect(broker.grpc).unwrap();
    pinging.write_all(H2_PREFACE_AND_SETTINGS).unwrap();
    wait_until("the pinging connection is closed as idle", || {
        // A PING every poll; once the broker closes the connection the write fails, and the
        // close is counted.
        let _ = pinging.write_all(H2_PING);
        closed_total(broker.http, "idle_timeout") >= 1
    });
}

#[test]
fn calls_that_never_send_their_request_end_and_their_connection_then_idles_out() {
    // Calls with their headers and nothing else: they hold no request memory, but they are in
    // flight, so until they end their connection is neither idle nor evictable. A Produce (read
    // by the broker itself), an Admin call (decoded by tonic, budgeted) and a health check
    // (unbudgeted, and open to anyone) each end at the time limit (30 s), and the connection
    // then closes as idle.
    let broker = start(&["--connections-max-idle-ms", "1000"], None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let paths = [
        "/cairn.v1.Producer/Produce",
        "/cairn.v1.Admin/ListTopics",
        "/grpc.health.v1.Health/Check",
    ];
    let answers = runtime.block_on(async {
        let socket = tokio::net::TcpStream::connect(broker.grpc).await.unwrap();
        let (mut sender, connection) = h2::client::handshake(socket).await.unwrap();
        let closed = tokio::spawn(async move { connection.await.is_ok() });
        let mut calls = Vec::new();
        for path in paths {
            let request = http::Request::builder()
                .method("POST")
                .uri(format!("http://{}{path}", broker.grpc))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .unwrap();
            calls.push(sender.send_request(request, false).unwrap());
        }
        let mut answers = Vec::new();
        for (response, _silent_body) in calls {
            let response = tokio::time::timeout(PATIENCE, response)
                .await
                .expect("the call was never answered")
                .unwrap();
            // A refusal before any message is a trailers-only answer: its status is in the
            // head.
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            answers.push((header("grpc-status"), header("grpc-message")));
        }
        tokio::time::timeout(PATIENCE, closed)
            .await
            .expect("the idle connection was never closed")
            .unwrap();
        answers
    });
    for (path, (status, message)) in paths.iter().zip(&answers) {
        assert_eq!(status, "4", "{path}: DEADLINE_EXCEEDED: {message}");
        assert!(
            message.contains("30%20s") || message.contains("30 s"),
            "{path}: {message}"
        );
    }
    wait_until("the close is counted", || {
        closed_total(broker.http, "idle_timeout") >= 1
    });
}

#[test]
fn a_producer_whose_own_connection_is_refused_over_a_limit_fails_without_redialing() {
    // One connection per IP: the CLI's first (metadata) connection takes it, and the producer's
    // own connection is refused with a GOAWAY naming the limit. That is a refusal, not a
    // connection lost under a request: the produce fails naming the limit instead of dialing
    // again and again until its deadline.
    let broker = start(&["--max-connections-per-ip", "1"], None);
    create_topic(broker.grpc);
    wait_until("the topic's connection is gone", || {
        metric(broker.http, "cairn_connections_open") == 0
    });
    let refused = cli_with_input(
        &broker.grpc.to_string(),
        &["--timeout", "20s", "produce", "orders", "--partition", "0"],
        b"x\n",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--max-connections-per-ip"), "{stderr}");
    let dialed = refused_total(broker.http, "max_connections_per_ip");
    assert!(
        (1..=3).contains(&dialed),
        "refused {dialed} times: {stderr}"
    );
}

/// The soft and hard open-file limits of a running process, from `/proc/<pid>/limits`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let mut values = line["Max open files".len()..].split_whitespace();
    (
        values.next().unwrap().to_string(),
        values.next().unwrap().to_string(),
    )
}

#[test]
fn serve_raises_the_soft_descriptor_limit_to_the_hard_limit() {
    let broker = start(&[], Some((BROKER_NOFILE, 4 * BROKER_NOFILE)));
    let hard = (4 * BROKER_NOFILE).to_string();
    assert_eq!(
        open_file_limits(broker.child.id()),
        (hard.clone(), hard.clone())
    );
    let log = broker.log();
    let line = log
        .lines()
        .find(|line| line.contains("open-file limit"))
        .unwrap_or_else(|| panic!("no open-file limit line in\n{log}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains(&format!("soft_before={BROKER_NOFILE}")),
        "{line}"
    );
    assert!(line.contains(&format!("hard={hard}")), "{line}");
}

/// The connection wrapper carries its own connect info; requests must still see the client's
/// address, which a group member's description reports.
#[test]
fn requests_still_see_the_client_address() {
    let broker = start(&[], None);
    create_topic(broker.grpc);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let member = runtime.block_on(async {
        let mut groups = GroupsClient::connect(format!("http://{}", broker.grpc))
            .await
            .unwrap();
        groups
            .heartbeat(HeartbeatRequest {
                group_id: "inventory".into(),
                member_epoch: 0,
                subscribed_topics: vec!["orders".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let described = groups
            .describe_group(DescribeGroupRequest {
                group_id: "inventory".into(),
            })
            .await
            .unwrap()
            .into_inner();
        described.members.into_iter().next().unwrap()
    });
    assert!(member.host.starts_with("127.0.0.1:"), "{member:?}");
}
