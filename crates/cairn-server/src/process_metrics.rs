//! The standard `process_*` series (as the Prometheus client libraries name them) and
//! `cairn_build_info`, read at scrape time: CPU time, resident memory, open and maximum file
//! descriptors, and start time from `/proc` on Linux. Elsewhere the `process_*` series are left
//! out rather than reported as zero.
//!
//! The parsers are pure functions over the text of `/proc` files, so they are tested on fixed
//! samples; the reading is one small file each, cheap enough for every scrape.

use std::fmt::Write as _;
use std::path::Path;

use crate::metrics::write_single_sample;

/// The version this binary was built from.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit it was built from, when the build set `CAIRN_BUILD_COMMIT`.
const COMMIT: Option<&str> = option_env!("CAIRN_BUILD_COMMIT");

/// What `/proc/self/stat` says: CPU time and start time, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatTicks {
    user: u64,
    system: u64,
    /// Since boot.
    start: u64,
}

/// Appends `cairn_build_info` and, on Linux, the `process_*` series.
pub fn render(out: &mut String) {
    out.push_str(
        "# HELP cairn_build_info The version (and commit, when known) this broker was built from; always 1.\n\
         # TYPE cairn_build_info gauge\n",
    );
    match COMMIT {
        Some(commit) => {
            let _ = writeln!(
                out,
                "cairn_build_info{{version=\"{VERSION}\",commit=\"{commit}\"}} 1"
            );
        }
        None => {
            let _ = writeln!(out, "cairn_build_info{{version=\"{VERSION}\"}} 1");
        }
    }
    render_process(out);
}

fn render_process(out: &mut String) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let ticks_per_second = sysconf(libc::_SC_CLK_TCK);
    let stat = read("/proc/self/stat").and_then(|text| parse_stat(&text));
    if let (Some(stat), Some(hz)) = (stat, ticks_per_second) {
        let cpu_seconds = (stat.user + stat.system) as f64 / hz as f64;
        write_single_sample(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            cpu_seconds,
        );
        let boot = read("/proc/stat").and_then(|text| parse_boot_time(&text));
        if let Some(boot) = boot {
            let start = boot as f64 + stat.start as f64 / hz as f64;
            write_single_sample(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                start,
            );
        }
    }
    if let Some(rss_bytes) = read("/proc/self/status").and_then(|text| parse_rss_bytes(&text)) {
        write_single_sample(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss_bytes as f64,
        );
    }
    if let Ok(entries) = std::fs::read_dir(Path::new("/proc/self/fd")) {
        // The directory handle reading it is one of the entries; it is not the broker's.
        let open = entries.count().saturating_sub(1);
        write_single_sample(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open as f64,
        );
    }
    if let Some(max) = read("/proc/self/limits").and_then(|text| parse_max_open_files(&text)) {
        write_single_sample(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors (the soft limit).",
            max as f64,
        );
    }
}

/// A positive `sysconf` value.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf reads a system constant; it takes no pointers and has no preconditions.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|v| *v > 0)
}

/// utime, stime and starttime of `/proc/self/stat` (fields 14, 15 and 22). The command name
/// (field 2) is in parentheses and may hold spaces and parentheses itself, so fields are
/// counted from after its last `)`.
fn parse_stat(text: &str) -> Option<StatTicks> {
    let after_name = text.get(text.rfind(')')? + 1..)?;
    // Field 3 (state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| fields.get(number.checked_sub(3)?)?.parse::<u64>().ok();
    Some(StatTicks {
        user: field(14)?,
        system: field(15)?,
        start: field(22)?,
    })
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|rest| rest.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, given in kB (KiB), in bytes.
fn parse_rss_bytes(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The soft limit of the `Max open files` row of `/proc/self/limits`; `None` for unlimited.
fn parse_max_open_files(text: &str) -> Option<u64> {
    let rest = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (cairn (a) b) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 37 0 0 20 0 9 0 116460 2998272 414 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(StatTicks {
                user: 150,
                system: 37,
                start: 116460
            })
        );
        assert_eq!(parse_stat("4242 (cut short) S 1"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        let status = "Name:\tcairn\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t9\n";
        assert_eq!(parse_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tcairn\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1796283711\nprocesses 9\n"),
            Some(1_796_283_711)
        );
    }

    #[test]
    fn build_info_names_the_package_version() {
        let mut out = String::new();
        render(&mut out);
        let line = format!("cairn_build_info{{version=\"{VERSION}\"");
        assert!(out.contains(&line), "{out}");
        assert!(out.contains("# TYPE cairn_build_info gauge\n"), "{out}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reports_plausible_figures() {
        let mut out = String::new();
        render(&mut out);
        let value = |name: &str| -> f64 {
            let prefix = format!("{name} ");
            let line = out.lines().find(|l| l.starts_with(&prefix));
            line.unwrap_or_else(|| panic!("no {name} in:\n{out}"))[prefix.len()..]
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "start {start}, now {now}"
        );
    }
}
