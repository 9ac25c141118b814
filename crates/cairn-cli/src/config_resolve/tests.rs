use std::collections::HashMap;
use std::os::unix::ffi::OsStringExt;

use cairn_broker::CleanupPolicy;
use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

const PATH: &str = "/etc/cairn.toml";

/// `cairn serve ARGV...` through the real clap grammar.
fn args(argv: &[&str]) -> ServeArgs {
    let cli = Cli::try_parse_from(["cairn", "serve"].iter().chain(argv)).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("parsed as another command");
    };
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

// Precedence.

#[test]
fn defaults_apply_when_nothing_is_given() {
    let cfg = resolve(&args(&[]), no_env, None).unwrap();
    assert_eq!(
        cfg,
        ServeConfig {
            data_dir: PathBuf::from("./cairn-data"),
            grpc_addr: addr("127.0.0.1:7070"),
            http_addr: addr("127.0.0.1:7071"),
            node_id: 1,
            advertised_address: None,
            topic_defaults: TopicConfig::default(),
        }
    );
}

#[test]
fn empty_file_leaves_the_defaults() {
    let cfg = resolve(&args(&[]), no_env, file("# nothing set\n")).unwrap();
    assert_eq!(cfg, resolve(&args(&[]), no_env, None).unwrap());
}

#[test]
fn file_overrides_defaults() {
    let cfg = resolve(&args(&[]), no_env, file(FULL_FILE)).unwrap();
    assert_eq!(
        cfg,
        ServeConfig {
            data_dir: PathBuf::from("/file/data"),
            grpc_addr: addr("10.0.0.1:1001"),
            http_addr: addr("10.0.0.1:1002"),
            node_id: 3,
            advertised_address: Some("file.example.com:1001".to_string()),
            topic_defaults: topic_config(&[("retention.ms", "1000"), ("segment.bytes", "4096")]),
        }
    );
}

#[test]
fn environment_overrides_file() {
    let cfg = resolve(&args(&[]), env(&FULL_ENV), file(FULL_FILE)).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/env/data"));
    assert_eq!(cfg.grpc_addr, addr("10.0.0.2:2001"));
    assert_eq!(cfg.http_addr, addr("10.0.0.2:2002"));
    assert_eq!(cfg.node_id, 4);
    assert_eq!(
        cfg.advertised_address.as_deref(),
        Some("env.example.com:2001")
    );
}

#[test]
fn environment_overrides_defaults() {
    let cfg = resolve(&args(&[]), env(&FULL_ENV), None).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/env/data"));
    assert_eq!(cfg.grpc_addr, addr("10.0.0.2:2001"));
    assert_eq!(cfg.http_addr, addr("10.0.0.2:2002"));
    assert_eq!(cfg.node_id, 4);
    assert_eq!(
        cfg.advertised_address.as_deref(),
        Some("env.example.com:2001")
    );
}

#[test]
fn flags_override_environment_and_file() {
    let cfg = resolve(&args(&FULL_FLAGS), env(&FULL_ENV), file(FULL_FILE)).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/flag/data"));
    assert_eq!(cfg.grpc_addr, addr("10.0.0.3:3001"));
    assert_eq!(cfg.http_addr, addr("10.0.0.3:3002"));
    assert_eq!(cfg.node_id, 5);
    assert_eq!(
        cfg.advertised_address.as_deref(),
        Some("flag.example.com:3001")
    );
}

#[test]
fn flags_override_defaults() {
    let cfg = resolve(&args(&FULL_FLAGS), no_env, None).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/flag/data"));
    assert_eq!(cfg.node_id, 5);
    assert_eq!(cfg.grpc_addr, addr("10.0.0.3:3001"));
}

#[test]
fn each_key_takes_its_own_highest_source() {
    let cfg = resolve(
        &args(&["--grpc-addr", "10.0.0.3:3001"]),
        env(&[("CAIRN_HTTP_ADDR", "10.0.0.2:2002")]),
        file("node_id = 3\n"),
    )
    .unwrap();
    assert_eq!(cfg.grpc_addr, addr("10.0.0.3:3001"), "from the flag");
    assert_eq!(cfg.http_addr, addr("10.0.0.2:2002"), "from the environment");
    assert_eq!(cfg.node_id, 3, "from the file");
    assert_eq!(cfg.data_dir, PathBuf::from("./cairn-data"), "the default");
    assert_eq!(cfg.advertised_address, None, "the default");
}

#[test]
fn empty_variables_count_as_unset() {
    let vars: Vec<(&str, &str)> = FULL_ENV.iter().map(|(var, _)| (*var, "")).collect();
    let cfg = resolve(&args(&[]), env(&vars), file(FULL_FILE)).unwrap();
    assert_eq!(cfg, resolve(&args(&[]), no_env, file(FULL_FILE)).unwrap());
}

#[test]
fn a_bad_value_under_a_winning_source_is_not_read() {
    let cfg = resolve(
        &args(&["--node-id", "7", "--grpc-addr", "10.0.0.3:3001"]),
        env(&[("CAIRN_NODE_ID", "seven")]),
        file("grpc_addr = \"nowhere\"\n"),
    )
    .unwrap();
    assert_eq!(cfg.node_id, 7);
    assert_eq!(cfg.grpc_addr, addr("10.0.0.3:3001"));
}

#[test]
fn a_file_key_of_the_wrong_type_fails_even_when_overridden() {
    // The file is kept for later runs: a wrong type is reported now, not when the flag goes.
    let message = error_of(resolve(
        &args(&["--grpc-addr", "10.0.0.3:3001"]),
        no_env,
        file("grpc_addr = 7070\n"),
    ));
    assert_eq!(
        message,
        "invalid value 7070 for grpc_addr in config file /etc/cairn.toml: expected a string"
    );
}

// The config file's path.

#[test]
fn config_flag_beats_config_variable() {
    let vars = env(&[("CAIRN_CONFIG", "/env.toml")]);
    let path = config_path(&args(&["--config", "/flag.toml"]), &vars).unwrap();
    assert_eq!(path, Some(PathBuf::from("/flag.toml")));
    assert_eq!(
        config_path(&args(&[]), &vars).unwrap(),
        Some(PathBuf::from("/env.toml"))
    );
}

#[test]
fn empty_config_flag_is_rejected() {
    let err = config_path(&args(&["--config", ""]), no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value \"\" for --config: the config file path must not be empty"
    );
}

#[test]
fn no_config_file_without_flag_or_variable() {
    assert_eq!(config_path(&args(&[]), no_env).unwrap(), None);
    assert_eq!(
        config_path(&args(&[]), env(&[("CAIRN_CONFIG", "")])).unwrap(),
        None
    );
}

// Topic defaults.

#[test]
fn topic_default_flags_override_the_file_key_by_key() {
    let cfg = resolve(
        &args(&[
            "--topic-default",
            "retention.ms=2000",
            "--topic-default",
            "flush.policy=os",
        ]),
        no_env,
        file(FULL_FILE),
    )
    .unwrap();
    let expected = topic_config(&[
        ("retention.ms", "2000"),
        ("segment.bytes", "4096"),
        ("flush.policy", "os"),
    ]);
    assert_eq!(cfg.topic_defaults, expected);
}

#[test]
fn a_repeated_topic_default_flag_takes_its_last_value() {
    let cfg = resolve(
        &args(&[
            "--topic-default",
            "retention.ms=1",
            "--topic-default",
            "retention.ms=2",
        ]),
        no_env,
        None,
    )
    .unwrap();
    assert_eq!(cfg.topic_defaults, topic_config(&[("retention.ms", "2")]));
}

#[test]
fn topic_default_flag_ignores_spaces_around_key_and_value() {
    let cfg = resolve(
        &args(&["--topic-default", " cleanup.policy = compact "]),
        no_env,
        None,
    )
    .unwrap();
    assert_eq!(cfg.topic_defaults.cleanup_policy, CleanupPolicy::Compact);
}

#[test]
fn topic_default_value_may_hold_an_equals_sign() {
    // Split at the first '=' only; the broker then rejects the value, naming it whole.
    let message = error_of(resolve(
        &args(&["--topic-default", "flush.policy=a=b"]),
        no_env,
        None,
    ));
    assert!(
        message.starts_with("invalid value \"a=b\" for --topic-default flush.policy: "),
        "{message}"
    );
}

#[test]
fn file_topic_defaults_may_use_dotted_keys() {
    let text = "[topic_defaults]\nretention.ms = \"1000\"\nsegment.bytes = \"4096\"\n";
    let cfg = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(
        cfg.topic_defaults,
        topic_config(&[("retention.ms", "1000"), ("segment.bytes", "4096")])
    );
}

#[test]
fn file_topic_defaults_may_be_an_inline_table() {
    let text = "topic_defaults = { \"flush.policy\" = \"interval:100\" }\n";
    let cfg = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(
        cfg.topic_defaults,
        topic_config(&[("flush.policy", "interval:100")])
    );
}

// Bad input: the config file.

#[test]
fn malformed_toml_names_the_file_and_line() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("node_id = 1\ngrpc_addr = \"unterminated\n"),
    ));
    assert!(
        message.starts_with("config file /etc/cairn.toml line 2: "),
        "{message}"
    );
}

#[test]
fn unknown_file_key_is_named() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("node_id = 1\ngrpc_address = \"127.0.0.1:1\"\n"),
    ));
    assert!(
        message.starts_with("config file /etc/cairn.toml line 2: "),
        "{message}"
    );
    assert!(message.contains("grpc_address"), "{message}");
    assert!(
        message.contains("grpc_addr"),
        "lists the known keys: {message}"
    );
}

#[test]
fn a_key_set_twice_in_the_file_is_malformed() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("node_id = 1\nnode_id = 2\n"),
    ));
    assert!(
        message.starts_with("config file /etc/cairn.toml line 2: "),
        "{message}"
    );
}

#[test]
fn node_id_in_the_file_must_be_an_integer() {
    let message = error_of(resolve(&args(&[]), no_env, file("node_id = \"3\"\n")));
    assert_eq!(
        message,
        "invalid value \"3\" for node_id in config file /etc/cairn.toml: expected an integer"
    );
}

#[test]
fn file_node_id_out_of_range_is_named() {
    for id in ["-1", "2147483648", "9223372036854775807"] {
        let message = error_of(resolve(
            &args(&[]),
            no_env,
            file(&format!("node_id = {id}")),
        ));
        assert_eq!(
            message,
            format!(
                "invalid value \"{id}\" for node_id in config file /etc/cairn.toml: expected an \
                 integer from 0 to 2147483647"
            )
        );
    }
}

#[test]
fn bad_address_in_the_file_is_named() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("http_addr = \"localhost:7071\"\n"),
    ));
    assert!(
        message.starts_with(
            "invalid value \"localhost:7071\" for http_addr in config file /etc/cairn.toml: \
             expected IP:PORT"
        ),
        "{message}"
    );
}

#[test]
fn unknown_topic_default_in_the_file_is_named() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("[topic_defaults]\n\"retention.hours\" = \"1\"\n"),
    ));
    assert!(
        message.starts_with(
            "unknown topic config key \"retention.hours\" in [topic_defaults] retention.hours in \
             config file /etc/cairn.toml; known keys: segment.bytes, "
        ),
        "{message}"
    );
}

#[test]
fn bad_topic_default_value_in_the_file_is_named() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("[topic_defaults]\n\"flush.policy\" = \"sometimes\"\n"),
    ));
    assert_eq!(
        message,
        "invalid value \"sometimes\" for [topic_defaults] flush.policy in config file \
         /etc/cairn.toml: expected always, interval:<ms> or os"
    );
}

#[test]
fn topic_default_in_the_file_must_be_a_string() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("[topic_defaults]\nretention.ms = 3600000\n"),
    ));
    assert_eq!(
        message,
        "invalid value 3600000 for [topic_defaults] retention.ms in config file \
         /etc/cairn.toml: expected a string; write \"retention.ms\" = \"3600000\""
    );
}

#[test]
fn topic_defaults_in_the_file_must_be_a_table() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("topic_defaults = \"retention.ms=1\"\n"),
    ));
    assert!(
        message.starts_with("invalid value \"retention.ms=1\" for topic_defaults in "),
        "{message}"
    );
}

#[test]
fn a_topic_default_both_quoted_and_dotted_is_rejected() {
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("[topic_defaults]\n\"retention.ms\" = \"1\"\nretention.ms = \"2\"\n"),
    ));
    assert!(message.contains("retention.ms"), "{message}");
    assert!(message.contains("set twice"), "{message}");
}

#[test]
fn file_data_dir_must_not_be_empty() {
    let message = error_of(resolve(&args(&[]), no_env, file("data_dir = \"\"\n")));
    assert!(
        message.starts_with("invalid value \"\" for data_dir in config file /etc/cairn.toml"),
        "{message}"
    );
}

// Bad input: flags and environment.

#[test]
fn bad_address_flag_is_named() {
    let message = error_of(resolve(&args(&["--grpc-addr", "127.0.0.1"]), no_env, None));
    assert_eq!(
        message,
        "invalid value \"127.0.0.1\" for --grpc-addr: expected IP:PORT, such as 127.0.0.1:7070 \
         or [::1]:7070 (host names are not resolved)"
    );
}

#[test]
fn bad_address_variable_is_named() {
    let message = error_of(resolve(
        &args(&[]),
        env(&[("CAIRN_HTTP_ADDR", "127.0.0.1:99999")]),
        None,
    ));
    assert!(
        message.starts_with(
            "invalid value \"127.0.0.1:99999\" for environment variable CAIRN_HTTP_ADDR: "
        ),
        "{message}"
    );
}

#[test]
fn ipv6_listen_addresses_are_accepted() {
    let cfg = resolve(&args(&["--grpc-addr", "[::1]:0"]), no_env, None).unwrap();
    assert_eq!(cfg.grpc_addr, addr("[::1]:0"));
}

#[test]
fn bad_node_id_flag_is_named() {
    for id in ["abc", "-1", "2147483648", "1.5", " 1", ""] {
        let message = error_of(resolve(&args(&["--node-id", id]), no_env, None));
        assert_eq!(
            message,
            format!("invalid value {id:?} for --node-id: expected an integer from 0 to 2147483647")
        );
    }
}

#[test]
fn node_id_zero_and_max_are_accepted() {
    for (text, id) in [("0", 0), ("2147483647", i32::MAX)] {
        let cfg = resolve(&args(&["--node-id", text]), no_env, None).unwrap();
        assert_eq!(cfg.node_id, id);
    }
}

#[test]
fn bad_node_id_variable_is_named() {
    let message = error_of(resolve(&args(&[]), env(&[("CAIRN_NODE_ID", "one")]), None));
    assert_eq!(
        message,
        "invalid value \"one\" for environment variable CAIRN_NODE_ID: expected an integer from 0 \
         to 2147483647"
    );
}

#[test]
fn non_unicode_variable_is_named() {
    let bad = OsString::from_vec(vec![b'1', 0xff]);
    let vars = move |var: &str| (var == "CAIRN_NODE_ID").then(|| bad.clone());
    let message = error_of(resolve(&args(&[]), vars, None));
    assert_eq!(
        message,
        "environment variable CAIRN_NODE_ID is not valid UTF-8"
    );
}

#[test]
fn data_dir_variable_may_be_any_os_path() {
    let dir = OsString::from_vec(vec![b'/', b'd', 0xff]);
    let expected = PathBuf::from(dir.clone());
    let vars = move |var: &str| (var == "CAIRN_DATA_DIR").then(|| dir.clone());
    let cfg = resolve(&args(&[]), vars, None).unwrap();
    assert_eq!(cfg.data_dir, expected);
}

#[test]
fn empty_data_dir_flag_is_rejected() {
    let message = error_of(resolve(&args(&["--data-dir", ""]), no_env, None));
    assert_eq!(
        message,
        "invalid value \"\" for --data-dir: the data directory must not be empty"
    );
}

#[test]
fn unknown_topic_default_flag_is_named() {
    let message = error_of(resolve(
        &args(&["--topic-default", "retention.hours=1"]),
        no_env,
        None,
    ));
    assert!(
        message.starts_with(
            "unknown topic config key \"retention.hours\" in --topic-default retention.hours; \
             known keys: segment.bytes, "
        ),
        "{message}"
    );
    assert!(message.contains("cleanup.policy"), "{message}");
}

#[test]
fn bad_topic_default_flag_value_is_named() {
    let message = error_of(resolve(
        &args(&["--topic-default", "retention.ms=forever"]),
        no_env,
        None,
    ));
    assert_eq!(
        message,
        "invalid value \"forever\" for --topic-default retention.ms: must be -1 or a whole number"
    );
}

#[test]
fn topic_default_flag_needs_key_and_value() {
    for flag in ["retention.ms", "=1", " =1", ""] {
        let message = error_of(resolve(&args(&["--topic-default", flag]), no_env, None));
        assert_eq!(
            message,
            format!(
                "invalid value {flag:?} for --topic-default: expected KEY=VALUE, such as \
                 retention.ms=3600000"
            )
        );
    }
}

#[test]
fn a_bad_topic_default_flag_fails_even_over_a_good_file() {
    let message = error_of(resolve(
        &args(&["--topic-default", "segment.bytes=1"]),
        no_env,
        file(FULL_FILE),
    ));
    assert!(
        message.starts_with("invalid value \"1\" for --topic-default segment.bytes: "),
        "{message}"
    );
}

// Advertised address.

#[test]
fn advertised_address_accepts_names_and_ips() {
    for text in [
        "cairn-1.example.com:7070",
        "cairn_1:1",
        "10.0.0.1:65535",
        "[::1]:7070",
        "[2001:db8::1]:9092",
    ] {
        let cfg = resolve(&args(&["--advertised-address", text]), no_env, None).unwrap();
        assert_eq!(cfg.advertised_address.as_deref(), Some(text));
    }
}

#[test]
fn bad_advertised_address_is_named() {
    for (text, problem) in [
        ("cairn-1.example.com", "no port"),
        ("cairn-1:0", "the port must be from 1 to 65535"),
        ("cairn-1:65536", "the port must be from 1 to 65535"),
        ("cairn-1:", "the port must be from 1 to 65535"),
        (":7070", "no host"),
        ("::1:7070", "an IPv6 host must be in brackets"),
        ("[cairn]:7070", "a bracketed host must be an IPv6 address"),
        ("http://cairn:7070", "a URL scheme is not allowed"),
        (
            "cairn 1:7070",
            "the host may hold only letters, digits, - . and _",
        ),
    ] {
        let message = error_of(resolve(
            &args(&[]),
            env(&[("CAIRN_ADVERTISED_ADDRESS", text)]),
            None,
        ));
        assert_eq!(
            message,
            format!(
                "invalid value {text:?} for environment variable CAIRN_ADVERTISED_ADDRESS: \
                 {problem}; expected HOST:PORT, such as cairn-1.example.com:7070"
            )
        );
    }
}

// Both listeners.

#[test]
fn grpc_and_http_on_one_fixed_address_are_rejected() {
    let message = error_of(resolve(
        &args(&["--http-addr", "127.0.0.1:7070"]),
        no_env,
        None,
    ));
    assert_eq!(
        message,
        "gRPC address (default) and HTTP address (--http-addr) are both 127.0.0.1:7070; they \
         must differ"
    );
}

#[test]
fn grpc_and_http_may_both_ask_for_any_free_port() {
    let cfg = resolve(
        &args(&["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]),
        no_env,
        None,
    )
    .unwrap();
    assert_eq!(cfg.grpc_addr, cfg.http_addr);
}
