//! Where and how patiently the client commands talk to the broker: the global `--broker`,
//! `--timeout`, `--connect-timeout` and `--tls-*` flags, resolved into one [`Target`] each
//! command uses, and the duration syntax those flags take (`30s`, `500ms`, `2m`, or bare
//! seconds).
//!
//! Every client command gets a deadline on each request, so a broker that accepts connections
//! but never answers (stopped, wedged, or not a Cairn broker at all) fails the command with a
//! message naming the address and the deadline, instead of hanging it.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use cairn_client::{ClientError, ClientTls, Credentials, ErrorCode, ProducerConfig, Timeouts};

use crate::cli::TlsArgs;

/// Default deadline of each request, as Kafka's `request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline of `cairn health`'s whole check of one broker: a probe must answer fast.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of a TCP connection to one broker.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = cairn_client::CONNECT_TIMEOUT;
/// Longest deadline accepted: a day. Past it a deadline is no longer a deadline, and far
/// larger values overflow the timer.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The credentials of `--user`, with the password read from `--password-file` (its first
/// line) or the variable `--password-env` names. Never from a flag's value: a password on the
/// command line shows in `ps` and shell history.
///
/// # Errors
/// A message for the person at the keyboard (never containing the password): a password
/// source without `--user` or the other way round, both sources, an unreadable file, an unset
/// variable, an empty password.
pub fn credentials(
    user: Option<&str>,
    password_file: Option<&std::path::Path>,
    password_env: Option<&str>,
) -> Result<Option<Credentials>, String> {
    let password = match (password_file, password_env) {
        (Some(_), Some(_)) => {
            return Err("give --password-file or --password-env, not both".to_string());
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --password-file {}: {e}", path.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        (None, Some(var)) => Some(
            std::env::var(var)
                .map_err(|_| format!("--password-env {var}: the variable is not set"))?,
        ),
        (None, None) => None,
    };
    match (user, password) {
        (None, None) => Ok(None),
        (Some(_), None) => Err("--user needs --password-file or --password-env".to_string()),
        (None, Some(_)) => Err("a password was given without --user".to_string()),
        (Some(_), Some(password)) if password.is_empty() => {
            Err("the password is empty".to_string())
        }
        (Some(user), Some(password)) => Credentials::new(user, password.as_bytes())
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// The broker list and the deadlines of a client command.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port[,host:port...]` as given.
    pub brokers: String,
    /// `--timeout`, if given (commands apply their own default otherwise).
    pub timeout: Option<Duration>,
    /// `--connect-timeout`, or its default.
    pub connect_timeout: Duration,
    /// `--user` with the password from `--password-file` or `--password-env`, sent with every
    /// call; `None`: anonymous.
    pub credentials: Option<Credentials>,
    /// TLS to the brokers (`--tls-ca`, with `--tls-cert` and `--tls-key` for mTLS).
    pub tls: Option<ClientTls>,
}

impl Target {
    /// The deadline of each request: `--timeout` or [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn request_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    /// The client library's deadlines for this command.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout,
            request: Some(self.request_timeout()),
            credentials: self.credentials.clone(),
            tls: self.tls.clone(),
        }
    }

    /// `config` with these deadlines. A command gives up after `--timeout`, so that is also how
    /// long a record may take to be acknowledged, retries included (its delivery timeout, plus
    /// its linger), not the library's two minutes: a produce to a cluster with no majority
    /// otherwise ran for 120 s whatever `--timeout` said.
    pub fn producer_config(&self, config: ProducerConfig) -> ProducerConfig {
        let request_timeout = self.request_timeout();
        let delivery_timeout = config.linger + request_timeout;
        ProducerConfig {
            request_timeout,
            connect_timeout: self.connect_timeout,
            delivery_timeout,
            credentials: self.credentials.clone(),
            tls: self.tls.clone(),
            ..config
        }
    }

    /// `err` with a line a person can act on when it is a request deadline that ran out:
    /// which brokers did not answer, within what, and which flag sets it.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        let timed_out = err.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<ClientError>(),
                Some(ClientError::Broker {
                    code: ErrorCode::RequestTimedOut,
                    status: tonic::Code::DeadlineExceeded,
                    ..
                })
            )
        });
        // What tonic reports when the far end speaks HTTP but not gRPC: the broker's own
        // metrics port (HTTP/1.1), or another server. Its words name no address.
        let not_grpc = err.chain().any(|cause| {
            let text = cause.to_string();
            NOT_GRPC_SIGNS.iter().any(|sign| text.contains(sign))
        }) && !err
            .chain()
            .any(|cause| cause.to_string().contains(REFUSED_BY_A_LIMIT));
        let says = |sign: &str| err.chain().any(|cause| cause.to_string().contains(sign));
        if timed_out {
            err.context(format!(
                "no answer from {} within {} (set with --timeout)",
                self.brokers,
                show_duration(self.request_timeout())
            ))
        } else if self.tls.is_some() && says(TLS_TO_PLAINTEXT) {
            err.context(format!(
                "{} does not speak TLS: drop --tls-ca (and CAIRN_TLS_CA) to reach it in \
                 plaintext, or give the broker's TLS address",
                self.brokers
            ))
        } else if self.tls.is_some() && says(CLIENT_CERTIFICATE_REQUIRED) {
            err.context(format!(
                "{} requires a client certificate (mTLS): give --tls-cert and --tls-key",
                self.brokers
            ))
        } else if self.tls.is_none() && says(CLOSED_WITHOUT_AN_ANSWER) {
            err.context(format!(
                "{} closed the connection without answering; if the broker serves TLS, give \
                 its CA with --tls-ca",
                self.brokers
            ))
        } else if not_grpc {
            // A TLS listener reads a plaintext client's HTTP/2 preface as a bad TLS record
            // and closes, which looks the same as a port that is not gRPC.
            let tls_hint = if self.tls.is_none() {
                "; or, if the broker serves TLS, give its CA with --tls-ca"
            } else {
                ""
            };
            err.context(format!(
                "{} did not answer as a Cairn broker: is it the gRPC address? (`cairn serve` \
                 takes gRPC on 7070 and serves /metrics over HTTP on 7071 by default){tls_hint}",
                self.brokers
            ))
        } else {
            err
        }
    }
}

/// The client's words for a server that took the connection and closed it without a gRPC
/// answer (`cairn_client`'s bootstrap probe): a TLS port reached in plaintext among others.
const CLOSED_WITHOUT_AN_ANSWER: &str = "closed the connection without a gRPC answer";

/// What rustls says when a TLS client is answered in plaintext: the broker's HTTP/2 bytes read
/// as a TLS record of no known type.
const TLS_TO_PLAINTEXT: &str = "InvalidContentType";

/// The alert a broker that requires client certificates sends a client that gave none.
const CLIENT_CERTIFICATE_REQUIRED: &str = "CertificateRequired";

/// The part of a broker's refusal of a connection over one of its limits that its GOAWAY
/// carries (`cairn-server`'s `connections::refusal`): a broker that did answer, so not a
/// wrong port.
const REFUSED_BY_A_LIMIT: &str = "(--max-connections";

/// Words in an error that mean the far end answered HTTP, but not gRPC (see
/// [`Target::explain`]).
const NOT_GRPC_SIGNS: &[&str] = &[
    // The client's own probe of a bootstrap address (`cairn_client`'s `connect_first`).
    "did not answer gRPC",
    "h2 protocol error",
    "grpc-status header missing",
    "invalid HTTP version",
    "frame with invalid size",
];

/// The client's TLS from `--tls-ca`, `--tls-cert` and `--tls-key`, each else its
/// `CAIRN_TLS_*` variable (read through `env`): `None` (plaintext) without a CA.
///
/// # Errors
/// A certificate or key without a CA, or a file the client cannot use (named, with why).
pub fn client_tls(
    args: &TlsArgs,
    env: impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Option<ClientTls>> {
    let pick = |flag: &Option<String>, var: &str| {
        flag.clone()
            .map(OsString::from)
            .or_else(|| env(var).filter(|value| !value.is_empty()))
    };
    let ca = pick(&args.tls_ca, "CAIRN_TLS_CA");
    let cert = pick(&args.tls_cert, "CAIRN_TLS_CERT");
    let key = pick(&args.tls_key, "CAIRN_TLS_KEY");
    let Some(ca) = ca else {
        if cert.is_some() || key.is_some() {
            anyhow::bail!(
                "--tls-cert and --tls-key need --tls-ca (the CA that verifies the broker)"
            );
        }
        return Ok(None);
    };
    let tls = ClientTls::from_pem_files(
        Path::new(&ca),
        cert.as_deref().map(Path::new),
        key.as_deref().map(Path::new),
    )
    .context("cannot set up TLS")?;
    Ok(Some(tls))
}

/// Parses a duration flag: a number with a unit `ms`, `s`, `m` or `h` (`30s`, `500ms`, `2m`),
/// or a bare number of seconds. Above zero and at most [`MAX_TIMEOUT`].
///
/// # Errors
/// A message for clap to print as a usage error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration: use a whole number and a unit, e.g. 30s, 500ms, 2m")
    })?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" | "min" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use ms, s, m or h (e.g. 30s)"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("{text:?}: a timeout must be above zero"));
    }
    if duration > MAX_TIMEOUT {
        return Err(format!("{text:?}: a timeout must be at most 24h"));
    }
    Ok(duration)
}

/// A duration as the flags take it: `500ms`, `30s`, `2m`.
pub fn show_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("", "not a duration"),
            ("s", "not a duration"),
            ("-1s", "not a duration"),
            ("1.5s", "unknown unit"),
            ("10 days", "unknown unit"),
            ("0s", "above zero"),
            ("25h", "at most 24h"),
            ("99999999999999999999s", "not a duration"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn durations_print_as_typed() {
        for text in ["500ms", "30s", "2m", "1500ms"] {
            assert_eq!(show_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn credentials_need_a_user_and_exactly_one_password_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let found = credentials(Some("alice"), Some(&file), None)
            .unwrap()
            .unwrap();
        assert_eq!(found.user(), "alice");
        assert!(!format!("{found:?}").contains("s3cret"));
        assert_eq!(credentials(None, None, None), Ok(None));
        for wrong in [
            credentials(Some("alice"), None, None),
            credentials(None, Some(&file), None),
            credentials(Some("alice"), Some(&file), Some("X")),
            credentials(Some("alice"), None, Some("CAIRN_TEST_SURELY_UNSET_VAR")),
            credentials(Some("alice"), Some(&dir.path().join("missing")), None),
        ] {
            let message = wrong.unwrap_err();
            assert!(!message.contains("s3cret"), "{message}");
        }
    }

    #[test]
    fn a_request_deadline_names_the_broker_and_the_flag() {
        let target = Target {
            brokers: "127.0.0.1:9".to_string(),
            timeout: Some(Duration::from_secs(2)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            credentials: None,
            tls: None,
        };
        let timed_out = ClientError::Broker {
            code: ErrorCode::RequestTimedOut,
            status: tonic::Code::DeadlineExceeded,
            message: "no answer".to_string(),
            leader: None,
        };
        let line = format!("{:#}", target.explain(timed_out.into()));
        assert!(line.starts_with("no answer from 127.0.0.1:9 within 2s (set with --timeout)"));
        let other = ClientError::InvalidArgument("x".to_string());
        assert_eq!(
            format!("{:#}", target.explain(other.into())),
            "invalid argument: x"
        );
        // The metrics port (HTTP/1.1) given as --broker: the line names the address.
        let http_only = ClientError::Broker {
            code: ErrorCode::BrokerNotAvailable,
            status: tonic::Code::Unknown,
            message: "h2 protocol error: http2 error".to_string(),
            leader: None,
        };
        let line = format!("{:#}", target.explain(http_only.clone().into()));
        assert!(
            line.starts_with("127.0.0.1:9 did not answer as a Cairn broker"),
            "{line}"
        );
        assert!(line.contains("give its CA with --tls-ca"), "{line}");
    }

    /// A TLS client told the broker speaks plaintext, or wants a client certificate, is told
    /// which flag to change, naming the broker.
    #[test]
    fn tls_mismatches_name_the_flag_to_change() {
        let ca = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let ca_file = ca.path().join("ca.pem");
        std::fs::write(&ca_file, generated.cert.pem()).unwrap();
        let target = Target {
            brokers: "127.0.0.1:9".to_string(),
            timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            credentials: None,
            tls: Some(ClientTls::from_pem_files(&ca_file, None, None).unwrap()),
        };
        let failed = |text: &str| {
            anyhow::Error::from(ClientError::InvalidArgument("connect".to_string()))
                .context(text.to_string())
        };
        let line = format!(
            "{:#}",
            target.explain(failed(
                "received corrupt message of type InvalidContentType"
            ))
        );
        assert!(line.starts_with("127.0.0.1:9 does not speak TLS"), "{line}");
        let line = format!(
            "{:#}",
            target.explain(failed("received fatal alert: CertificateRequired"))
        );
        assert!(
            line.starts_with("127.0.0.1:9 requires a client certificate"),
            "{line}"
        );
        let line = format!("{:#}", target.explain(failed(CLOSED_WITHOUT_AN_ANSWER)));
        assert!(!line.contains("--tls-ca"), "TLS is on already: {line}");
        let line = format!("{:#}", target.explain(failed("h2 protocol error")));
        assert!(!line.contains("--tls-ca"), "TLS is on already: {line}");
    }
}
