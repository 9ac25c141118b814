//! `cairn bench produce` and `cairn bench consume` through the real binary: the JSON report
//! carries every figure a script reads (the broker's CPU included), the records really are in
//! the topic, the baseline is measured in the same run, and bad arguments are one-line usage
//! errors that leave no topic and no scratch file behind.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use common::*;

#[test]
fn bench_produce_and_consume_report_what_they_did() {
    let data = tempfile::tempdir().unwrap();
    let mut server = serve_on_free_ports(data.path()).spawn().unwrap();
    let ready = wait_ready(&mut server);
    let (broker, http) = (ready_field(&ready, "grpc="), ready_field(&ready, "http="));
    let metrics = format!("http://{http}/metrics");
    let bench = |args: &[&str]| {
        let mut full = vec!["--broker", broker.as_str(), "bench"];
        full.extend_from_slice(args);
        cairn(&full).output().unwrap()
    };
    let scratch = tempfile::tempdir_in(data.path()).unwrap();
    let produced = bench(&[
        "produce",
        "--topic",
        "load",
        "--partitions",
        "2",
        "--records",
        "3000",
        "--record-size",
        "100",
        "--records-per-request",
        "50",
        "--baseline-dir",
        scratch.path().to_str().unwrap(),
        "--broker-metrics",
        metrics.as_str(),
        "--format",
        "json",
    ]);
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&produced.stdout).unwrap();
    assert_eq!(report["records"], 3000);
    assert_eq!(report["failed"], 0);
    assert!(report["records_per_sec"].as_f64().unwrap() > 0.0);
    let latency = &report["latency_ms"];
    let (p50, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency}");
    assert!(report["baseline"]["raw_fsync_mb_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["baseline"]["ratio_to_log_append"].as_f64().unwrap() > 0.0);
    assert!(
        report["baseline"]["ratio_to_laid_out_fsync"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let fsync = &report["baseline"]["fsync_4k_latency_ms"];
    assert!(fsync["p50"].as_f64().unwrap() > 0.0, "{fsync}");
    let after = &report["baseline"]["fsync_4k_latency_after_ms"];
    assert!(after["p50"].as_f64().unwrap() > 0.0, "{after}");
    assert!(report.get("fsync_4k_paced").is_none(), "unpaced: {report}");
    // The client's floor is measured with the baseline, and the bench's CPU read against it.
    let cpu = &report["cpu"];
    assert!(
        cpu["send_floor_seconds_per_gb"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    assert!(
        cpu["bench_over_send_floor"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    assert!(report["latency_from"].as_str().unwrap().contains("buffer"));
    let service = &report["service_time_ms"];
    let (service_p50, service_max) = (
        service["p50"].as_f64().unwrap(),
        service["max"].as_f64().unwrap(),
    );
    assert!(
        // Within the service histogram's 6.25% buckets.
        0.0 < service_p50 && service_p50 <= service_max && service_p50 <= max * 1.07,
        "a request's round trip is part of its records' latency: {service} vs {latency}"
    );
    let cpu = &report["cpu"];
    assert!(cpu["bench_seconds_per_gb"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["broker_seconds"].as_f64().unwrap() >= 0.0, "{cpu}");
    assert!(cpu["broker_unknown_reason"].is_null(), "{cpu}");
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "the baseline cleans up its scratch files"
    );

    let described = cairn(&[
        "--broker",
        broker.as_str(),
        "topic",
        "describe",
        "load",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    let topic: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    let stored: i64 = topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum();
    assert_eq!(stored, 3000, "every acknowledged record is in the topic");

    let consumed = bench(&["consume", "--topic", "load", "--format", "json"]);
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&consumed.stdout).unwrap();
    assert_eq!(report["records"], 3000);
    assert_eq!(report["bytes"], 3000 * 100);
    assert!(
        report["ratio_to_full_decode"].is_null(),
        "no baseline asked"
    );

    // With the broker's data directory: the log's own reads of the same ranges, and a ratio.
    let consumed = bench(&[
        "consume",
        "--topic",
        "load",
        "--baseline-dir",
        data.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&consumed.stdout).unwrap();
    assert_eq!(report["records"], 3000);
    let stderr = String::from_utf8_lossy(&consumed.stderr);
    assert!(
        !stderr.contains("WARN") && !stderr.contains("clean shutdown"),
        "recovering the baseline's copy of a live log is not reported as damage: {stderr}"
    );
    assert!(
        report["baseline_full_decode_records_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(report["ratio_to_full_decode"].as_f64().unwrap() > 0.0);
    assert!(report["ratio_to_loopback"].as_f64().unwrap() > 0.0);
    assert!(
        !std::fs::read_dir(data.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("cairn-bench-")),
        "the baseline's copies are gone"
    );

    let bad = bench(&["produce", "--records", "0"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.trim().lines().count() == 1 && stderr.contains("--records"),
        "{stderr}"
    );
    let missing = bench(&["consume", "--topic", "nope"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && stderr.contains("nope"),
        "{stderr}"
    );

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

#[test]
fn bench_produce_registers_the_producers_held_before_its_run() {
    let data = tempfile::tempdir().unwrap();
    let mut server = serve_on_free_ports(data.path()).spawn().unwrap();
    let ready = wait_ready(&mut server);
    let broker = ready_field(&ready, "grpc=");
    let produced = cairn(&[
        "--broker",
        broker.as_str(),
        "bench",
        "produce",
        "--topic",
        "held",
        "--partitions",
        "2",
        "--records",
        "100",
        "--producers-held",
        "7",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&produced.stderr);
    assert!(produced.status.success(), "{stderr}");
    assert!(stderr.contains("registered 7 producers"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&produced.stdout).unwrap();
    assert_eq!(report["records"], 100, "the run's own records only");
    assert_eq!(report["settings"]["producers_held"], 7);
    let described = cairn(&[
        "--broker",
        broker.as_str(),
        "topic",
        "describe",
        "held",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    let topic: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    let stored: Vec<i64> = topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .collect();
    assert_eq!(
        stored.iter().sum::<i64>(),
        100 + 7 * 2,
        "a record from each held producer on each partition: {stored:?}"
    );
    assert!(stored.iter().all(|&end| end >= 7), "{stored:?}");
    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

#[test]
fn bench_flags_out_of_range_are_refused_before_anything_is_created() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let scratch = tempfile::tempdir_in(data.path()).unwrap();
    let scratch_dir = scratch.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut full = vec!["--broker", broker.as_str(), "bench"];
        full.extend_from_slice(args);
        let out = cairn(&full).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (flags, expected) in [
        (
            &["--in-flight", "6"][..],
            "--in-flight 6 is out of range: 1..=5",
        ),
        (
            &["--partitions", "5000"],
            "--partitions 5000 is out of range",
        ),
        (&["--flush-policy", "never"], "--flush-policy \"never\""),
        // 2,000 records of 1 KiB make a batch above max.message.bytes: the broker would refuse
        // every request, after the topic had been made.
        (&["--records-per-request", "2000"], "max.message.bytes"),
    ] {
        let mut args = vec![
            "produce",
            "--topic",
            "never-made",
            "--baseline-dir",
            scratch_dir,
        ];
        args.extend_from_slice(flags);
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.trim().lines().count() == 1 && stderr.contains(expected),
            "{flags:?}: {stderr}"
        );
    }
    let listed = cli_ok(&broker, &["topic", "list"]);
    assert!(
        !listed.contains("never-made"),
        "no topic was made: {listed}"
    );
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "no baseline ran"
    );

    // The replay's baseline copies partitions; a bad flag must stop it before the copy.
    cli_ok(&broker, &["topic", "create", "orders"]);
    produce_orders(&broker, 0..10, 2);
    let (code, stderr) = run(&[
        "replay",
        "--topic",
        "orders",
        "--fetch-max-bytes",
        "0",
        "--baseline-dir",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--fetch-max-bytes 0 is out of range") && !stderr.contains("copying"),
        "{stderr}"
    );
    stop_broker(server);
}

/// `--rate` paces sends, at a low rate (a timer and a spin) and a high one (thread sleeps):
/// never faster than asked, and every record acknowledged. With `--baseline-dir`, a low rate
/// also reads the disk's own fsync latency at that rate, a high one does not.
#[test]
fn bench_produce_paces_low_and_high_rates() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let scratch = tempfile::tempdir_in(data.path()).unwrap();
    let scratch = scratch.path().to_str().unwrap();
    for (topic, rate, records) in [("slow", "400", "200"), ("fast", "5000", "2000")] {
        let produced = cli_ok(
            &broker,
            &[
                "bench",
                "produce",
                "--topic",
                topic,
                "--records",
                records,
                "--rate",
                rate,
                "--in-flight",
                "1",
                "--baseline-dir",
                scratch,
                "--format",
                "json",
            ],
        );
        let report: serde_json::Value = serde_json::from_str(&produced).unwrap();
        assert_eq!(report["records"].as_u64().unwrap().to_string(), records);
        assert_eq!(report["failed"], 0);
        let asked: f64 = rate.parse().unwrap();
        let reached = report["records_per_sec"].as_f64().unwrap();
        // The first record goes at once, so a short run reads a little over the rate.
        assert!(
            reached <= asked * 1.05,
            "{topic}: {reached} records/s against --rate {asked}"
        );
        assert!(reached > 0.0, "{topic}: {report}");
        let latency = &report["latency_ms"];
        assert!(latency["p50"].as_f64().unwrap() > 0.0, "{topic}: {latency}");
        let paced = &report["fsync_4k_paced"];
        if topic == "slow" {
            assert_eq!(paced["interval_ms"].as_f64(), Some(2.5), "{paced}");
            assert!(paced["writes"].as_u64().unwrap() > 0, "{paced}");
            let fsync_p50 = paced["latency_ms"]["p50"].as_f64().unwrap();
            let over = paced["ack_over_fsync_ms"]["p50"].as_f64().unwrap();
            let ack_p50 = latency["p50"].as_f64().unwrap();
            assert!(fsync_p50 > 0.0 && (fsync_p50 + over - ack_p50).abs() < 1e-9);
        } else {
            assert!(paced.is_null(), "{topic}: {paced}");
        }
    }
    stop_broker(server);
}

/// `bench rpc-floor` needs no broker: each stack writes, syncs and answers every request, the
/// report says what each cost, and a bad flag is refused before a scratch file is made.
#[test]
fn bench_rpc_floor_measures_each_stack_and_refuses_bad_flags() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_str().unwrap();
    let out = cairn(&[
        "bench",
        "rpc-floor",
        "--dir",
        dir,
        "--records",
        "50",
        "--rate",
        "1000",
        "--rounds",
        "2",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    let stacks: Vec<&str> = runs.iter().map(|r| r["stack"].as_str().unwrap()).collect();
    assert_eq!(stacks, ["threads", "tokio", "h2", "threads", "tokio", "h2"]);
    for run in runs {
        let service = run["service_time_ms"]["p50"].as_f64().unwrap();
        let synced = run["write_and_fdatasync_ms"]["p50"].as_f64().unwrap();
        assert!(0.0 < synced && synced <= service, "{run}");
        let (cpu, server) = (
            run["cpu_seconds"].as_f64().unwrap(),
            run["server_cpu_seconds"].as_f64().unwrap(),
        );
        assert!(0.0 < server && server <= cpu, "{run}");
    }
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "the scratch files are removed"
    );

    let refused = cairn(&["bench", "rpc-floor", "--dir", dir, "--rate", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--rate 0 is out of range"), "{stderr}");
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
