//! A Compose project of one of the `deploy/docker` cluster files, run by the e2e tests from an
//! image of the `cairn` binary under test: finding Docker and Compose (or saying loudly why the
//! test is skipped), free loopback ports, a project and image name of its own, waiting for every
//! container to report healthy, and removing containers, volumes and image on drop whether the
//! test passed or not.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use super::PATIENCE;

/// The cluster files' services, node 1 to 3.
pub const SERVICES: [&str; 3] = ["cairn-1", "cairn-2", "cairn-3"];

/// `docker ARGS` run to its end.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The Compose command this machine has: the `docker compose` plugin, else the standalone
/// `docker-compose`; `None` when neither runs.
fn compose_program() -> Option<Vec<&'static str>> {
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|program| {
            Command::new(program[0])
                .args(&program[1..])
                .arg("version")
                .output()
                .is_ok_and(|out| out.status.success())
        })
}

/// The Compose command to use, or `None` after saying loudly on stderr why `test` is skipped
/// (no Docker engine answers, or no Compose runs): the README promises these tests pass where
/// Docker is missing, and a silent pass would hide that they proved nothing.
pub fn compose_or_skip(test: &str) -> Option<Vec<&'static str>> {
    if !engine_answers() {
        eprintln!("\n*** SKIPPED {test}: no Docker engine answers `docker info` here. ***\n");
        return None;
    }
    let program = compose_program();
    if program.is_none() {
        eprintln!(
            "\n*** SKIPPED {test}: neither `docker compose` nor `docker-compose` runs here. ***\n"
        );
    }
    program
}

/// Six ports free on the loopback now. The cluster binds them moments later; another process
/// taking one in between fails the start loudly rather than silently.
fn free_ports() -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..6)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Polls `done` every 250 ms until it holds; gives up (failing the test, naming `what`) after
/// [`PATIENCE`].
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(250));
    }
}

/// One Compose project of a cluster file, and what the test made for it. Dropping it takes
/// the project down with its volumes and removes the image, whether the test passed or not.
pub struct Project {
    program: Vec<&'static str>,
    file: &'static str,
    /// The Compose project name, unique to this run.
    pub name: String,
    image: String,
    /// The Compose file's variables: the image, the six loopback ports, and the caller's.
    env: Vec<(String, String)>,
}

impl Project {
    /// A project of `file` named `{prefix}-{unique id}`, with an image `{prefix}:{same id}` and
    /// six free loopback ports (`CAIRN_PORT_N`, `CAIRN_HTTP_PORT_N`), plus `extra_env`.
    /// Nothing runs yet.
    pub fn new(
        program: Vec<&'static str>,
        file: &'static str,
        prefix: &str,
        extra_env: &[(&str, &str)],
    ) -> Project {
        // Unique across CI jobs that share one engine but not a PID namespace.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let id = format!("{}-{nanos:x}", std::process::id());
        let image = format!("{prefix}:{id}");
        let ports = free_ports();
        let mut env = vec![("CAIRN_IMAGE".to_string(), image.clone())];
        for node in 1..=3 {
            let (grpc, http) = (ports[2 * (node - 1)], ports[2 * (node - 1) + 1]);
            env.push((format!("CAIRN_PORT_{node}"), grpc.to_string()));
            env.push((format!("CAIRN_HTTP_PORT_{node}"), http.to_string()));
        }
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        Project {
            program,
            file,
            name: format!("{prefix}-{id}"),
            image,
            env,
        }
    }

    /// Builds the project's image from the binary under test with
    /// `deploy/docker/build-image.sh`, as the deploy README says to.
    pub fn build_image(&self) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/docker/build-image.sh"
        );
        let built = Command::new(script)
            .args([
                "--binary",
                env!("CARGO_BIN_EXE_cairn"),
                "--tag",
                &self.image,
            ])
            .output()
            .unwrap();
        assert!(built.status.success(), "build-image.sh: {built:?}");
    }

    /// `up --detach`, then waits until Docker reports every node's container healthy (its
    /// Compose health check passed); the containers' ids, node 1 first.
    pub fn up_healthy(&self) -> Vec<String> {
        self.compose_ok(&["up", "--detach"]);
        let containers: Vec<String> = SERVICES.iter().map(|s| self.container(s)).collect();
        for (service, container) in SERVICES.iter().zip(&containers) {
            wait_for(
                &format!("docker to report {service} healthy (project {})", self.name),
                || {
                    let health =
                        docker(&["inspect", "--format", "{{.State.Health.Status}}", container]);
                    String::from_utf8_lossy(&health.stdout).trim() == "healthy"
                },
            );
        }
        containers
    }

    /// `compose ARGS` on this project, run to its end.
    pub fn compose(&self, args: &[&str]) -> Output {
        let (program, pre) = self.program.split_first().unwrap();
        Command::new(program)
            .args(pre)
            .args(["--project-name", &self.name, "--file", self.file])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// [`Project::compose`] that must succeed; its stdout, trimmed.
    pub fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The container id of `service`.
    pub fn container(&self, service: &str) -> String {
        let id = self.compose_ok(&["ps", "-q", service]);
        assert!(!id.is_empty(), "compose has no container for {service}");
        id
    }

    /// The variable's value, as given to Compose.
    fn var(&self, key: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == key).unwrap().1
    }

    /// Node `node`'s gRPC address on the host.
    pub fn address(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.var(&format!("CAIRN_PORT_{node}")))
    }

    /// Node `node`'s HTTP (`/health`, `/metrics`) address on the host.
    pub fn http_address(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.var(&format!("CAIRN_HTTP_PORT_{node}")))
    }

    /// Every node's gRPC address, comma separated, as `--broker` takes them.
    pub fn all_addresses(&self) -> String {
        (1..=3)
            .map(|n| self.address(n))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if thread::panicking() {
            // The nodes' logs are the evidence; print them before they go.
            let logs = self.compose(&["logs", "--no-color", "--tail", "60"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let down = self.compose(&["down", "--volumes", "--timeout", "10"]);
        if !down.status.success() {
            eprintln!(
                "compose down failed; remove project {} by hand: {}",
                self.name,
                String::from_utf8_lossy(&down.stderr)
            );
        }
        let _ = docker(&["rmi", "--force", &self.image]);
    }
}
