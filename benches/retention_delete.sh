#!/usr/bin/env bash
# What a retention pass deleting whole segments does to the acks of writes going on beside it,
# on one node: topic `old` is filled with SEGMENTS full segments (1 GiB each, the default), then,
# while `cairn bench produce` writes topic `live` durably at RATE records/s, `old` is given
# retention.bytes=1 so that the next retention pass (every second here) deletes them all.
# Each round also runs the same produce with no deletion beside it, so the two are compared in
# the same run. On a filesystem mounted with online `discard` (as this machine's / is, and as
# some clouds advise), freeing a file's blocks sends the device one discard per extent, and
# every fsync on the disk waits behind them.
#
# With HOW=delete, topic `old` is deleted instead, which frees the same files.
#
# Usage, from the repository root after `cargo build --release`:
#   benches/retention_delete.sh
# Environment: BIN (target/release/cairn), DATA (/var/tmp/cairn-retention), ROUNDS (2),
# SEGMENTS (2), RATE (20000), RECORDS (300000: 15 s at 20,000/s), HOW (retention or delete).
# Uses ports 7480 and 7481.
# Each run's whole report, with its second-by-second p99, is kept in $DATA-runs.
set -euo pipefail
BIN=${BIN:-target/release/cairn}
DATA=${DATA:-/var/tmp/cairn-retention}
ROUNDS=${ROUNDS:-2}
SEGMENTS=${SEGMENTS:-2}
RATE=${RATE:-20000}
RECORDS=${RECORDS:-300000}
HOW=${HOW:-retention}
[ -x "$BIN" ] || { echo "retention_delete.sh: no $BIN; run cargo build --release first" >&2; exit 2; }
BROKER=127.0.0.1:7480
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true; }
trap cleanup EXIT
grep -q ' / .*discard' /proc/mounts && echo "/ is mounted with online discard"

summary() {
  sed -n -e 's/^ack latency.*buffer): //p' \
    -e 's/^CPU per GB.*: bench [0-9.]* CPU-s (\([0-9.]*\) s); broker [0-9.]* CPU-s per GB (\([0-9.]*\) s.*/| CPU-s: bench \1, broker \2/p' \
     | tr '\n' ' '
}
for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$DATA"; mkdir -p "$DATA"
  "$BIN" serve --data-dir "$DATA/node" --grpc-addr "$BROKER" --http-addr 127.0.0.1:7481 \
    --log-retention-check-interval-ms 1000 >"$DATA/out" 2>"$DATA/log" &
  PID=$!
  until "$BIN" --broker "$BROKER" health >/dev/null 2>&1; do sleep 0.2; done
  "$BIN" --broker "$BROKER" topic create old --partitions 1 >/dev/null
  "$BIN" --broker "$BROKER" topic create live --partitions 3 >/dev/null
  # Whole segments and a little more, so that SEGMENTS of them are sealed.
  fill=$(( (SEGMENTS * 1024 + 64) * 1024 ))
  "$BIN" --broker "$BROKER" bench produce --topic old --records "$fill" --record-size 1024 \
    --records-per-request 1000 >/dev/null
  sleep 2
  for what in quiet deleting; do
    alter=
    if [ "$what" = deleting ]; then
      if [ "$HOW" = retention ]; then
        ( sleep 5; "$BIN" --broker "$BROKER" topic alter old --config retention.bytes=1 >/dev/null ) &
      else
        ( sleep 5; "$BIN" --broker "$BROKER" topic delete old >/dev/null ) &
      fi
      alter=$!
    fi
    line=$("$BIN" --broker "$BROKER" bench produce --topic live --records "$RECORDS" \
      --broker-metrics http://127.0.0.1:7481/metrics \
      --record-size 1024 --records-per-request 64 --in-flight 5 --rate "$RATE" --acks all 2>&1)
    [ -n "$alter" ] && wait "$alter"
    mkdir -p "$DATA-runs"; echo "$line" >"$DATA-runs/round$round-$what.txt"
    echo "round $round $what: ack $(echo "$line" | summary)"
  done
  grep -o 'deleted segments.*\|topic deleted.*' "$DATA/log" | sed "s/^/round $round broker: /" | head -3
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
