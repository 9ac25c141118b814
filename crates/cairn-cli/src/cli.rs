//! The command-line grammar: the `cairn` command, its global options and its subcommands, as
//! clap derives. It only describes what may be typed; it checks no values.
//!
//! `serve`'s options are plain strings and paths, deliberately without clap's `env` and
//! `default_value`: `config_resolve` reads the environment, the config file and the defaults
//! itself, so that precedence is applied per key in one tested place and every bad value is
//! reported as one line naming the flag, variable or file key it came from. Their help text
//! names the variable and the default by hand instead.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

/// Where the client commands connect when neither `--broker` nor `CAIRN_BROKER` is given.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7070";

const CAIRN_AFTER_HELP: &str = "\
Examples:
  cairn serve --data-dir /var/lib/cairn
  CAIRN_NODE_ID=2 cairn serve --config /etc/cairn.toml
  cairn serve --node-id 1 --peers 1=10.0.0.1:7070,2=10.0.0.2:7070,3=10.0.0.3:7070";

pub(crate) const SERVE_AFTER_HELP: &str = "\
Each setting comes from its flag, else its CAIRN_* variable, else the --config file, else the
default. Empty variables count as unset.

Logs go to stderr, as text or (--log-format json) one JSON object per line. RUST_LOG filters
them: default info; for example RUST_LOG=debug, or RUST_LOG=info,cairn_broker=debug.

Examples:
  cairn serve
  cairn serve --data-dir /var/lib/cairn --grpc-addr 0.0.0.0:7070 \\
      --advertised-address cairn-1.example.com:7070 --node-id 1 \\
      --tls-cert node.crt --tls-key node.key --tls-client-ca ca.crt
  cairn serve --config /etc/cairn.toml --topic-default retention.ms=3600000 \\
      --topic-default flush.policy=always
  cairn serve --node-id 2 --peers 1=10.0.0.1:7070,2=10.0.0.2:7070,3=10.0.0.3:7070 \\
      --data-dir /var/lib/cairn

TLS: --tls-cert and --tls-key (PEM) put TLS 1.3 on the gRPC and HTTP listeners and the links
between nodes; --tls-client-ca then requires client certificates (mTLS) and verifies the other
nodes. The files are re-read when they change, or on SIGHUP, without dropping connections. A
listener on a non-loopback address without TLS is refused unless --allow-plaintext is given.

Without --peers the node is a cluster of one, as a lone broker always was. With --peers, every
node is given the same list and its own --node-id; it listens on its own entry's address unless
--grpc-addr says otherwise (then they must agree), and tells clients that address unless
--advertised-address says otherwise. The data directory remembers its node id (node.meta): a
node started under another id refuses to start.

Config file (TOML):
  data_dir = \"/var/lib/cairn\"
  grpc_addr = \"0.0.0.0:7070\"
  http_addr = \"127.0.0.1:7071\"
  node_id = 1
  advertised_address = \"cairn-1.example.com:7070\"
  log_format = \"json\"
  max_partitions = 4096
  log_retention_check_interval_ms = 300000
  offsets_topic_segment_bytes = 104857600
  producer_id_expiration_ms = 86400000
  max_connections = 10000
  max_connections_per_ip = 1000
  handshake_timeout_ms = 10000
  connections_max_idle_ms = 600000
  queued_max_request_bytes = 536870912
  authorization = \"on\"
  super_users = \"User:admin\"
  tls_principal_from = \"cn\"
  tls_cert = \"/etc/cairn/node.crt\"
  tls_key = \"/etc/cairn/node.key\"
  tls_client_ca = \"/etc/cairn/ca.crt\"
  allow_plaintext = false

  [topic_defaults]
  \"retention.ms\" = \"3600000\"
  \"flush.policy\" = \"always\"

  [cluster]
  peers = { 1 = \"10.0.0.1:7070\", 2 = \"10.0.0.2:7070\", 3 = \"10.0.0.3:7070\" }
  raft_election_timeout_ms = \"1000..2000\"
  raft_heartbeat_ms = 250
  default_replication_factor = 3
  leader_balance_interval_ms = 10000";

/// Cairn, a Kafka-style event-streaming log.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, after_help = CAIRN_AFTER_HELP)]
pub struct Cli {
    /// Brokers the client commands connect to, comma-separated (a host without a port is on
    /// 7070): tried in order until one answers, each within --connect-timeout; a failure names
    /// every address tried. `serve` ignores it.
    #[arg(
        long,
        global = true,
        env = "CAIRN_BROKER",
        default_value = DEFAULT_BROKER,
        value_name = "HOST:PORT[,...]"
    )]
    pub broker: String,

    /// Deadline of each request to the broker, e.g. 30s, 500ms, 2m (a bare number is seconds),
    /// and for `produce` of each record's acknowledgement, retries included [default: 30s;
    /// health: 5s]. `serve` ignores it.
    #[arg(
        long,
        global = true,
        env = "CAIRN_TIMEOUT",
        value_name = "DURATION",
        value_parser = crate::target::parse_duration
    )]
    pub timeout: Option<Duration>,

    /// Deadline of connecting to a broker, e.g. 5s [default: 5s]. `serve` ignores it.
    #[arg(
        long,
        global = true,
        env = "CAIRN_CONNECT_TIMEOUT",
        value_name = "DURATION",
        value_parser = crate::target::parse_duration
    )]
    pub connect_timeout: Option<Duration>,

    /// User to authenticate as (the password comes from --password-file or --password-env;
    /// brokers accept passwords over TLS, or on a loopback-only listener). `serve` ignores it.
    #[arg(long, global = true, env = "CAIRN_USER", value_name = "NAME")]
    pub user: Option<String>,

    /// File whose first line is --user's password.
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Environment variable holding --user's password.
    #[arg(long, global = true, value_name = "VAR")]
    pub password_env: Option<String>,
    /// TLS files: the client commands' CA, certificate and key; `serve`'s certificate and key.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The TLS files, global so that they may follow any subcommand. For the client commands:
/// `--tls-ca` turns TLS on (as does an `https://` broker address) and `--tls-cert`/`--tls-key`
/// are the client certificate for brokers that require one (mTLS). For `serve`: `--tls-cert`
/// and `--tls-key` are the node's own certificate and key, and `--tls-ca` is not used.
/// Each falls back to its `CAIRN_TLS_*` variable (read by `target` and `config_resolve`, so that
/// `serve` reports where a bad value came from).
#[derive(Debug, Default, Clone, PartialEq, Eq, Args)]
pub struct TlsArgs {
    /// PEM file of the CA(s) that signed the brokers' certificates; turns TLS on for the client
    /// commands [env: CAIRN_TLS_CA]
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<String>,
    /// PEM certificate (chain): the client's, for brokers that require one; with `serve`, the
    /// node's own [env: CAIRN_TLS_CERT] [config: tls_cert]
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert [env: CAIRN_TLS_KEY] [config: tls_key]
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_key: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing `serve`'s flags would save nothing that matters"
)]
pub enum Command {
    /// Run a broker: serve the gRPC API and the HTTP admin endpoint until SIGTERM or SIGINT.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Create, list, describe, change and delete topics.
    #[command(
        subcommand,
        after_help = "Examples:\n  cairn topic create orders --partitions 6"
    )]
    Topic(crate::topic::TopicCommand),
    /// Produce one record per stdin line (text, or JSON objects with --format json).
    #[command(
        after_help = "Examples:\n  printf 'order-1:created\\norder-2:created\\n' | cairn produce orders --key-separator :\n  echo '{\"key\":\"order-1\",\"value\":null}' | cairn produce customers --format json   # a tombstone\n  echo '{\"key\":\"b3JkZXI=\",\"value\":\"/wA=\",\"headers\":[[\"h\",\"AQ==\"]]}' | cairn produce raw --format json --key-encoding base64 --value-encoding base64\n\nOn failure, the error says how many records were acknowledged and up to which line every\nrecord was, so the input can be resumed after that line."
    )]
    Produce(crate::produce::ProduceArgs),
    /// Print records of a topic.
    #[command(
        after_help = "Examples:\n  cairn consume orders --from earliest --until-end --format json\n  cairn consume orders --from -10 --until-end --template '%p/%o %k => %v\\n'\n  cairn consume orders --from 2026-12-01T10:00:00Z --value-encoding base64 --format json\n  cairn consume orders --group inventory --from earliest"
    )]
    Consume(crate::consume::ConsumeArgs),
    /// List, describe, reset the offsets of, and delete consumer groups.
    #[command(
        subcommand,
        after_help = "Examples:\n  cairn group describe inventory --format json\n  cairn group reset-offsets inventory --topic orders --to earliest"
    )]
    Group(crate::group::GroupCommand),
    /// Replay a topic from the earliest offset (or a checkpoint) to its current end.
    #[command(
        after_help = "Examples:\n  cairn replay orders --format json > orders.jsonl\n  cairn replay orders --checkpoint orders.checkpoint --follow"
    )]
    Replay(crate::replay::ReplayArgs),
    /// Measure a running broker: produce or consume load with throughput and latency figures.
    #[command(
        subcommand,
        after_help = "Examples:\n  cairn bench produce --records 200000 --record-size 1024\n  cairn bench consume --topic cairn-bench"
    )]
    Bench(crate::bench::BenchCommand),
    /// Check that brokers serve (the standard gRPC health check); exit 0 only if all do.
    #[command(
        after_help = "Examples:\n  cairn health\n  cairn --broker 10.0.0.1:7070,10.0.0.2:7070 health --timeout 2s --format json"
    )]
    Health(crate::health::HealthArgs),
    /// Add, remove and list the users that authenticate by password.
    #[command(
        subcommand,
        after_help = "Examples:\n  cairn user add alice --password-file alice.pw\n  CAIRN_NEW_PASSWORD=... cairn user add alice --password-env CAIRN_NEW_PASSWORD\n  cairn user list"
    )]
    User(crate::user::UserCommand),
    /// Add, remove and list ACLs (Kafka's model: principal, host, operation, resource, allow or
    /// deny; deny wins).
    #[command(
        subcommand,
        after_help = "Examples:\n  cairn acl add --allow-principal User:alice --operation write --topic orders\n  cairn acl add --allow-principal User:bob --operation read --topic pay --resource-pattern-type prefixed --group billing\n  cairn acl add --deny-principal User:mallory --operation all --topic '*'\n  cairn acl list"
    )]
    Acl(crate::acl::AclCommand),
    /// Set, remove and list client quotas (per principal, or a default): byte and request
    /// rates enforced by delaying answers, and how many topics and partitions one may create.
    #[command(
        subcommand,
        after_help = "Examples:\n  cairn quota set --principal User:alice --producer-byte-rate 1048576\n  cairn quota set --default --request-rate 500 --max-topics 20\n  cairn quota remove --principal User:alice\n  cairn quota list"
    )]
    Quota(crate::quota::QuotaCommand),
    /// Show the cluster as a broker sees it: node id, version, nodes, topics and partitions.
    #[command(subcommand, after_help = "Examples:\n  cairn cluster info")]
    Cluster(crate::cluster::ClusterCommand),
}

/// `cairn serve`'s flags as typed, before the environment, the config file and the defaults are
/// applied (see `config_resolve::resolve`). `None` and an empty list mean "not given".
#[derive(Debug, Default, Clone, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Directory holding the topics' logs [env: CAIRN_DATA_DIR] [default: ./cairn-data]
    #[arg(long, value_name = "DIR", value_parser = any_path())]
    pub data_dir: Option<PathBuf>,

    /// Address the gRPC API listens on; port 0 picks a free port
    /// [env: CAIRN_GRPC_ADDR] [default: 127.0.0.1:7070]
    #[arg(long, value_name = "IP:PORT")]
    pub grpc_addr: Option<String>,

    /// Address the HTTP admin endpoint (/health, /metrics) listens on; port 0 picks a free port
    /// [env: CAIRN_HTTP_ADDR] [default: 127.0.0.1:7071]
    #[arg(long, value_name = "IP:PORT")]
    pub http_addr: Option<String>,

    /// This node's id, from 1 to 2147483647; with --peers, its entry in the list. Recorded in
    /// the data directory (node.meta): a later start under another id is refused
    /// [env: CAIRN_NODE_ID] [default: 1, or the only id of a one-entry --peers]
    #[arg(long, value_name = "ID", allow_negative_numbers = true)]
    pub node_id: Option<String>,

    /// Every node of the cluster with its gRPC address (clients and node-to-node traffic), this
    /// node included; give each node the same list. Without it the node is a cluster of one
    /// [env: CAIRN_PEERS] [config: [cluster] peers] [default: none]
    #[arg(long, value_name = "ID=HOST:PORT[,...]")]
    pub peers: Option<String>,

    /// Join a cluster that runs already instead of forming one: the node waits until a
    /// member's `cairn cluster add-node --node-id ID --address HOST:PORT` brings it in. Give
    /// --peers with this node's entry and the members' (their current list plus this node).
    /// Needed only at the node's first start
    #[arg(long, requires = "peers")]
    pub join: bool,

    /// Raft election timeout range: a follower that hears no leader for a random time in it
    /// stands for election. The default fails over in a few seconds without needless elections
    /// on a busy 2-core machine [env: CAIRN_RAFT_ELECTION_TIMEOUT_MS]
    /// [config: [cluster] raft_election_timeout_ms] [default: 1000..2000]
    #[arg(long, value_name = "MIN..MAX")]
    pub raft_election_timeout_ms: Option<String>,

    /// Interval of a Raft leader's heartbeats, below the election timeout. 250 ms leaves room
    /// for three lost heartbeats, and keeps a node holding 1,000 Raft groups from spending its
    /// CPU on heartbeats [env: CAIRN_RAFT_HEARTBEAT_MS] [config: [cluster] raft_heartbeat_ms]
    /// [default: 250]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub raft_heartbeat_ms: Option<String>,

    /// Copies of each partition for topics created without --replication-factor, from 1 to
    /// the node count [env: CAIRN_DEFAULT_REPLICATION_FACTOR]
    /// [config: [cluster] default_replication_factor] [default: min(3, nodes); 1 alone]
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub default_replication_factor: Option<String>,

    /// How often this node moves the partition leaderships it holds back to their preferred
    /// replicas (the first replica of each partition) where those are alive and in sync; a
    /// returning node gets them back once it has answered for three intervals. 0 turns it off
    /// (`cairn cluster balance-leaders` still works) [env: CAIRN_LEADER_BALANCE_INTERVAL_MS]
    /// [config: [cluster] leader_balance_interval_ms] [default: 10000]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub leader_balance_interval_ms: Option<String>,

    /// Address clients are told to reach this broker at
    /// [env: CAIRN_ADVERTISED_ADDRESS] [default: the bound gRPC address]
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_address: Option<String>,

    /// How log lines on stderr are written: text, or json (one JSON object per line); the
    /// RUST_LOG variable filters them [env: CAIRN_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Most partitions this node holds over all topics, __consumer_offsets included; creates
    /// past it are refused [env: CAIRN_MAX_PARTITIONS] [default: 4096]
    #[arg(long, value_name = "COUNT", allow_negative_numbers = true)]
    pub max_partitions: Option<String>,

    /// How often each partition runs retention, deleting the segments that retention.ms or
    /// retention.bytes no longer keep (Kafka's log.retention.check.interval.ms), from 1000
    /// [env: CAIRN_LOG_RETENTION_CHECK_INTERVAL_MS] [default: 300000, 5 minutes]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub log_retention_check_interval_ms: Option<String>,

    /// segment.bytes of the __consumer_offsets a cluster creates (Kafka's
    /// offsets.topic.segment.bytes), from 64; a replica frees superseded commits a whole
    /// segment at a time. Only the node whose proposal creates the topic applies it
    /// [env: CAIRN_OFFSETS_TOPIC_SEGMENT_BYTES] [default: 104857600, 100 MiB]
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub offsets_topic_segment_bytes: Option<String>,

    /// How long a partition remembers an idempotent producer after its last write (Kafka's
    /// producer.id.expiration.ms), from 1 to 2147483647; a producer that writes again later
    /// gets UNKNOWN_PRODUCER_ID, and Cairn's producer carries on under a new id
    /// [env: CAIRN_PRODUCER_ID_EXPIRATION_MS] [default: 86400000, a day]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub producer_id_expiration_ms: Option<String>,

    /// Enforce ACLs: on denies everything the ACLs (`cairn acl add`) do not allow, except to
    /// super users; off lets every caller do everything [env: CAIRN_AUTHORIZATION]
    /// [default: off]
    #[arg(long, value_name = "on|off")]
    pub authorization: Option<String>,

    /// Principals that bypass ACLs, comma-separated, e.g. User:admin,User:node-1 (give every
    /// node's certificate principal when authorization is on in a cluster)
    /// [env: CAIRN_SUPER_USERS] [default: none]
    #[arg(long, value_name = "User:NAME,...")]
    pub super_users: Option<String>,

    /// Which name of a verified client certificate becomes its principal: cn (subject common
    /// name), san-dns or san-uri (first such subject alternative name)
    /// [env: CAIRN_TLS_PRINCIPAL_FROM] [default: cn]
    #[arg(long, value_name = "cn|san-dns|san-uri")]
    pub tls_principal_from: Option<String>,

    /// TOML config file; see below for its keys [env: CAIRN_CONFIG] [default: none]
    #[arg(long, value_name = "FILE", value_parser = any_path())]
    pub config: Option<PathBuf>,

    /// A topic config default under its Kafka name, e.g. retention.ms=3600000; repeat for more.
    /// Overrides the config file's [topic_defaults] key by key; a repeated key's last value wins
    #[arg(long = "topic-default", value_name = "KEY=VALUE")]
    pub topic_defaults: Vec<String>,

    /// Most gRPC connections open at once. At the limit a new connection closes the oldest idle
    /// one (first those that never finished their HTTP/2 handshake); if all are busy it is
    /// refused [env: CAIRN_MAX_CONNECTIONS]
    /// [default: half the open-file limit, which serve raises to the hard limit at start]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,

    /// Most gRPC connections open at once from one client IP address; more are refused
    /// [env: CAIRN_MAX_CONNECTIONS_PER_IP] [default: no limit but --max-connections]
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<String>,

    /// Time a new connection has to finish its TLS handshake (with TLS on) and send its HTTP/2
    /// preface and SETTINGS before it is closed
    /// [env: CAIRN_HANDSHAKE_TIMEOUT_MS] [default: 10000]
    #[arg(long, value_name = "MS")]
    pub handshake_timeout_ms: Option<String>,

    /// Time a connection may stay with no request in flight and none ended before it is closed
    /// (Kafka's connections.max.idle.ms) [env: CAIRN_CONNECTIONS_MAX_IDLE_MS]
    /// [default: 600000, 10 minutes]
    #[arg(long, value_name = "MS")]
    pub connections_max_idle_ms: Option<String>,

    /// Most bytes of request bodies the broker holds at once, read and not yet answered,
    /// across every connection (Kafka's queued.max.request.bytes). A request past it waits,
    /// its body unread, until enough is answered; at least 16777221, the largest request
    /// [env: CAIRN_QUEUED_MAX_REQUEST_BYTES] [default: 536870912, 512 MiB]
    #[arg(long, value_name = "BYTES")]
    pub queued_max_request_bytes: Option<String>,

    /// PEM file of the CA(s) whose client certificates are accepted: every gRPC client must
    /// then present one (mTLS), and in a cluster the other nodes are verified against it
    /// (required there once TLS is on) [env: CAIRN_TLS_CLIENT_CA] [config: tls_client_ca]
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<String>,

    /// Serve plaintext on a non-loopback address (refused without it when no --tls-cert is
    /// given) [env: CAIRN_ALLOW_PLAINTEXT=true] [config: allow_plaintext = true]
    #[arg(long)]
    pub allow_plaintext: bool,

    /// The global --tls-cert and --tls-key, copied here by `main` (see [`TlsArgs`]).
    #[arg(skip)]
    pub tls: TlsArgs,
}

/// Takes any path, even an empty one, which clap's own path parser refuses with a multi-line
/// usage error: `config_resolve` rejects it instead, in one line naming the flag.
fn any_path() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_are_collected_as_typed() {
        let cli = Cli::try_parse_from([
            "cairn",
            "serve",
            "--data-dir",
            "/d",
            "--grpc-addr",
            "not an address",
            "--node-id",
            "x",
            "--topic-default",
            "a=1",
            "--topic-default",
            "b=2",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.data_dir, Some(PathBuf::from("/d")));
        // Values are checked later, by config_resolve, not by clap.
        assert_eq!(args.grpc_addr.as_deref(), Some("not an address"));
        assert_eq!(args.node_id.as_deref(), Some("x"));
        assert_eq!(args.http_addr, None);
        assert_eq!(args.topic_defaults, ["a=1", "b=2"]);
    }

    #[test]
    fn broker_is_global_so_it_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from(["cairn", "serve", "--broker", "h:1,h:2"]).unwrap();
        assert_eq!(cli.broker, "h:1,h:2");
    }

    #[test]
    fn every_help_has_an_example() {
        let mut cairn = Cli::command();
        assert!(cairn.render_long_help().to_string().contains("Examples:"));
        // clap's generated `help` subcommand is the one exception: it only prints the others.
        for sub in cairn
            .get_subcommands_mut()
            .filter(|sub| sub.get_name() != "help")
        {
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Examples:"),
                "{} --help lacks an example",
                sub.get_name()
            );
            let parent = sub.get_name().to_string();
            for nested in sub.get_subcommands_mut().filter(|n| n.get_name() != "help") {
                let help = nested.render_long_help().to_string();
                assert!(
                    help.contains("Examples:"),
                    "{parent} {} --help lacks an example",
                    nested.get_name()
                );
            }
        }
    }

    #[test]
    fn serve_help_names_each_variable() {
        let mut cairn = Cli::command();
        // Copies the global `--broker` into the subcommands, as parsing does.
        cairn.build();
        let help = cairn
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for var in [
            "CAIRN_DATA_DIR",
            "CAIRN_GRPC_ADDR",
            "CAIRN_HTTP_ADDR",
            "CAIRN_NODE_ID",
            "CAIRN_ADVERTISED_ADDRESS",
            "CAIRN_LOG_FORMAT",
            "RUST_LOG",
            "CAIRN_CONFIG",
            "CAIRN_BROKER",
            "CAIRN_MAX_CONNECTIONS",
            "CAIRN_MAX_CONNECTIONS_PER_IP",
            "CAIRN_HANDSHAKE_TIMEOUT_MS",
            "CAIRN_CONNECTIONS_MAX_IDLE_MS",
            "CAIRN_QUEUED_MAX_REQUEST_BYTES",
            "CAIRN_LOG_RETENTION_CHECK_INTERVAL_MS",
            "CAIRN_OFFSETS_TOPIC_SEGMENT_BYTES",
            "CAIRN_PEERS",
            "CAIRN_RAFT_ELECTION_TIMEOUT_MS",
            "CAIRN_RAFT_HEARTBEAT_MS",
            "CAIRN_DEFAULT_REPLICATION_FACTOR",
            "CAIRN_TLS_CERT",
            "CAIRN_TLS_KEY",
            "CAIRN_TLS_CLIENT_CA",
            "CAIRN_ALLOW_PLAINTEXT",
        ] {
            assert!(help.contains(var), "serve --help does not mention {var}");
        }
    }
}
