//! A fake cluster for the routing tests: in-process gRPC nodes that answer `Metadata` and
//! `Groups` from one shared [`Truth`] (which nodes exist, which one coordinates every group,
//! whether it is still loading), the way a real cluster's nodes answer when their views agree.
//! It exists so the client's coordinator routing can be driven through moves, elections and
//! dead nodes deterministically, without the broker's replication behind it.
//!
//! Only `FindCoordinator`, `Heartbeat`, `CommitOffsets`, `FetchOffsets`, `ListGroups` and
//! `GetMetadata` do anything; the other calls answer UNIMPLEMENTED.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::v1::groups_server::{Groups, GroupsServer};
use cairn_proto::v1::metadata_server::{Metadata, MetadataServer};
use cairn_proto::v1::{
    CommitOffsetsRequest, CommitOffsetsResponse, CommittedOffset, DeleteGroupRequest,
    DeleteGroupResponse, DescribeGroupRequest, ErrorCode, FetchOffsetsRequest,
    FetchOffsetsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupDescription,
    GroupListing, HeartbeatRequest, HeartbeatResponse, ListGroupsRequest, ListGroupsResponse,
    MetadataRequest, MetadataResponse, Node, NodeHealthRequest, NodeHealthResponse,
    ResetOffsetsRequest, ResetOffsetsResponse,
};
use tonic::{Code, Request, Response, Status};

/// What every node of the fake cluster agrees on.
#[derive(Debug, Default)]
pub(crate) struct Truth {
    /// Node id and advertised address of every node.
    pub nodes: Vec<(i32, String)>,
    /// The node that coordinates every group; `None` during an election.
    pub coordinator: Option<i32>,
    /// True while the coordinator is loading the groups' offsets.
    pub loading: bool,
    /// The heartbeat interval the coordinator gives (at least 50 ms).
    pub heartbeat_interval_ms: u32,
}

impl Truth {
    fn address_of(&self, node_id: i32) -> Option<String> {
        self.nodes
            .iter()
            .find(|(id, _)| *id == node_id)
            .map(|(_, address)| address.clone())
    }
}

/// One fake node: its id, the shared truth, what it lists, and how often it was called.
#[derive(Debug)]
pub(crate) struct FakeNode {
    pub id: i32,
    pub truth: Arc<Mutex<Truth>>,
    /// What `ListGroups` answers.
    pub listed: Mutex<Vec<GroupListing>>,
    /// Members that joined at this node (a new coordinator knows none).
    members: Mutex<BTreeSet<String>>,
    pub finds: AtomicUsize,
    pub heartbeats: AtomicUsize,
    pub fetches: AtomicUsize,
    /// Commits taken.
    pub commits: AtomicUsize,
    pub metadata_reads: AtomicUsize,
}

impl FakeNode {
    /// Refuses the call as a node that is not (or not yet) the groups' coordinator does.
    fn check_coordinator(&self) -> Result<(), Status> {
        let truth = self.truth.lock().unwrap();
        match truth.coordinator {
            Some(id) if id == self.id && truth.loading => Err(refusal(
                ErrorCode::CoordinatorLoadInProgress,
                Code::Unavailable,
                &[],
            )),
            Some(id) if id == self.id => Ok(()),
            Some(id) => {
                let address = truth.address_of(id).unwrap_or_default();
                Err(refusal(
                    ErrorCode::NotCoordinator,
                    Code::FailedPrecondition,
                    &[("leader", address), ("leader_id", id.to_string())],
                ))
            }
            None => Err(refusal(
                ErrorCode::CoordinatorNotAvailable,
                Code::Unavailable,
                &[],
            )),
        }
    }
}

/// A status as the broker words a refusal: the code's name as the ErrorInfo reason.
fn refusal(code: ErrorCode, grpc: Code, metadata: &[(&str, String)]) -> Status {
    let metadata = metadata
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect::<std::collections::HashMap<_, _>>();
    let details = tonic_types::ErrorDetails::with_error_info(code.as_str_name(), "cairn", metadata);
    <Status as tonic_types::StatusExt>::with_error_details(grpc, "refused", details)
}

#[tonic::async_trait]
impl Groups for FakeNode {
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        self.check_coordinator()?;
        let request = request.into_inner();
        let mut members = self.members.lock().unwrap();
        let member_epoch = match request.member_epoch {
            -1 => {
                members.remove(&request.member_id);
                -1
            }
            0 => {
                members.insert(request.member_id.clone());
                1
            }
            epoch if members.contains(&request.member_id) => epoch,
            _ => return Err(refusal(ErrorCode::UnknownMemberId, Code::NotFound, &[])),
        };
        Ok(Response::new(HeartbeatResponse {
            member_id: request.member_id,
            member_epoch,
            heartbeat_interval_ms: self.truth.lock().unwrap().heartbeat_interval_ms.max(50),
            assignment: Vec::new(),
            session_timeout_ms: 45_000,
            assignment_complete: true,
        }))
    }

    /// Takes a commit from a member that joined at this node, and counts it.
    async fn commit_offsets(
        &self,
        request: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        self.check_coordinator()?;
        if !self
            .members
            .lock()
            .unwrap()
            .contains(&request.into_inner().member_id)
        {
            return Err(refusal(
                ErrorCode::UnknownMemberId,
                Code::FailedPrecondition,
                &[],
            ));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(CommitOffsetsResponse::default()))
    }

    /// Answers one offset whose partition is this node's id, so a test sees who answered.
    async fn fetch_offsets(
        &self,
        request: Request<FetchOffsetsRequest>,
    ) -> Result<Response<FetchOffsetsResponse>, Status> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.check_coordinator()?;
        Ok(Response::new(FetchOffsetsResponse {
            offsets: vec![CommittedOffset {
                topic: request.into_inner().group_id,
                partition: self.id,
                offset: 0,
                ..CommittedOffset::default()
            }],
        }))
    }

    async fn list_groups(
        &self,
        _request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        Ok(Response::new(ListGroupsResponse {
            groups: self.listed.lock().unwrap().clone(),
        }))
    }

    async fn describe_group(
        &self,
        _request: Request<DescribeGroupRequest>,
    ) -> Result<Response<GroupDescription>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn reset_offsets(
        &self,
        _request: Request<ResetOffsetsRequest>,
    ) -> Result<Response<ResetOffsetsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn delete_group(
        &self,
        _request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn find_coordinator(
        &self,
        _request: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        let truth = self.truth.lock().unwrap();
        match truth.coordinator {
            Some(node_id) => Ok(Response::new(FindCoordinatorResponse {
                node_id,
                address: truth.address_of(node_id).unwrap_or_default(),
            })),
            None => Err(refusal(
                ErrorCode::CoordinatorNotAvailable,
                Code::Unavailable,
                &[],
            )),
        }
    }
}

#[tonic::async_trait]
impl Metadata for FakeNode {
    async fn get_metadata(
        &self,
        _request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        self.metadata_reads.fetch_add(1, Ordering::SeqCst);
        let truth = self.truth.lock().unwrap();
        Ok(Response::new(MetadataResponse {
            nodes: truth
                .nodes
                .iter()
                .map(|(node_id, address)| Node {
                    node_id: *node_id,
                    address: address.clone(),
                })
                .collect(),
            topics: Vec::new(),
            node_id: self.id,
            version: String::new(),
        }))
    }

    async fn get_node_health(
        &self,
        _request: Request<NodeHealthRequest>,
    ) -> Result<Response<NodeHealthResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// A fake cluster: its nodes by id, their listen addresses, and the stop switch of each.
pub(crate) struct FakeCluster {
    pub truth: Arc<Mutex<Truth>>,
    pub nodes: BTreeMap<i32, Arc<FakeNode>>,
    pub addresses: BTreeMap<i32, String>,
    stops: Mutex<BTreeMap<i32, Stop>>,
}

/// How to stop one node: the shutdown signal and the server task to wait for.
type Stop = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
);

impl FakeCluster {
    /// `count` nodes (ids 1..=count) on free loopback ports, advertising `127.0.0.1:port`
    /// (or what `advertise` makes of the port), node `coordinator` coordinating. Returns once
    /// every node accepts connections.
    pub async fn start(
        count: i32,
        coordinator: Option<i32>,
        advertise: impl Fn(u16) -> String,
    ) -> FakeCluster {
        let ports: BTreeMap<i32, SocketAddr> = (1..=count).map(|id| (id, free_port())).collect();
        let truth = Arc::new(Mutex::new(Truth {
            nodes: ports
                .iter()
                .map(|(id, address)| (*id, advertise(address.port())))
                .collect(),
            coordinator,
            loading: false,
            heartbeat_interval_ms: 50,
        }));
        let mut nodes = BTreeMap::new();
        let mut stops = BTreeMap::new();
        for (&id, &address) in &ports {
            let node = Arc::new(FakeNode {
                id,
                truth: Arc::clone(&truth),
                listed: Mutex::new(Vec::new()),
                members: Mutex::new(BTreeSet::new()),
                finds: AtomicUsize::new(0),
                heartbeats: AtomicUsize::new(0),
                fetches: AtomicUsize::new(0),
                commits: AtomicUsize::new(0),
                metadata_reads: AtomicUsize::new(0),
            });
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tonic::transport::Server::builder()
                .add_service(GroupsServer::from_arc(Arc::clone(&node)))
                .add_service(MetadataServer::from_arc(Arc::clone(&node)))
                .serve_with_shutdown(address, async move {
                    let _ = stopped.await;
                });
            let task = tokio::spawn(server);
            nodes.insert(id, node);
            stops.insert(id, (stop, task));
        }
        for address in ports.values() {
            let mut tries = 0;
            while tokio::net::TcpStream::connect(address).await.is_err() {
                tries += 1;
                assert!(tries < 400, "fake node {address} did not come up");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        FakeCluster {
            truth,
            nodes,
            addresses: ports
                .into_iter()
                .map(|(id, address)| (id, address.to_string()))
                .collect(),
            stops: Mutex::new(stops),
        }
    }

    /// Where node `id` listens.
    pub fn address(&self, id: i32) -> &str {
        &self.addresses[&id]
    }

    /// Stops node `id`, returning once it no longer accepts connections and has closed
    /// those it had.
    pub async fn stop(&self, id: i32) {
        let (stop, task) = self.stops.lock().unwrap().remove(&id).unwrap();
        drop(stop);
        task.await.unwrap().unwrap();
    }

    /// Makes node `id` (or nobody) the coordinator of every group.
    pub fn elect(&self, id: Option<i32>) {
        self.truth.lock().unwrap().coordinator = id;
    }

    /// How many times each node was asked `FindCoordinator`, in total.
    pub fn finds(&self) -> usize {
        self.nodes
            .values()
            .map(|node| node.finds.load(Ordering::SeqCst))
            .sum()
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
