//! Calls of the Admin and Groups services counted by method and gRPC status code, for
//! `cairn_admin_requests_total` and `cairn_group_requests_total`. A fixed table of relaxed
//! atomics per service (methods x the 17 gRPC codes), so counting is one add and the label set
//! is bounded by construction.
//!
//! Only series that have counted something are rendered: most method and code pairs never
//! happen, and a series that can only be zero is noise on every scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::{Code, Status};

/// The gRPC status codes by number (0 to 16), spelled as the gRPC specification does.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The Admin service's methods, as they appear in the `method` label.
pub const ADMIN_METHODS: [&str; 20] = [
    "CreateTopic",
    "ListTopics",
    "DescribeTopic",
    "DeleteTopic",
    "AddPartitions",
    "AlterConfigs",
    "DescribeCluster",
    "BalanceLeaders",
    "AddNode",
    "RemoveNode",
    "ReassignPartitions",
    "UpsertUser",
    "DeleteUser",
    "ListUsers",
    "CreateAcls",
    "DeleteAcls",
    "ListAcls",
    "SetQuota",
    "RemoveQuota",
    "ListQuotas",
];

/// The Groups service's methods, as they appear in the `method` label.
pub const GROUP_METHODS: [&str; 8] = [
    "Heartbeat",
    "CommitOffsets",
    "FetchOffsets",
    "ListGroups",
    "DescribeGroup",
    "ResetOffsets",
    "DeleteGroup",
    "FindCoordinator",
];

/// Counts of one service's calls, by method (an index into its method list) and code.
#[derive(Debug)]
pub struct RpcCounters<const N: usize> {
    family: &'static str,
    help: &'static str,
    methods: [&'static str; N],
    counts: [[AtomicU64; CODE_NAMES.len()]; N],
}

impl<const N: usize> RpcCounters<N> {
    /// All at zero, rendered under `family` with `help`.
    pub fn new(family: &'static str, help: &'static str, methods: [&'static str; N]) -> Self {
        RpcCounters {
            family,
            help,
            methods,
            counts: [const { [const { AtomicU64::new(0) }; CODE_NAMES.len()] }; N],
        }
    }

    /// Counts one call of `method` answered with `code`. A method not in the list is our
    /// own bug; it is not counted rather than panicking a request.
    pub fn count(&self, method: &str, code: Code) {
        debug_assert!(self.methods.contains(&method), "unknown method {method}");
        let Some(method_idx) = self.methods.iter().position(|m| *m == method) else {
            return;
        };
        let code_idx = usize::try_from(code as i32).unwrap_or(CODE_NAMES.len());
        if let Some(counter) = self
            .counts
            .get(method_idx)
            .and_then(|codes| codes.get(code_idx))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `result` as a call of `method` and hands it back, so a handler can end with
    /// `counters.counted("CreateTopic", result)`.
    pub fn counted<T>(&self, method: &str, result: Result<T, Status>) -> Result<T, Status> {
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        self.count(method, code);
        result
    }

    /// Appends the family: HELP, TYPE, and one line per method and code counted at least once.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.family, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.family);
        for (method, codes) in self.methods.iter().zip(&self.counts) {
            for (code, counter) in CODE_NAMES.iter().zip(codes) {
                let value = counter.load(Ordering::Relaxed);
                if value > 0 {
                    let _ = writeln!(
                        out,
                        "{}{{method=\"{method}\",code=\"{code}\"}} {value}",
                        self.family
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_follow_tonic_numbering() {
        assert_eq!(CODE_NAMES[Code::Ok as usize], "OK");
        assert_eq!(CODE_NAMES[Code::NotFound as usize], "NOT_FOUND");
        assert_eq!(
            CODE_NAMES[Code::Unauthenticated as usize],
            "UNAUTHENTICATED"
        );
    }

    #[test]
    fn counted_calls_render_by_method_and_code_and_untouched_pairs_do_not() {
        let counters = RpcCounters::new("t_requests_total", "Test.", ADMIN_METHODS);
        let _ = counters.counted("CreateTopic", Ok(()));
        let _ = counters.counted("CreateTopic", Ok(()));
        let _ = counters.counted::<()>("DeleteTopic", Err(Status::not_found("gone")));
        let mut out = String::new();
        counters.render(&mut out);
        assert!(out.contains("t_requests_total{method=\"CreateTopic\",code=\"OK\"} 2\n"));
        assert!(out.contains("t_requests_total{method=\"DeleteTopic\",code=\"NOT_FOUND\"} 1\n"));
        let samples = out.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 2, "{out}");
        assert_eq!(out.matches("# TYPE t_requests_total counter\n").count(), 1);
    }
}
