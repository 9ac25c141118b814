//! Precedence: flags over environment over file over defaults, per key; the config path; topic
//! defaults.

use super::*;

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
            cluster: ClusterSpec::default(),
            advertised_address: None,
            topic_defaults: TopicConfig::default(),
            max_partitions: 4096,
            producer_id_expiration: cairn_broker::ProducerExpiration::default(),
            connections: ConnectionLimits::default(),
            auth: cairn_server::auth::AuthConfig::default(),
            tls: None,
            allow_plaintext: false,
        }
    );
}

#[test]
fn max_partitions_comes_from_flag_then_variable_then_file() {
    let from_file = file("max_partitions = 100\n");
    let cfg = resolve(&args(&[]), no_env, from_file).unwrap();
    assert_eq!(cfg.max_partitions, 100);
    let variable = env(&[("CAIRN_MAX_PARTITIONS", "200")]);
    let cfg = resolve(&args(&[]), variable, from_file).unwrap();
    assert_eq!(cfg.max_partitions, 200);
    let variable = env(&[("CAIRN_MAX_PARTITIONS", "200")]);
    let cfg = resolve(&args(&["--max-partitions", "300"]), variable, from_file).unwrap();
    assert_eq!(cfg.max_partitions, 300);
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
            cluster: ClusterSpec::single_node(3).unwrap(),
            advertised_address: Some("file.example.com:1001".to_string()),
            topic_defaults: topic_config(&[("retention.ms", "1000"), ("segment.bytes", "4096")]),
            max_partitions: 4096,
            producer_id_expiration: cairn_broker::ProducerExpiration::default(),
            connections: ConnectionLimits::default(),
            auth: cairn_server::auth::AuthConfig::default(),
            tls: None,
            allow_plaintext: false,
        }
    );
}

#[test]
fn environment_overrides_file() {
    let cfg = resolve(&args(&[]), env(&FULL_ENV), file(FULL_FILE)).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/env/data"));
    assert_eq!(cfg.grpc_addr, addr("10.0.0.2:2001"));
    assert_eq!(cfg.http_addr, addr("10.0.0.2:2002"));
    assert_eq!(cfg.cluster.node_id(), 4);
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
    assert_eq!(cfg.cluster.node_id(), 4);
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
    assert_eq!(cfg.cluster.node_id(), 5);
    assert_eq!(
        cfg.advertised_address.as_deref(),
        Some("flag.example.com:3001")
    );
}

#[test]
fn flags_override_defaults() {
    let cfg = resolve(&args(&FULL_FLAGS), no_env, None).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/flag/data"));
    assert_eq!(cfg.cluster.node_id(), 5);
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
    assert_eq!(cfg.cluster.node_id(), 3, "from the file");
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
    assert_eq!(cfg.cluster.node_id(), 7);
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

#[test]
fn log_format_comes_from_flag_then_env_then_file_then_text() {
    let json_file = file("log_format = \"json\"\n");
    assert_eq!(
        resolve_log_format(&args(&[]), no_env, None).unwrap(),
        LogFormat::Text
    );
    assert_eq!(
        resolve_log_format(&args(&[]), no_env, json_file).unwrap(),
        LogFormat::Json
    );
    let text_env = env(&[("CAIRN_LOG_FORMAT", "text")]);
    assert_eq!(
        resolve_log_format(&args(&[]), &text_env, json_file).unwrap(),
        LogFormat::Text
    );
    let flag = args(&["--log-format", "json"]);
    assert_eq!(
        resolve_log_format(&flag, &text_env, None).unwrap(),
        LogFormat::Json
    );
    // The other settings ignore the key, and the file stays valid for them.
    assert!(resolve(&args(&[]), no_env, json_file).is_ok());
}
