//! The `threads` stack of `bench rpc-floor`: a blocking thread at each end of a loopback
//! socket, each request and answer a length prefix and its bytes. No runtime, no `epoll`: a
//! thread blocked in `read` is woken by the kernel when the bytes land.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{ClientRun, Disk, ServerRun, Shape, thread_cpu};

/// How long before a send the client's sleep turns into a spin, as the bench's pacer does.
const SPIN_BEFORE: Duration = Duration::from_micros(60);

/// Runs the exchange; returns what the client measured and the server's disk.
pub(super) fn run(shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback socket")?;
    let address = listener.local_addr()?;
    let server = thread::Builder::new()
        .name("rpc-floor-server".into())
        .spawn(move || serve(&listener, disk))
        .context("starting the server thread")?;
    let client = send(address, shape);
    let server = server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
    // The client's error is the cause when both failed (the server then saw a hang-up).
    let client = client?;
    Ok((client, server?))
}

/// Answers one connection's requests until the client hangs up.
fn serve(listener: &TcpListener, mut disk: Disk) -> anyhow::Result<ServerRun> {
    let (mut socket, _) = listener.accept().context("accepting the client")?;
    socket.set_nodelay(true)?;
    let mut payload = Vec::new();
    let mut answered = 0_u64;
    loop {
        let mut prefix = [0_u8; 4];
        match socket.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                // SAFETY: pthread_self has no preconditions; this thread is alive.
                let cpu = thread_cpu(unsafe { libc::pthread_self() })?;
                return Ok(ServerRun { disk, cpu });
            }
            Err(err) => return Err(err).context("reading a request"),
        }
        payload.resize(u32::from_be_bytes(prefix) as usize, 0);
        socket
            .read_exact(&mut payload)
            .context("reading a request")?;
        disk.write(&payload)
            .context("writing and syncing a request")?;
        answered += 1;
        socket
            .write_all(&answered.to_be_bytes())
            .context("answering")?;
    }
}

/// Sends the run's requests on schedule, one in flight, and times each answer.
fn send(address: std::net::SocketAddr, shape: Shape) -> anyhow::Result<ClientRun> {
    // Linux lets a sleeping thread oversleep by its timer slack, 50 µs by default; 1 ns asks
    // for the wake-up on time, as the bench's pacer does.
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_u64) };
    let mut socket = TcpStream::connect(address).context("connecting to the server")?;
    socket.set_nodelay(true)?;
    let mut request = u32::try_from(shape.payload_bytes)?.to_be_bytes().to_vec();
    request.resize(4 + shape.payload_bytes, b'x');
    let mut run = ClientRun::new()?;
    let start = Instant::now();
    for k in 0..shape.records {
        let due = shape.due(start, k);
        if shape.low_rate() {
            let wake = due.checked_sub(SPIN_BEFORE).unwrap_or(due);
            thread::sleep(wake.saturating_duration_since(Instant::now()));
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        } else {
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let sent = Instant::now();
        socket.write_all(&request).context("sending a request")?;
        let mut answer = [0_u8; 8];
        socket
            .read_exact(&mut answer)
            .context("reading an answer")?;
        run.answered(due, sent);
    }
    Ok(run)
}
