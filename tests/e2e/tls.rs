//! End-to-end TLS through the real `cairn` binary: a broker serving TLS 1.3, the CLI producing,
//! consuming, replaying and checking health over it with `--tls-ca` (or an `https://` address),
//! a plaintext client refused, a certificate for another host refused by the client, mTLS
//! refusing clients without a certificate of the trusted CA, a certificate rotated on disk
//! picked up by new connections while old ones stay, plaintext on a non-loopback address
//! refused, bad TLS files stopping the node with a line naming them, and the HTTP admin
//! endpoint over TLS. Certificates are made by the tests (`common::tls`).

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;

mod common;

use common::tls::{CertFiles, TestCa, client_tls_args, serve_tls_args};
use common::*;

/// A broker on loopback with `extra` serve arguments: (child, gRPC address, HTTP address).
fn start_with(data_dir: &Path, extra: &[String]) -> (Child, String, String) {
    let mut command = serve_on_free_ports(data_dir);
    command.args(extra);
    let mut child = command.spawn().unwrap();
    let ready = wait_ready(&mut child);
    (
        child,
        ready_field(&ready, "grpc="),
        ready_field(&ready, "http="),
    )
}

/// `cairn --broker BROKER TLS... ARGS`, with `input` on stdin.
fn run(broker: &str, tls: &[String], args: &[&str], input: &[u8]) -> Output {
    let mut full: Vec<&str> = tls.iter().map(String::as_str).collect();
    full.extend_from_slice(args);
    cli_with_input(broker, &full, input)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn clients_produce_consume_replay_and_check_health_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue(dir.path(), "node", "node-1", 1);
    let (server, broker, _) = start_with(&dir.path().join("data"), &serve_tls_args(&node, None));
    let tls = client_tls_args(&ca.cert, None);

    ok(
        &run(
            &broker,
            &tls,
            &["topic", "create", "orders", "--partitions", "2"],
            b"",
        ),
        "topic create",
    );
    ok(
        &run(
            &broker,
            &tls,
            &["produce", "orders", "--key-separator", ":"],
            b"a:one\nb:two\n",
        ),
        "produce",
    );
    let consumed = ok(
        &run(
            &broker,
            &tls,
            &["consume", "orders", "--from", "earliest", "--until-end"],
            b"",
        ),
        "consume",
    );
    assert!(
        consumed.contains("one") && consumed.contains("two"),
        "{consumed}"
    );
    let replayed = ok(&run(&broker, &tls, &["replay", "orders"], b""), "replay");
    assert!(
        replayed.contains("one") && replayed.contains("two"),
        "{replayed}"
    );
    ok(&run(&broker, &tls, &["health"], b""), "health");
    // An https:// address with the CA is the same TLS.
    let https = format!("https://{broker}");
    let listed = ok(
        &run(&https, &tls, &["topic", "list"], b""),
        "https:// topic list",
    );
    assert!(listed.contains("orders"), "{listed}");

    // A plaintext client gets no answer from a TLS listener, and is pointed at --tls-ca.
    let err = refused(
        &run(&broker, &[], &["topic", "list"], b""),
        "plaintext topic list",
    );
    assert!(err.contains("--tls-ca"), "{err}");
    // An https:// address without a CA is refused before dialling, saying what is missing.
    let err = refused(
        &run(&https, &[], &["topic", "list"], b""),
        "https without a CA",
    );
    assert!(err.contains("--tls-ca"), "{err}");
    assert!(err.contains(&format!("\"{https}\"")), "{err}");
    // A CA that did not sign the broker's certificate is refused at the handshake.
    let other = TestCa::new(dir.path(), "other");
    let err = refused(
        &run(
            &broker,
            &client_tls_args(&other.cert, None),
            &["topic", "list"],
            b"",
        ),
        "topic list trusting another CA",
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    stop_broker(server);
}

#[test]
fn a_certificate_for_another_host_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue_for(dir.path(), "node", "node-9", 1, &["cairn-9.example.com"]);
    let (server, broker, _) = start_with(&dir.path().join("data"), &serve_tls_args(&node, None));
    let err = refused(
        &run(
            &broker,
            &client_tls_args(&ca.cert, None),
            &["topic", "list"],
            b"",
        ),
        "topic list to 127.0.0.1 with a certificate for another host",
    );
    assert!(err.contains("not valid for name"), "{err}");
    stop_broker(server);
}

#[test]
fn mtls_refuses_clients_without_a_certificate_of_the_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let other = TestCa::new(dir.path(), "other");
    let node = ca.issue(dir.path(), "node", "node-1", 1);
    let client = ca.issue(dir.path(), "client", "client-1", 2);
    let stranger = other.issue(dir.path(), "stranger", "stranger", 3);
    let (server, broker, _) = start_with(
        &dir.path().join("data"),
        &serve_tls_args(&node, Some(&ca.cert)),
    );

    let trusted = client_tls_args(&ca.cert, Some(&client));
    ok(
        &run(&broker, &trusted, &["topic", "create", "t"], b""),
        "trusted client",
    );
    ok(&run(&broker, &trusted, &["health"], b""), "trusted health");
    refused(
        &run(
            &broker,
            &client_tls_args(&ca.cert, None),
            &["topic", "list"],
            b"",
        ),
        "client without a certificate",
    );
    refused(
        &run(
            &broker,
            &client_tls_args(&ca.cert, Some(&stranger)),
            &["topic", "list"],
            b"",
        ),
        "client with another CA's certificate",
    );
    stop_broker(server);
}

#[test]
fn a_rotated_certificate_is_used_by_new_connections_and_old_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let first_ca = TestCa::new(dir.path(), "first");
    let second_ca = TestCa::new(dir.path(), "second");
    let node = first_ca.issue(dir.path(), "node", "node-1", 1);
    let (server, broker, http) = start_with(&dir.path().join("data"), &serve_tls_args(&node, None));
    let first = client_tls_args(&first_ca.cert, None);
    let second = client_tls_args(&second_ca.cert, None);
    ok(
        &run(&broker, &first, &["topic", "create", "events"], b""),
        "create",
    );
    refused(
        &run(&broker, &second, &["topic", "list"], b""),
        "second CA before rotation",
    );
    assert_eq!(presented_serial(&http, &first_ca.cert), 1);

    // A consumer that follows the topic holds a connection made under the first certificate.
    let mut args: Vec<&str> = vec!["--broker", &broker];
    args.extend(first.iter().map(String::as_str));
    args.extend(["consume", "events", "--from", "earliest"]);
    let mut follower = cairn(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = read_lines(&mut follower);
    ok(
        &run(&broker, &first, &["produce", "events"], b"before\n"),
        "produce before",
    );
    wait_for_line(&lines, "before");

    // Rotation: a certificate from another CA (so that which one a connection sees is plain),
    // written over the files; no signal, no restart.
    second_ca.issue(dir.path(), "node", "node-1-rotated", 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run(&broker, &second, &["topic", "list"], b"")
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    refused(
        &run(&broker, &first, &["topic", "list"], b""),
        "first CA after rotation",
    );
    assert_eq!(presented_serial(&http, &second_ca.cert), 2);

    // The follower's connection, made before, still carries records produced after.
    ok(
        &run(&broker, &second, &["produce", "events"], b"after\n"),
        "produce after",
    );
    wait_for_line(&lines, "after");
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the old connection was dropped"
    );
    follower.kill().unwrap();
    let _ = follower.wait();
    stop_broker(server);
}

#[test]
fn a_bad_new_certificate_is_logged_and_the_old_one_stays_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue(dir.path(), "node", "node-1", 1);
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.args(serve_tls_args(&node, None));
    let mut server = command.spawn().unwrap();
    let broker = ready_field(&wait_ready(&mut server), "grpc=");
    let tls = client_tls_args(&ca.cert, None);
    std::fs::write(&node.cert, "not a certificate\n").unwrap();
    send(&server, libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    ok(
        &run(&broker, &tls, &["topic", "list"], b""),
        "after a bad reload",
    );
    send(&server, libc::SIGTERM);
    let output = wait_exit(server);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("TLS reload failed"), "{log}");
    assert!(log.contains("node.crt"), "{log}");
}

#[test]
fn plaintext_on_a_non_loopback_address_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let base = [
        "serve",
        "--data-dir",
        data,
        "--grpc-addr",
        "0.0.0.0:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    let out = cairn(&base).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("0.0.0.0") && err.contains("--allow-plaintext"),
        "{err}"
    );
    assert!(
        !Path::new(data).exists(),
        "nothing is opened before the refusal"
    );

    let mut allowed: Vec<&str> = base.to_vec();
    allowed.push("--allow-plaintext");
    let mut command = cairn(&allowed);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (server, _) = start_command(command);
    stop_broker(server);
}

#[test]
fn bad_tls_files_stop_the_node_with_a_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue(dir.path(), "node", "node-1", 1);
    let other = ca.issue(dir.path(), "other", "other", 2);
    let empty_ca = dir.path().join("empty-ca.crt");
    std::fs::write(&empty_ca, "").unwrap();
    let swapped = CertFiles {
        cert: node.key.clone(),
        key: node.cert.clone(),
    };
    let mismatched = CertFiles {
        cert: node.cert.clone(),
        key: other.key.clone(),
    };
    let missing = CertFiles {
        cert: dir.path().join("missing.crt"),
        key: node.key.clone(),
    };
    for (args, names, says) in [
        (
            serve_tls_args(&swapped, None),
            "node.key",
            "holds no certificate",
        ),
        (
            serve_tls_args(&mismatched, None),
            "other.key",
            "does not match",
        ),
        (serve_tls_args(&missing, None), "missing.crt", "cannot read"),
        (
            serve_tls_args(&node, Some(&empty_ca)),
            "empty-ca.crt",
            "holds no certificate",
        ),
    ] {
        let mut command = serve_on_free_ports(&dir.path().join("data"));
        command.args(&args);
        let out = command.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: started");
        assert!(err.contains(names) && err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("PRIVATE KEY-----"),
            "{args:?}: key material: {err}"
        );
    }
}

#[test]
fn the_http_admin_endpoint_serves_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue(dir.path(), "node", "node-1", 1);
    let (server, _, http) = start_with(&dir.path().join("data"), &serve_tls_args(&node, None));
    let (_, health) = https_get(&http, &ca.cert, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let (_, metrics) = https_get(&http, &ca.cert, "/metrics");
    assert!(metrics.contains("cairn_"), "{metrics}");
    let not_after = metrics
        .lines()
        .find_map(|line| line.strip_prefix("cairn_tls_certificate_not_after_seconds "))
        .unwrap_or_else(|| panic!("no certificate expiry in {metrics}"));
    // rcgen's default validity runs to 4096.
    assert!(
        not_after.parse::<i64>().unwrap() > 4_000_000_000,
        "{not_after}"
    );
    assert!(
        metrics.contains("cairn_tls_reload_failures_total 0"),
        "{metrics}"
    );
    stop_broker(server);
}

/// GET `path` from `address` over TLS trusting `ca`: (the server's certificate DER, the whole
/// response).
fn https_get(address: &str, ca: &Path, path: &str) -> (Vec<u8>, String) {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(address).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    // A peer closing without close_notify is reported as an error after the data; the data
    // read so far is the answer.
    let _ = tls.read_to_end(&mut response);
    let der = tls.conn.peer_certificates().unwrap()[0].to_vec();
    (der, String::from_utf8_lossy(&response).into_owned())
}

/// The serial number of the certificate the HTTP listener at `address` presents, read by a
/// handshake trusting `ca` (small serials only: one DER INTEGER byte).
fn presented_serial(address: &str, ca: &Path) -> u64 {
    let (der, _) = https_get(address, ca, "/health");
    // Certificate SEQUENCE, tbsCertificate SEQUENCE, [0] version, then the serial INTEGER.
    let version = der
        .windows(5)
        .position(|w| w == [0xA0, 0x03, 0x02, 0x01, 0x02])
        .unwrap();
    let serial = &der[version + 5..];
    assert_eq!(serial[0], 0x02, "INTEGER");
    serial[2..2 + usize::from(serial[1])]
        .iter()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

#[allow(
    deprecated,
    reason = "ring, as the broker uses; see cairn-server's tls::configs"
)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The child's stdout lines, as they come.
fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|err| panic!("no line with {needle:?}: {err}"));
        if line.contains(needle) {
            return;
        }
    }
}
