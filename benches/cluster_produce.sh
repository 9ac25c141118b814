#!/usr/bin/env bash
# Produce throughput and latency with replication factor 3 and acks=all against replication
# factor 1, in the same run on the same three-node cluster (issue 13): three `cairn serve`
# processes on loopback, topic `rf1` (3 partitions, one copy each, spread over the nodes) and
# topic `rf3` (3 partitions, three copies), `cairn bench produce` against each in turn, ROUNDS
# times interleaved. All three nodes and the client share this machine's cores, so replication
# factor 3 also pays for its followers' CPU here, which separate machines would not.
#
# The bounds, measured in the same run after each round: every brokers' and client's CPU-second
# (from /proc and the bench's own report) against the machine's cores, and, with `fio`
# installed, the disk's write+fdatasync bandwidth with three writers at once (one per node).
# Replication factor 3 writes every byte three times to this one disk, so it can reach at most
# a third of that figure; where replication factor 1 is near the disk's limit, 0.5x is out of
# reach on one machine whatever the software does.
#
# With a --rate (RATE), each round also runs `cairn bench floor` for one copy and for three at
# the same shape: the ack latency this disk and loopback allow with no broker, Raft or gRPC,
# each partition's leader shipping a request to its followers, then writing and fsyncing it,
# acknowledged once a majority has it. It keeps one request in flight per partition, as the
# producer does at a rate the disk keeps up with (a batch leaves when the one ahead returns).
# Its rf3/rf1 p99 ratio is what the machine itself makes of a third copy; where its rf3 p99
# exceeds twice Cairn's rf1 p99, the 2x target is out of reach here for any implementation.
#
# Usage, from the repository root after `cargo build --release`:
#   benches/cluster_produce.sh
# Environment: BIN (target/release/cairn), DATA (/var/tmp/cairn-produce), ROUNDS (3),
# RECORDS (200000), SIZE (1024), PER_REQUEST (1000), IN_FLIGHT (5), RATE (0: as fast as taken).
set -euo pipefail

BIN=${BIN:-target/release/cairn}
DATA=${DATA:-/var/tmp/cairn-produce}
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-200000}
SIZE=${SIZE:-1024}
PER_REQUEST=${PER_REQUEST:-1000}
IN_FLIGHT=${IN_FLIGHT:-5}
RATE=${RATE:-0}
[ -x "$BIN" ] || { echo "cluster_produce.sh: no $BIN; run cargo build --release first" >&2; exit 2; }

. "$(dirname "$0")/three_nodes.sh"
start_three_nodes 1747 1748
for rf in 1 3; do
  "$BIN" --broker "$BROKERS" topic create "rf$rf" --partitions 3 --replication-factor "$rf" >/dev/null
done
sleep 3

cpu() { local t=0; for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
# Summed over the nodes' /metrics: partition elections won, leaderships moved back to their
# preferred replicas, and fsyncs that took longer than 50 ms, so that a run's stall can be told
# apart: a leadership change, or the disk. Prints "? ? ?" when a node does not answer or its
# page lacks a series, rather than a count that would read as none.
cluster_events() {
  local n e=0 m=0 slow=0 page counts
  for n in 1 2 3; do
    page=$(curl -sf "http://127.0.0.1:1748$n/metrics") || { echo "? ? ?"; return; }
    counts=$(echo "$page" | awk '
      $1 == "cairn_cluster_elections_total" {e += $2; seen_e = 1}
      $1 == "cairn_cluster_leader_balance_moves_total" {m += $2; seen_m = 1}
      $1 == "cairn_log_fsync_seconds_bucket{le=\"0.05\"}" {b = $2; seen_b = 1}
      $1 == "cairn_log_fsync_seconds_bucket{le=\"+Inf\"}" {t = $2}
      END {if (seen_e && seen_m && seen_b) print e, m, t - b; else print "?"}')
    [ "$counts" = "?" ] && { echo "? ? ?"; return; }
    read -r ne nm ns <<<"$counts"
    e=$((e + ne)); m=$((m + nm)); slow=$((slow + ns))
  done
  echo "$e $m $slow"
}
# The change between two counts from cluster_events, or "?" when either is unknown.
delta() { if [ "$1" = "?" ] || [ "$2" = "?" ]; then echo "?"; else echo $(($2 - $1)); fi; }
TICK=$(getconf CLK_TCK)
declare -A p99 floor
for round in $(seq 1 "$ROUNDS"); do
  for rf in 1 3; do
    # The scrapes bracket the CPU readings, so the brokers' answers to them are not counted.
    read -r e0 m0 s0 <<<"$(cluster_events)"
    c0=$(cpu)
    line=$("$BIN" --broker "$BROKERS" bench produce --topic "rf$rf" --records "$RECORDS" \
      --record-size "$SIZE" --records-per-request "$PER_REQUEST" --in-flight "$IN_FLIGHT" \
      --rate "$RATE" --acks all 2>&1 | tr '\n' ' ')
    c1=$(cpu)
    read -r e1 m1 s1 <<<"$(cluster_events)"
    echo "round $round rf$rf: brokers' CPU $(echo "scale=2; ($c1 - $c0) / $TICK" | bc) s," \
      "elections $(delta "$e0" "$e1"), leader moves $(delta "$m0" "$m1")," \
      "fsyncs over 50 ms $(delta "$s0" "$s1") | $line"
    p99[$rf]=$(echo "$line" | sed -n 's/.*ack latency ([^)]*): p50 [0-9.]* ms, p99 \([0-9.]*\) ms.*/\1/p')
  done
  if [ "$RATE" != 0 ]; then
    for rf in 1 3; do
      out=$("$BIN" bench floor --dir "$DATA" --replicas "$rf" --partitions 3 --rate "$RATE" \
        --records "$RECORDS" --record-size "$SIZE" --records-per-request "$PER_REQUEST" | tr '\n' ' ')
      floor[$rf]=$(echo "$out" | sed -n 's/.*record latency ([^)]*): p50 [0-9.]* ms, p99 \([0-9.]*\) ms.*/\1/p')
      echo "round $round floor rf$rf: $out"
    done
    echo "round $round p99: Cairn rf3/rf1 $(echo "scale=2; ${p99[3]} / ${p99[1]}" | bc)x;" \
      "the floor's rf3/rf1 $(echo "scale=2; ${floor[3]} / ${floor[1]}" | bc)x;" \
      "Cairn over its floor: rf1 $(echo "scale=2; ${p99[1]} / ${floor[1]}" | bc)x," \
      "rf3 $(echo "scale=2; ${p99[3]} / ${floor[3]}" | bc)x;" \
      "the floor's rf3 against twice Cairn's rf1: ${floor[3]} ms vs $(echo "scale=2; 2 * ${p99[1]}" | bc) ms"
  fi
  if command -v fio >/dev/null 2>&1; then
    bw=$(fio --name=disk-bound --directory="$DATA" --rw=write --bs=1M --size=256M --numjobs=3 \
      --fdatasync=1 --group_reporting --output-format=terse 2>/dev/null | awk -F';' '{print $48}')
    rm -f "$DATA"/disk-bound.*
    # Freeing fio's 768 MB holds every fsync on a discard-mounted disk for a few hundred ms:
    # let it pass before the next round's runs start.
    sleep 2
    echo "round $round disk: fio 1 MiB write+fdatasync, 3 writers: $((bw * 1024 / 1000000)) MB/s in all; rf3 writes each byte 3 times, so at most $((bw * 1024 / 3000000)) MB/s"
  else
    echo "round $round disk: fio not installed, no disk bound measured"
  fi
done
