//! The broker's CPU time over a run, from the `process_cpu_seconds_total` sample of its HTTP
//! `/metrics`, read just before and just after the run. The bench's own CPU time comes from
//! `getrusage` (`cpu_ceiling::process_cpu_time`); together they give CPU-seconds per GB at both
//! ends, which PERFORMANCE.md asks every produce figure to carry.
//!
//! The endpoint is a guess unless `--broker-metrics` names it, and a wrong guess must not
//! report another broker's CPU as this one's: a scrape counts only if it serves a partition of
//! the benchmark's topic. When nothing answers, the broker's CPU is reported as unknown, with
//! the reason, never as zero.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config_resolve::{DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR};

/// How long one scrape (connect, send, read) may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `/metrics` answer read; a node with a thousand partitions answers well under this.
pub const MAX_METRICS_BYTES: u64 = 16 << 20;
/// The series read.
pub const CPU_SERIES: &str = "process_cpu_seconds_total";

/// Where a broker's `/metrics` is: `host:port` and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsEndpoint {
    /// `host:port`.
    pub address: String,
    /// The request path, `/metrics` unless given.
    pub path: String,
}

impl MetricsEndpoint {
    /// Parses `--broker-metrics`: `http://HOST:PORT[/PATH]` or `HOST:PORT[/PATH]`.
    ///
    /// # Errors
    /// A message for clap to print when it is not of that form (https is not spoken here).
    pub fn parse(text: &str) -> Result<MetricsEndpoint, String> {
        let rest = text.strip_prefix("http://").unwrap_or(text);
        if rest.contains("://") {
            return Err(format!(
                "{text:?}: only http:// is supported, e.g. http://127.0.0.1:7071/metrics"
            ));
        }
        let (address, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/metrics"),
        };
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "{text:?}: expected HOST:PORT with an optional path, e.g. http://127.0.0.1:7071/metrics"
            ));
        }
        Ok(MetricsEndpoint {
            address: address.to_string(),
            path: path.to_string(),
        })
    }

    /// The endpoint to read: `flag` if given; else, when `brokers` is one address on the
    /// default gRPC port, the default HTTP port on the same host (how `cairn serve` starts
    /// without flags). `Err` says why there is none.
    ///
    /// # Errors
    /// The reason no endpoint is known, for the report.
    pub fn resolve(
        flag: Option<&MetricsEndpoint>,
        brokers: &str,
    ) -> Result<MetricsEndpoint, String> {
        if let Some(endpoint) = flag {
            return Ok(endpoint.clone());
        }
        let default_port = format!(":{}", DEFAULT_GRPC_ADDR.port());
        match brokers.strip_suffix(&default_port) {
            Some(host) if !brokers.contains(',') && !host.is_empty() => Ok(MetricsEndpoint {
                address: format!("{host}:{}", DEFAULT_HTTP_ADDR.port()),
                path: "/metrics".to_string(),
            }),
            _ => Err(format!(
                "no metrics endpoint: --broker {brokers} is not one broker on the default port; pass --broker-metrics"
            )),
        }
    }

    /// `http://address/path`, as reported.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.address, self.path)
    }

    /// The broker's CPU seconds so far, from a node that serves a partition of `topic`.
    /// Blocking: call it off the runtime's workers.
    ///
    /// # Errors
    /// Why the figure could not be read, as one line for the report.
    pub fn cpu_seconds(&self, topic: &str) -> Result<f64, String> {
        let body = self
            .scrape()
            .map_err(|err| format!("{}: {err}", self.url()))?;
        if !serves_topic(&body, topic) {
            return Err(format!(
                "{} serves no partition of topic {topic}: not the broker under test",
                self.url()
            ));
        }
        sample(&body, CPU_SERIES).ok_or_else(|| format!("{} has no {CPU_SERIES}", self.url()))
    }

    /// One `GET` of the endpoint's body (HTTP/1.1, one request per connection, as the broker's
    /// admin endpoint answers).
    fn scrape(&self) -> std::io::Result<String> {
        let address = self
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("the host resolves to no address"))?;
        let mut stream = TcpStream::connect_timeout(&address, SCRAPE_TIMEOUT)?;
        stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
        stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
        write!(
            stream,
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.address
        )?;
        let mut answer = Vec::new();
        stream.take(MAX_METRICS_BYTES).read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
        let status = head.lines().next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("200") {
            return Err(std::io::Error::other(format!("answered {status:?}")));
        }
        Ok(body.to_string())
    }
}

/// The value of `series`'s unlabelled sample in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// Whether the body has a partition series of `topic`.
fn serves_topic(body: &str, topic: &str) -> bool {
    let label = format!("topic=\"{topic}\"");
    body.lines()
        .any(|line| line.starts_with("cairn_partition_high_watermark{") && line.contains(&label))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    const BODY: &str = "# HELP process_cpu_seconds_total CPU.\n\
        # TYPE process_cpu_seconds_total counter\n\
        process_cpu_seconds_total 12.5\n\
        process_cpu_seconds_total_other 3\n\
        cairn_partition_high_watermark{topic=\"load\",partition=\"0\"} 10\n";

    #[test]
    fn the_cpu_sample_and_the_topic_are_read_from_the_text() {
        assert_eq!(sample(BODY, CPU_SERIES), Some(12.5));
        assert_eq!(sample(BODY, "missing"), None);
        assert!(serves_topic(BODY, "load"));
        assert!(!serves_topic(BODY, "loa"));
    }

    #[test]
    fn endpoints_parse_with_or_without_scheme_and_path() {
        let plain = MetricsEndpoint::parse("127.0.0.1:7171").unwrap();
        assert_eq!(plain.url(), "http://127.0.0.1:7171/metrics");
        let full = MetricsEndpoint::parse("http://node1:8080/m").unwrap();
        assert_eq!(
            (full.address.as_str(), full.path.as_str()),
            ("node1:8080", "/m")
        );
        for bad in [
            "https://x:1/metrics",
            "nohost",
            ":7071",
            "x:port",
            "x:70000",
        ] {
            assert!(MetricsEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_the_flag_only_a_default_broker_gets_a_guess() {
        let guess = MetricsEndpoint::resolve(None, "127.0.0.1:7070").unwrap();
        assert_eq!(guess.url(), "http://127.0.0.1:7071/metrics");
        let why = MetricsEndpoint::resolve(None, "127.0.0.1:7170").unwrap_err();
        assert!(why.contains("--broker-metrics"), "{why}");
        assert!(MetricsEndpoint::resolve(None, "a:7070,b:7070").is_err());
        let given = MetricsEndpoint::parse("h:1").unwrap();
        assert_eq!(MetricsEndpoint::resolve(Some(&given), "x:2"), Ok(given));
    }

    #[test]
    fn an_endpoint_that_is_not_listening_is_a_reason_not_a_zero() {
        // Port 1 on loopback: nothing listens there, so the connect is refused at once.
        let endpoint = MetricsEndpoint::parse("127.0.0.1:1").unwrap();
        let why = endpoint.cpu_seconds("load").unwrap_err();
        assert!(why.starts_with("http://127.0.0.1:1/metrics: "), "{why}");
    }
}
