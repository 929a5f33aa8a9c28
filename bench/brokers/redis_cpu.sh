#!/usr/bin/env bash
# Redis CPU per publication (issue 17 follow-up): how much CPU one redis-server spends per
# publication with each server, and what reaches it (commands, reads, writes per publication).
#
# One redis-server on a free port for the whole run. Every measurement starts NODES fresh
# server nodes on it, runs `rotor-bench nodes` (the load of run.sh: subscribers on every node,
# 64 HTTP publishers on node 0, 10 publish commands per request), reads Redis's INFO cpu,
# stats and commandstats right before and right after, and stops the nodes by PID. With
# HIST=1 every channel keeps history (100 entries, 300 s: the publish script with XADD);
# with HIST=0 none (the broadcast path). Servers alternate from round to round.
#
#   bash bench/brokers/redis_cpu.sh \
#     SERVERS="ref:target/peers/bin/centrifuge-ref rotor:/work/target-x/release/rotor" HIST="0 1"
#
# One line per run goes to $OUT (default bench/brokers/redis_cpu.txt):
#   server hist pubs redis_cpu_us_per_pub pub_per_s calls_per_pub reads_per_pub commands...
set -u
for a in "$@"; do export "${a?}"; done

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
RB="${RB:-/work/target-redispipe/release/rotor-bench}"
SERVERS="${SERVERS:-ref:$ROOT/target/peers/bin/centrifuge-ref rotor:/work/target-redispipe/release/rotor}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-6s}"
HIST="${HIST:-0 1}"
NODES="${NODES:-2}"
CONNS="${CONNS:-1000}"
PUBLISHERS="${PUBLISHERS:-64}"
BATCH="${BATCH:-10}"
PAYLOAD="${PAYLOAD:-64}"
OUT="${OUT:-$ROOT/bench/brokers/redis_cpu.txt}"
RUN="$(mktemp -d /tmp/bench-redis-cpu.XXXXXX)"
REDIS_PID=""
NODE_PIDS=()

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
  local i
  for ((i = 0; i < 200; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}
cleanup() {
  stop_pids "${NODE_PIDS[@]}"
  [ -n "$REDIS_PID" ] && stop_pids "$REDIS_PID"
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$RUN" \
  --logfile "$RUN/redis.log" </dev/null >/dev/null 2>&1 &
REDIS_PID=$!
wait_port "$RP" || { log "redis-server did not start"; exit 1; }

# key=value lines of everything counted: cpu (seconds), stats, calls per command.
snapshot() {
  redis-cli -p "$RP" INFO everything | tr -d '\r' | awk -F'[:,=]' '
    /^used_cpu_(sys|user):/ { print $1 "=" $2 }
    /^total_(reads|writes)_processed:/ { print $1 "=" $2 }
    /^total_commands_processed:/ { print $1 "=" $2 }
    /^cmdstat_/ { print $1 "=" $3 }'
}

start_node() { # name bin hist index port log
  local name="$1" bin="$2" hist="$3" i="$4" port="$5" lf="$6"
  if [ "$name" = ref ]; then
    local h=(-history_size 0 -history_lifetime 0 -recover=false)
    [ "$hist" = 1 ] && h=(-history_size 100 -history_lifetime 300 -recover=true -redis_streams)
    "$bin" -addr "127.0.0.1:$port" -engine redis -redis_addr "127.0.0.1:$RP" "${h[@]}" \
      -presence=false -join_leave=false -log_level error </dev/null >"$lf" 2>&1 &
  else
    local h=""
    [ "$hist" = 1 ] && h=',"history_size":100,"history_lifetime":300,"history_recover":true'
    printf '{"address":"127.0.0.1","port":%s,"engine":"redis","redis_address":"127.0.0.1:%s","token_hmac_secret_key":"secret","api_key":"api","log_level":"error","name":"node-%s"%s}\n' \
      "$port" "$RP" "$i" "$h" >"$RUN/$name-$i.json"
    "$bin" -c "$RUN/$name-$i.json" </dev/null >"$lf" 2>&1 &
  fi
}

measure() { # name bin hist round
  local name="$1" bin="$2" hist="$3" r="$4" i port ports=() ws=""
  NODE_PIDS=()
  for ((i = 0; i < NODES; i++)); do
    port=$(free_port)
    start_node "$name" "$bin" "$hist" "$i" "$port" "$RUN/$name-$i.log"
    NODE_PIDS+=("$!")
    ports+=("$port")
  done
  for port in "${ports[@]}"; do wait_port "$port" || log "$name node on $port did not start"; done
  sleep 1
  for port in "${ports[@]}"; do ws="${ws:+$ws,}ws://127.0.0.1:$port/connection/websocket"; done
  snapshot >"$RUN/before"
  "$RB" nodes --ws "$ws" --api "http://127.0.0.1:${ports[0]}/api" --procs "$NODES" \
    --server-pid "${NODE_PIDS[0]}" --label "$name-h$hist-r$r" --channel "rc$r$name$hist" \
    --conns "$CONNS" --subs-per-channel 2 --publishers "$PUBLISHERS" --batch "$BATCH" \
    --payload "$PAYLOAD" --window 20 --mode max --duration "$DURATION" --drain 5s \
    </dev/null >"$RUN/rb.log" 2>&1
  snapshot >"$RUN/after"
  stop_pids "${NODE_PIDS[@]}"
  NODE_PIDS=()
  local res
  res="$(grep '^RESULT ' "$RUN/rb.log" | tail -1 | sed 's/^RESULT //')"
  [ -n "$res" ] || { log "$name: no result: $(tail -3 "$RUN/rb.log")"; return; }
  python3 - "$RUN/before" "$RUN/after" "$name" "$hist" "$r" "$res" >>"$OUT" <<'EOF'
import sys
def load(p):
    d = {}
    for line in open(p):
        k, _, v = line.strip().partition("=")
        if k:
            d[k] = float(v)
    return d
b, a = load(sys.argv[1]), load(sys.argv[2])
name, hist, rnd, res = sys.argv[3:7]
kv = dict(x.split("=", 1) for x in res.split() if "=" in x)
d = {k: a[k] - b.get(k, 0) for k in a}
cpu = d["used_cpu_sys"] + d["used_cpu_user"]
cmds = {k[8:]: int(v) for k, v in d.items() if k.startswith("cmdstat_") and v > 0}
# Publications answered (Redis's own call counts include the PUBLISH run inside a script).
pubs = int(kv.get("published", 0))
if pubs == 0:
    sys.exit(0)
print(f"server={name} hist={hist} round={rnd} pubs={pubs} "
      f"redis_cpu_us_per_pub={cpu * 1e6 / pubs:.2f} pub_per_s={kv.get('pub_per_s', '?')} "
      f"lost={kv.get('lost', '?')} "
      f"reads_per_pub={d['total_reads_processed'] / pubs:.3f} "
      f"writes_per_pub={d['total_writes_processed'] / pubs:.3f} "
      f"commands_per_pub={d['total_commands_processed'] / pubs:.3f} "
      + " ".join(f"{k}={v}" for k, v in sorted(cmds.items())))
EOF
  log "$(tail -1 "$OUT")"
}

echo "# $(date -u +%FT%TZ) checkout $(git -C "$ROOT" rev-parse --short HEAD) servers=$SERVERS nodes=$NODES conns=$CONNS publishers=$PUBLISHERS batch=$BATCH payload=$PAYLOAD duration=$DURATION" >>"$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
  list=($SERVERS)
  ((r % 2 == 0)) && list=($(printf '%s\n' "${list[@]}" | tac))
  for h in $HIST; do
    for s in "${list[@]}"; do
      measure "${s%%:*}" "${s#*:}" "$h" "$r"
    done
  done
done
