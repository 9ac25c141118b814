//! The connection limits: each from flag, variable or file, defaults, and bad values named.

use std::time::Duration;

use super::*;

#[test]
fn connection_limits_default_to_the_servers_defaults() {
    let cfg = resolve(&args(&[]), no_env, None).unwrap();
    assert_eq!(cfg.connections, ConnectionLimits::default());
    assert_eq!(cfg.connections.max_connections, None);
    assert_eq!(cfg.connections.idle_timeout, Duration::from_secs(600));
}

#[test]
fn connection_limits_come_from_the_file_then_env_then_flags() {
    let text = "max_connections = 100\nmax_connections_per_ip = 10\n\
                handshake_timeout_ms = 2000\nconnections_max_idle_ms = 30000\n";
    let from_file = resolve(&args(&[]), no_env, file(text)).unwrap().connections;
    assert_eq!(
        from_file,
        ConnectionLimits {
            max_connections: Some(100),
            max_connections_per_ip: Some(10),
            handshake_timeout: Duration::from_millis(2000),
            idle_timeout: Duration::from_millis(30000),
            ..ConnectionLimits::default()
        }
    );
    let vars = env(&[
        ("CAIRN_MAX_CONNECTIONS", "200"),
        ("CAIRN_MAX_CONNECTIONS_PER_IP", "20"),
        ("CAIRN_HANDSHAKE_TIMEOUT_MS", "3000"),
        ("CAIRN_CONNECTIONS_MAX_IDLE_MS", "40000"),
    ]);
    let from_env = resolve(&args(&[]), &vars, file(text)).unwrap().connections;
    assert_eq!(from_env.max_connections, Some(200));
    assert_eq!(from_env.max_connections_per_ip, Some(20));
    assert_eq!(from_env.handshake_timeout, Duration::from_millis(3000));
    assert_eq!(from_env.idle_timeout, Duration::from_millis(40000));
    let flags = args(&[
        "--max-connections",
        "300",
        "--max-connections-per-ip",
        "30",
        "--handshake-timeout-ms",
        "4000",
        "--connections-max-idle-ms",
        "50000",
    ]);
    let from_flags = resolve(&flags, &vars, file(text)).unwrap().connections;
    assert_eq!(from_flags.max_connections, Some(300));
    assert_eq!(from_flags.max_connections_per_ip, Some(30));
    assert_eq!(from_flags.handshake_timeout, Duration::from_millis(4000));
    assert_eq!(from_flags.idle_timeout, Duration::from_millis(50000));
}

#[test]
fn zero_connections_flag_is_named() {
    let err = error_of(resolve(&args(&["--max-connections", "0"]), no_env, None));
    assert_eq!(
        err,
        "invalid value \"0\" for --max-connections: expected a whole number of connections \
         from 1 to 16777216"
    );
}

#[test]
fn bad_per_ip_variable_is_named() {
    let vars = env(&[("CAIRN_MAX_CONNECTIONS_PER_IP", "-3")]);
    let err = error_of(resolve(&args(&[]), vars, None));
    assert!(
        err.starts_with(
            "invalid value \"-3\" for environment variable CAIRN_MAX_CONNECTIONS_PER_IP:"
        ),
        "{err}"
    );
}

#[test]
fn timeouts_past_their_ceiling_are_named() {
    let err = error_of(resolve(
        &args(&["--handshake-timeout-ms", "3600001"]),
        no_env,
        None,
    ));
    assert!(err.contains("--handshake-timeout-ms"), "{err}");
    assert!(err.contains("from 1 to 3600000"), "{err}");
    let err = error_of(resolve(
        &args(&["--connections-max-idle-ms", "10m"]),
        no_env,
        None,
    ));
    assert!(
        err.starts_with("invalid value \"10m\" for --connections-max-idle-ms:"),
        "{err}"
    );
}

#[test]
fn connection_limit_in_the_file_must_be_an_integer() {
    let err = error_of(resolve(
        &args(&[]),
        no_env,
        file("connections_max_idle_ms = \"600000\"\n"),
    ));
    assert_eq!(
        err,
        "invalid value \"600000\" for connections_max_idle_ms in config file /etc/cairn.toml: \
         expected an integer"
    );
    let err = error_of(resolve(&args(&[]), no_env, file("max_connections = 0\n")));
    assert!(
        err.starts_with("invalid value \"0\" for max_connections in config file"),
        "{err}"
    );
}

#[test]
fn the_request_bytes_budget_comes_from_the_file_then_env_then_flag() {
    let text = "queued_max_request_bytes = 100000000\n";
    assert_eq!(
        resolve(&args(&[]), no_env, None)
            .unwrap()
            .connections
            .queued_max_request_bytes,
        512 << 20
    );
    let from_file = resolve(&args(&[]), no_env, file(text)).unwrap();
    assert_eq!(from_file.connections.queued_max_request_bytes, 100_000_000);
    let vars = env(&[("CAIRN_QUEUED_MAX_REQUEST_BYTES", "200000000")]);
    let from_env = resolve(&args(&[]), &vars, file(text)).unwrap();
    assert_eq!(from_env.connections.queued_max_request_bytes, 200_000_000);
    let flag = args(&["--queued-max-request-bytes", "300000000"]);
    let from_flag = resolve(&flag, &vars, file(text)).unwrap();
    assert_eq!(from_flag.connections.queued_max_request_bytes, 300_000_000);
}

#[test]
fn a_request_bytes_budget_below_the_largest_request_is_named() {
    let err = error_of(resolve(
        &args(&["--queued-max-request-bytes", "1048576"]),
        no_env,
        None,
    ));
    assert_eq!(
        err,
        "invalid value \"1048576\" for --queued-max-request-bytes: expected a whole number of \
         bytes from 16777221 to 4294967295"
    );
    let err = error_of(resolve(
        &args(&[]),
        no_env,
        file("queued_max_request_bytes = \"lots\"\n"),
    ));
    assert!(err.contains("queued_max_request_bytes"), "{err}");
}
