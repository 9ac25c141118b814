//! The `tokio` stack of `bench rpc-floor`: the `threads` exchange on tokio tasks. The server
//! runs on a runtime of its own, as the broker does, and writes and syncs on its worker, as
//! the broker's idle partition does (`LogWriter` lets the caller write when nothing is
//! queued); the client is paced as `bench produce` is.

use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::threads::framed_request;
use super::{ClientRun, Disk, ServerRun, Shape, check_declared, run_on_tokio};
use crate::bench::pacer::Pacer;

/// Runs the exchange; returns what the client measured and the server's run.
pub(super) async fn run(shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
    run_on_tokio(shape, disk, serve, send).await
}

/// Answers one connection's requests until the client hangs up.
async fn serve(listener: TcpListener, mut disk: Disk, shape: Shape) -> anyhow::Result<Disk> {
    let (mut socket, _) = listener.accept().await.context("accepting the client")?;
    socket
        .set_nodelay(true)
        .context("setting TCP_NODELAY on the server's socket")?;
    let mut payload = vec![0_u8; shape.payload_bytes];
    let mut answered = 0_u64;
    loop {
        let mut prefix = [0_u8; 4];
        match socket.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(disk),
            Err(err) => return Err(err).context("reading a request"),
        }
        check_declared(prefix, payload.len())?;
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
async fn send(
    mut socket: TcpStream,
    _address: std::net::SocketAddr,
    shape: Shape,
) -> anyhow::Result<ClientRun> {
    socket
        .set_nodelay(true)
        .context("setting TCP_NODELAY on the client's socket")?;
    let request = framed_request(shape)?;
    let pacer = Pacer::new(shape.interval());
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
