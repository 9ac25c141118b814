//! The `h2` stack of `bench rpc-floor`: gRPC's shape over HTTP/2 with the `h2` crate, which
//! both the broker's server (through hyper) and the producer's connection use, with the
//! broker's window and frame sizes.
//!
//! Both ends are arranged as Cairn's are. The client does what the producer's own connection
//! does (`cairn-client`'s `produce_channel`): a task of its own drives the connection, and the
//! calling task queues a request's HEADERS and its message's two DATA chunks (the head, then
//! the batch) on its stream and waits for the answer. The server gives each request a task of
//! its own beside the connection's, as hyper does for the broker, and writes and syncs on it.
//! Driving a connection on the calling task instead was tried and is worse: `h2` then wakes
//! the task that is running, which tokio counts as a yield, so the task goes to the back of
//! the queue and a parked worker is woken for it (`strace`: four futex calls per request, none
//! in the broker; 0.05 - 0.1 ms more per request).
//!
//! A request is a POST with gRPC's headers and one length-prefixed message; an answer is a 200
//! with one message and a `grpc-status: 0` trailer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use cairn_server::{
    HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_MAX_FRAME_BYTES, HTTP2_STREAM_WINDOW_BYTES,
};
use h2::RecvStream;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{ClientRun, Disk, ServerRun, Shape, run_on_tokio};
use crate::bench::pacer::Pacer;

/// The path the client posts to; the server answers any.
const PATH: &str = "/cairn.floor.v1.Floor/Produce";
/// Bytes of the message sent as its first DATA chunk, as the producer sends its request's head
/// apart from the batch it carries.
const HEAD_BYTES: usize = 16;
/// How long the client's connection may take to close once the run is over.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the exchange; returns what the client measured and the server's run.
pub(super) async fn run(shape: Shape, disk: Disk) -> anyhow::Result<(ClientRun, ServerRun)> {
    run_on_tokio(shape, disk, serve, send).await
}

/// Answers one connection's requests until the client hangs up.
async fn serve(listener: TcpListener, disk: Disk, shape: Shape) -> anyhow::Result<Disk> {
    let (socket, _) = listener.accept().await.context("accepting the client")?;
    socket
        .set_nodelay(true)
        .context("setting TCP_NODELAY on the server's socket")?;
    let mut connection = h2::server::Builder::new()
        .initial_window_size(HTTP2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
        .max_frame_size(HTTP2_MAX_FRAME_BYTES)
        .handshake(socket)
        .await
        .context("the server's HTTP/2 handshake")?;
    let disk = Arc::new(Mutex::new(disk));
    let mut handlers = JoinSet::new();
    while let Some(next) = connection.accept().await {
        let (request, respond) = next.context("accepting a request")?;
        handlers.spawn(answer(request, respond, Arc::clone(&disk), shape));
        // Finished handlers are reaped as they go, so a long run holds only those in flight.
        while let Some(handled) = handlers.try_join_next() {
            handled.context("a request's task panicked")??;
        }
    }
    while let Some(handled) = handlers.join_next().await {
        handled.context("a request's task panicked")??;
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
    shape: Shape,
) -> anyhow::Result<()> {
    let message = read_message(&mut request.into_body(), shape.payload_bytes).await?;
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
        .body(())
        .context("building the answer's head")?;
    let mut stream = respond
        .send_response(head, false)
        .context("sending the answer's head")?;
    stream
        .send_data(grpc_message(&answered.to_be_bytes())?, false)
        .context("sending the answer's message")?;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    stream
        .send_trailers(trailers)
        .context("sending the answer's trailers")
}

/// A message with gRPC's prefix: not compressed, its length.
fn grpc_message(payload: &[u8]) -> anyhow::Result<Bytes> {
    let declared = u32::try_from(payload.len()).context("a message's length")?;
    let mut message = BytesMut::with_capacity(5 + payload.len());
    message.put_u8(0);
    message.put_u32(declared);
    message.put_slice(payload);
    Ok(message.freeze())
}

/// Reads a stream's data to its end, giving back flow-control credit as it goes, and returns
/// the one message in it, without its prefix; it must hold `expected` bytes.
async fn read_message(body: &mut RecvStream, expected: usize) -> anyhow::Result<Bytes> {
    let mut received = BytesMut::with_capacity(5 + expected);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.context("reading a body")?;
        body.flow_control()
            .release_capacity(chunk.len())
            .context("giving back flow-control credit")?;
        received.extend_from_slice(&chunk);
        if received.len() > 5 + expected {
            bail!("a body ran past its message of {expected} bytes");
        }
    }
    if received.len() != 5 + expected {
        bail!(
            "a body of {} bytes is not one message of {expected} bytes with gRPC's prefix",
            received.len()
        );
    }
    let declared = u32::from_be_bytes([received[1], received[2], received[3], received[4]]);
    if declared as usize != expected {
        bail!("a message declared {declared} bytes and carried {expected}");
    }
    Ok(received.freeze().split_off(5))
}

/// One request and its answer, which must end with `grpc-status: 0`.
async fn exchange(
    sender: &SendRequest<Bytes>,
    uri: &http::Uri,
    message: (&Bytes, &Bytes),
) -> anyhow::Result<()> {
    let mut sender = sender
        .clone()
        .ready()
        .await
        .context("the connection is not ready for a request")?;
    let head = Request::builder()
        .method("POST")
        .uri(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .context("building a request's head")?;
    let (response, mut stream) = sender
        .send_request(head, false)
        .context("sending a request's head")?;
    stream
        .send_data(message.0.clone(), false)
        .context("sending a request's message")?;
    stream
        .send_data(message.1.clone(), true)
        .context("sending a request's message")?;
    let response = response.await.context("waiting for an answer")?;
    if response.status() != 200 {
        bail!("the server answered HTTP {}", response.status());
    }
    let mut answer = response.into_body();
    read_message(&mut answer, 8).await?;
    let trailers = answer
        .trailers()
        .await
        .context("reading the answer's trailers")?
        .unwrap_or_default();
    if trailers.get("grpc-status").map(HeaderValue::as_bytes) != Some(b"0") {
        bail!("the server's answer ended without grpc-status 0: {trailers:?}");
    }
    Ok(())
}

/// Sends the run's requests on schedule, one in flight, and times each answer.
async fn send(
    socket: TcpStream,
    address: std::net::SocketAddr,
    shape: Shape,
) -> anyhow::Result<ClientRun> {
    socket
        .set_nodelay(true)
        .context("setting TCP_NODELAY on the client's socket")?;
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(HTTP2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
        .handshake::<_, Bytes>(socket)
        .await
        .context("the client's HTTP/2 handshake")?;
    // The producer drives its connection on a task of its own, too.
    let driver = tokio::spawn(connection);
    let uri: http::Uri = format!("http://{address}{PATH}")
        .parse()
        .context("the request's URI")?;
    let message = grpc_message(&vec![b'x'; shape.payload_bytes])?;
    let split = HEAD_BYTES.min(message.len());
    let (head, batch) = (message.slice(..split), message.slice(split..));
    let pacer = Pacer::new(shape.interval());
    let mut run = ClientRun::new()?;
    let start = Instant::now();
    for k in 0..shape.records {
        let due = shape.due(start, k);
        pacer.wait_until(due).await;
        let sent = Instant::now();
        exchange(&sender, &uri, (&head, &batch)).await?;
        run.answered(due, sent);
    }
    // With no sender left the connection closes itself; its end says whether it closed well.
    drop(sender);
    match tokio::time::timeout(CLOSE_TIMEOUT, driver).await {
        Ok(closed) => closed
            .context("the client's connection task panicked")?
            .context("the client's connection failed")?,
        Err(_) => bail!("the client's connection did not close within {CLOSE_TIMEOUT:?}"),
    }
    Ok(run)
}
