//! Produce requests framed as a gRPC library would not frame them, sent over raw HTTP/2 to a
//! running server: the broker reads `Produce` bodies itself (`services/unary.rs`), so how a
//! body is cut into DATA frames, what follows it, and a body that never ends are its to handle.
//! Also the request bytes budget (`request_memory`) as a client holding bodies open meets it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cairn_proto::v1::{ProduceRequest, ProduceResponse, Record, RecordList, produce_request};
use http::HeaderMap;
use prost::Message;

/// What came back on one stream.
struct Answer {
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Answer {
    /// The call's grpc-status, from the trailers or (a refusal) the headers.
    fn grpc_status(&self) -> String {
        let from = self.trailers.as_ref().unwrap_or(&self.headers);
        from.get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

fn framed_request(topic: &str, value: &str) -> Bytes {
    let request = ProduceRequest {
        topic: topic.into(),
        payload: Some(produce_request::Payload::Records(RecordList {
            records: vec![Record {
                value: Some(Bytes::copy_from_slice(value.as_bytes())),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let message = request.encode_to_vec();
    let mut wire = BytesMut::new();
    wire.put_u8(0);
    wire.put_u32(u32::try_from(message.len()).unwrap());
    wire.extend_from_slice(&message);
    wire.freeze()
}

/// Sends `frames` as the DATA frames of one Produce call, then `trailers` (or ends the stream
/// with the last frame; with `hold_open` it never ends), and reads the answer.
async fn call(
    url: &str,
    frames: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    hold_open: bool,
) -> Answer {
    let mut client = connect(url).await;
    let (response, mut send) = client
        .send_request(grpc_post(url, "/cairn.v1.Producer/Produce"), false)
        .unwrap();
    let count = frames.len();
    for (i, frame) in frames.into_iter().enumerate() {
        let last = i + 1 == count && trailers.is_none() && !hold_open;
        send.send_data(frame, last).unwrap();
    }
    if let Some(trailers) = trailers {
        send.send_trailers(trailers).unwrap();
    }
    let answer = read_answer(response, Duration::from_secs(10)).await;
    // Kept open until the answer is read, so a held-open body stays unfinished.
    drop(send);
    answer
}

/// An HTTP/2 connection of its own to the server at `url`.
async fn connect(url: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The head of a gRPC call to the method at `path`.
fn grpc_post(url: &str, path: &str) -> http::Request<()> {
    http::Request::post(format!("{url}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Waits up to `within` for the answer to a call, and reads it whole.
async fn read_answer(response: h2::client::ResponseFuture, within: Duration) -> Answer {
    let response = tokio::time::timeout(within, response)
        .await
        .unwrap_or_else(|_| panic!("an answer within {within:?}"))
        .unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    Answer {
        headers: parts.headers,
        body: data.freeze(),
        trailers,
    }
}

fn response_of(answer: &Answer) -> ProduceResponse {
    assert_eq!(answer.grpc_status(), "0", "headers {:?}", answer.headers);
    ProduceResponse::decode(&answer.body[5..]).unwrap()
}

#[tokio::test]
async fn a_body_in_one_byte_frames_or_followed_by_trailers_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 1).await;

    let wire = framed_request("orders", "one byte at a time");
    let frames = (0..wire.len()).map(|i| wire.slice(i..=i)).collect();
    let answer = call(&started.url, frames, None, false).await;
    assert_eq!(response_of(&answer).results[0].base_offset, 0);

    let mut trailers = HeaderMap::new();
    trailers.insert("x-note", "ignored".parse().unwrap());
    let wire = framed_request("orders", "with trailers");
    let answer = call(&started.url, vec![wire], Some(trailers), false).await;
    assert_eq!(response_of(&answer).results[0].base_offset, 1);

    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}

#[tokio::test]
async fn an_oversized_length_is_refused_while_the_body_is_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    // The prefix declares 20 MiB, over the 16 MiB limit, and the body never ends: the broker
    // must answer from the prefix alone.
    let mut prefix = BytesMut::new();
    prefix.put_u8(0);
    prefix.put_u32(20 << 20);
    let answer = call(&started.url, vec![prefix.freeze()], None, true).await;
    assert_eq!(
        answer.grpc_status(),
        "8",
        "RESOURCE_EXHAUSTED: {:?}",
        answer.headers
    );

    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}

/// Opens one Produce call on its own connection and sends `head` of its body, leaving the
/// body open.
async fn open_call(url: &str, head: Bytes) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    open_call_to(url, "/cairn.v1.Producer/Produce", head).await
}

/// As [`open_call`], to the method at `path`.
async fn open_call_to(
    url: &str,
    path: &str,
    head: Bytes,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut client = connect(url).await;
    let (response, mut send) = client.send_request(grpc_post(url, path), false).unwrap();
    send.send_data(head, false).unwrap();
    (response, send)
}

/// The ProduceResponse of an answered call.
async fn answered(response: h2::client::ResponseFuture) -> ProduceResponse {
    response_of(&read_answer(response, Duration::from_secs(10)).await)
}

#[tokio::test]
async fn a_request_waits_unread_while_others_hold_the_request_bytes_budget() {
    let dir = tempfile::tempdir().unwrap();
    let first = framed_request("orders", &"a".repeat(3_000));
    let second = framed_request("orders", &"b".repeat(3_000));
    // Room for one of the two requests, not both.
    let limits = cairn_server::connections::ConnectionLimits {
        queued_max_request_bytes: first.len() as u64 + 100,
        ..Default::default()
    };
    let started = common::start_with_limits(dir.path(), limits).await;
    common::create_topic(&started.url, "orders", 1).await;

    // The first call's body stops one byte short: it holds its share, unanswered.
    let (first_response, mut first_send) =
        open_call(&started.url, first.slice(..first.len() - 1)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = common::metrics_page(started.http).await;
    let held = format!("cairn_request_memory_used_bytes {}\n", first.len());
    assert!(page.contains(&held), "{page}");

    // The second is whole, but waits for the first's bytes.
    let (mut second_response, mut second_send) = open_call(&started.url, second.clone()).await;
    second_send.send_data(Bytes::new(), true).unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), &mut second_response).await;
    assert!(
        early.is_err(),
        "answered while the budget was held: {early:?}"
    );
    let page = common::metrics_page(started.http).await;
    assert!(
        page.contains("cairn_request_memory_waits_total 1\n"),
        "{page}"
    );
    // Health checks are answered while the budget is full.
    let channel = tonic::transport::Endpoint::from_shared(started.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(serving.into_inner().status, 1, "SERVING");

    first_send
        .send_data(first.slice(first.len() - 1..), true)
        .unwrap();
    assert_eq!(answered(first_response).await.results[0].base_offset, 0);
    assert_eq!(answered(second_response).await.results[0].base_offset, 1);
    let page = common::metrics_page(started.http).await;
    assert!(
        page.contains("cairn_request_memory_used_bytes 0\n"),
        "{page}"
    );

    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}

#[tokio::test]
async fn a_call_tonic_decodes_holds_its_declared_size_while_its_body_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    // An Admin call of 1 MiB, sent whole but its stream never ended: tonic keeps the message
    // until the stream ends, so its share must be held until then, not just until its last
    // byte. Before the budget, tonic held such bodies with no bound across streams.
    let message = cairn_proto::v1::CreateTopicRequest {
        name: "a".repeat(1 << 20),
        ..Default::default()
    }
    .encode_to_vec();
    let mut head = BytesMut::new();
    head.put_u8(0);
    head.put_u32(u32::try_from(message.len()).unwrap());
    head.extend_from_slice(&message);
    let (response, send) =
        open_call_to(&started.url, "/cairn.v1.Admin/CreateTopic", head.freeze()).await;
    let held = format!("cairn_request_memory_used_bytes {}\n", message.len() + 5);
    wait_for_metrics_line(started.http, &held).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        common::metrics_page(started.http).await.contains(&held),
        "still held while the stream is open"
    );
    // A reset stream gives its share back.
    drop(send);
    drop(response);
    wait_for_metrics_line(started.http, "cairn_request_memory_used_bytes 0\n").await;

    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}

#[tokio::test]
async fn a_long_poll_fetch_holds_no_request_bytes_while_it_waits() {
    use cairn_proto::v1::FetchRequest;
    use cairn_proto::v1::consumer_client::ConsumerClient;
    let dir = tempfile::tempdir().unwrap();
    let started = common::start(dir.path()).await;
    common::create_topic(&started.url, "orders", 1).await;
    let mut consumer = ConsumerClient::connect(started.url.clone()).await.unwrap();
    let waiting = tokio::spawn(async move {
        consumer
            .fetch(FetchRequest {
                topic: "orders".into(),
                max_wait_ms: 3_000,
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the fetch waits for data");
    let page = common::metrics_page(started.http).await;
    assert!(
        page.contains("cairn_request_memory_used_bytes 0\n"),
        "{page}"
    );
    waiting.await.unwrap().unwrap();

    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}

/// Waits up to 2 s for `/metrics` to hold `line`.
async fn wait_for_metrics_line(http: std::net::SocketAddr, line: &str) {
    let mut page = String::new();
    for _ in 0..100 {
        page = common::metrics_page(http).await;
        if page.contains(line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {line:?} in {page}");
}

#[tokio::test]
async fn requests_waiting_for_the_budget_do_not_stall_their_connection() {
    // Streams waiting for the budget used to leave their bodies unread, up to the 8 MiB stream
    // window each, in the connection's 32 MiB window: five of them kept the one stream holding
    // a share from receiving the rest of its body, until the time limit failed it. Now a
    // waiting request reads on into the waiting room (a quarter of the budget; the first
    // waiter may pass it) and the others are refused THROTTLED.
    let dir = tempfile::tempdir().unwrap();
    let limits = cairn_server::connections::ConnectionLimits {
        queued_max_request_bytes: 20 << 20,
        ..Default::default()
    };
    let started = common::start_with_limits(dir.path(), limits).await;
    common::create_topic(&started.url, "orders", 1).await;
    let wire = framed_request("orders", &"v".repeat(15 << 20));
    let client = connect(&started.url).await;
    let mut calls = Vec::new();
    for _ in 0..6 {
        let mut client = client.clone().ready().await.unwrap();
        let (response, mut send) = client
            .send_request(grpc_post(&started.url, "/cairn.v1.Producer/Produce"), false)
            .unwrap();
        send.send_data(wire.clone(), true).unwrap();
        calls.push((response, send));
    }
    let mut statuses = Vec::new();
    for (response, _send) in calls {
        // Well before the 30 s time limit.
        let answer = read_answer(response, Duration::from_secs(20)).await;
        statuses.push(answer.grpc_status());
    }
    assert!(
        !statuses.iter().any(|status| status == "4"),
        "no call ran into the time limit: {statuses:?}"
    );
    // Read whole, then refused by the partition (max.message.bytes): what matters here is
    // that their bodies came through.
    assert!(
        statuses.iter().filter(|status| *status == "3").count() >= 2,
        "the holder and the first waiter were read through: {statuses:?}"
    );

    started.stop.send(()).unwrap();
    started.server.await.unwrap();
}
