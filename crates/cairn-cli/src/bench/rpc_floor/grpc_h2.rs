//! The `h2` stack of `bench rpc-floor`: gRPC's shape over HTTP/2 with the `h2` crate, which
//! both the broker's server (through hyper) and the producer's connection use.
//!
//! Both ends are arranged as Cairn's are. The client does what the producer's own connection
//! does (`cairn-client`'s `produce_channel`): a task of its own drives the connection, and the
//! calling task queues a request's HEADERS and DATA on its stream and waits for the answer.
//! The server gives each request a task of its own beside the connection's, as hyper does for
//! the broker, and writes and syncs on it. Driving a connection on the calling task instead
//! was tried and is worse: `h2` then wakes the task that is running, which tokio counts as a
//! yield, so the task goes to the back of the queue and a parked worker is woken for it
//! (`strace`: four futex calls per request, none in the broker; 0.05 - 0.1 ms more per
//! request). A request is a POST with gRPC's headers and one
//! length-prefixed message; an answer is a 200 with one message and a `grpc-status: 0` trailer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use h2::RecvStream;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Request, Response};

use super::{ClientRun, Disk, ServerRun, Shape, finish_server, loopback_listener, server_runtime};
use crate::bench::pacer::Pacer;

/// The path the client posts to; the server answers any.
const PATH: &str = "/cairn.floor.v1.Floor/Produce";

/// Runs the exchange; returns what the client measured and the server's disk.
pub(super) async fn run(shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
    let server = server_runtime()?;
    let listener = loopback_listener(&server)?;
    let address = listener.local_addr()?;
    let task = server.spawn(async move {
        let (socket, _) = listener.accept().await.context("accepting the client")?;
        socket.set_nodelay(true)?;
        serve(socket, disk).await
    });
    let client = send(address, shape).await;
    let server = finish_server(server, task).await;
    let client = client?;
    Ok((client, server?))
}

/// Answers one connection's requests until the client hangs up.
async fn serve(socket: tokio::net::TcpStream, disk: Disk) -> anyhow::Result<Disk> {
    let mut connection = h2::server::handshake(socket)
        .await
        .context("the server's HTTP/2 handshake")?;
    let disk = Arc::new(Mutex::new(disk));
    let mut handlers = Vec::new();
    while let Some(next) = connection.accept().await {
        let (request, respond) = next.context("accepting a request")?;
        handlers.push(tokio::spawn(answer(request, respond, Arc::clone(&disk))));
    }
    for handler in handlers {
        handler.await.context("a request's task failed")??;
    }
    let disk = Arc::try_unwrap(disk)
        .map_err(|_| anyhow::anyhow!("a request's task still holds the file"))?;
    disk.into_inner()
        .map_err(|_| anyhow::anyhow!("a request's task panicked holding the file"))
}

/// Reads one request's message, writes and syncs it, and answers.
async fn answer(
    request: Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    disk: Arc<Mutex<Disk>>,
) -> anyhow::Result<()> {
    let message = read_message(&mut request.into_body()).await?;
    let answered = {
        let mut disk = disk
            .lock()
            .map_err(|_| anyhow::anyhow!("another request's task panicked holding the file"))?;
        disk.write(&message)
            .context("writing and syncing a request")?;
        disk.synced.len()
    };
    let head = Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())?;
    let mut stream = respond.send_response(head, false)?;
    stream.send_data(grpc_message(&answered.to_be_bytes()), false)?;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    stream.send_trailers(trailers)?;
    Ok(())
}

/// A message with gRPC's prefix: not compressed, its length.
fn grpc_message(payload: &[u8]) -> Bytes {
    let mut message = BytesMut::with_capacity(5 + payload.len());
    message.put_u8(0);
    message.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    message.put_slice(payload);
    message.freeze()
}

/// Reads a stream's data to its end, giving back flow-control credit as it goes, and returns
/// the one message in it, without its prefix.
async fn read_message(body: &mut RecvStream) -> anyhow::Result<Bytes> {
    let mut received = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.context("reading a body")?;
        body.flow_control().release_capacity(chunk.len())?;
        received.extend_from_slice(&chunk);
    }
    if received.len() < 5 {
        bail!(
            "a body of {} bytes is shorter than gRPC's prefix",
            received.len()
        );
    }
    let declared = u32::from_be_bytes([received[1], received[2], received[3], received[4]]);
    if declared as usize != received.len() - 5 {
        bail!(
            "a message declared {declared} bytes and carried {}",
            received.len() - 5
        );
    }
    Ok(received.freeze().split_off(5))
}

/// One request and its answer, which must end with `grpc-status: 0`.
async fn exchange(
    sender: &SendRequest<Bytes>,
    uri: &http::Uri,
    body: &Bytes,
) -> anyhow::Result<()> {
    let mut sender = sender.clone().ready().await.context("the connection")?;
    let head = Request::builder()
        .method("POST")
        .uri(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (response, mut stream) = sender.send_request(head, false)?;
    stream.send_data(body.clone(), true)?;
    let response = response.await.context("waiting for an answer")?;
    if response.status() != 200 {
        bail!("the server answered HTTP {}", response.status());
    }
    let mut answer = response.into_body();
    read_message(&mut answer).await?;
    let trailers = answer.trailers().await?.unwrap_or_default();
    if trailers.get("grpc-status").map(HeaderValue::as_bytes) != Some(b"0") {
        bail!("the server's answer ended without grpc-status 0: {trailers:?}");
    }
    Ok(())
}

/// Sends the run's requests on schedule, one in flight, and times each answer.
async fn send(address: SocketAddr, shape: Shape) -> anyhow::Result<ClientRun> {
    let socket = tokio::net::TcpStream::connect(address)
        .await
        .context("connecting to the server")?;
    socket.set_nodelay(true)?;
    let (sender, connection) = h2::client::handshake(socket)
        .await
        .context("the client's HTTP/2 handshake")?;
    // The producer drives its connection on a task of its own, too.
    let driver = tokio::spawn(connection);
    let uri: http::Uri = format!("http://{address}{PATH}").parse()?;
    let body = grpc_message(&vec![b'x'; shape.payload_bytes]);
    let pacer = Pacer::new(shape.interval);
    let mut run = ClientRun::new()?;
    let start = Instant::now();
    for k in 0..shape.records {
        let due = shape.due(start, k);
        pacer.wait_until(due).await;
        let sent = Instant::now();
        exchange(&sender, &uri, &body).await?;
        run.answered(due, sent);
    }
    drop(sender);
    driver.abort();
    Ok(run)
}
