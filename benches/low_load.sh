#!/usr/bin/env bash
# Issue 15's low-load target, against what the broker's stack alone allows, interleaved: each
# round runs `cairn bench rpc-floor` (one paced request at a time to an fsyncing server over
# loopback, in blocking threads, tokio tasks, and gRPC's shape over HTTP/2 with h2, no broker)
# and then a fresh single-node broker measured by `cairn bench produce --rate 200 --in-flight
# 1 --baseline-dir`, whose baseline gives the target (the same run's back-to-back 4 KiB
# write+fdatasync p50 + 0.3 ms). One line per round; ack and service p50 in ms, and ack p99
# (Cairn's against its target, the same run's 4 KiB fsync p99 + 2 ms), CPU per request in µs for
# both ends with the server's (the broker's) share in parentheses.
#
# Where even the h2 stack's ack p50 sits above the target, no gRPC-over-HTTP/2 implementation
# on tokio that writes and syncs the same bytes can meet it in that round; Cairn's distance
# above the h2 stack is its own work (hyper's server, its layers, the produce path, the
# producer).
#
# Usage, from the repository root after `cargo build --release`:
#   benches/low_load.sh
# Environment: BIN (target/release/cairn), DATA (/var/tmp/cairn-low-load), ROUNDS (5),
# RECORDS (2000), RATE (200). Uses ports 7470 and 7471, and python3 to read the reports.
set -euo pipefail
BIN=${BIN:-target/release/cairn}
DATA=${DATA:-/var/tmp/cairn-low-load}
ROUNDS=${ROUNDS:-5}
RECORDS=${RECORDS:-2000}
RATE=${RATE:-200}
[ -x "$BIN" ] || { echo "low_load.sh: no $BIN; run cargo build --release first" >&2; exit 2; }
for port in 7470 7471; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "low_load.sh: 127.0.0.1:$port is taken; stop what listens there first" >&2; exit 2
  fi
done
rm -rf "$DATA"; mkdir -p "$DATA"
PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; true' EXIT
for round in $(seq 1 "$ROUNDS"); do
  "$BIN" bench rpc-floor --dir "$DATA" --records "$RECORDS" --rate "$RATE" --format json >"$DATA/floor.json"
  rm -rf "$DATA/broker"; mkdir -p "$DATA/broker"
  "$BIN" serve --data-dir "$DATA/broker/data" --grpc-addr 127.0.0.1:7470 \
    --http-addr 127.0.0.1:7471 >"$DATA/broker/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do
    curl -sf http://127.0.0.1:7471/metrics >/dev/null && break
    kill -0 "$PID" 2>/dev/null || { echo "the broker exited; see $DATA/broker/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf http://127.0.0.1:7471/metrics >/dev/null \
    || { echo "the broker did not start within 30 s; see $DATA/broker/serve.log" >&2; exit 1; }
  "$BIN" bench produce --broker 127.0.0.1:7470 --topic low-load --records "$RECORDS" \
    --rate "$RATE" --in-flight 1 --broker-metrics http://127.0.0.1:7471/metrics \
    --baseline-dir "$DATA/broker" --format json >"$DATA/cairn.json" 2>"$DATA/produce.log" \
    || { echo "bench produce failed; its stderr:" >&2; tail -5 "$DATA/produce.log" >&2; exit 1; }
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  python3 - "$DATA/cairn.json" "$DATA/floor.json" "$round" <<'PY'
import json, sys
cairn, floor = (json.load(open(path)) for path in sys.argv[1:3])
round_ = sys.argv[3]
records = cairn["records"]
if cairn["failed"]:
    sys.exit(f"round {round_}: {cairn['failed']} records failed; the figures would mislead")
baseline, cpu = cairn["baseline"], cairn["cpu"]
if cpu["broker_seconds"] is None:
    sys.exit(f"round {round_}: no broker CPU: {cpu['broker_unknown_reason']}")
stacks = {run["stack"]: run for run in floor["runs"]}
def stack(name):
    run = stacks[name]
    return (f"{name} {run['latency_ms']['p50']:.3f}/{run['service_time_ms']['p50']:.3f}"
            f" p99 {run['latency_ms']['p99']:.3f}"
            f" (its fsync {run['write_and_fdatasync_ms']['p50']:.3f})"
            f" cpu {run['cpu_micros_per_request']:.0f}({run['server_cpu_micros_per_request']:.0f})")
both = (cpu["bench_seconds"] + cpu["broker_seconds"]) * 1e6 / records
print(f"round {round_}: target {baseline['ack_target_ms']['p50']:.3f}"
      f" (4 KiB fsync {baseline['fsync_4k_latency_ms']['p50']:.3f})"
      f" | cairn {cairn['latency_ms']['p50']:.3f}/{cairn['service_time_ms']['p50']:.3f}"
      f" p99 {cairn['latency_ms']['p99']:.3f} (target {baseline['ack_target_ms']['p99']:.3f})"
      f" cpu {both:.0f}({cpu['broker_seconds'] * 1e6 / records:.0f}) | "
      + " | ".join(stack(name) for name in ("threads", "tokio", "h2")))
PY
done
rm -rf "$DATA"
