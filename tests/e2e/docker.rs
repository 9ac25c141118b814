//! The container image, end to end: `deploy/docker/build-image.sh` builds it from the `cairn`
//! binary under test with no base image; a container from it serves on a published loopback
//! port as an unprivileged user, passes its own HEALTHCHECK, stops with status 0 on `docker
//! stop`, and a new container over the same volume gives back every acknowledged record.
//!
//! Needs a Docker engine. Where none answers the test says so loudly on stderr and passes, as
//! the README promises; CI here has one, so there it runs.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Removes what the test made, whether it passed or not.
struct Cleanup {
    containers: Vec<String>,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "--force", "--volumes", container]);
        }
        let _ = docker(&["volume", "rm", "--force", &self.volume]);
        let _ = docker(&["rmi", "--force", &self.image]);
    }
}

/// Starts a container over the volume and returns the host address of its gRPC port.
fn start(cleanup: &mut Cleanup, name: &str) -> String {
    cleanup.containers.push(name.to_string());
    let volume = format!("{}:/var/lib/cairn", cleanup.volume);
    docker_ok(&[
        "run",
        "--detach",
        "--name",
        name,
        "--publish",
        "127.0.0.1::7070",
        "--volume",
        &volume,
        // The image listens on 0.0.0.0 and this test gives it no certificate: plaintext must
        // be asked for (the port is published on the host's loopback only).
        "--env",
        "CAIRN_ALLOW_PLAINTEXT=true",
        &cleanup.image,
    ]);
    let port = docker_ok(&["port", name, "7070/tcp"]);
    // One line per published address; this test publishes one.
    port.lines().next().unwrap().to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

fn consumed(broker: &str) -> usize {
    consume_all_orders(broker).lines().count()
}

#[test]
fn the_image_serves_checks_its_health_stops_cleanly_and_keeps_its_data() {
    if !engine_answers() {
        eprintln!(
            "\n*** SKIPPED the container image test: no Docker engine answers `docker info` here. ***\n"
        );
        return;
    }
    // Unique across CI jobs that share one engine but not a PID namespace.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let id = format!("{}-{nanos:x}", std::process::id());
    let mut cleanup = Cleanup {
        containers: Vec::new(),
        volume: format!("cairn-e2e-{id}"),
        image: format!("cairn-e2e:{id}"),
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/docker/build-image.sh"
    );
    let built = Command::new(script)
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_cairn"),
            "--tag",
            &cleanup.image,
        ])
        .output()
        .unwrap();
    assert!(built.status.success(), "build-image.sh: {built:?}");

    let first = format!("cairn-e2e-{id}-a");
    let broker = start(&mut cleanup, &first);
    wait_for("the broker in the container to serve", || {
        cairn(&["--broker", &broker, "health"])
            .output()
            .is_ok_and(|out| out.status.success())
    });
    let user = docker_ok(&["inspect", "--format", "{{.Config.User}}", &first]);
    assert_eq!(user, "10001:10001", "the broker does not run as root");

    let create = cairn(&[
        "--broker",
        &broker,
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
    ])
    .output()
    .unwrap();
    assert!(create.status.success(), "{create:?}");
    produce_orders(&broker, 0..500, 17);
    assert_eq!(consumed(&broker), 500);

    wait_for("docker to report the container healthy", || {
        let health = docker(&["inspect", "--format", "{{.State.Health.Status}}", &first]);
        String::from_utf8_lossy(&health.stdout).trim() == "healthy"
    });

    docker_ok(&["stop", "--time", "30", &first]);
    let exit = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &first]);
    assert_eq!(exit, "0", "cairn serve exits 0 on docker stop's SIGTERM");

    let second = format!("cairn-e2e-{id}-b");
    let broker = start(&mut cleanup, &second);
    wait_for("the second container to serve", || {
        cairn(&["--broker", &broker, "health"])
            .output()
            .is_ok_and(|out| out.status.success())
    });
    assert_eq!(consumed(&broker), 500, "every record survived the restart");
}
