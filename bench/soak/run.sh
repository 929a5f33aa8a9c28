#!/usr/bin/env bash
# Soak: a Rotor server under connect churn, private subscriptions, publishing, presence and
# history for DURATION, on the memory and/or the Redis engine; the server's RSS, open file
# descriptors, async tasks and queued bytes are sampled every INTERVAL seconds into a CSV,
# charted, and checked (RSS after warm-up within 10 %, nothing growing without bound).
#
#   bench/soak/run.sh                      # 30 min memory, then 30 min Redis
#   SMOKE=1 bench/soak/run.sh              # 2 min each
#   ENGINES=redis DURATION=600 bench/soak/run.sh
#
# Environment: ROTOR, RB (binaries; default target/release/{rotor,rotor-bench}), ENGINES
# ("memory redis"), DURATION (seconds, 1800; SMOKE=1: 120), INTERVAL (10), WARMUP (seconds,
# default DURATION/6, at least 30), OUT (bench/soak), TAG (file name suffix; default the
# engine and the mode), CHURN_RATE (cycles/s, 100), CHURN_WORKERS (16), SUBS (500),
# PUB_RATE (publications/s, 200), POLL_HZ (presence+history API calls per second, 10),
# COMMIT (the build's commit, for the chart title; default HEAD).
# Not part of CI. Every process it starts is stopped by PID on exit.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROTOR=${ROTOR:-$ROOT/target/release/rotor}
RB=${RB:-$ROOT/target/release/rotor-bench}
OUT=${OUT:-$ROOT/bench/soak}
SMOKE=${SMOKE:-0}
ENGINES=${ENGINES:-memory redis}
if [ "$SMOKE" = 1 ]; then DURATION=${DURATION:-120}; else DURATION=${DURATION:-1800}; fi
INTERVAL=${INTERVAL:-10}
WARMUP=${WARMUP:-$(( DURATION / 6 > 30 ? DURATION / 6 : 30 ))}
CHURN_RATE=${CHURN_RATE:-100}
CHURN_WORKERS=${CHURN_WORKERS:-16}
SUBS=${SUBS:-500}
PUB_RATE=${PUB_RATE:-200}
POLL_HZ=${POLL_HZ:-10}
COMMIT=${COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD)}
mkdir -p "$OUT"
for b in "$ROTOR" "$RB"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
wait_port() { # $1 port $2 pid
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
metric() { # $1 scrape text  $2 exact series name (with labels): its value, or empty
  awk -v k="$2" '$1 == k { print $2; exit }' <<<"$1"
}

soak_one() { # $1 engine
  local engine=$1 tag=${TAG:-$1$([ "$SMOKE" = 1 ] && echo -smoke)}
  local csv="$OUT/$tag.csv" work="$OUT/work-$tag"
  rm -rf "$work"; mkdir -p "$work"
  local port; port=$(free_port)
  local extra="" rport="" redis_pid=""
  if [ "$engine" = redis ]; then
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$work" --logfile "$work/redis.log" </dev/null >/dev/null 2>&1 &
    redis_pid=$!; PIDS+=("$redis_pid")
    wait_port "$rport" "$redis_pid" || { log "redis-server did not start"; return 1; }
    extra="\"redis_address\": \"127.0.0.1:$rport\","
  fi
  cat >"$work/rotor.json" <<CONF
{
  "address": "127.0.0.1", "port": $port, "engine": "$engine", $extra
  "token_hmac_secret_key": "secret", "api_key": "api",
  "history_size": 100, "history_lifetime": 300, "history_recover": true,
  "presence": true, "join_leave": true, "prometheus": true, "log_level": "error"
}
CONF
  "$ROTOR" -c "$work/rotor.json" </dev/null >"$work/rotor.log" 2>&1 &
  local spid=$!; PIDS+=("$spid")
  wait_port "$port" "$spid" || { log "rotor did not start; see $work/rotor.log"; return 1; }
  local ws="ws://127.0.0.1:$port/connection/websocket" api="http://127.0.0.1:$port/api"
  log "$tag: rotor pid $spid port $port${rport:+, redis-server pid $redis_pid port $rport}; ${DURATION}s, sample every ${INTERVAL}s, warm-up ${WARMUP}s"

  # Steady subscribers (v2) on one channel with history and presence, publications through
  # the HTTP API at PUB_RATE; connect churn (v1) with a private `$` channel per cycle, its
  # subscription token minted for the client ID the server assigned; presence, presence
  # stats and history of the busy channel read through the API at POLL_HZ.
  "$RB" fanout --ws "$ws" --api "$api" --proto v2 --conns "$SUBS" --mode rate \
    --rate "$PUB_RATE" --payload 200 --duration "${DURATION}s" --channel soak \
    --server-pid "$spid" --label "soak-$tag" </dev/null >"$work/fanout.out" 2>"$work/fanout.err" &
  local fan_pid=$!; PIDS+=("$fan_pid")
  "$RB" churn --ws "$ws" --api "$api" --proto v1 --workers "$CHURN_WORKERS" \
    --cycle-rate "$CHURN_RATE" --src-ips 50 --duration "${DURATION}s" --channel soakp \
    --server-pid "$spid" --label "soak-$tag" </dev/null >"$work/churn.out" 2>"$work/churn.err" &
  local churn_pid=$!; PIDS+=("$churn_pid")
  (
    end=$(( $(date +%s) + DURATION ))
    n=0 bad=0 pause=$(python3 -c "print(3/$POLL_HZ)")
    while [ "$(date +%s)" -lt "$end" ]; do
      for m in presence presence_stats history; do
        body="{\"method\":\"$m\",\"params\":{\"channel\":\"soak\"$([ $m = history ] && echo ',"limit":100')}}"
        r=$(curl -s -m 5 -H 'Authorization: apikey api' -d "$body" "$api") || r=""
        n=$((n + 1))
        case "$r" in *'"result"'*) ;; *) bad=$((bad + 1)) ;; esac
      done
      sleep "$pause"
    done
    echo "api_calls=$n api_bad=$bad" >"$work/poll.out"
  ) &
  local poll_pid=$!; PIDS+=("$poll_pid")

  echo "t_s,rss_kb,hwm_kb,fds,threads,tasks,clients,channels,subscriptions,queue_bytes_sum,queue_bytes_max,disconnects_3008,cpu_s,redis_used_kb" >"$csv"
  local t0; t0=$(date +%s)
  local next=0
  while kill -0 "$fan_pid" 2>/dev/null || kill -0 "$churn_pid" 2>/dev/null; do
    local t=$(( $(date +%s) - t0 ))
    if [ "$t" -ge "$next" ]; then
      local st rss hwm thr fds scrape cpu rused=""
      st=$(cat "/proc/$spid/status" 2>/dev/null) || break
      rss=$(awk '/^VmRSS:/ {print $2}' <<<"$st")
      hwm=$(awk '/^VmHWM:/ {print $2}' <<<"$st")
      thr=$(awk '/^Threads:/ {print $2}' <<<"$st")
      fds=$(ls "/proc/$spid/fd" 2>/dev/null | wc -l)
      cpu=$(awk '{ r = substr($0, index($0, ")") + 2); split(r, f, " "); printf "%.2f", (f[12] + f[13]) / 100 }' "/proc/$spid/stat")
      scrape=$(curl -s -m 5 "http://127.0.0.1:$port/metrics")
      if [ -n "$rport" ]; then
        rused=$(redis-cli -p "$rport" info memory 2>/dev/null | awk -F: '/^used_memory:/ { printf "%d", $2 / 1024 }')
      fi
      echo "$t,$rss,$hwm,$fds,$thr,$(metric "$scrape" rotor_runtime_alive_tasks),$(metric "$scrape" centrifugo_node_num_clients),$(metric "$scrape" centrifugo_node_num_channels),$(metric "$scrape" centrifugo_node_num_subscriptions),$(metric "$scrape" rotor_client_queue_bytes_sum),$(metric "$scrape" 'rotor_client_queue_bytes{quantile="1"}'),$(metric "$scrape" 'centrifugo_client_num_server_disconnects{code="3008"}'),$cpu,$rused" >>"$csv"
      next=$(( next + INTERVAL ))
    fi
    sleep 1
  done
  wait "$fan_pid" "$churn_pid" "$poll_pid" 2>/dev/null
  # After the load: one more sample once the churn has gone (what is left over).
  sleep 3
  local scrape; scrape=$(curl -s -m 5 "http://127.0.0.1:$port/metrics")
  local after_tasks after_fds after_clients
  after_tasks=$(metric "$scrape" rotor_runtime_alive_tasks)
  after_fds=$(ls "/proc/$spid/fd" 2>/dev/null | wc -l)
  after_clients=$(metric "$scrape" centrifugo_node_num_clients)
  cleanup
  local fan churn poll
  fan=$(grep '^RESULT' "$work/fanout.out" | tail -1)
  churn=$(grep '^RESULT' "$work/churn.out" | tail -1)
  poll=$(cat "$work/poll.out" 2>/dev/null)
  python3 "$ROOT/bench/soak/verdict.py" "$csv" "$WARMUP" \
    "idle_tasks=$after_tasks idle_fds=$after_fds idle_clients=$after_clients $poll" \
    "${fan#RESULT }" "${churn#RESULT }" | tee "$OUT/$tag.summary"
  "$RB" soak-chart "$csv" --out "$OUT/$tag.png" --warmup "$WARMUP" \
    --title "Rotor soak, $engine engine, $(( DURATION / 60 )) min ($COMMIT)" \
    --columns "rss_kb:1024:RSS MB,fds:1:open fds,tasks:1:async tasks,queue_bytes_max:1024:max queued KB per conn,clients:1:clients" \
    || log "chart failed"
}

status=0
for e in $ENGINES; do
  soak_one "$e" || status=1
done
exit $status
