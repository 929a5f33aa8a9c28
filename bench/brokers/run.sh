#!/usr/bin/env bash
# Broker throughput (issue 17): publications/s and deliveries/s with 2 and 3 server nodes on
# one Redis, three client-side-sharded Redis, a 3-master Redis Cluster (classic and sharded
# PUB/SUB) and NATS; the reference (centrifuge-ref -engine redis) beside on the topologies it
# has (one Redis, the cluster with classic PUB/SUB).
#
# Every broker is started once on free ports (redis-server, a cluster via redis-cli --cluster
# create, nats-server); every measurement starts fresh server nodes, runs `rotor-bench nodes`
# (subscribers spread over all nodes, publisher on node 0's API) and stops the nodes by PID.
# Rounds alternate servers and topologies; one line per run goes to $OUT/results.txt.
#
#   bash bench/brokers/run.sh                       # from /work/main; binaries built beforehand
#   ROUNDS=1 DURATION=3s bash bench/brokers/run.sh  # a quick check of the setup
#   TOPOS="redis1 shard3" SERVERS=rotor NODES="3" bash bench/brokers/run.sh
#   BROKER_CPU_PCT=5 TOPOS="redis1 shard3 cluster-sharded" bash bench/brokers/run.sh  # brokers capped
#   BROKER_CPUS=1 NODE_CPUS=0 bash bench/brokers/run.sh   # brokers on core 1, nodes + load on core 0
#
# Binaries (built by the caller; see README.md, "Reproducing"):
#   ROTOR (default /work/target-bench/release/rotor), RB (rotor-bench, same dir),
#   REF (target/peers/bin/centrifuge-ref, `bash ../shared/peers/build.sh`).
set -u

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROTOR="${ROTOR:-/work/target-bench/release/rotor}"
RB="${RB:-/work/target-bench/release/rotor-bench}"
REF="${REF:-$ROOT/target/peers/bin/centrifuge-ref}"
OUT="${OUT:-$ROOT/bench/brokers}"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-6s}"
CONNS="${CONNS:-1000}"            # subscribers over all nodes
SUBS="${SUBS:-2}"                 # subscribers per channel (each on another node)
PUBLISHERS="${PUBLISHERS:-64}"     # concurrent HTTP API publishers on node 0
BATCH="${BATCH:-10}"              # publish commands per HTTP request
PAYLOAD="${PAYLOAD:-64}"          # bytes of publication data
WINDOW="${WINDOW:-20}"            # max mode: publications in flight per subscriber
NODES="${NODES:-2 3}"
TOPOS="${TOPOS:-redis1 shard3 cluster cluster-sharded nats}"
SERVERS="${SERVERS:-ref rotor}"
# How Rotor is given the cluster's three seeds: "one" = one element "a,b,c" (the 2.x form: one
# element is one cluster; builds since e07ec95 read several elements as several clusters, i.e.
# client-side shards), "list" = ["a","b","c"] (what builds before e07ec95 read as one cluster).
CLUSTER_FORM="${CLUSTER_FORM:-one}"
# Rotor's sharded PUB/SUB switch on the cluster (JSON members added to the node config).
SHARDED_KEYS="${SHARDED_KEYS:-\"redis_sharded_pub_sub_partitions\":128}"

RUN="$(mktemp -d /tmp/bench-brokers.XXXXXX)"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
LOGS="${LOGS:-$OUT/logs}"  # per-run rotor-bench and node logs (not committed)
mkdir -p "$LOGS"
BROKER_PIDS=()
NODE_PIDS=()

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A free port P whose cluster bus port P+10000 is free too (and below 65536).
free_cluster_port() {
  python3 -c '
import socket, random
for _ in range(1000):
    p = random.randint(20000, 50000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass
'
}

wait_port() { # port [tries of 50 ms]
  local i
  for ((i = 0; i < ${2:-200}; i++)); do
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
  stop_pids "${BROKER_PIDS[@]}"
  local cg
  for cg in "${CGROUPS[@]}"; do rmdir "$cg" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# BROKER_CPU_PCT=N: every broker process (each redis-server, nats-server) gets at most N % of
# one core, each in a cgroup of its own (cgroup v1 cpu controller, as root): a stand-in for
# brokers on machines of their own that are the bottleneck, which two shared cores cannot be.
BROKER_CPU_PCT="${BROKER_CPU_PCT:-}"
CGROUPS=()
cap_cpu() { # pid name
  [ -n "$BROKER_CPU_PCT" ] || return 0
  local cg="/sys/fs/cgroup/cpu/rotor-bench-$2"
  # The shortest period for the share (1 ms of CPU per period), so that throttling stalls a
  # broker for as little as it can: a long stall would make the run latency-bound instead.
  mkdir -p "$cg" && echo $((100000 / BROKER_CPU_PCT)) >"$cg/cpu.cfs_period_us" \
    && echo 1000 >"$cg/cpu.cfs_quota_us" && echo "$1" >"$cg/cgroup.procs" \
    || { log "cannot cap $2 at $BROKER_CPU_PCT %"; exit 1; }
  CGROUPS+=("$cg")
}

# BROKER_CPUS / NODE_CPUS (taskset lists, e.g. 1 and 0): the brokers on some cores, the server
# nodes and the load generator on others, a stand-in for brokers on hosts of their own. Unset:
# everything shares every core.
BROKER_CPUS="${BROKER_CPUS:-}"
NODE_CPUS="${NODE_CPUS:-}"
# (Command prefixes, not functions, so that $! is the started process itself: taskset execs it.)
ON_BROKER_CPUS=()
[ -z "$BROKER_CPUS" ] || ON_BROKER_CPUS=(taskset -c "$BROKER_CPUS")
ON_NODE_CPUS=()
[ -z "$NODE_CPUS" ] || ON_NODE_CPUS=(taskset -c "$NODE_CPUS")

redis_start() { # port [extra args...] -> pid in $!
  local port="$1"; shift
  mkdir -p "$RUN/redis-$port"
  "${ON_BROKER_CPUS[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$RUN/redis-$port" \
    --logfile "$RUN/redis-$port/log" "$@" </dev/null >/dev/null 2>&1 &
  BROKER_PIDS+=("$!")
  cap_cpu "$!" "redis-$port"
  wait_port "$port" || { log "redis-server on $port did not start"; exit 1; }
}

# ------------------------------------------------------------------ brokers
R1=$(free_port); redis_start "$R1"; R1_PID=$!
S1=$(free_port); redis_start "$S1"; S1_PID=$!
S2=$(free_port); redis_start "$S2"; S2_PID=$!
S3=$(free_port); redis_start "$S3"; S3_PID=$!
C1=$(free_cluster_port); redis_start "$C1" --cluster-enabled yes --cluster-config-file "nodes.conf"; C1_PID=$!
C2=$(free_cluster_port); redis_start "$C2" --cluster-enabled yes --cluster-config-file "nodes.conf"; C2_PID=$!
C3=$(free_cluster_port); redis_start "$C3" --cluster-enabled yes --cluster-config-file "nodes.conf"; C3_PID=$!
redis-cli --cluster create "127.0.0.1:$C1" "127.0.0.1:$C2" "127.0.0.1:$C3" --cluster-replicas 0 \
  --cluster-yes >"$RUN/cluster-create.log" 2>&1 || { cat "$RUN/cluster-create.log"; exit 1; }
for _ in $(seq 100); do
  ok=0
  for p in $C1 $C2 $C3; do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && ok=$((ok + 1))
  done
  [ "$ok" = 3 ] && break
  sleep 0.1
done
[ "$ok" = 3 ] || { log "cluster not ok"; exit 1; }
NATS_PORT=""
if command -v nats-server >/dev/null; then
  NATS_PORT=$(free_port)
  "${ON_BROKER_CPUS[@]}" nats-server -a 127.0.0.1 -p "$NATS_PORT" </dev/null >"$RUN/nats.log" 2>&1 &
  NATS_PID=$!
  BROKER_PIDS+=("$NATS_PID")
  cap_cpu "$NATS_PID" nats
  wait_port "$NATS_PORT" || { log "nats-server did not start"; exit 1; }
fi
log "brokers: redis $R1; shards $S1 $S2 $S3; cluster $C1 $C2 $C3; nats ${NATS_PORT:-none}"

# Broker processes whose CPU is reported for a topology (rotor-bench --watch).
broker_watch() {
  case "$1" in
    redis1) echo "redis=$R1_PID" ;;
    shard3) echo "redis1=$S1_PID,redis2=$S2_PID,redis3=$S3_PID" ;;
    cluster | cluster-sharded) echo "redis1=$C1_PID,redis2=$C2_PID,redis3=$C3_PID" ;;
    nats) echo "nats=$NATS_PID" ;;
  esac
}

# Does the server have this topology? (the reference: one shard, classic PUB/SUB only)
supported() { # server topo
  case "$1:$2" in
    ref:redis1 | ref:cluster) return 0 ;;
    ref:*) return 1 ;;
    rotor:nats) [ -n "$NATS_PORT" ] ;;
    *) return 0 ;;
  esac
}

cluster_addrs() {
  if [ "$CLUSTER_FORM" = list ]; then
    printf '["127.0.0.1:%s","127.0.0.1:%s","127.0.0.1:%s"]' "$C1" "$C2" "$C3"
  else
    printf '["127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s"]' "$C1" "$C2" "$C3"
  fi
}

rotor_broker_keys() { # topo
  case "$1" in
    redis1) printf '"engine":"redis","redis_address":"127.0.0.1:%s"' "$R1" ;;
    shard3) printf '"engine":"redis","redis_address":["127.0.0.1:%s","127.0.0.1:%s","127.0.0.1:%s"]' "$S1" "$S2" "$S3" ;;
    cluster) printf '"engine":"redis","redis_cluster_addrs":%s' "$(cluster_addrs)" ;;
    cluster-sharded) printf '"engine":"redis","redis_cluster_addrs":%s,%s' "$(cluster_addrs)" "$SHARDED_KEYS" ;;
    nats) printf '"broker":"nats","nats_url":"nats://127.0.0.1:%s"' "$NATS_PORT" ;;
  esac
}

start_node() { # server topo index port logfile -> pid in $!
  local s="$1" t="$2" i="$3" port="$4" lf="$5"
  if [ "$s" = ref ]; then
    local redis=(-redis_addr "127.0.0.1:$R1")
    [ "$t" = cluster ] && redis=(-redis_cluster_addrs "127.0.0.1:$C1,127.0.0.1:$C2,127.0.0.1:$C3")
    "${ON_NODE_CPUS[@]}" "$REF" -addr "127.0.0.1:$port" -engine redis "${redis[@]}" -history_size 0 -history_lifetime 0 \
      -recover=false -presence=false -join_leave=false -log_level error </dev/null >"$lf" 2>&1 &
  else
    local cfg="$RUN/rotor-$t-$i.json"
    printf '{"address":"127.0.0.1","port":%s,%s,"token_hmac_secret_key":"secret","api_key":"api","log_level":"error","name":"node-%s"}\n' \
      "$port" "$(rotor_broker_keys "$t")" "$i" >"$cfg"
    "${ON_NODE_CPUS[@]}" "$ROTOR" -c "$cfg" </dev/null >"$lf" 2>&1 &
  fi
}

# One measurement: fresh nodes, rotor-bench nodes, nodes stopped.
measure() { # server topo nodes round
  local s="$1" t="$2" n="$3" r="$4" i port ports=() ws="" watch
  NODE_PIDS=()
  for ((i = 0; i < n; i++)); do
    port=$(free_port)
    start_node "$s" "$t" "$i" "$port" "$LOGS/$s-$t-${n}n-r$r-node$i.log"
    NODE_PIDS+=("$!")
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    wait_port "$port" || { log "$s node on $port did not start"; }
  done
  sleep 1 # subscribe connections to the broker
  for port in "${ports[@]}"; do ws="${ws:+$ws,}ws://127.0.0.1:$port/connection/websocket"; done
  watch="$(broker_watch "$t")"
  for ((i = 1; i < n; i++)); do watch="$watch,node$i=${NODE_PIDS[$i]}"; done
  local lf="$LOGS/$s-$t-${n}n-r$r.log"
  if [ "$t" = cluster-sharded ] || [ "$t" = cluster ]; then
    # 4 s in: the subscribers are on and publishing runs.
    (
      sleep 4
      # Where the nodes' subscriptions live: shard channels (SSUBSCRIBE) or classic ones, per master.
      log "$s $t ${n}n: shard channels per master $(for p in $C1 $C2 $C3; do printf '%s ' "$(redis-cli -p "$p" pubsub shardchannels | grep -c .)"; done)classic channels per master $(for p in $C1 $C2 $C3; do printf '%s ' "$(redis-cli -p "$p" pubsub channels | grep -c .)"; done)"
    ) &
  fi
  "${ON_NODE_CPUS[@]}" "$RB" nodes --ws "$ws" --api "http://127.0.0.1:${ports[0]}/api" --procs "$n" \
    --server-pid "${NODE_PIDS[0]}" --watch "$watch" --label "$s-$t-${n}n-r$r" \
    --channel "bk$r$t$n" --conns "$CONNS" --subs-per-channel "$SUBS" --publishers "$PUBLISHERS" \
    --batch "$BATCH" --payload "$PAYLOAD" --window "$WINDOW" --mode max --duration "$DURATION" \
    --drain 5s </dev/null >"$lf" 2>&1
  local res
  res="$(grep '^RESULT ' "$lf" | tail -1 | sed 's/^RESULT //')"
  [ -n "$res" ] || res="error=no_result"
  echo "server=$s round=$r tag=$t-${n}n topo=$t broker_cpu_pct=${BROKER_CPU_PCT:-none} broker_cpus=${BROKER_CPUS:-all} node_cpus=${NODE_CPUS:-all} $res" >>"$RESULTS"
  log "$s $t ${n}n r$r: $(grep -o 'pub_per_s=[^ ]*\|deliv_per_s=[^ ]*\|lost=[^ ]*\|error=[^ ]*' <<<"$res" | tr '\n' ' ')"
  for ((i = 0; i < n; i++)); do
    kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || log "$s node $i exited early: $(tail -3 "$LOGS/$s-$t-${n}n-r$r-node$i.log")"
  done
  stop_pids "${NODE_PIDS[@]}"
  NODE_PIDS=()
}

{
  echo "# $(date -u +%FT%TZ) checkout $(git -C "$ROOT" rev-parse --short HEAD) rotor=$ROTOR built from ${ROTOR_COMMIT:-?}"
  echo "# cluster_form=$CLUSTER_FORM sharded_keys=$SHARDED_KEYS"
  echo "# conns=$CONNS subs_per_channel=$SUBS publishers=$PUBLISHERS batch=$BATCH payload=$PAYLOAD window=$WINDOW duration=$DURATION"
} >>"$RESULTS"

for ((r = 1; r <= ROUNDS; r++)); do
  # Alternate the order of the servers, and of the topologies, from round to round.
  servers=($SERVERS)
  topos=($TOPOS)
  if ((r % 2 == 0)); then
    servers=($(printf '%s\n' "${servers[@]}" | tac))
    topos=($(printf '%s\n' "${topos[@]}" | tac))
  fi
  for n in $NODES; do
    for t in "${topos[@]}"; do
      for s in "${servers[@]}"; do
        supported "$s" "$t" || continue
        measure "$s" "$t" "$n" "$r"
      done
    done
  done
done
log "done: $RESULTS"
