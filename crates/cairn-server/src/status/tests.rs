use std::error::Error as _;

use super::*;

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .expect("an ErrorInfo")
        .reason
}

#[test]
fn statuses_carry_the_error_code_name_as_reason() {
    let status = to_status(&BrokerError::UnknownTopic {
        topic: "orders".into(),
    });
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("orders"));
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(info.domain, ERROR_DOMAIN);
    assert_eq!(
        info.metadata.get("topic").map(String::as_str),
        Some("orders")
    );
}

#[test]
fn a_huge_echoed_name_is_cut_in_the_message_and_the_metadata() {
    let name = "n".repeat(10_000);
    let status = to_status(&BrokerError::UnknownMember {
        group: name.clone(),
        member: name.clone(),
    });
    assert!(status.message().len() < 400, "{}", status.message());
    assert!(
        status.message().contains("…(10000 bytes)"),
        "{}",
        status.message()
    );
    let info = status.get_details_error_info().expect("an ErrorInfo");
    for key in ["group_id", "member_id"] {
        let value = &info.metadata[key];
        assert!(
            value.len() < 100 && value.ends_with("…(10000 bytes)"),
            "{value}"
        );
    }
    // The whole error stays available to the log.
    let cause = status.source().expect("the cause").to_string();
    assert!(cause.contains(&name));
}

#[test]
fn unknown_producers_and_transactions_have_their_reasons() {
    let unknown = to_status(&BrokerError::UnknownProducerId { producer_id: 4242 });
    assert_eq!(unknown.code(), Code::FailedPrecondition);
    assert_eq!(reason(&unknown), "UNKNOWN_PRODUCER_ID");
    let info = unknown.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.metadata["producer_id"], "4242");
    let transactional = to_status(&BrokerError::TransactionsUnsupported);
    assert_eq!(transactional.code(), Code::Unimplemented);
    assert_eq!(reason(&transactional), "TRANSACTIONS_UNSUPPORTED");
}

#[test]
fn a_replication_factor_past_the_cluster_is_invalid_replication_factor() {
    let status = to_status(&BrokerError::InvalidReplicationFactor {
        requested: 2,
        node_count: 1,
    });
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_REPLICATION_FACTOR");
    assert!(
        status.message().contains("replication factor 2") && status.message().contains("1 node"),
        "{}",
        status.message()
    );
}

#[test]
fn a_full_disk_is_disk_full_wherever_it_is_met() {
    let enospc = || std::io::Error::from_raw_os_error(28);
    let create = BrokerError::io("create", std::path::Path::new("/d/t-0"), enospc());
    assert_eq!(
        classify(&create),
        (ErrorCode::DiskFull, Code::ResourceExhausted)
    );
    // A log's own ENOSPC is classified DiskFull by the broker (see its `StorageError::kind`).
    assert_eq!(
        classify_storage(StorageErrorKind::DiskFull),
        (ErrorCode::DiskFull, Code::ResourceExhausted)
    );
    let other = BrokerError::io(
        "create",
        std::path::Path::new("/d"),
        std::io::Error::other("x"),
    );
    assert_eq!(classify(&other), (ErrorCode::Internal, Code::Internal));
}

#[test]
fn not_leader_is_a_failed_precondition_naming_the_leader() {
    let status = to_status(&BrokerError::NotLeader {
        topic: "orders".into(),
        partition: 2,
        leader: Some(LeaderHint {
            node_id: 3,
            address: Some("10.0.0.3:7070".into()),
        }),
    });
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "NOT_LEADER");
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.metadata["leader"], "10.0.0.3:7070");
    assert_eq!(info.metadata["leader_id"], "3");
    assert_eq!(info.metadata["partition"], "2");
    let unknown = to_status(&BrokerError::NotLeader {
        topic: "orders".into(),
        partition: 2,
        leader: None,
    });
    let info = unknown.get_details_error_info().expect("an ErrorInfo");
    assert!(!info.metadata.contains_key("leader"), "{info:?}");
}

#[test]
fn transport_refusals_get_cairn_codes_and_reasons() {
    let rpc = "/cairn.v1.Producer/Produce";
    let undecodable =
        tonic::Status::internal("failed to decode Protobuf message: invalid wire type value: 7");
    let mapped = transport_status(rpc, &undecodable).expect("mapped");
    assert_eq!(mapped.code(), Code::InvalidArgument);
    assert_eq!(reason(&mapped), "INVALID_REQUEST");
    assert!(mapped.message().contains("invalid wire type"));

    let too_large = tonic::Status::out_of_range(
        "Error, decoded message length too large: found 17000000 bytes, the limit is: 16777216 bytes",
    );
    let mapped = transport_status(rpc, &too_large).expect("mapped");
    assert_eq!(mapped.code(), Code::ResourceExhausted);
    assert_eq!(reason(&mapped), "REQUEST_TOO_LARGE");

    let unknown = tonic::Status::unimplemented("");
    let mapped = transport_status("/nope.Service/Call", &unknown).expect("mapped");
    assert_eq!(mapped.code(), Code::Unimplemented);
    assert_eq!(reason(&mapped), "UNSUPPORTED_OPERATION");
    assert!(mapped.message().contains("/nope.Service/Call"));

    let long_path = format!("/{}/Call", "p".repeat(5000));
    let mapped = transport_status(&long_path, &unknown).expect("mapped");
    assert!(mapped.message().len() < 200, "{}", mapped.message());

    let inflated = tonic::Status::resource_exhausted(
        "Error decompressing: size limit, of 4194304 bytes, exceeded while decompressing message",
    );
    let mapped = transport_status(rpc, &inflated).expect("mapped");
    assert_eq!(reason(&mapped), "REQUEST_TOO_LARGE");

    let internal = tonic::Status::internal("something broke");
    let mapped = transport_status(rpc, &internal).expect("mapped");
    assert_eq!(
        (mapped.code(), reason(&mapped)),
        (Code::Internal, "INTERNAL".into())
    );
}

#[test]
fn statuses_with_error_info_and_other_services_own_statuses_stay() {
    let ours = to_status(&BrokerError::ShuttingDown);
    assert!(transport_status("/cairn.v1.Admin/CreateTopic", &ours).is_none());
    let health = tonic::Status::not_found("service not registered");
    assert!(transport_status("/grpc.health.v1.Health/Check", &health).is_none());
    let long = tonic::Status::not_found(format!("no service {:?}", "s".repeat(5000)));
    let cut = transport_status("/grpc.health.v1.Health/Check", &long).expect("cut");
    assert_eq!(cut.code(), Code::NotFound);
    assert!(cut.message().len() < 200, "{}", cut.message());
    assert!(cut.get_details_error_info().is_none());
}

#[test]
fn per_partition_messages_are_cut_too() {
    let err = BrokerError::UnknownTopic {
        topic: "t".repeat(3000),
    };
    assert!(message(&err).len() < 200);
}
