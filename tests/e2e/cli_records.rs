//! Records through `cairn produce` and `cairn consume` byte for byte, through the real binary:
//! JSON Lines input with keys, headers, partitions, timestamps and tombstones; text, base64 and
//! hex encodings; templates; null apart from empty; relative and ISO-8601 start positions; and
//! a failed produce that says what was acknowledged.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use common::*;
use serde_json::Value;

fn ok(broker: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = cli_with_input(broker, args, input);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn consume_all(broker: &str, topic: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["consume", topic, "--from", "earliest", "--until-end"];
    args.extend_from_slice(extra);
    ok(broker, &args, b"")
}

#[test]
fn binary_records_tombstones_and_templates_round_trip() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    ok(
        &broker,
        &["topic", "create", "raw", "--partitions", "2"],
        b"",
    );

    // Every byte value in a value, a key that is not UTF-8, a repeated header with a null
    // value, a tombstone, an empty value, an explicit partition and an ISO-8601 timestamp.
    let all_bytes: Vec<u8> = (0..=255).collect();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let input = format!(
        "{{\"key\":\"{}\",\"value\":\"{}\",\"headers\":[[\"h\",\"00ff\"],[\"h\",null]],\"partition\":1,\"timestamp\":\"2026-12-01T10:00:00Z\"}}\n\
         {{\"key\":\"6b\",\"value\":null,\"partition\":1}}\n\
         \n\
         {{\"key\":\"6b\",\"value\":\"\",\"headers\":{{\"a\":\"01\"}},\"partition\":1,\"timestamp\":1767225600000}}\n",
        hex(&[0xff, 0xfe]),
        hex(&all_bytes)
    );
    let produced = cli_with_input(
        &broker,
        &[
            "produce",
            "raw",
            "--format",
            "json",
            "--key-encoding",
            "hex",
            "--value-encoding",
            "hex",
        ],
        input.as_bytes(),
    );
    assert!(produced.status.success(), "{produced:?}");
    assert!(String::from_utf8_lossy(&produced.stderr).contains("produced 3 records to raw"));

    let records = json_lines(&consume_all(
        &broker,
        "raw",
        &[
            "--format",
            "json",
            "--key-encoding",
            "base64",
            "--value-encoding",
            "hex",
        ],
    ));
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records[0]["partition"], 1);
    assert_eq!(records[0]["key"], "//4=");
    assert_eq!(records[0]["value"], hex(&all_bytes));
    assert_eq!(records[0]["timestamp"], 1_796_119_200_000_i64);
    assert_eq!(
        records[0]["headers"],
        serde_json::json!([{"key": "h", "value": "00ff"}, {"key": "h", "value": null}])
    );
    assert_eq!(records[1]["value"], Value::Null, "a tombstone is null");
    assert_eq!(records[2]["value"], "", "an empty value is empty, not null");
    assert_eq!(records[2]["timestamp"], 1_767_225_600_000_i64);

    // Text encoding writes the bytes as they are where the output is raw...
    let text = consume_all(&broker, "raw", &["--partition", "1"]);
    let mut expected = all_bytes.clone();
    expected.extend_from_slice(b"\n(null)\n\n");
    assert_eq!(text, expected);
    // ...and JSON refuses what it cannot carry instead of mangling it, as a usage error.
    let refused = cli_with_input(
        &broker,
        &[
            "consume",
            "raw",
            "--from",
            "earliest",
            "--until-end",
            "--format",
            "json",
        ],
        b"",
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("raw/1 offset 0 is not UTF-8"),
        "{refused:?}"
    );

    // Templates: every field, sizes telling null (-1) from empty (0).
    let templated = consume_all(
        &broker,
        "raw",
        &[
            "--template",
            "%t/%p/%o %T k=%k v=%S %h|\\n",
            "--key-encoding",
            "hex",
            "--value-encoding",
            "base64",
        ],
    );
    // The tombstone was stamped by the producer, so its time is read back from the JSON.
    let tombstone_ms = records[1]["timestamp"].as_i64().unwrap();
    assert_eq!(
        String::from_utf8(templated).unwrap(),
        format!(
            "raw/1/0 1796119200000 k=fffe v=256 h=AP8=,h=(null)|\n\
             raw/1/1 {tombstone_ms} k=6b v=-1 |\n\
             raw/1/2 1767225600000 k=6b v=0 a=AQ==|\n"
        )
    );
    let bad_template = cli_with_input(&broker, &["consume", "raw", "--template", "%q"], b"");
    assert_eq!(bad_template.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_template.stderr).contains("unknown code %q"));

    // What consume prints as JSON, produce reads back unchanged (topic and offset ignored).
    ok(
        &broker,
        &["topic", "create", "copy", "--partitions", "2"],
        b"",
    );
    let exported = consume_all(
        &broker,
        "raw",
        &[
            "--format",
            "json",
            "--key-encoding",
            "base64",
            "--value-encoding",
            "base64",
        ],
    );
    ok(
        &broker,
        &[
            "produce",
            "copy",
            "--format",
            "json",
            "--key-encoding",
            "base64",
            "--value-encoding",
            "base64",
        ],
        &exported,
    );
    let copied = consume_all(
        &broker,
        "copy",
        &[
            "--format",
            "json",
            "--key-encoding",
            "base64",
            "--value-encoding",
            "base64",
        ],
    );
    let without_topic = |lines: &[u8]| {
        json_lines(lines)
            .into_iter()
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("topic");
                v
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_topic(&copied), without_topic(&exported));

    // Text input with a separator takes any byte but the line break, and base64 keys.
    ok(
        &broker,
        &[
            "produce",
            "copy",
            "--partition",
            "0",
            "--key-separator",
            ":",
            "--key-encoding",
            "base64",
        ],
        b"AQ==:v\xff\xfe\r\n",
    );
    let line = consume_all(
        &broker,
        "copy",
        &[
            "--partition",
            "0",
            "--template",
            "%k=%v",
            "--key-encoding",
            "hex",
        ],
    );
    assert_eq!(line, b"01=v\xff\xfe");

    stop_broker(server);
}

#[test]
fn a_failed_produce_says_what_was_acknowledged_and_bad_input_is_named() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    ok(&broker, &["topic", "create", "orders"], b"");

    let out = cli_with_input(
        &broker,
        &["produce", "orders", "--format", "json"],
        b"{\"value\":\"a\"}\n{\"value\":\"b\"}\n{\"vaule\":\"c\"}\n{\"value\":\"d\"}\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 3: unknown field \"vaule\"")
            && stderr.contains("2 records were acknowledged by orders")
            && stderr.contains("every record up to line 2 was, resume after it"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // Exactly what was reported is in the topic: the lines before the bad one, none after.
    let values = consume_all(&broker, "orders", &[]);
    assert_eq!(values, b"a\nb\n");

    let refused = cli_with_input(&broker, &["produce", "orders", "--partition", "5"], b"x\n");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("partition 5") && stderr.contains("0 records were acknowledged"),
        "{stderr}"
    );
    // The same from a line's own "partition" (consume --format json piped into another
    // topic) says which field chose it and how to let the key choose instead.
    let refused = cli_with_input(
        &broker,
        &["produce", "orders", "--format", "json"],
        b"{\"value\":\"x\",\"partition\":5}\n",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("its \"partition\": 5 chose the partition")
            && stderr.contains("del(.partition)")
            && stderr.contains("partition 5 does not exist"),
        "{stderr}"
    );

    for (args, why) in [
        (
            &["produce", "orders", "--header", "novalue"][..],
            "--header \"novalue\" is not KEY=VALUE",
        ),
        (
            &["produce", "orders", "--key-separator", ""],
            "--key-separator must not be empty",
        ),
        (
            &[
                "produce",
                "orders",
                "--format",
                "json",
                "--key-separator",
                ":",
            ],
            "--key-separator applies to text input",
        ),
        (&["produce", "orders", "--value-encoding", "rot13"], "rot13"),
        (
            &["produce", "orders", "--partition=-1"],
            "--partition must not be negative",
        ),
    ] {
        let out = cli_with_input(&broker, args, b"x\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    let undecodable = cli_with_input(
        &broker,
        &["produce", "orders", "--value-encoding", "hex"],
        b"0a\nxyz\n",
    );
    let stderr = String::from_utf8_lossy(&undecodable.stderr);
    assert_eq!(undecodable.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 2: value: not hex") && stderr.contains("1 records were acknowledged"),
        "{stderr}"
    );

    stop_broker(server);
}

#[test]
fn start_positions_relative_timed_and_out_of_range() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    ok(
        &broker,
        &["topic", "create", "events", "--partitions", "2"],
        b"",
    );
    // Partition 0 gets v0..v9 stamped 2026-12-01T10:00:00Z + i minutes; partition 1 gets two.
    let mut input = String::new();
    for i in 0..10_i64 {
        let ts = 1_796_119_200_000 + i * 60_000;
        input.push_str(&format!(
            "{{\"value\":\"v{i}\",\"partition\":0,\"timestamp\":{ts}}}\n"
        ));
    }
    input.push_str("{\"value\":\"w0\",\"partition\":1}\n{\"value\":\"w1\",\"partition\":1}\n");
    ok(
        &broker,
        &["produce", "events", "--format", "json"],
        input.as_bytes(),
    );

    let values = |from: &str, partition: Option<&str>| {
        let mut args = vec!["--from", from, "--template", "%p:%v "];
        if let Some(p) = partition {
            args.extend(["--partition", p]);
        }
        let mut full = vec!["consume", "events", "--until-end"];
        full.extend(args);
        let out = ok(&broker, &full, b"");
        let mut seen: Vec<String> = String::from_utf8(out)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        seen.sort();
        seen.join(" ")
    };
    assert_eq!(
        values("-2", None),
        "0:v8 0:v9 1:w0 1:w1",
        "-N counts from each end"
    );
    assert_eq!(
        values("-3", Some("1")),
        "1:w0 1:w1",
        "-N stops at the log start"
    );
    assert_eq!(values("+8", Some("0")), "0:v8 0:v9");
    assert_eq!(values("+8", Some("1")), "", "+N stops at the end");
    assert_eq!(values("2026-12-01T10:08:00Z", Some("0")), "0:v8 0:v9");
    assert_eq!(values("2026-12-01T11:07:30+01:00", Some("0")), "0:v8 0:v9");
    assert_eq!(values("@1796119680000", Some("0")), "0:v8 0:v9");
    assert_eq!(values("9", Some("0")), "0:v9");

    let beyond = cli_with_input(
        &broker,
        &["consume", "events", "--from", "5", "--until-end"],
        b"",
    );
    let stderr = String::from_utf8_lossy(&beyond.stderr);
    assert_eq!(beyond.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--from 5 is out of range for events/1: it holds offsets 0 to 2"),
        "{stderr}"
    );
    for bad in ["soon", "-x", "2026-12-01T10:00:00", "2026-02-30"] {
        let out = cli_with_input(&broker, &["consume", "events", "--from", bad], b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(&format!("--from {bad:?}")),
            "{bad}: {stderr}"
        );
    }

    stop_broker(server);
}

/// `message.timestamp.type=LogAppendTime`: the broker stamps each batch with its own clock, so
/// a record reads the time it was appended whatever the producer set; a CreateTime topic keeps
/// the producer's timestamp.
#[test]
fn log_append_time_topics_carry_the_brokers_time() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    ok(
        &broker,
        &[
            "topic",
            "create",
            "stamped",
            "--config",
            "message.timestamp.type=LogAppendTime",
        ],
        b"",
    );
    ok(&broker, &["topic", "create", "as-sent"], b"");
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now_ms();
    for topic in ["stamped", "as-sent"] {
        ok(
            &broker,
            &["produce", topic, "--format", "json"],
            b"{\"key\":\"k\",\"value\":\"v1\",\"timestamp\":1000}\n{\"value\":\"v2\",\"timestamp\":2000}\n",
        );
    }
    let after = now_ms();
    let stamped = json_lines(&consume_all(&broker, "stamped", &["--format", "json"]));
    assert_eq!(stamped.len(), 2);
    for record in &stamped {
        let at = record["timestamp"].as_i64().unwrap();
        assert!(
            before <= at && at <= after,
            "{record}: not within {before}..={after}"
        );
    }
    let as_sent = json_lines(&consume_all(&broker, "as-sent", &["--format", "json"]));
    let times: Vec<i64> = as_sent
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(times, [1000, 2000]);
    stop_broker(server);
}
