#!/usr/bin/env bash
# The brokers alone on this machine: PUBLISH/s that redis-benchmark gets from one Redis, and from
# three Redis at once (one redis-benchmark each), with no server node in between. Shows how far
# the brokers are from being the bottleneck of run.sh's figures, and what three single-threaded
# masters can add on two cores. Each Redis has one SUBSCRIBE client on the channel (a node).
#
#   bash bench/brokers/ceiling.sh      # ROUNDS (3), N (publishes per benchmark, 300000), P (pipeline, 16)
set -u
ROUNDS="${ROUNDS:-3}"
N="${N:-300000}"
P="${P:-16}"
RUN="$(mktemp -d /tmp/bench-ceiling.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
PORTS=()
for i in 1 2 3; do
  p=$(free_port)
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$RUN" \
    --logfile "$RUN/redis-$p.log" </dev/null >/dev/null 2>&1 &
  PIDS+=("$!")
  PORTS+=("$p")
done
sleep 0.5
for p in "${PORTS[@]}"; do
  redis-cli -p "$p" subscribe ch >/dev/null 2>&1 &
  PIDS+=("$!")
done
sleep 0.3

bench() { # port -> requests per second
  redis-benchmark -p "$1" -n "$N" -P "$P" -c 8 -q PUBLISH ch 0123456789012345678901234567890123456789012345678901234567890123 \
    2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
}

echo "# $(date -u +%FT%TZ) redis-benchmark PUBLISH, 64-byte messages, one subscriber per Redis, -P $P -c 8, $N per benchmark"
for ((r = 1; r <= ROUNDS; r++)); do
  one=$(bench "${PORTS[0]}"); one=${one%.*}
  for p in "${PORTS[@]}"; do bench "$p" >"$RUN/out-$p" & done
  wait_for=$(jobs -p | grep -v -F "$(printf '%s\n' "${PIDS[@]}")")
  for j in $wait_for; do wait "$j"; done
  three=0
  for p in "${PORTS[@]}"; do three=$(python3 -c "print(round($three + float('$(cat "$RUN/out-$p")' or 0)))"); done
  echo "round=$r one_redis_publish_per_s=$one three_redis_publish_per_s=$three ratio=$(python3 -c "print(round($three / $one, 2))")"
done
