//! The `tokio` stack of `bench rpc-floor`: the `threads` exchange on tokio tasks. The server
//! runs on a runtime of its own with two workers, as the broker does, and writes and syncs on
//! its worker, as the broker's idle partition does (`LogWriter` lets the caller write when
//! nothing is queued); the client is paced as `bench produce` is.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{ClientRun, Disk, ServerRun, Shape, finish_server, loopback_listener, server_runtime};
use crate::bench::pacer::Pacer;

/// Runs the exchange; returns what the client measured and the server's disk.
pub(super) async fn run(shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
    let server = server_runtime()?;
    let listener = loopback_listener(&server)?;
    let address = listener.local_addr()?;
    let task = server.spawn(serve(listener, disk));
    let client = send(address, shape).await;
    let server = finish_server(server, task).await;
    let client = client?;
    Ok((client, server?))
}

/// Answers one connection's requests until the client hangs up.
async fn serve(listener: TcpListener, mut disk: Disk) -> anyhow::Result<Disk> {
    let (mut socket, _) = listener.accept().await.context("accepting the client")?;
    socket.set_nodelay(true)?;
    let mut payload = Vec::new();
    let mut answered = 0_u64;
    loop {
        let mut prefix = [0_u8; 4];
        match socket.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(disk),
            Err(err) => return Err(err).context("reading a request"),
        }
        payload.resize(u32::from_be_bytes(prefix) as usize, 0);
        socket
            .read_exact(&mut payload)
            .await
            .context("reading a request")?;
        disk.write(&payload)
            .context("writing and syncing a request")?;
        answered += 1;
        socket
            .write_all(&answered.to_be_bytes())
            .await
            .context("answering")?;
    }
}

/// Sends the run's requests on schedule, one in flight, and times each answer.
async fn send(address: SocketAddr, shape: Shape) -> anyhow::Result<ClientRun> {
    let mut socket = TcpStream::connect(address)
        .await
        .context("connecting to the server")?;
    socket.set_nodelay(true)?;
    let mut request = u32::try_from(shape.payload_bytes)?.to_be_bytes().to_vec();
    request.resize(4 + shape.payload_bytes, b'x');
    let pacer = Pacer::new(shape.interval);
    let mut run = ClientRun::new()?;
    let start = Instant::now();
    for k in 0..shape.records {
        let due = shape.due(start, k);
        pacer.wait_until(due).await;
        let sent = Instant::now();
        socket
            .write_all(&request)
            .await
            .context("sending a request")?;
        let mut answer = [0_u8; 8];
        socket
            .read_exact(&mut answer)
            .await
            .context("reading an answer")?;
        run.answered(due, sent);
    }
    Ok(run)
}
