#!/usr/bin/env bash
# Start-up time of `cairn serve` against the data it holds, after an unclean stop (kill -9) and
# after a clean one (SIGTERM), each from a cold page cache, with this run's own bound: reading
# every segment file once, cold (what start-up cost before producer snapshots, when opening a
# partition read its whole log).
#
# Usage (as root, for drop_caches), from the repository root after `cargo build --release`:
#   benches/startup.sh                      # 10 GB over 100 partitions in /var/tmp/cairn-startup
#   GB=1 PARTITIONS=10 benches/startup.sh   # a smaller run
# Environment: BIN (default target/release/cairn), DATA, GB, PARTITIONS, ROUNDS (default 3).
# Prints one line per measurement; BENCHMARKS.md records the figures.
set -euo pipefail

BIN=${BIN:-target/release/cairn}
DATA=${DATA:-/var/tmp/cairn-startup}
GB=${GB:-10}
PARTITIONS=${PARTITIONS:-100}
ROUNDS=${ROUNDS:-3}
GRPC=127.0.0.1:17170
HTTP=127.0.0.1:17171

[ "$(id -u)" = 0 ] || { echo "startup.sh: needs root to drop the page cache" >&2; exit 2; }
[ -x "$BIN" ] || { echo "startup.sh: no $BIN; run cargo build --release first" >&2; exit 2; }

cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Starts the broker and writes "SECONDS CPU_SECONDS" to $TIMES once its ready line is out;
# leaves its pid in $PID. (Not in a subshell: $PID must survive.)
TIMES=$(mktemp)
start_timed() {
  local out; out=$(mktemp)
  local t0; t0=$(date +%s.%N)
  "$BIN" serve --data-dir "$DATA" --grpc-addr "$GRPC" --http-addr "$HTTP" >"$out" 2>/dev/null &
  PID=$!
  until grep -q '^cairn ready' "$out"; do
    kill -0 "$PID" 2>/dev/null || { echo "startup.sh: the broker exited" >&2; exit 1; }
    sleep 0.005
  done
  local t1; t1=$(date +%s.%N)
  local ticks; ticks=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$ticks / $(getconf CLK_TCK)" | bc -l)" >"$TIMES"
  rm -f "$out"
}

stop() { kill "-$1" "$PID"; wait "$PID" 2>/dev/null || true; }

rm -rf "$DATA"
echo "== filling $DATA with $GB GB over $PARTITIONS partitions (1 KiB records, idempotent producer)"
start_timed
records=$(( GB * 1000 * 1000 * 1000 / 1024 ))
"$BIN" bench produce --broker "$GRPC" --topic startup --partitions "$PARTITIONS" \
  --flush-policy os --records "$records" --records-per-request 256 --format json >/dev/null
stop TERM
echo "data: $(du -sb "$DATA" | cut -f1) bytes in $(find "$DATA" -name '*.log' | wc -l) segment files"

for round in $(seq "$ROUNDS"); do
  cold
  t0=$(date +%s.%N)
  find "$DATA" -name '*.log' -print0 | xargs -0 cat >/dev/null
  t1=$(date +%s.%N)
  echo "round $round bound: read every segment once, cold: $(echo "$t1 - $t0" | bc -l) s"

  start_timed
  stop KILL
  cold
  start_timed; read -r secs cpu <"$TIMES"
  echo "round $round unclean (after kill -9), cold: ready in $secs s, broker CPU $cpu s"
  stop TERM

  cold
  start_timed; read -r secs cpu <"$TIMES"
  echo "round $round clean (after SIGTERM), cold: ready in $secs s, broker CPU $cpu s"
  stop TERM
done
