//! A client no one here wrote: Python's grpcio with stubs that grpcio-tools generates from
//! `proto/`, against the real `cairn serve` (see `tests/interop/grpc_interop.py`), and over TLS
//! with `grpc.ssl_channel_credentials` against a broker requiring client certificates
//! (`tests/interop/grpc_tls_interop.py`). Skipped, loudly, when Python or its gRPC packages are
//! missing; `.ci/run` installs them.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::tls::TestCa;
use common::*;

const PYTHON_MODULES: &str =
    "import grpc, grpc_tools.protoc, grpc_health.v1, grpc_reflection.v1alpha, grpc_status";

#[test]
fn python_grpcio_client_talks_to_the_real_broker() {
    if !python_has(
        PYTHON_MODULES,
        "python3 with grpcio, grpcio-tools, grpcio-health-checking, grpcio-reflection and grpcio-status is not installed",
    ) {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = tempfile::tempdir().unwrap();
    let (child, grpc) = start_broker(data.path());
    let output = Command::new("python3")
        .arg(root.join("tests/interop/grpc_interop.py"))
        .arg(&grpc)
        .arg(root.join("proto"))
        .output()
        .unwrap();
    send(&child, libc::SIGTERM);
    let exit = wait_exit(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python interop failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("python interop: all checks passed"),
        "{stdout}"
    );
    assert!(
        exit.status.success(),
        "the broker did not stop cleanly: {:?}",
        exit.status
    );
}

#[test]
fn python_grpcio_client_authenticates_by_password_and_is_denied_by_acls() {
    if !python_has(
        PYTHON_MODULES,
        "python3 with grpcio, grpcio-tools, grpcio-health-checking, grpcio-reflection and grpcio-status is not installed",
    ) {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    // Users and the topic first, with authorization off (the operator's bootstrap).
    let (open, grpc) = start_broker(data.path());
    for (user, password) in [("alice", "alice-pw"), ("admin", "admin-pw")] {
        let file = secrets.path().join(user);
        std::fs::write(&file, password).unwrap();
        cli_ok(
            &grpc,
            &[
                "user",
                "add",
                user,
                "--new-password-file",
                file.to_str().unwrap(),
            ],
        );
    }
    cli_ok(&grpc, &["topic", "create", "orders"]);
    stop_broker(open);
    let mut secured = serve_on_free_ports(data.path());
    secured.args(["--authorization", "on", "--super-users", "User:admin"]);
    let (child, grpc) = start_command(secured);
    let output = Command::new("python3")
        .arg(root.join("tests/interop/grpc_interop.py"))
        .arg(&grpc)
        .arg(root.join("proto"))
        .arg("auth")
        .output()
        .unwrap();
    stop_broker(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python auth interop failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("python interop: all auth checks passed"),
        "{stdout}"
    );
}

#[test]
fn python_grpcio_client_connects_over_tls_and_is_refused_without_a_trusted_certificate() {
    if !python_has(
        "import grpc, grpc_health.v1",
        "python3 with grpcio and grpcio-health-checking is not installed (TLS case)",
    ) {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let other = TestCa::new(dir.path(), "other");
    let node = ca.issue(dir.path(), "node", "node-1", 1);
    let client = ca.issue(dir.path(), "client", "python", 2);
    let stranger = other.issue(dir.path(), "stranger", "stranger", 3);
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.args(common::tls::serve_tls_args(&node, Some(&ca.cert)));
    let (child, grpc) = start_command(command);
    let output = Command::new("python3")
        .arg(root.join("tests/interop/grpc_tls_interop.py"))
        .arg(&grpc)
        .args([
            &ca.cert,
            &client.cert,
            &client.key,
            &stranger.cert,
            &stranger.key,
        ])
        .output()
        .unwrap();
    send(&child, libc::SIGTERM);
    let exit = wait_exit(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python TLS interop failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("python tls interop: all checks passed"),
        "{stdout}"
    );
    assert!(exit.status.success(), "the broker did not stop cleanly");
}

/// Whether python3 can run `imports`; if not, says `missing` loudly (the caller skips).
fn python_has(imports: &str, missing: &str) -> bool {
    let ready = Command::new("python3")
        .args(["-c", imports])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        loud_skip(missing);
    }
    ready
}

/// Writes straight to the process's stderr, past the test harness's capture, so a skip is seen.
fn loud_skip(why: &str) {
    let line = format!("\n*** SKIPPED python interop: {why} ***\n");
    // SAFETY: writing a valid buffer to fd 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}
