//! Connecting to a broker: the first of a bootstrap list (`host:port,host:port,...`) that
//! answers, tried in the order given, each within the connect timeout, so one dead node of a
//! cluster costs a caller at most that timeout. Every channel the client opens, to a bootstrap
//! address or to a partition's leader, has the same transport settings ([`endpoint`]); which
//! node a call goes to is the `routing` module's job, not this list's. With
//! [`Timeouts::tls`] set, every one of those channels is TLS (see [`ClientTls`]).

use std::error::Error as _;
use std::time::Duration;

use http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::error::{ClientError, ConnectAttempt};
use crate::tls::ClientTls;

/// How long to wait for a TCP connection to one broker, unless [`Timeouts::connect`] says
/// otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 flow-control window per stream the client offers.
pub const HTTP2_STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// HTTP/2 flow-control window per connection the client offers.
pub const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 32 << 20;
/// How long a connection with calls outstanding may stay silent before the client sends an
/// HTTP/2 PING to learn whether the broker is still there (on the producer's own connection,
/// how often it PINGs while calls wait).
///
/// Why: a broker that is paused or whose host froze keeps its TCP connections open (the
/// kernel still acknowledges), so a call to it waits out its whole deadline, and a produce
/// whose one request hung used its whole delivery timeout on it: with the leader stopped
/// (SIGSTOP), `cairn produce` failed its record after 30 s although a new leader had been
/// elected within seconds. A PING is answered by the broker's connection task, not by the
/// partition the call waits on, so a slow fsync or a long Fetch wait does not trip it; a disk
/// that stalls every runtime worker of the broker in an fsync for longer than
/// [`KEEPALIVE_TIMEOUT`] does, and costs the calls a retry, which idempotence makes safe.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// How long the client waits for the answer to that PING before it closes the connection, so
/// its calls fail as `UNAVAILABLE` and are retried (a producer's on the partition's new leader).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a client's connections are made: the deadlines of connecting to one broker and of each
/// request, whether they are TLS, and the credentials sent with every call. (Named for the
/// deadlines it first held; TLS and credentials joined them because every connection of the
/// client is opened with them.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for a TCP connection to one broker of the list. Default
    /// [`CONNECT_TIMEOUT`].
    pub connect: Duration,
    /// Longest wait for each request's answer (its response head, for a stream), so a broker
    /// that accepts connections but never answers fails the call instead of hanging it
    /// (Kafka's `request.timeout.ms`). It must exceed any long-poll wait the caller asks for.
    /// A request that runs out of time fails with [`ClientError::Broker`] and code
    /// `RequestTimedOut`. Default `None`: no deadline.
    pub request: Option<Duration>,
    /// The user and password sent with every call (see [`crate::Credentials`]); default
    /// `None`: the anonymous principal.
    pub credentials: Option<crate::Credentials>,
    /// TLS for every connection, verifying the brokers' certificates; `None`: plaintext
    /// (and a broker address written `https://` is refused, having no CA to verify it with).
    pub tls: Option<ClientTls>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: CONNECT_TIMEOUT,
            request: None,
            credentials: None,
            tls: None,
        }
    }
}

/// Connects to the first reachable broker of `brokers` (`host:port`, comma-separated allowed),
/// with the default [`Timeouts`].
///
/// # Errors
/// [`ClientError::InvalidArgument`] for a malformed address; [`ClientError::Connect`] when none
/// answers.
pub async fn connect(brokers: &str) -> Result<Channel, ClientError> {
    connect_with(brokers, Timeouts::default()).await
}

/// As [`connect`], with these deadlines on connecting and on every request of the channel.
/// Each address is tried once, in the order given, within `timeouts.connect`.
///
/// # Errors
/// [`ClientError::InvalidArgument`] for a malformed address or an empty list (before anything
/// is dialled); [`ClientError::Connect`] naming every address tried and why it failed.
pub async fn connect_with(brokers: &str, timeouts: Timeouts) -> Result<Channel, ClientError> {
    let addresses = broker_addresses(brokers)?;
    if addresses.is_empty() {
        return Err(ClientError::InvalidArgument(
            "no broker address given".to_string(),
        ));
    }
    let (_, channel) = connect_first(&addresses, &timeouts).await?;
    Ok(channel)
}

/// The first of `addresses` that answers, in the order given, each within `timeouts.connect`,
/// as its `host:port` and a connected channel.
///
/// # Errors
/// [`ClientError::Connect`] naming every address tried and why it failed.
pub(crate) async fn connect_first(
    addresses: &[(String, Uri)],
    timeouts: &Timeouts,
) -> Result<(String, Channel), ClientError> {
    if timeouts.tls.is_none()
        && let Some((address, _)) = addresses
            .iter()
            .find(|(_, origin)| origin.scheme_str() == Some("https"))
    {
        return Err(ClientError::InvalidArgument(format!(
            "broker address \"https://{address}\" asks for TLS but no CA was given to verify it (--tls-ca)"
        )));
    }
    let mut attempts = Vec::with_capacity(addresses.len());
    for (i, (address, origin)) in addresses.iter().enumerate() {
        let last = i + 1 == addresses.len();
        let endpoint = endpoint(origin.clone(), timeouts);
        let connected = match &timeouts.tls {
            Some(tls) => endpoint.connect_with_connector(tls.connector()).await,
            None => endpoint.connect().await,
        };
        let reason = match connected {
            Ok(channel) => match answers_grpc(&channel, timeouts.connect).await {
                Probe::Answered => return Ok((address.clone(), channel)),
                // The last hope: the call itself will wait for it within its own deadline,
                // and say so in the words of a request that timed out.
                Probe::Silent(_) if last => return Ok((address.clone(), channel)),
                Probe::Silent(reason) | Probe::NotGrpc(reason) => reason,
            },
            Err(err) => causes(&err),
        };
        attempts.push(ConnectAttempt {
            address: address.clone(),
            reason,
        });
    }
    Err(ClientError::Connect { attempts })
}

/// What a freshly connected server made of a gRPC health check.
enum Probe {
    /// It answered gRPC (whatever it answered).
    Answered,
    /// No answer in time: a process that accepts and never answers, or one frozen.
    Silent(String),
    /// An answer that is not gRPC: the broker's metrics port (HTTP/1.1), another server.
    NotGrpc(String),
}

/// Whether the server behind a freshly connected `channel` answers gRPC, asked with a health
/// check (which needs no credentials) within `timeout`. A connection only proves that something
/// listens: the broker's metrics port, another server, or a process that accepts and never
/// answers all take one, and without this the first call failed or hung there instead of the
/// list moving on to the next address. Any gRPC answer counts, a refusal included, except
/// `UNAVAILABLE` (a broker shutting down, or a transport failure).
async fn answers_grpc(channel: &Channel, timeout: Duration) -> Probe {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let mut client = HealthClient::new(channel.clone());
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    let silent = || Probe::Silent(format!("connected, but no gRPC answer within {timeout:?}"));
    match tokio::time::timeout(timeout, check).await {
        Err(_) => silent(),
        Ok(Ok(_)) => Probe::Answered,
        Ok(Err(status)) if is_grpc_answer(&status) => Probe::Answered,
        // The channel's own request deadline (`Timeouts::request`) ran out first.
        Ok(Err(status)) if crate::error::is_request_timeout(&status) => silent(),
        Ok(Err(status)) => {
            let why = crate::error::line_with_causes(
                status.message().to_string(),
                std::error::Error::source(&status),
            );
            if why.contains("--max-connections") {
                // A broker's refusal over a limit, its GOAWAY read in time (`cairn-server`'s
                // `connections::refusal`).
                Probe::NotGrpc(format!("connected, but {why}"))
            } else if CLOSED_SIGNS.iter().any(|sign| why.contains(sign)) {
                Probe::NotGrpc(format!(
                    "connected, but the server closed the connection without a gRPC answer \
                     (not a gRPC port, a TLS port reached in plaintext, or a broker refusing \
                     connections past its --max-connections or --max-connections-per-ip): {why}"
                ))
            } else {
                Probe::NotGrpc(format!("connected, but it did not answer gRPC: {why}"))
            }
        }
    }
}

/// Words of a transport failure that mean the far end closed the connection rather than
/// answering something that is not gRPC.
const CLOSED_SIGNS: &[&str] = &["connection closed", "broken pipe", "connection reset"];

/// True when `status` came from a gRPC server that answered (whatever it answered), not from
/// the transport failing to get an answer.
fn is_grpc_answer(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_none()
        && !matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
        )
}

/// A channel to one broker, connected on first use, TLS when `timeouts.tls` says so.
pub(crate) fn lazy_channel(origin: Uri, timeouts: &Timeouts) -> Channel {
    let endpoint = endpoint(origin, timeouts);
    match &timeouts.tls {
        Some(tls) => endpoint.connect_with_connector_lazy(tls.connector()),
        None => endpoint.connect_lazy(),
    }
}

/// The endpoint of one broker with the client's transport settings: these deadlines, no
/// Nagle delay, and wide HTTP/2 windows. Every channel of the client is made from one.
fn endpoint(origin: Uri, timeouts: &Timeouts) -> Endpoint {
    let mut endpoint = Endpoint::from(origin)
        .connect_timeout(timeouts.connect)
        .tcp_nodelay(true)
        // HTTP/2's default 64 KiB windows would stall every batch or fetch answer larger
        // than that on a window update round trip.
        .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW_BYTES)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false);
    if let Some(request) = timeouts.request {
        endpoint = endpoint.timeout(request);
    }
    endpoint
}

/// An error and its causes on one line: tonic's own message ("transport error") says nothing
/// of what went wrong, its sources do ("Connection refused").
fn causes(err: &tonic::transport::Error) -> String {
    crate::error::line_with_causes(err.to_string(), err.source())
}

/// The port a broker address written without a scheme or port (`localhost`) means: the one
/// `cairn serve` listens on by default. (An `http://` or `https://` URI without a port means
/// 80 or 443, as any URI does.)
pub const DEFAULT_BROKER_PORT: u16 = 7070;

/// The one broker `address` names, as `broker_addresses` reads it: its `host:port` and URI.
///
/// # Errors
/// [`ClientError::InvalidArgument`] unless `address` is one well-formed address.
pub(crate) fn one_broker_address(address: &str) -> Result<(String, Uri), ClientError> {
    let mut addresses = broker_addresses(address)?;
    match (addresses.pop(), addresses.pop()) {
        (Some(one), None) => Ok(one),
        _ => Err(ClientError::InvalidArgument(format!(
            "{address:?} is not one broker address"
        ))),
    }
}

/// The brokers of a comma-separated list, each as `host:port` and as the `http://` URI
/// requests name. An entry may carry the `http://` or `https://` scheme already (`https://`
/// needs [`Timeouts::tls`]); one with neither scheme nor port is on [`DEFAULT_BROKER_PORT`].
///
/// # Errors
/// [`ClientError::InvalidArgument`] naming the first malformed entry.
pub(crate) fn broker_addresses(brokers: &str) -> Result<Vec<(String, Uri)>, ClientError> {
    brokers
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|address| {
            let bad = |why: String| {
                ClientError::InvalidArgument(format!("bad broker address {address:?}: {why}"))
            };
            let parse = |url: String| {
                url.parse::<Uri>()
                    .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))
            };
            let uri = if address.contains("://") {
                parse(address.to_string())?
            } else {
                let uri = parse(format!("http://{address}"))?;
                match uri.authority() {
                    Some(authority) if written_port(authority.as_str()).is_none() => {
                        parse(format!("http://{address}:{DEFAULT_BROKER_PORT}"))?
                    }
                    _ => uri,
                }
            };
            let https = uri.scheme_str() == Some("https");
            if uri.scheme_str() != Some("http") && !https {
                return Err(bad(
                    "only http:// (plaintext) and https:// (TLS) are supported".to_string(),
                ));
            }
            let authority = uri.authority().ok_or_else(|| bad("no host".to_string()))?;
            // `http` hands back no port for one that is not a number (`host:x`), which would
            // then quietly mean 80: refuse it instead.
            if let Some(port) =
                written_port(authority.as_str()).filter(|port| port.parse::<u16>().is_err())
            {
                return Err(bad(format!(
                    "port {port:?} is not a number from 0 to 65535"
                )));
            }
            // As with any http:// (https://) URI, no port means 80 (443).
            let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
            Ok((format!("{}:{port}", authority.host()), uri))
        })
        .collect()
}

/// The port as written after an authority's host (`host:port`, `[v6]:port`), if any.
fn written_port(authority: &str) -> Option<&str> {
    let after_host = authority
        .rfind(']')
        .map_or(authority, |end| &authority[end + 1..]);
    after_host.rsplit_once(':').map(|(_, port)| port)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn hosts(brokers: &str) -> Vec<String> {
        broker_addresses(brokers)
            .unwrap()
            .into_iter()
            .map(|(host, _)| host)
            .collect()
    }

    #[test]
    fn lists_schemes_ports_and_ipv6_are_read() {
        assert_eq!(
            hosts(" a:1, http://b:2 ,,[::1]:3"),
            vec!["a:1", "b:2", "[::1]:3"]
        );
        assert_eq!(
            hosts("c,[::1]"),
            vec!["c:7070", "[::1]:7070"],
            "no scheme and no port: the port `cairn serve` listens on by default"
        );
        let (_, uri) = broker_addresses("c").unwrap().remove(0);
        assert_eq!(uri.port_u16(), Some(7070), "requests go to that port too");
        assert_eq!(
            hosts("http://c"),
            vec!["c:80"],
            "a URI without a port means 80, as any http URI does"
        );
        assert_eq!(hosts("https://d"), vec!["d:443"]);
    }

    #[tokio::test]
    async fn an_https_address_without_a_ca_is_refused_before_dialling() {
        let err = connect("https://127.0.0.1:9").await.unwrap_err();
        assert!(
            matches!(&err, ClientError::InvalidArgument(m) if m.contains("--tls-ca")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_broker_that_never_answers_fails_the_call_with_request_timed_out() {
        // Accepts and holds connections, answering nothing: a frozen or wedged broker.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let timeouts = Timeouts {
            connect: CONNECT_TIMEOUT,
            request: Some(Duration::from_millis(200)),
            ..Timeouts::default()
        };
        let admin = crate::Admin::connect_with(&address, timeouts)
            .await
            .unwrap();
        let err = admin.list_topics(false).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(cairn_proto::v1::ErrorCode::RequestTimedOut),
            "{err}"
        );
        assert!(err.is_retriable() && err.outcome_unknown());
        holder.abort();
    }

    #[tokio::test]
    async fn the_first_broker_that_answers_is_used_and_failures_name_every_address() {
        let closed = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string()
        };
        let (dead_a, dead_b) = (closed(), closed());
        let err = connect(&format!("{dead_a},{dead_b}")).await.unwrap_err();
        let ClientError::Connect { attempts } = &err else {
            panic!("not a connect error: {err}");
        };
        let tried: Vec<&str> = attempts.iter().map(|a| a.address.as_str()).collect();
        assert_eq!(
            tried,
            [dead_a.as_str(), dead_b.as_str()],
            "in the order given"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot reach a broker at {dead_a} (")),
            "{message}"
        );
        assert!(message.contains(&format!(", {dead_b} (")), "{message}");
        assert!(
            attempts.iter().all(|a| a.reason.contains("refused")),
            "{attempts:?}"
        );
        // A live listener after a dead address: the list moves on to it. (It accepts and
        // holds connections, which is all connecting needs.)
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap().to_string();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        connect(&format!("{dead_a},{live}")).await.unwrap();
        holder.abort();
        assert!(matches!(
            connect(" , ").await,
            Err(ClientError::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_bad_entry_is_named() {
        for (brokers, why) in [
            ("a:1,b:x", "\"x\" is not a number"),
            ("a:70000", "\"70000\" is not a number"),
            ("ftp://a:1", "only http://"),
        ] {
            let err = broker_addresses(brokers).unwrap_err().to_string();
            assert!(err.contains(why), "{brokers}: {err}");
        }
    }
}
