//! Authentication and authorization through the real gRPC stack, in process: passwords in a
//! Basic header (accepted over loopback plaintext), typed UNAUTHENTICATED and
//! PERMISSION_DENIED answers naming what was refused, ACLs taking effect when added, and
//! listings filtered to what the caller may describe.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::Instant;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    Acl, CreateAclsRequest, ListTopicsRequest, ListUsersRequest, ProduceRequest, Record,
    RecordList, UpsertUserRequest, produce_request::Payload,
};
use cairn_server::auth::AuthConfig;
use cairn_server::auth::basic::header_value;
use tonic::Code;
use tonic_types::StatusExt;

fn as_user<T>(message: T, user: &str, password: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        header_value(user, password.as_bytes()).parse().unwrap(),
    );
    request
}

fn produce_one(topic: &str) -> ProduceRequest {
    ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        payload: Some(Payload::Records(RecordList {
            records: vec![Record {
                value: Some(b"v".to_vec().into()),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

fn reason_and(status: &tonic::Status, key: &str) -> (String, String) {
    let info = status.get_details_error_info().unwrap();
    (
        info.reason,
        info.metadata.get(key).cloned().unwrap_or_default(),
    )
}

/// Starts with authorization off to add users and a topic (the bootstrap an operator does),
/// then restarts with it on.
async fn secured(dir: &std::path::Path) -> common::Started {
    let open = common::start(dir).await;
    let mut admin = AdminClient::connect(open.url.clone()).await.unwrap();
    for (name, password) in [("admin", "admin-pw"), ("alice", "alice-pw")] {
        admin
            .upsert_user(UpsertUserRequest {
                name: name.into(),
                password: password.into(),
            })
            .await
            .unwrap();
    }
    common::create_topic(&open.url, "orders", 1).await;
    open.stop.send(()).unwrap();
    open.server.await.unwrap();
    common::start_with_auth(
        dir,
        AuthConfig {
            authorization: true,
            super_users: vec!["User:admin".into()],
            ..AuthConfig::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_produce_names_the_resource_and_an_acl_then_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path()).await;
    let mut producer = ProducerClient::connect(server.url.clone()).await.unwrap();

    let denied = producer
        .produce(as_user(produce_one("orders"), "alice", "alice-pw"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(
        reason_and(&denied, "resource_name"),
        ("TOPIC_AUTHORIZATION_FAILED".into(), "orders".into())
    );
    assert_eq!(reason_and(&denied, "operation").1, "Write");
    assert_eq!(reason_and(&denied, "principal").1, "User:alice");
    assert!(
        denied.message().contains("User:alice"),
        "{}",
        denied.message()
    );

    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    // Only from the loopback address the client connects from: the host must be known.
    let acl = Acl {
        principal: "User:alice".into(),
        host: "127.0.0.1".into(),
        operation: "write".into(),
        resource_type: "topic".into(),
        resource_name: "ord".into(),
        pattern_type: "prefixed".into(),
        ..Default::default()
    };
    // Alice may not grant herself anything; the super user may.
    let refused = admin
        .create_acls(as_user(
            CreateAclsRequest {
                acls: vec![acl.clone()],
            },
            "alice",
            "alice-pw",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        reason_and(&refused, "resource_type"),
        ("CLUSTER_AUTHORIZATION_FAILED".into(), "Cluster".into())
    );
    let ghost = Acl {
        principal: "User:ghost".into(),
        ..acl.clone()
    };
    let accepted = admin
        .create_acls(as_user(
            CreateAclsRequest { acls: vec![acl] },
            "admin",
            "admin-pw",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(accepted.warnings.is_empty(), "{:?}", accepted.warnings);
    // A principal that is no user is accepted (a certificate may name it), with a warning.
    let doubtful = admin
        .create_acls(as_user(
            CreateAclsRequest { acls: vec![ghost] },
            "admin",
            "admin-pw",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(doubtful.warnings.len(), 1, "{:?}", doubtful.warnings);
    assert!(doubtful.warnings[0].contains("User:ghost"));
    producer
        .produce(as_user(produce_one("orders"), "alice", "alice-pw"))
        .await
        .unwrap();
    server.stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_unauthenticated_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path()).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    for (user, password) in [("alice", "not-alices-pw"), ("nobody", "xyzzy-secret")] {
        let status = admin
            .list_topics(as_user(ListTopicsRequest::default(), user, password))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            reason_and(&status, "reason").0,
            "SASL_AUTHENTICATION_FAILED"
        );
        assert!(!status.message().contains(password));
    }
    let mut malformed = tonic::Request::new(ListTopicsRequest::default());
    malformed
        .metadata_mut()
        .insert("authorization", "Basic !!".parse().unwrap());
    let status = admin.list_topics(malformed).await.unwrap_err();
    assert_eq!(reason_and(&status, "reason").1, "malformed");

    let metrics = common::metrics_page(server.http).await;
    assert!(
        metrics.contains("cairn_auth_failures_total{reason=\"bad_password\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("cairn_auth_failures_total{reason=\"unknown_user\"} 1"));
    server.stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_hide_what_the_caller_may_not_describe_and_users_show_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured(dir.path()).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    let anonymous = admin
        .list_topics(ListTopicsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(anonymous.names.is_empty(), "{anonymous:?}");
    let super_user = admin
        .list_topics(as_user(ListTopicsRequest::default(), "admin", "admin-pw"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(super_user.names, vec!["orders".to_string()]);
    let users = admin
        .list_users(as_user(ListUsersRequest {}, "admin", "admin-pw"))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = users.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["admin", "alice"]);
    assert!(users.users.iter().all(|u| u.mechanism == "SCRAM-SHA-256"));

    // The cost of authentication per request, printed for BENCHMARKS (no timing assert).
    let rounds = 200u32;
    let started = Instant::now();
    for _ in 0..rounds {
        admin
            .list_topics(ListTopicsRequest::default())
            .await
            .unwrap();
    }
    let anonymous_each = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        admin
            .list_topics(as_user(ListTopicsRequest::default(), "admin", "admin-pw"))
            .await
            .unwrap();
    }
    let password_each = started.elapsed() / rounds;
    println!(
        "list_topics per call: anonymous {anonymous_each:?}, password (cached) {password_each:?}"
    );
    server.stop.send(()).unwrap();
}

/// Counts WARN events of targets under `target` on the thread it is the default for.
struct WarnCounter {
    target: &'static str,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let metadata = event.metadata();
        if *metadata.level() == tracing::Level::WARN && metadata.target().starts_with(self.target) {
            self.count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// One thread (tokio's default test runtime), so the server's handlers log to this thread's
// subscriber.
#[tokio::test]
async fn many_acls_for_principals_that_are_not_users_log_one_warning() {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let _logging = tracing::subscriber::set_default(WarnCounter {
        target: "cairn_server::services::admin_security",
        count: std::sync::Arc::clone(&count),
    });
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let mut admin = AdminClient::connect(server.url.clone()).await.unwrap();
    let acls: Vec<Acl> = (0..1000)
        .map(|i| Acl {
            principal: format!("User:cert-{}", i % 500),
            operation: "read".into(),
            resource_type: "topic".into(),
            resource_name: format!("t{i}"),
            ..Default::default()
        })
        .collect();
    let answer = admin
        .create_acls(CreateAclsRequest { acls })
        .await
        .unwrap()
        .into_inner();
    // The answer still warns once per principal; the log, once per request.
    assert_eq!(answer.warnings.len(), 500);
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 1);
    server.stop.send(()).unwrap();
    server.server.await.unwrap();
}
