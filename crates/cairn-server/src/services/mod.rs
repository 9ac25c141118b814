//! The `cairn.v1` gRPC services. Each only decodes a request, calls the broker and maps the
//! result; no produce, fetch or topic rule lives here.

mod admin;
mod admin_quota;
mod admin_security;
mod consumer;
pub(crate) use consumer::grpc_timeout;
mod consumer_routes;
mod counted;
mod groups;
mod metadata;
mod producer;
mod producer_routes;
mod record_encoding;
mod unary;

pub use admin::AdminService;
pub use consumer::ConsumerService;
pub use consumer_routes::ConsumerRoutes;
pub use counted::{CountedAdmin, CountedGroups};
pub use groups::GroupsService;
pub use metadata::MetadataService;
pub use producer::ProducerService;
pub use producer_routes::{ProduceShortcut, ProduceShortcutService, ProducerRoutes};
/// The paths whose request bodies the broker reads itself (`unary::read_request`).
pub(crate) use {
    consumer_routes::{FETCH_PATH, SUBSCRIBE_PATH},
    producer_routes::PRODUCE_PATH,
};
