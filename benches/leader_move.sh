#!/usr/bin/env bash
# What a leadership change costs producers, and how soon a new topic takes writes, on a
# three-node cluster on loopback (`cairn serve` x 3, as benches/cluster_produce.sh runs them).
#
# 1. New topics: `cairn topic create` (3 partitions, replication factor 3), then at once
#    `cairn produce` of 30 lines, TOPICS times; prints the time each produce took after the
#    create returned (the partition it wrote to had to have a leader first).
# 2. Leadership moves: the `moves` topic (3 partitions, replication factor 3) is filled with
#    FILL_RECORDS 1 KiB records, then MOVES times `cairn bench produce` runs at 20,000 records/s
#    (64 per request, 5 in flight, acks=all, idempotent) and, 1.5 s in, partition 0's replicas
#    are reordered (`cairn topic reassign`) and `cairn cluster balance-leaders` moves its
#    leadership to the new first replica. Prints each run's ack latency: its max is how long the
#    move held the records sent while it ran. The same run without a move is the baseline.
#
# Usage, from the repository root after `cargo build --release`:
#   benches/leader_move.sh
# Environment: BIN (target/release/cairn), DATA (/var/tmp/cairn-leader-move), TOPICS (6),
# MOVES (4), FILL_RECORDS (300000).
set -euo pipefail

BIN=${BIN:-target/release/cairn}
DATA=${DATA:-/var/tmp/cairn-leader-move}
TOPICS=${TOPICS:-6}
MOVES=${MOVES:-4}
FILL_RECORDS=${FILL_RECORDS:-300000}
[ -x "$BIN" ] || { echo "leader_move.sh: no $BIN; run cargo build --release first" >&2; exit 2; }

. "$(dirname "$0")/three_nodes.sh"
start_three_nodes 1757 1758

ms() { echo $(( $(date +%s%N) / 1000000 )); }
for i in $(seq 1 "$TOPICS"); do
  "$BIN" --broker "$BROKERS" topic create "new$i" --partitions 3 --replication-factor 3 >/dev/null
  t0=$(ms)
  seq 1 30 | "$BIN" --broker "$BROKERS" produce "new$i" >/dev/null
  echo "new topic $i: first produce done $(( $(ms) - t0 )) ms after the create returned"
done

"$BIN" --broker "$BROKERS" topic create moves --partitions 3 --replication-factor 3 >/dev/null
"$BIN" --broker "$BROKERS" bench produce --topic moves --records "$FILL_RECORDS" \
  --records-per-request 1000 --acks all | grep -o 'produced.*MB/s'

ack() { grep -o 'ack latency.*' "$1" | head -1 | sed 's/.*buffer): //'; }
run_load() {
  "$BIN" --broker "$BROKERS" bench produce --topic moves --records 60000 \
    --records-per-request 64 --in-flight 5 --rate 20000 --acks all >"$DATA/load.out" 2>&1
}
run_load
echo "no move: ack $(ack "$DATA/load.out")"
orders=(2,3,1 3,1,2 1,2,3)
for i in $(seq 1 "$MOVES"); do
  run_load &
  load=$!
  sleep 1.5
  "$BIN" --broker "$BROKERS" topic reassign moves --partition 0 \
    --replicas "${orders[$(( (i - 1) % 3 ))]}" >/dev/null
  sleep 0.3
  moved=$("$BIN" --broker "$BROKERS" cluster balance-leaders | head -1)
  wait "$load"
  echo "move $i ($moved): ack $(ack "$DATA/load.out")"
done
