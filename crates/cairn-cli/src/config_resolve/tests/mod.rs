//! Tests of settings resolution, split by job: `precedence` and `bad_input`; the helpers here
//! build flags, environments and files for both.

use std::collections::HashMap;
use std::os::unix::ffi::OsStringExt;

use cairn_broker::{CleanupPolicy, ClusterSpec};
use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};
use cairn_server::connections::ConnectionLimits;

const PATH: &str = "/etc/cairn.toml";

/// `cairn serve ARGV...` through the real clap grammar.
fn args(argv: &[&str]) -> ServeArgs {
    let cli = Cli::try_parse_from(["cairn", "serve"].iter().chain(argv)).unwrap();
    let Command::Serve(mut args) = cli.command else {
        panic!("parsed as another command");
    };
    args.tls = cli.tls;
    args
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |var| map.get(var).cloned()
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn file(text: &str) -> Option<ConfigFile<'_>> {
    Some(ConfigFile {
        path: Path::new(PATH),
        text,
    })
}

/// The error's message, checked to be one line.
fn error_of(result: Result<ServeConfig, ConfigError>) -> String {
    let message = result.unwrap_err().to_string();
    assert!(!message.contains('\n'), "error spans lines: {message:?}");
    message
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn topic_config(pairs: &[(&str, &str)]) -> TopicConfig {
    let mut config = TopicConfig::default();
    config.set_all(pairs.iter().copied()).unwrap();
    config
}

const FULL_FILE: &str = r#"
data_dir = "/file/data"
grpc_addr = "10.0.0.1:1001"
http_addr = "10.0.0.1:1002"
node_id = 3
advertised_address = "file.example.com:1001"

[topic_defaults]
"retention.ms" = "1000"
"segment.bytes" = "4096"
"#;

const FULL_ENV: [(&str, &str); 5] = [
    ("CAIRN_DATA_DIR", "/env/data"),
    ("CAIRN_GRPC_ADDR", "10.0.0.2:2001"),
    ("CAIRN_HTTP_ADDR", "10.0.0.2:2002"),
    ("CAIRN_NODE_ID", "4"),
    ("CAIRN_ADVERTISED_ADDRESS", "env.example.com:2001"),
];

const FULL_FLAGS: [&str; 10] = [
    "--data-dir",
    "/flag/data",
    "--grpc-addr",
    "10.0.0.3:3001",
    "--http-addr",
    "10.0.0.3:3002",
    "--node-id",
    "5",
    "--advertised-address",
    "flag.example.com:3001",
];

mod bad_input;
mod cluster;
mod connection_limits;
mod precedence;
mod producer_expiration;
mod retention_check;
mod tls;
