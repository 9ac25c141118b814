//! The `threads` stack of `bench rpc-floor`: a blocking thread at each end of a loopback
//! socket, each request and answer a length prefix and its bytes. No runtime, no `epoll`: a
//! thread blocked in `read` is woken by the kernel when the bytes land.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use anyhow::Context;

use super::{ClientRun, Disk, ServerRun, Shape, check_declared, outcome, thread_cpu};
use crate::bench::pacer::{precise_thread_sleeps, sleep_thread_until};

/// Runs the exchange on two threads of its own; returns what the client measured and the
/// server's run. Blocks the calling thread until both end.
pub(super) fn run(shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback socket")?;
    let address = listener.local_addr().context("the listener's address")?;
    // Connected before the server starts: a client that cannot connect fails here, with no
    // server left waiting in `accept`.
    let socket = TcpStream::connect(address).context("connecting to the server")?;
    let server = thread::Builder::new()
        .name("rpc-floor-server".into())
        .spawn(move || serve(&listener, disk, shape))
        .context("starting the server thread")?;
    let client = thread::Builder::new()
        .name("rpc-floor-client".into())
        .spawn(move || send(socket, shape))
        .context("starting the client thread");
    let client = match client {
        Ok(client) => client
            .join()
            .map_err(|_| anyhow::anyhow!("the client thread panicked"))
            .and_then(|sent| sent),
        // Without a client the server waits for a request that never comes: closing the
        // socket is what ends it, and the socket went with the failed spawn's closure.
        Err(err) => Err(err),
    };
    let server = server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))
        .and_then(|served| served);
    outcome(client, server)
}

/// Answers one connection's requests until the client hangs up.
fn serve(listener: &TcpListener, mut disk: Disk, shape: Shape) -> anyhow::Result<ServerRun> {
    let (mut socket, _) = listener.accept().context("accepting the client")?;
    socket
        .set_nodelay(true)
        .context("setting TCP_NODELAY on the server's socket")?;
    let mut payload = vec![0_u8; shape.payload_bytes];
    let mut answered = 0_u64;
    loop {
        let mut prefix = [0_u8; 4];
        match socket.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(err) => return Err(err).context("reading a request"),
        }
        check_declared(prefix, payload.len())?;
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
    // SAFETY: pthread_self names this thread, which is running this call.
    let cpu = unsafe { thread_cpu(libc::pthread_self()) }?;
    Ok(ServerRun { disk, cpu })
}

/// A request: the payload's length, then the payload.
pub(super) fn framed_request(shape: Shape) -> anyhow::Result<Vec<u8>> {
    let declared = u32::try_from(shape.payload_bytes).context("a request's length")?;
    let mut request = declared.to_be_bytes().to_vec();
    request.resize(4 + shape.payload_bytes, b'x');
    Ok(request)
}

/// Sends the run's requests on schedule, one in flight, and times each answer.
fn send(mut socket: TcpStream, shape: Shape) -> anyhow::Result<ClientRun> {
    precise_thread_sleeps();
    socket
        .set_nodelay(true)
        .context("setting TCP_NODELAY on the client's socket")?;
    let request = framed_request(shape)?;
    let mut run = ClientRun::new()?;
    let start = Instant::now();
    for k in 0..shape.records {
        let due = shape.due(start, k);
        if shape.low_rate() {
            sleep_thread_until(due);
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
