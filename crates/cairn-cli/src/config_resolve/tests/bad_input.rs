//! Bad input from the file, flags and environment: each is one line naming the key and value.

use super::*;

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
    for id in ["0", "-1", "2147483648", "9223372036854775807"] {
        let message = error_of(resolve(
            &args(&[]),
            no_env,
            file(&format!("node_id = {id}")),
        ));
        assert_eq!(
            message,
            format!(
                "invalid value \"{id}\" for node_id in config file /etc/cairn.toml: expected an \
                 integer from 1 to 2147483647"
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
    for id in ["abc", "0", "-1", "2147483648", "1.5", " 1", ""] {
        let message = error_of(resolve(&args(&["--node-id", id]), no_env, None));
        assert_eq!(
            message,
            format!("invalid value {id:?} for --node-id: expected an integer from 1 to 2147483647")
        );
    }
}

#[test]
fn node_id_one_and_max_are_accepted() {
    // Zero is refused above: the API's proto3 fields cannot tell node 0 from "no node".
    for (text, id) in [("1", 1), ("2147483647", cairn_broker::MAX_NODE_ID)] {
        let cfg = resolve(&args(&["--node-id", text]), no_env, None).unwrap();
        assert_eq!(cfg.cluster.node_id(), id);
        assert!(cfg.cluster.is_single_node());
    }
}

#[test]
fn bad_node_id_variable_is_named() {
    let message = error_of(resolve(&args(&[]), env(&[("CAIRN_NODE_ID", "one")]), None));
    assert_eq!(
        message,
        "invalid value \"one\" for environment variable CAIRN_NODE_ID: expected an integer from 1 \
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

#[test]
fn an_unknown_log_format_is_named_with_its_origin() {
    let message = resolve_log_format(&args(&["--log-format", "xml"]), no_env, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "invalid value \"xml\" for --log-format: expected text or json"
    );
    let message = resolve_log_format(&args(&[]), no_env, file("log_format = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("log_format in config file"), "{message}");
}

#[test]
fn max_partitions_out_of_range_is_named_with_its_bounds() {
    for count in ["0", "7", "1048577", "-1", "many", "4096.5"] {
        let message = error_of(resolve(&args(&["--max-partitions", count]), no_env, None));
        assert_eq!(
            message,
            format!(
                "invalid value {count:?} for --max-partitions: expected a partition count from 8 \
                 (__consumer_offsets) to 1048576"
            )
        );
    }
    let message = error_of(resolve(
        &args(&[]),
        no_env,
        file("max_partitions = \"10\"\n"),
    ));
    assert!(
        message.contains("max_partitions") && message.contains("expected an integer"),
        "{message}"
    );
}
