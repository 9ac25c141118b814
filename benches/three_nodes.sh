# Sourced by the cluster benches (cluster_produce.sh, leader_move.sh): starts a three-node
# cluster of `cairn serve` on loopback over a fresh $DATA and waits until it has formed.
#   start_three_nodes GRPC HTTP   # node n listens on 127.0.0.1:${GRPC}n (gRPC), :${HTTP}n (HTTP)
# Needs $BIN and $DATA. Sets PIDS (the nodes, killed when the script exits) and BROKERS (the
# three gRPC addresses, for --broker).

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_three_nodes() {
  local grpc=$1 http=$2 n peers="1=127.0.0.1:${1}1,2=127.0.0.1:${1}2,3=127.0.0.1:${1}3"
  BROKERS="127.0.0.1:${grpc}1,127.0.0.1:${grpc}2,127.0.0.1:${grpc}3"
  rm -rf "$DATA"; mkdir -p "$DATA"
  for n in 1 2 3; do
    "$BIN" serve --node-id "$n" --peers "$peers" --grpc-addr "127.0.0.1:${grpc}$n" \
      --http-addr "127.0.0.1:${http}$n" --data-dir "$DATA/n$n" >"$DATA/n$n.out" 2>"$DATA/n$n.log" &
    PIDS+=($!)
  done
  # A node that cannot start (its port taken, say) exits: say so instead of waiting forever.
  for n in 1 2 3; do
    until grep -q 'cluster formed' "$DATA/n$n.log" 2>/dev/null; do
      kill -0 "${PIDS[$((n - 1))]}" 2>/dev/null \
        || { echo "node $n exited; its log, $DATA/n$n.log, ends:" >&2; tail -5 "$DATA/n$n.log" >&2; exit 1; }
      sleep 0.1
    done
  done
}
