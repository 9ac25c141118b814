#!/usr/bin/env bash
# Many partitions on a 3-node cluster on this machine (issue 13, item 3): three `cairn serve`
# processes on loopback, TOPICS topics of PER_TOPIC partitions each with replication factor 3
# (1,000 partitions = 3,000 replicas by default). Measures, in one run:
#   - the time from the create calls to a leader for every partition;
#   - each node's CPU while idle (no client traffic) over IDLE_SECS, as % of one core;
#   - each node's resident memory growth per replica it holds;
#   - after SIGKILL of node 1, the time until every partition it led has a leader elsewhere.
#
# Usage, from the repository root after `cargo build --release`:
#   benches/cluster_partitions.sh
#   TOPICS=2 PER_TOPIC=50 benches/cluster_partitions.sh      # a smaller run
# Environment: BIN (default target/release/cairn), DATA (default /var/tmp/cairn-cluster),
# TOPICS (10), PER_TOPIC (100), IDLE_SECS (30), HEARTBEAT_MS / ELECTION_MS (the serve defaults
# when unset, e.g. ELECTION_MS=1000..2000).
set -euo pipefail

BIN=${BIN:-target/release/cairn}
DATA=${DATA:-/var/tmp/cairn-cluster}
TOPICS=${TOPICS:-10}
PER_TOPIC=${PER_TOPIC:-100}
IDLE_SECS=${IDLE_SECS:-30}
PEERS="1=127.0.0.1:17271,2=127.0.0.1:17272,3=127.0.0.1:17273"
TICK=$(getconf CLK_TCK)

[ -x "$BIN" ] || { echo "cluster_partitions.sh: no $BIN; run cargo build --release first" >&2; exit 2; }

declare -A PIDS
extra=()
[ -n "${HEARTBEAT_MS:-}" ] && extra+=(--raft-heartbeat-ms "$HEARTBEAT_MS")
[ -n "${ELECTION_MS:-}" ] && extra+=(--raft-election-timeout-ms "$ELECTION_MS")

start_node() {
  local n=$1
  "$BIN" serve --node-id "$n" --peers "$PEERS" --grpc-addr "127.0.0.1:1727$n" \
    --http-addr "127.0.0.1:1728$n" --data-dir "$DATA/n$n" "${extra[@]}" \
    >"$DATA/n$n.out" 2>"$DATA/n$n.log" &
  PIDS[$n]=$!
}
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

# Counts partitions of every topic that have a leader, asking node $1.
led_partitions() {
  local total=0
  for t in $(seq 1 "$TOPICS"); do
    local c
    c=$("$BIN" --broker "127.0.0.1:1727$1" topic describe "t$t" 2>/dev/null \
      | awk 'NR > 2 && $1 ~ /^[0-9]+$/ && $2 != "-1" {n++} END {print n + 0}')
    total=$((total + c))
  done
  echo "$total"
}

# Partitions whose leader is node $2, asking node $1.
led_by() {
  local total=0
  for t in $(seq 1 "$TOPICS"); do
    local c
    c=$("$BIN" --broker "127.0.0.1:1727$1" topic describe "t$t" 2>/dev/null \
      | awk -v n="$2" 'NR > 2 && $1 ~ /^[0-9]+$/ && $2 == n {c++} END {print c + 0}')
    total=$((total + c))
  done
  echo "$total"
}

rm -rf "$DATA"; mkdir -p "$DATA"
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do until grep -q '^cairn ready' "$DATA/n$n.out"; do sleep 0.05; done; done
for n in 1 2 3; do until grep -q 'cluster formed' "$DATA/n$n.log" 2>/dev/null; do sleep 0.1; done; done
sleep 1
declare -A RSS0
for n in 1 2 3; do RSS0[$n]=$(rss_kib "${PIDS[$n]}"); done

partitions=$((TOPICS * PER_TOPIC))
t0=$(now)
for t in $(seq 1 "$TOPICS"); do
  "$BIN" --broker 127.0.0.1:17271 topic create "t$t" --partitions "$PER_TOPIC" --replication-factor 3 >/dev/null
done
t_created=$(now)
while [ "$(led_partitions 1)" -lt "$partitions" ]; do sleep 0.2; done
t_led=$(now)
echo "partitions $partitions x 3 replicas: created in $(echo "$t_created - $t0" | bc) s, every leader elected after $(echo "$t_led - $t0" | bc) s"
sleep 5

declare -A C0
for n in 1 2 3; do C0[$n]=$(cpu_ticks "${PIDS[$n]}"); done
sleep "$IDLE_SECS"
for n in 1 2 3; do
  c1=$(cpu_ticks "${PIDS[$n]}")
  pct=$(echo "scale=2; ($c1 - ${C0[$n]}) * 100 / $TICK / $IDLE_SECS" | bc)
  rss=$(rss_kib "${PIDS[$n]}")
  per=$(echo "scale=1; ($rss - ${RSS0[$n]}) / $partitions" | bc)
  echo "node $n idle: ${pct}% of a core; RSS $((rss / 1024)) MiB, +${per} KiB per replica"
done

victim_led=$(led_by 2 1)
kill -9 "${PIDS[1]}"
t_kill=$(now)
while [ "$(led_by 2 1)" -gt 0 ] || [ "$(led_partitions 2)" -lt "$partitions" ]; do sleep 0.2; done
t_back=$(now)
echo "node 1 killed (it led $victim_led): every partition led again after $(echo "$t_back - $t_kill" | bc) s"
