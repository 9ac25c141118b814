#![allow(clippy::unwrap_used, reason = "test code")]

use std::net::{SocketAddr, TcpListener};

use super::*;
use crate::routing::METADATA_MAX_AGE;

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A single in-process node on `grpc` that advertises `advertised`; dropping the sender
/// stops it.
fn serve(
    dir: &std::path::Path,
    grpc: SocketAddr,
    advertised: String,
) -> tokio::sync::oneshot::Sender<()> {
    let cfg = cairn_server::ServerConfig {
        data_dir: dir.to_path_buf(),
        grpc_addr: grpc,
        http_addr: free_port(),
        cluster: cairn_broker::ClusterSpec::default(),
        advertised_address: Some(advertised),
        topic_defaults: cairn_broker::TopicConfig::default(),
        max_partitions: cairn_broker::DEFAULT_MAX_PARTITIONS,
        producer_id_expiration: Default::default(),
        connections: cairn_server::connections::ConnectionLimits::default(),
        auth: cairn_server::auth::AuthConfig::default(),
        tls: None,
        allow_plaintext: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        cairn_server::run(cfg, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_is_routed_over_the_one_channel_after_one_metadata_read() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    // Reached at 127.0.0.1, advertised under another name: the client must not open a
    // second connection for it.
    let advertised = format!("localhost:{}", grpc.port());
    let _stop = serve(dir.path(), grpc, advertised.clone());
    let address = grpc.to_string();
    let admin = {
        let mut tries = 0;
        loop {
            match crate::Admin::connect(&address).await {
                Ok(admin) => break admin,
                Err(err) => {
                    tries += 1;
                    assert!(tries < 400, "the server did not come up: {err}");
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
    };
    admin
        .create_topic("orders", 3, 0, std::collections::HashMap::new())
        .await
        .unwrap();

    let router = Router::connect(&address, Timeouts::default())
        .await
        .unwrap();
    for _ in 0..10 {
        for partition in 0..3 {
            let route = router.route("orders", partition).await;
            assert_eq!(&*route.address, address.as_str());
        }
    }
    assert_eq!(
        router.shared.reads.load(Ordering::Acquire),
        1,
        "one metadata read"
    );
    assert_eq!(lock(&router.shared.channels).len(), 1, "one channel");
    assert_eq!(
        router
            .partition_count("orders", METADATA_MAX_AGE)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(router.shared.reads.load(Ordering::Acquire), 1);

    // A hint naming the advertised address reuses the channel to the same node.
    let not_leader = ClientError::Broker {
        code: ErrorCode::NotLeader,
        status: tonic::Code::FailedPrecondition,
        message: "moved".to_string(),
        leader: Some(advertised),
    };
    assert!(router.on_error("orders", 1, &address, &not_leader));
    assert_eq!(&*router.route("orders", 1).await.address, address.as_str());
    assert_eq!(lock(&router.shared.channels).len(), 1);

    // On a single node, a transport failure is not a reason to look elsewhere: callers report
    // it as before.
    let reset = ClientError::from(tonic::Status::unavailable("connection reset"));
    assert!(!router.on_error("orders", 2, &address, &reset));
    // An unknown topic goes to the any node, whose answer is the authentic error.
    let unknown = router.route("nope", 0).await;
    assert_eq!(&*unknown.address, address.as_str());
    assert_eq!(
        router
            .partition_count("nope", METADATA_MAX_AGE)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_any_node_fail_over_to_the_next_bootstrap_address_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_port();
    let _stop = serve(dir.path(), grpc, grpc.to_string());
    let live = grpc.to_string();
    // A node that answers the client's connection and then goes away: a node that died after
    // the client connected to it.
    let doomed_dir = tempfile::tempdir().unwrap();
    let doomed = free_port();
    let stop_doomed = serve(doomed_dir.path(), doomed, doomed.to_string());
    let dead = doomed.to_string();
    let router = loop {
        let router = Router::connect(&format!("{dead},{live}"), Timeouts::default())
            .await
            .unwrap();
        if &*router.any_node().address == dead.as_str() {
            break router;
        }
        // The doomed node was still starting, and the list moved on: try again.
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let _ = stop_doomed.send(());
    let mut tries = 0;
    let names = loop {
        let listed = router
            .on_any_node(|channel| async move {
                let answer = cairn_proto::v1::admin_client::AdminClient::new(channel)
                    .list_topics(cairn_proto::v1::ListTopicsRequest {
                        include_internal: false,
                    })
                    .await?;
                Ok(answer.into_inner().names)
            })
            .await;
        match listed {
            // A node stopping gracefully may still answer on the open connection a moment.
            Ok(names) if &*router.any_node().address == live.as_str() => break names,
            Ok(_) => {
                tries += 1;
                assert!(tries < 400, "the stopped node still answers");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            // The first failure may be the reset rather than a refusal, and the live server
            // may still be starting: either way, asking again must end on the live node.
            Err(err) => {
                tries += 1;
                assert!(tries < 400, "{err}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    assert!(names.is_empty());
    assert_eq!(&*router.any_node().address, live.as_str());
}
