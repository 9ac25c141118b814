//! Hosts of a test network: one Linux network namespace per node, each with one address on a
//! bridge that lives in a hub namespace of its own, plus one link from the test's namespace to the
//! hub so the test (the clients) reaches every node. Links between nodes are cut with iptables
//! inside the nodes' namespaces, symmetric or one way, never touching the host's own firewall.
//! Everything is removed when the [`TestNet`] is dropped.
//!
//! Needs root and iproute2's `ip` and `iptables`; [`TestNet::create`] says loudly why it cannot
//! and returns `None`, and the test skips.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Test networks made by this process, for unique names.
static MADE: AtomicU32 = AtomicU32::new(0);

/// A network of `nodes` namespaces (node ids 1 to `nodes`).
pub struct TestNet {
    /// Short unique prefix of every name made (namespaces, links).
    tag: String,
    /// The third byte of the 10.x.y.0/24 subnet.
    subnet: (u8, u8),
    nodes: usize,
}

/// Where iproute2's `ip` is (commands run with a cleared environment need the full path).
pub fn ip_program() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("ip")
}

/// Runs a command, returning its failure text when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let program = if program == "ip" {
        ip_program()
    } else {
        program
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestNet {
    /// Builds the network, or says why it cannot (not root, no `ip`, no namespaces) and
    /// returns `None`.
    pub fn create(nodes: usize) -> Option<TestNet> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: network partition tests need root (ip netns, iptables)");
            return None;
        }
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let net = TestNet {
            tag: format!("c{:04}{made}", pid % 10_000),
            subnet: (
                u8::try_from(100 + pid % 100).unwrap(),
                u8::try_from(made % 250).unwrap(),
            ),
            nodes,
        };
        if let Err(err) = net.build() {
            eprintln!("SKIPPED: could not build the test network: {err}");
            return None;
        }
        Some(net)
    }

    fn hub(&self) -> String {
        format!("{}h", self.tag)
    }

    /// The namespace of node `node` (1-based).
    pub fn namespace(&self, node: usize) -> String {
        format!("{}n{node}", self.tag)
    }

    /// Node `node`'s address (1-based); the test's own is host 254.
    pub fn ip(&self, node: usize) -> String {
        format!("10.{}.{}.{node}", self.subnet.0, self.subnet.1)
    }

    fn build(&self) -> Result<(), String> {
        let hub = self.hub();
        run("ip", &["netns", "add", &hub])?;
        let bridge = "br0";
        run("ip", &["-n", &hub, "link", "add", bridge, "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", bridge, "up"])?;
        for node in 1..=self.nodes {
            let ns = self.namespace(node);
            run("ip", &["netns", "add", &ns])?;
            let outside = format!("{}v{node}", self.tag);
            run(
                "ip",
                &[
                    "link", "add", &outside, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &outside, "master", bridge, "up"],
            )?;
            let address = format!("{}/24", self.ip(node));
            run("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        // The test's link into the hub.
        let mine = format!("{}t", self.tag);
        run(
            "ip",
            &[
                "link", "add", &mine, "type", "veth", "peer", "name", "test0", "netns", &hub,
            ],
        )?;
        run(
            "ip",
            &["-n", &hub, "link", "set", "test0", "master", bridge, "up"],
        )?;
        let address = format!("{}/24", self.ip(254));
        run("ip", &["addr", "add", &address, "dev", &mine])?;
        run("ip", &["link", "set", &mine, "up"])?;
        Ok(())
    }

    /// The command prefix that runs a program in node `node`'s namespace.
    pub fn exec_prefix(&self, node: usize) -> Vec<String> {
        vec![
            "netns".to_string(),
            "exec".to_string(),
            self.namespace(node),
        ]
    }

    /// Drops every packet between nodes `a` and `b`, both ways.
    pub fn cut(&self, a: usize, b: usize) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Drops every packet node `from` sends to node `to` (what `to` sends still arrives): on
    /// the way out of `from` and on the way into `to`.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        self.drop_rule(from, "OUTPUT", "-d", to);
        self.drop_rule(to, "INPUT", "-s", from);
    }

    /// Adds an iptables rule in node `node`'s namespace dropping what `chain` sees with `peer`'s
    /// address as `direction` (`-s` or `-d`).
    fn drop_rule(&self, node: usize, chain: &str, direction: &str, peer: usize) {
        let ns = self.namespace(node);
        let ip = self.ip(peer);
        run(
            "ip",
            &[
                "netns", "exec", &ns, "iptables", "-A", chain, direction, &ip, "-j", "DROP",
            ],
        )
        .unwrap();
    }

    /// Removes every cut.
    pub fn heal(&self) {
        for node in 1..=self.nodes {
            let ns = self.namespace(node);
            run("ip", &["netns", "exec", &ns, "iptables", "-F"]).unwrap();
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for node in 1..=self.nodes {
            let _ = run("ip", &["netns", "del", &self.namespace(node)]);
        }
        // Deleting the hub removes the bridge and the other ends of every link.
        let _ = run("ip", &["netns", "del", &self.hub()]);
    }
}
