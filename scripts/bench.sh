#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md: Rotor against the reference server (the Go centrifuge
# library, ../shared/peers/centrifuge-ref), side by side on this machine, servers alternating.
#
#   scripts/bench.sh              # build, then all parts below (about an hour with ROUNDS=3)
#   QUICK=1 scripts/bench.sh      # short runs, one round: checks the setup, figures are rough
#
# Parts (PARTS, default all):
#   compare    ../shared/peers/bench/compare.sh: the neutral Go loadgen against both servers
#              (fan-out 1k/5k at saturation, rate at 1k, idle 10k/19k, churn, loopback floor)
#   latency    loadgen `rate` with -conns 100 (the latency target: <= 100 subscribers per
#              publication, so the load generator is not what is measured), at each of
#              LAT_RATES publications/s: from both servers idling to past the reference's limit
#   breakdown  the latency run again under tcpdump (when tcpdump is there and we may capture):
#              scripts/latency_breakdown.py splits loadgen's latency into its own publisher
#              delay, the server's fan-out and the wire (short runs, not the figures of record)
#   rb         rotor-bench's scenarios against both servers (fan-out vs subscriber count, fixed-rate
#              latency vs subscriber count, channels, idle vs connections, churn, join), plus v2
#              runs against Rotor (the reference speaks only v1)
#   proxy      Rotor only (issue 12): churn with HS256 tokens against the same cycles through the
#              connect and subscribe proxies, and rpc round trips through the rpc proxy with 1 and
#              100 clients; the backend is `rotor-bench backend`, a process of its own. With
#              BASE_ROTOR=<rotor binary built before the proxy work>, also fan-out and churn with
#              no proxy configured on both builds, alternating. Not in the default PARTS; its
#              tables go to $BENCH_DIR/proxy/ and $BENCH_DIR/proxy-base/
#   tokens     Rotor only (issue 13): churn with HS256, RS256, ES256 (static PEM keys) and EdDSA
#              and RS256 through a JWKS endpoint (`rotor-bench jwks`, fetched once, then cached),
#              alternating within each round, a fresh server per run. Keys from
#              `rotor-bench token-keys`. Not in the default PARTS; tables go to $BENCH_DIR/tokens/
#   transports Issue 14: Rotor's fan-out (1,000 subscribers, max mode), idle (1,000 connections)
#              and emulation round trip (publish over /emulation, own publication back) over
#              WebSocket, SSE and HTTP-streaming (protocol v2), alternating within each round; and
#              SockJS (xhr-streaming, websocket sub-transport, raw WebSocket alongside) against the
#              reference's SockJS, servers alternating (protocol v1). Not in the default PARTS;
#              tables go to $BENCH_DIR/transports/ (ratios to WebSocket) and
#              $BENCH_DIR/transports/sockjs/ (ratios to the reference)
#   grpc-api   Issue 15: `rotor-bench api-publish`, publications through the gRPC server API (one
#              HTTP/2 channel) against `POST /api/publish` (one keep-alive HTTP/1.1 connection:
#              16 callers queue on it), 1 and GA_CALLERS (16) concurrent callers, fan-out to
#              GA_CONNS (1000) WebSocket subscribers; http-pool (a connection per caller) as a side
#              figure; with GA_NOFAN=1 also the same calls with 1 subscriber (the API path alone).
#              HTTP and gRPC alternate within each round, a fresh server per run. Not in the
#              default PARTS; raw lines and paired ratios (gRPC / HTTP per round) go to
#              $BENCH_DIR/grpc-api/
#   delta      Issue 16: `rotor-bench delta`, DL_CONNS (1000) v2 subscribers on a namespace with
#              history, force_positioning and allowed_delta_types ["fossil"], asking for Fossil
#              deltas (--delta on) or not (off), DL_DOC (2048) byte documents with a few fields
#              changing, published with "delta":true: JSON at saturation and at DL_RATE (20)
#              publications/s, Protobuf at saturation; off and on alternate within each round, a
#              fresh server per run. Not in the default PARTS; raw lines and paired ratios (on /
#              off per round: bytes, deliveries/s, CPU per delivery, latency) go to
#              $BENCH_DIR/delta/
# Then `rotor-bench report` writes $BENCH_DIR/tables.md and the PNG charts; raw results and the
# compare.sh table are copied to $BENCH_DIR too.
#
# Environment:
#   ROUNDS=3  DURATION=10  PARTS="compare latency rb"  QUICK=0  SKIP_BUILD=0
#   LAT_RATES="200 1000 2000 2500 3000 3500"  (publications/s to 100 subscribers; LAT_SECS=6 each
#   except 200, which runs DURATION: the run of record since the first session)
#   PEERS=<repo>/../shared/peers   OUT_DIR=target/bench/run-<timestamp>   BENCH_DIR=bench
#   BASE_PORT=18500  BENCH_ROTOR=target/release/rotor (the Rotor binary under test)
#   BASE_ROTOR=  (part proxy: the build to compare "no proxy configured" against)
#   PX_PACES=    (part proxy: also run both churn rows paced at each of these cycles/s)
# Both servers and the load generators share this machine's cores: run it on a quiet machine
# (nothing else compiling) and compare medians, not single runs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  ROUNDS="${ROUNDS:-1}"; DURATION="${DURATION:-4}"
else
  ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-10}"
fi
PARTS="${PARTS:-compare latency breakdown rb redis}"
PEERS="${PEERS:-$ROOT/../shared/peers}"
OUT_DIR="${OUT_DIR:-$ROOT/target/bench/run-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT_DIR" && OUT_DIR="$(cd "$OUT_DIR" && pwd)"   # absolute: redis-server chdirs to it
BENCH_DIR="${BENCH_DIR:-$ROOT/bench}"
BASE_PORT="${BASE_PORT:-18500}"
PEERS_OUT="${PEERS_OUT:-$ROOT/target/peers}"
ROTOR="${BENCH_ROTOR:-$ROOT/target/release/rotor}"   # the server under test
RB="$ROOT/target/release/rotor-bench"
REF="$PEERS_OUT/bin/centrifuge-ref"
LOADGEN="$PEERS_OUT/bin/loadgen"
mkdir -p "$OUT_DIR" "$BENCH_DIR"
RES="$OUT_DIR/results.txt"
: >>"$RES"

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT_DIR/bench.log"; }

# ---------------------------------------------------------------- build
# Parts proxy, tokens, grpc-api and delta run Rotor only: the peers are not needed for them alone.
NEED_PEERS=1; [ -z "$(echo " $PARTS " | sed 's/ proxy / /g; s/ tokens / /g; s/ grpc-api / /g; s/ delta / /g' | tr -d ' ')" ] && NEED_PEERS=0
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "building release rotor and rotor-bench (fat LTO: slow), and the peers"
  cargo build --release -p rotor-server -p rotor-bench || exit 1
  [ "$NEED_PEERS" = 0 ] || PEERS_OUT="$PEERS_OUT" bash "$PEERS/build.sh" || exit 1
fi
for b in "$ROTOR" "$RB" $([ "$NEED_PEERS" = 0 ] || echo "$REF $LOADGEN"); do
  [ -x "$b" ] || { echo "missing $b (run without SKIP_BUILD=1)" >&2; exit 1; }
done

{
  echo "# scripts/bench.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(hostname) cores=$(nproc) ulimit_n=$(ulimit -n)"
  echo "# $(grep -m1 'model name' /proc/cpuinfo) ; rotor $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty')"
  echo "# ROUNDS=$ROUNDS DURATION=$DURATION QUICK=$QUICK PARTS=$PARTS loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$OUT_DIR/bench.log" >>"$RES"

# ---------------------------------------------------------------- servers
SERVER_PID=""
PORT=""
start_server() { # $1 ref|rotor  $2 join_leave true|false  $3 logfile
  local name="$1" jl="$2" logf="$3"
  PORT=$((BASE_PORT + $([ "$name" = ref ] && echo 0 || echo 1)))
  if [ "$name" = ref ]; then
    "$REF" -addr "127.0.0.1:$PORT" -log_level error -presence=false -join_leave="$jl" </dev/null >"$logf" 2>&1 &
  else
    local conf="$OUT_DIR/rotor-$jl.json"
    cat >"$conf" <<EOF
{
  "address": "127.0.0.1",
  "port": $PORT,
  "engine": "memory",
  "token_hmac_secret_key": "secret",
  "api_key": "api",
  "history_size": 100,
  "history_lifetime": 300,
  "history_recover": true,
  "presence": false,
  "join_leave": $jl,
  "publish": true,
  "log_level": "error"
}
EOF
    "$ROTOR" -c "$conf" </dev/null >"$logf" 2>&1 &
  fi
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    kill -0 "$SERVER_PID" 2>/dev/null || { log "$name exited at start; see $logf"; SERVER_PID=""; return 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then sleep 0.3; return 0; fi
    sleep 0.1
  done
  log "$name did not listen on $PORT within 20 s"; stop_server; return 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
trap stop_server EXIT INT TERM

summary() { # pick the headline keys of a RESULT line
  sed 's/^/ /' | grep -oE ' (ok|deliv_per_s|deliv_per_cpu_s|msgs_per_frame|p50_ms|p99_ms|lost|dup|reorder|kb_per_conn|cpu_us_per_conn_s|churn_per_s|cycles_per_cpu_s|failed|all_in_s|joins|dropped|error)=[^ ]*' | tr -d '\n'
}

# record <run log> <fields put before the result> <error when there is none> [extra keys to log]
# Appends the run's last RESULT line (or the error) to results.txt and logs its headline.
record() {
  local line
  line=$(grep '^RESULT' "$1" | tail -1)
  [ -n "$line" ] || line="RESULT error=$3"
  echo "$2 ${line#RESULT }" >>"$RES"
  log "$2: $(echo "$line" | summary)${4:+ $(echo "$line" | grep -oE " $4=[^ ]*" | tr -d '\n')}"
}

# ---------------------------------------------------------------- part: compare.sh
if [[ " $PARTS " == *" compare "* ]]; then
  log "part compare: $PEERS/bench/compare.sh (ROUNDS=$ROUNDS DURATION=$DURATION)"
  if [ "$QUICK" = 1 ]; then export CHURN_SECS="${CHURN_SECS:-8}"; fi
  ROUNDS="$ROUNDS" DURATION="$DURATION" PEERS_OUT="$PEERS_OUT" OUT_DIR="$OUT_DIR/compare" \
    BASE_PORT=$((BASE_PORT + 10)) \
    bash "$PEERS/bench/compare.sh" \
    ref="$REF -addr 127.0.0.1:@PORT@ -log_level error -presence=false -join_leave=false" \
    rotor="$ROTOR -c @CONFIG@" 2>&1 | tee "$OUT_DIR/compare.out"
  cp "$OUT_DIR/compare/table.md" "$BENCH_DIR/compare-table.md" 2>/dev/null
  cp "$OUT_DIR/compare/results.txt" "$BENCH_DIR/compare-results.txt" 2>/dev/null
fi

# ---------------------------------------------------------------- part: loadgen rate, 100 subscribers
if [[ " $PARTS " == *" latency "* ]]; then
  LAT_RATES="${LAT_RATES:-$([ "$QUICK" = 1 ] && echo "200 3000" || echo "200 1000 2000 2500 3000 3500")}"
  LAT_SECS="${LAT_SECS:-$([ "$QUICK" = 1 ] && echo 3 || echo 6)}"
  log "part latency: loadgen -mode rate -conns 100 at $LAT_RATES publications/s, both servers"
  for r in $(seq 1 "$ROUNDS"); do
    for rate in $LAT_RATES; do
      # 200/s (20 k deliveries/s) keeps its tag and length: the run of record since session one.
      if [ "$rate" = 200 ]; then tag="loadgen-rate100"; secs="$DURATION"; else tag="loadgen-rate100-$rate"; secs="$LAT_SECS"; fi
      for s in ref rotor; do
        start_server "$s" false "$OUT_DIR/server-$s-$tag-r$r.log" || continue
        timeout -k 10 $((secs + 60)) "$LOADGEN" -ws "ws://127.0.0.1:$PORT/connection/websocket" \
          -api "http://127.0.0.1:$PORT/api" -server-pid "$SERVER_PID" -label "$s-$tag-r$r" -channel "lat$r" \
          -mode rate -conns 100 -rate "$rate" -publishers 2 -duration "${secs}s" -data-bytes 100 -drain 10s \
          </dev/null >"$OUT_DIR/$s-$tag-r$r.log" 2>&1
        record "$OUT_DIR/$s-$tag-r$r.log" "server=$s round=$r tag=$tag scenario=loadgen-rate" loadgen_failed
        stop_server
        sleep 1
      done
    done
  done
fi

# ---------------------------------------------------------------- part: latency breakdown
# The latency target's run, 4 s, under `tcpdump -i lo`: every publication's marker is seen in
# the POST and in each delivery, so the capture splits the end-to-end figure (see the script).
if [[ " $PARTS " == *" breakdown "* ]] && ! command -v tcpdump >/dev/null; then
  log "tcpdump missing: skipping part breakdown (apt-get install tcpdump)"
  PARTS="${PARTS/breakdown/}"
fi
if [[ " $PARTS " == *" breakdown "* ]]; then
  log "part breakdown: loadgen rate -conns 100 under tcpdump, both servers"
  for r in $(seq 1 "$ROUNDS"); do
    for s in ref rotor; do
      tag="rate100-breakdown"
      start_server "$s" false "$OUT_DIR/server-$s-$tag-r$r.log" || continue
      cap="$OUT_DIR/$s-$tag-r$r.pcap"
      tcpdump -i lo -s 512 -B 16384 -w "$cap" "tcp port $PORT" >/dev/null 2>"$OUT_DIR/$s-$tag-r$r.tcpdump" &
      tpid=$!
      sleep 1
      timeout -k 10 60 "$LOADGEN" -ws "ws://127.0.0.1:$PORT/connection/websocket" \
        -api "http://127.0.0.1:$PORT/api" -server-pid "$SERVER_PID" -label "$s-$tag-r$r" -channel "bd$r" \
        -mode rate -conns 100 -rate 200 -publishers 2 -duration 4s -data-bytes 100 -drain 3s \
        </dev/null >"$OUT_DIR/$s-$tag-r$r.log" 2>&1
      sleep 0.5
      kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null
      split=$(tcpdump -r "$cap" -tt -n -A 2>/dev/null | python3 "$ROOT/scripts/latency_breakdown.py" "$PORT")
      lg=$(grep '^RESULT' "$OUT_DIR/$s-$tag-r$r.log" | tail -1 | grep -oE ' (p50_ms|p99_ms|lost)=[^ ]*' | tr -d '\n')
      echo "server=$s round=$r tag=$tag scenario=latency-breakdown $split$lg" >>"$RES"
      log "$s $tag r$r: $split$lg"
      rm -f "$cap"
      stop_server
      sleep 1
    done
  done
fi

# ---------------------------------------------------------------- part: rotor-bench
# Each entry: TAG|SERVERS (both or rotor)|JOIN_LEAVE|TIMEOUT_S|rotor-bench arguments
D="${DURATION}s"
if [ "$QUICK" = 1 ]; then
  MATRIX="
fanout-max-100|both|false|60|fanout --mode max --conns 100 --publishers 4 --duration $D
fanout-max-1000|both|false|60|fanout --mode max --conns 1000 --publishers 4 --duration $D
fanout-max-5000|both|false|90|fanout --mode max --conns 5000 --publishers 4 --duration $D
fanout-rate-100|both|false|60|fanout --mode rate --conns 100 --rate 200 --publishers 2 --duration $D
fanout-rate-1000|both|false|60|fanout --mode rate --conns 1000 --rate 20 --publishers 2 --duration $D
fanout-rate-5000|both|false|90|fanout --mode rate --conns 5000 --rate 4 --publishers 2 --duration $D
channels-5000|both|false|90|channels --mode max --conns 5000 --publishers 4 --batch 50 --duration $D
channels-rate-5000|both|false|90|channels --mode rate --rate 10000 --conns 5000 --publishers 4 --batch 50 --duration $D
idle-1000|both|false|120|idle --conns 1000 --hold 5s --procs 2 --src-ips 100
idle-10000|both|false|300|idle --conns 10000 --hold 5s --procs 2 --src-ips 100
churn|both|false|60|churn --workers 32 --duration $D --src-ips 200
join-1000|both|true|400|join --conns 1000 --timeout 300s
join-5000|rotor|true|400|join --conns 5000 --timeout 300s
fanout-max-1000-v2|rotor|false|60|fanout --proto v2 --mode max --conns 1000 --publishers 4 --duration $D
churn-v2|rotor|false|60|churn --proto v2 --workers 32 --duration $D --src-ips 200
"
else
  MATRIX="
fanout-max-100|both|false|90|fanout --mode max --conns 100 --publishers 4 --duration $D
fanout-max-1000|both|false|90|fanout --mode max --conns 1000 --publishers 4 --duration $D
fanout-max-2000|both|false|120|fanout --mode max --conns 2000 --publishers 4 --duration $D
fanout-max-5000|both|false|180|fanout --mode max --conns 5000 --publishers 4 --duration $D
fanout-max-10000|both|false|240|fanout --mode max --conns 10000 --publishers 4 --duration $D
fanout-rate-100|both|false|90|fanout --mode rate --conns 100 --rate 200 --publishers 2 --duration $D
fanout-rate-1000|both|false|90|fanout --mode rate --conns 1000 --rate 20 --publishers 2 --duration $D
fanout-rate-5000|both|false|180|fanout --mode rate --conns 5000 --rate 4 --publishers 2 --duration $D
channels-10000|both|false|240|channels --mode max --conns 10000 --publishers 4 --batch 50 --duration $D
channels-rate-10000|both|false|240|channels --mode rate --rate 20000 --conns 10000 --publishers 4 --batch 50 --duration $D
idle-1000|both|false|180|idle --conns 1000 --hold 10s --procs 2 --src-ips 100
idle-5000|both|false|240|idle --conns 5000 --hold 10s --procs 2 --src-ips 100
idle-10000|both|false|300|idle --conns 10000 --hold 10s --procs 2 --src-ips 100
idle-19000|both|false|600|idle --conns 19000 --hold 30s --procs 2 --src-ips 100
churn|both|false|120|churn --workers 32 --duration 20s --src-ips 200
join-1000|both|true|400|join --conns 1000 --timeout 300s
join-5000|both|true|400|join --conns 5000 --timeout 300s
fanout-max-1000-v2|rotor|false|90|fanout --proto v2 --mode max --conns 1000 --publishers 4 --duration $D
fanout-max-5000-v2|rotor|false|180|fanout --proto v2 --mode max --conns 5000 --publishers 4 --duration $D
fanout-rate-100-v2|rotor|false|90|fanout --proto v2 --mode rate --conns 100 --rate 200 --publishers 2 --duration $D
idle-10000-v2|rotor|false|300|idle --proto v2 --conns 10000 --hold 10s --procs 2 --src-ips 100
churn-v2|rotor|false|120|churn --proto v2 --workers 32 --duration 20s --src-ips 200
join-5000-v2|rotor|true|400|join --proto v2 --conns 5000 --timeout 300s
"
fi

if [[ " $PARTS " == *" rb "* ]]; then
  log "part rb: rotor-bench scenarios, $ROUNDS round(s)"
  for r in $(seq 1 "$ROUNDS"); do
    while IFS='|' read -r tag servers jl tmo args; do
      [ -n "$tag" ] || continue
      # The reference needs minutes for a 5,000-subscriber join: run it in the first round only.
      if [ "$tag" = join-5000 ] && [ "$r" -gt 1 ]; then servers=rotor; fi
      list="ref rotor"; [ "$servers" = rotor ] && list="rotor"
      for s in $list; do
        start_server "$s" "$jl" "$OUT_DIR/server-$s-$tag-r$r.log" || {
          echo "server=$s round=$r tag=$tag error=server_start" >>"$RES"; continue; }
        # shellcheck disable=SC2086
        timeout -k 10 "$tmo" "$RB" $args --channel "rb$r" --label "$s-$tag-r$r" \
          --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
          --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/$s-$tag-r$r.log" 2>"$OUT_DIR/$s-$tag-r$r.err"
        rc=$?
        record "$OUT_DIR/$s-$tag-r$r.log" "server=$s round=$r tag=$tag" "rotor_bench_rc_$rc"
        stop_server
        sleep 1
      done
    done <<<"$MATRIX"
  done
fi

# ---------------------------------------------------------------- part: redis (two nodes, one Redis)
# Issue 5's benchmark: publications through node A's API, 1,000 subscribers on node B, both
# nodes on one redis-server; loadgen max mode. Same shape for the reference (-engine redis).
if [[ " $PARTS " == *" redis "* ]] && ! command -v redis-server >/dev/null; then
  log "redis-server missing: skipping part redis"
  PARTS="${PARTS/redis/}"
fi
if [[ " $PARTS " == *" redis "* ]]; then
  log "part redis: two nodes on one redis-server, loadgen max, 1000 subscribers on node B"
  RPORT=$((BASE_PORT + 40))
  redis-server --port "$RPORT" --save '' --appendonly no --daemonize yes \
    --dir "$OUT_DIR" --logfile "$OUT_DIR/redis.log" --pidfile "$OUT_DIR/redis.pid"
  sleep 0.5
  for r in $(seq 1 "$ROUNDS"); do
    for s in ref rotor; do
      pids=()
      for n in a b; do
        p=$((BASE_PORT + 41 + $([ "$n" = a ] && echo 0 || echo 1)))
        if [ "$s" = ref ]; then
          "$REF" -addr "127.0.0.1:$p" -engine redis -redis_addr "127.0.0.1:$RPORT" -redis_streams \
            -log_level error -presence=false -join_leave=false </dev/null >"$OUT_DIR/redis-$s-$n-r$r.log" 2>&1 &
        else
          printf '{"address":"127.0.0.1","port":%s,"engine":"redis","redis_address":"127.0.0.1:%s","token_hmac_secret_key":"secret","api_key":"api","history_size":100,"history_lifetime":300,"history_recover":true,"log_level":"error","name":"node-%s"}\n' \
            "$p" "$RPORT" "$n" >"$OUT_DIR/rotor-redis-$n.json"
          "$ROTOR" -c "$OUT_DIR/rotor-redis-$n.json" </dev/null >"$OUT_DIR/redis-$s-$n-r$r.log" 2>&1 &
        fi
        pids+=($!)
      done
      sleep 1.5
      timeout -k 10 $((DURATION + 60)) "$LOADGEN" -ws "ws://127.0.0.1:$((BASE_PORT + 42))/connection/websocket" \
        -api "http://127.0.0.1:$((BASE_PORT + 41))/api" -server-pid "${pids[1]}" -label "$s-redis-r$r" -channel "redis$r" \
        -mode max -conns 1000 -publishers 4 -duration "${DURATION}s" -data-bytes 100 \
        </dev/null >"$OUT_DIR/$s-redis-r$r.log" 2>&1
      record "$OUT_DIR/$s-redis-r$r.log" "server=$s round=$r tag=redis-2nodes scenario=loadgen-max" \
        loadgen_failed pub_per_s
      kill -TERM "${pids[@]}" 2>/dev/null
      wait "${pids[@]}" 2>/dev/null
      redis-cli -p "$RPORT" flushall >/dev/null
      sleep 1
    done
  done
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
fi

# ---------------------------------------------------------------- part: proxy (issue 12)
# One Rotor with the 2.x proxy keys pointing at `rotor-bench backend` (rotor-bench starts it as
# a separate process, --spawn-backend, and reports its CPU apart), namespace px with
# proxy_subscribe. Each round, a fresh server per run: churn with tokens (server=rotor-jwt),
# the same cycles through the proxies (server=rotor-proxy), rpc with 1 and 100 clients.
if [[ " $PARTS " == *" proxy "* ]]; then
  log "part proxy: proxy churn against JWT churn, rpc 1/100 clients${BASE_ROTOR:+; no proxy: $BASE_ROTOR against $ROTOR}"
  PRES="$OUT_DIR/proxy-results.txt"; : >>"$PRES"
  BPORT=$((BASE_PORT + 50))
  launch() { # $1 rotor binary  $2 config  $3 log file; sets SERVER_PID, PORT=BASE_PORT+1
    PORT=$((BASE_PORT + 1))
    "$1" -c "$2" </dev/null >"$3" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
      kill -0 "$SERVER_PID" 2>/dev/null || { log "$1 exited at start; see $3"; SERVER_PID=""; return 1; }
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        sleep 0.3
        # Still alive: the port is ours, not another run's (this one would have exited).
        kill -0 "$SERVER_PID" 2>/dev/null && return 0
        log "$1 exited at start (port $PORT taken?); see $3"; SERVER_PID=""; return 1
      fi
      sleep 0.1
    done
    log "$1 did not listen on $PORT within 20 s"; stop_server; return 1
  }
  hist='"history_size": 100, "history_lifetime": 300, "history_recover": true'
  cat >"$OUT_DIR/rotor-proxy.json" <<CONF
{
  "address": "127.0.0.1",
  "port": $((BASE_PORT + 1)),
  "engine": "memory",
  "token_hmac_secret_key": "secret",
  "api_key": "api",
  $hist,
  "presence": false,
  "join_leave": false,
  "publish": true,
  "log_level": "error",
  "proxy_connect_endpoint": "http://127.0.0.1:$BPORT/connect",
  "proxy_subscribe_endpoint": "http://127.0.0.1:$BPORT/subscribe",
  "proxy_rpc_endpoint": "http://127.0.0.1:$BPORT/rpc",
  "namespaces": [{"name": "px", "proxy_subscribe": true, $hist, "presence": false, "join_leave": false, "publish": true}]
}
CONF
  CH=20s; [ "$QUICK" = 1 ] && CH="$D"
  PX_MATRIX="
rotor-jwt|px-churn-jwt|churn --workers 32 --duration $CH --src-ips 200
rotor-proxy|px-churn-proxy|proxy-churn --workers 32 --duration $CH --src-ips 200
rotor-proxy|px-rpc-1|rpc --clients 1 --duration $D
rotor-proxy|px-rpc-100|rpc --clients 100 --duration $D
"
  # PX_PACES="N ...": the two churn rows again at N cycles/s each (--cycle-rate), so that both
  # are measured at one rate (server CPU per cycle grows as the rate falls: fewer cycles share
  # each wake-up, and the proxied cycle is the slower one at full speed). Rows
  # server=rotor-jwt-atN / rotor-proxy-atN, tables in $BENCH_DIR/proxy/atN/.
  for pace in ${PX_PACES:-}; do
    PX_MATRIX+="rotor-jwt-at$pace|px-churn-jwt-at$pace|churn --workers 32 --duration $CH --src-ips 200 --cycle-rate $pace
rotor-proxy-at$pace|px-churn-proxy-at$pace|proxy-churn --workers 32 --duration $CH --src-ips 200 --cycle-rate $pace
"
  done
  for r in $(seq 1 "$ROUNDS"); do
    while IFS='|' read -r name tag args; do
      [ -n "$tag" ] || continue
      launch "$ROTOR" "$OUT_DIR/rotor-proxy.json" "$OUT_DIR/server-$tag-r$r.log" || {
        echo "server=$name round=$r tag=$tag error=server_start" >>"$PRES"; continue; }
      [[ "$tag" = px-churn-jwt* ]] || args="$args --spawn-backend --backend 127.0.0.1:$BPORT"
      # shellcheck disable=SC2086
      timeout -k 10 $((${CH%s} + 120)) "$RB" $args --channel "px$r" --label "$name-$tag-r$r" \
        --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
        --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/$tag-r$r.log" 2>"$OUT_DIR/$tag-r$r.err"
      RES="$PRES" record "$OUT_DIR/$tag-r$r.log" "server=$name round=$r tag=$tag" "rotor_bench_rc_$?" \
        "(server_cpu_s_per_1k|backend_cpu_s_per_1k|rpc_per_s|p50_ms|p99_ms)"
      stop_server
      sleep 1
    done <<<"$PX_MATRIX"
  done
  mkdir -p "$BENCH_DIR/proxy"
  cp "$PRES" "$BENCH_DIR/proxy/results.txt"
  grep -v ' tag=px-churn-[a-z]*-at' "$PRES" >"$OUT_DIR/proxy-results-max.txt"
  "$RB" report "$OUT_DIR/proxy-results-max.txt" --out "$BENCH_DIR/proxy" --reference rotor-jwt | tee "$OUT_DIR/proxy-report.md"
  for pace in ${PX_PACES:-}; do
    grep " tag=px-churn-[a-z]*-at$pace " "$PRES" >"$OUT_DIR/proxy-results-at$pace.txt"
    "$RB" report "$OUT_DIR/proxy-results-at$pace.txt" --out "$BENCH_DIR/proxy/at$pace" \
      --reference "rotor-jwt-at$pace" | tee -a "$OUT_DIR/proxy-report.md"
  done

  # No proxy configured: the rb matrix's fan-out 1,000 / 5,000 and churn runs with the plain
  # config part rb uses, the base build and this one alternating.
  if [ -n "${BASE_ROTOR:-}" ]; then
    NRES="$OUT_DIR/proxy-base-results.txt"; : >>"$NRES"
    start_server rotor false /dev/null && stop_server   # writes $OUT_DIR/rotor-false.json
    NP_MATRIX="$(echo "$MATRIX" | grep -E '^(fanout-max-1000|fanout-max-5000|churn)\|')"
    for r in $(seq 1 "$ROUNDS"); do
      while IFS='|' read -r tag _servers _jl tmo args; do
        [ -n "$tag" ] || continue
        for s in base head; do
          bin="$ROTOR"; [ "$s" = base ] && bin="$BASE_ROTOR"
          launch "$bin" "$OUT_DIR/rotor-false.json" "$OUT_DIR/server-np-$s-$tag-r$r.log" || {
            echo "server=rotor-$s round=$r tag=$tag error=server_start" >>"$NRES"; continue; }
          # shellcheck disable=SC2086
          timeout -k 10 "$tmo" "$RB" $args --channel "np$r" --label "rotor-$s-$tag-r$r" \
            --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
            --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/np-$s-$tag-r$r.log" 2>"$OUT_DIR/np-$s-$tag-r$r.err"
          RES="$NRES" record "$OUT_DIR/np-$s-$tag-r$r.log" "server=rotor-$s round=$r tag=$tag" "rotor_bench_rc_$?"
          stop_server
          sleep 1
        done
      done <<<"$NP_MATRIX"
    done
    mkdir -p "$BENCH_DIR/proxy-base"
    cp "$NRES" "$BENCH_DIR/proxy-base/results.txt"
    "$RB" report "$NRES" --out "$BENCH_DIR/proxy-base" --reference rotor-base | tee "$OUT_DIR/proxy-base-report.md"
  fi
fi

# ---------------------------------------------------------------- part: tokens (issue 13)
# Two configs: "static" (HMAC secret plus the RSA and ECDSA PEM public keys: HS256, RS256 and
# ES256 runs) and "jwks" (token_jwks_public_endpoint: every token through JWKS; EdDSA, which
# has no PEM key in Centrifugo, and RS256 with kid rb-rs256). The JWKS server runs for the
# whole part; its request log gives the fetches per run (jwks_fetches: 1 = fetched once,
# then cached). Each mode runs once per entry of TOKENS_PACES (default "max 1000 2000") in each
# round: `max` = workers back to back (server=rotor-<mode>), a number = paced at that many
# cycles/s (server=rotor-<mode>-at<N>). RS256 signing in the bench caps that mode's rate, and
# server CPU per cycle grows as the rate falls (fewer cycles share each wake-up), so the paced
# rows are what compares the modes at one rate.
if [[ " $PARTS " == *" tokens "* ]]; then
  log "part tokens: churn with HS256 / RS256 / ES256 / EdDSA(JWKS) / RS256(JWKS), alternating"
  TRES="$OUT_DIR/tokens-results.txt"; : >>"$TRES"
  KEYS="$OUT_DIR/token-keys"
  "$RB" token-keys --dir "$KEYS" >>"$OUT_DIR/bench.log" 2>&1 || { log "token-keys failed"; exit 1; }
  JPORT=$((BASE_PORT + 60))
  "$RB" jwks --file "$KEYS/jwks.json" --listen "127.0.0.1:$JPORT" </dev/null >/dev/null 2>"$OUT_DIR/jwks.log" &
  JWKS_PID=$!
  sleep 0.5
  pem_json() { sed ':a;N;$!ba;s/\n/\\n/g' "$1"; }
  tk_conf() { # $1 name  $2 token keys (ending in a comma)
    cat >"$OUT_DIR/rotor-tokens-$1.json" <<CONF
{
  "address": "127.0.0.1",
  "port": $((BASE_PORT + 3)),
  "engine": "memory",
  "api_key": "api",
  $2
  "history_size": 100, "history_lifetime": 300, "history_recover": true,
  "presence": false,
  "join_leave": false,
  "publish": true,
  "log_level": "error"
}
CONF
  }
  tk_conf static "\"token_hmac_secret_key\": \"secret\",
  \"token_rsa_public_key\": \"$(pem_json "$KEYS/rs256.pub.pem")\",
  \"token_ecdsa_public_key\": \"$(pem_json "$KEYS/es256.pub.pem")\","
  tk_conf jwks "\"token_jwks_public_endpoint\": \"http://127.0.0.1:$JPORT/jwks.json\","
  TK="${TOKENS_SECS:-$DURATION}s"
  TK_MATRIX="
hs256|static|--alg hs256
rs256|static|--alg rs256
es256|static|--alg es256
eddsa-jwks|jwks|--alg eddsa --kid rb-eddsa
rs256-jwks|jwks|--alg rs256 --kid rb-rs256
"
  for r in $(seq 1 "$ROUNDS"); do
   for pace in ${TOKENS_PACES:-max 1000 2000}; do
    while IFS='|' read -r mode0 conf args; do
      [ -n "$mode0" ] || continue
      mode="$mode0"
      [ "$pace" = max ] || { mode="$mode0-at$pace"; args="$args --cycle-rate $pace"; }
      PORT=$((BASE_PORT + 3))   # not part proxy's port: the two may run at the same time
      "$ROTOR" -c "$OUT_DIR/rotor-tokens-$conf.json" </dev/null >"$OUT_DIR/server-tk-$mode-r$r.log" 2>&1 &
      SERVER_PID=$!
      up=0
      for _ in $(seq 1 200); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
          sleep 0.3
          # Still alive: the port is ours, not another run's.
          kill -0 "$SERVER_PID" 2>/dev/null && up=1
          break
        fi
        sleep 0.1
      done
      if [ "$up" != 1 ]; then
        log "rotor ($conf config) did not start; see $OUT_DIR/server-tk-$mode-r$r.log"
        echo "server=rotor-$mode round=$r tag=tokens error=server_start" >>"$TRES"; stop_server; continue
      fi
      f0=$(grep -c 'jwks: request' "$OUT_DIR/jwks.log")
      load="$(cut -d' ' -f1 /proc/loadavg)"
      # shellcheck disable=SC2086
      timeout -k 10 $((${TK%s} + 120)) "$RB" churn $args --key-dir "$KEYS" --workers 32 --duration "$TK" \
        --src-ips 200 --channel "tk$r" --label "rotor-$mode-r$r" \
        --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
        --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/tk-$mode-r$r.log" 2>"$OUT_DIR/tk-$mode-r$r.err"
      rc=$?
      f1=$(grep -c 'jwks: request' "$OUT_DIR/jwks.log")
      RES="$TRES" record "$OUT_DIR/tk-$mode-r$r.log" "server=rotor-$mode round=$r tag=tokens loadavg_start=$load jwks_fetches=$((f1 - f0))" \
        "rotor_bench_rc_$rc" "(server_cpu_s_per_1k|bench_cpu_s)"
      stop_server
      sleep 1
    done <<<"$TK_MATRIX"
   done
  done
  kill -TERM "$JWKS_PID" 2>/dev/null; wait "$JWKS_PID" 2>/dev/null
  mkdir -p "$BENCH_DIR/tokens"
  cp "$TRES" "$BENCH_DIR/tokens/results.txt"
  "$RB" report "$TRES" --out "$BENCH_DIR/tokens" --reference rotor-hs256 | tee "$OUT_DIR/tokens-report.md"
fi

# ---------------------------------------------------------------- part: transports (issue 14)
# A fresh server per run. Rotor has http_stream and sse on (SockJS is on by default); the
# reference serves SockJS only. TR_CONNS (1000) subscribers / idle connections, RTT_CLIENTS (10)
# round-trip clients at 10 ms between one client's round trips.
if [[ " $PARTS " == *" transports "* ]]; then
  log "part transports: fan-out / idle / emulation round trip over WebSocket, SSE, HTTP-streaming; SockJS against the reference"
  XRES="$OUT_DIR/transports-results.txt"; : >>"$XRES"
  SRES="$OUT_DIR/sockjs-results.txt"; : >>"$SRES"
  TPORT=$((BASE_PORT + 5))
  TN="${TR_CONNS:-1000}"
  cat >"$OUT_DIR/rotor-transports.json" <<CONF
{
  "address": "127.0.0.1",
  "port": $TPORT,
  "engine": "memory",
  "token_hmac_secret_key": "secret",
  "api_key": "api",
  "history_size": 100, "history_lifetime": 300, "history_recover": true,
  "presence": false,
  "join_leave": false,
  "publish": true,
  "http_stream": true,
  "sse": true,
  "log_level": "error"
}
CONF
  tr_start() { # $1 ref|rotor  $2 log file; sets SERVER_PID, PORT
    PORT=$TPORT
    if [ "$1" = ref ]; then
      "$REF" -addr "127.0.0.1:$PORT" -log_level error -presence=false -join_leave=false </dev/null >"$2" 2>&1 &
    else
      "$ROTOR" -c "$OUT_DIR/rotor-transports.json" </dev/null >"$2" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 1 200); do
      kill -0 "$SERVER_PID" 2>/dev/null || { log "$1 exited at start; see $2"; SERVER_PID=""; return 1; }
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        sleep 0.3
        kill -0 "$SERVER_PID" 2>/dev/null && return 0
        log "$1 exited at start (port $PORT taken?); see $2"; SERVER_PID=""; return 1
      fi
      sleep 0.1
    done
    log "$1 did not listen on $PORT within 20 s"; stop_server; return 1
  }
  # TAG|SCENARIO ARGS (the transport is appended)
  TR_MATRIX="
fanout-max-$TN|fanout --mode max --conns $TN --publishers 4 --duration $D
idle-$TN|idle --conns $TN --hold $D --procs 2 --src-ips 100
rtt|emulation-rtt --clients ${RTT_CLIENTS:-10} --duration $D
"
  SJ_MATRIX="
fanout-max-$TN|fanout --mode max --conns $TN --publishers 4 --duration $D
idle-$TN|idle --conns $TN --hold $D --procs 2 --src-ips 100
"
  # tr_run <results> <server> <series name> <tag> <label> <args...>
  tr_run() {
    local res="$1" srv="$2" name="$3" tag="$4" label="$5"
    shift 5
    tr_start "$srv" "$OUT_DIR/server-$label.log" || { echo "server=$name round=$r tag=$tag error=server_start" >>"$res"; return; }
    local load; load="$(cut -d' ' -f1 /proc/loadavg)"
    # shellcheck disable=SC2068
    timeout -k 10 $((${D%s} + 180)) "$RB" $@ --channel "tr$r" --label "$label" \
      --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
      --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/$label.log" 2>"$OUT_DIR/$label.err"
    RES="$res" record "$OUT_DIR/$label.log" "server=$name round=$r tag=$tag loadavg_start=$load" "rotor_bench_rc_$?" \
      "(transport|rtt_per_s|post_p99_ms)"
    stop_server
    sleep 1
  }
  for r in $(seq 1 "$ROUNDS"); do
    while IFS='|' read -r tag args; do
      [ -n "$tag" ] || continue
      for t in websocket sse http_stream; do
        tr_run "$XRES" rotor "$t" "$tag" "rotor-$t-$tag-r$r" $args --proto v2 --transport "$t"
      done
    done <<<"$TR_MATRIX"
    while IFS='|' read -r tag args; do
      [ -n "$tag" ] || continue
      for t in sockjs-xhr sockjs-ws websocket; do
        [ "$t" = websocket ] && [[ "$tag" = idle-* ]] && continue
        for s in ref rotor; do
          tr_run "$SRES" "$s" "$s" "$tag" "$s-$t-$tag-r$r" $args --transport "$t"
        done
      done
    done <<<"$SJ_MATRIX"
  done
  mkdir -p "$BENCH_DIR/transports/sockjs"
  cp "$XRES" "$BENCH_DIR/transports/results.txt"
  cp "$SRES" "$BENCH_DIR/transports/sockjs/results.txt"
  # One table per scenario with every transport as a column: the transport key is the series.
  sed 's/ transport=[^ ]*//' "$XRES" >"$OUT_DIR/transports-by-series.txt"
  "$RB" report "$OUT_DIR/transports-by-series.txt" --out "$BENCH_DIR/transports" --reference "websocket (v2)" \
    | tee "$OUT_DIR/transports-report.md"
  "$RB" report "$SRES" --out "$BENCH_DIR/transports/sockjs" --reference ref | tee -a "$OUT_DIR/transports-report.md"
  # Per-round ratios (each run against the one it alternated with), then their medians.
  python3 "$ROOT/scripts/transport_ratios.py" "$XRES" "$SRES" | tee "$BENCH_DIR/transports/paired-ratios.txt"
fi

# ---------------------------------------------------------------- part: grpc-api (issue 15)
# Rotor with the 2.x gRPC API keys (both services on one port); each run a fresh server.
if [[ " $PARTS " == *" grpc-api "* ]]; then
  log "part grpc-api: api-publish through gRPC and POST /api/publish, 1 and ${GA_CALLERS:-16} callers, ${GA_CONNS:-1000} subscribers"
  GRES="$OUT_DIR/grpc-api-results.txt"; : >>"$GRES"
  GPORT=$((BASE_PORT + 70)); GGPORT=$((BASE_PORT + 71))
  cat >"$OUT_DIR/rotor-grpc-api.json" <<CONF
{
  "address": "127.0.0.1",
  "port": $GPORT,
  "engine": "memory",
  "token_hmac_secret_key": "secret",
  "api_key": "api",
  "grpc_api": true,
  "grpc_api_port": $GGPORT,
  "grpc_api_key": "api",
  "history_size": 100,
  "history_lifetime": 300,
  "history_recover": true,
  "presence": false,
  "join_leave": false,
  "publish": true,
  "log_level": "error"
}
CONF
  ga_start() { # $1 log file; sets SERVER_PID and PORT; both the HTTP and the gRPC port must listen
    PORT=$GPORT
    "$ROTOR" -c "$OUT_DIR/rotor-grpc-api.json" </dev/null >"$1" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
      kill -0 "$SERVER_PID" 2>/dev/null || { log "rotor exited at start; see $1"; SERVER_PID=""; return 1; }
      if (exec 3<>"/dev/tcp/127.0.0.1/$GPORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$GGPORT") 2>/dev/null; then
        sleep 0.3
        kill -0 "$SERVER_PID" 2>/dev/null && return 0
        log "rotor exited at start (port taken?); see $1"; SERVER_PID=""; return 1
      fi
      sleep 0.1
    done
    log "rotor did not listen on $GPORT and $GGPORT within 20 s"; stop_server; return 1
  }
  GC="${GA_CONNS:-1000}"; GN="${GA_CALLERS:-16}"; GD="${GA_SECS:-$DURATION}s"
  # server(via)|tag|subscribers|callers, in the order run within a round: HTTP then gRPC for
  # each caller count (the pairs), http-pool last.
  GA_MATRIX="
http|fan$GC-c1|$GC|1
grpc|fan$GC-c1|$GC|1
http|fan$GC-c$GN|$GC|$GN
grpc|fan$GC-c$GN|$GC|$GN
http-pool|fan$GC-c$GN|$GC|$GN
"
  if [ "${GA_NOFAN:-0}" = 1 ]; then
    GA_MATRIX+="http|fan1-c1|1|1
grpc|fan1-c1|1|1
http|fan1-c$GN|1|$GN
grpc|fan1-c$GN|1|$GN
"
  fi
  for r in $(seq 1 "$ROUNDS"); do
    while IFS='|' read -r via tag subs callers; do
      [ -n "$via" ] || continue
      label="rotor-$via-$tag-r$r"
      ga_start "$OUT_DIR/server-$label.log" || { echo "server=$via round=$r tag=$tag error=server_start" >>"$GRES"; continue; }
      load="$(cut -d' ' -f1 /proc/loadavg)"
      timeout -k 10 $((${GD%s} + 120)) "$RB" api-publish --via "$via" --grpc "http://127.0.0.1:$GGPORT" \
        --conns "$subs" --publishers "$callers" --mode max --duration "$GD" --channel "ga$r" --label "$label" \
        --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
        --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/$label.log" 2>"$OUT_DIR/$label.err"
      RES="$GRES" record "$OUT_DIR/$label.log" "server=$via round=$r tag=$tag loadavg_start=$load" "rotor_bench_rc_$?" \
        "(pub_per_s|api_p50_ms|api_p99_ms|other_cpu_s)"
      stop_server
      sleep 1
    done <<<"$GA_MATRIX"
  done
  mkdir -p "$BENCH_DIR/grpc-api"
  cp "$GRES" "$BENCH_DIR/grpc-api/results.txt"
  "$RB" report "$GRES" --out "$BENCH_DIR/grpc-api" --reference http | tee "$OUT_DIR/grpc-api-report.md"
  # Paired ratios: each run divided by the HTTP run of the same round and tag, then the median
  # (and range) over the rounds.
  python3 - "$GRES" <<'PY' | tee "$BENCH_DIR/grpc-api/paired-ratios.txt"
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    if not line.startswith("server=") or " error=" in line:
        continue
    kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
    runs[(kv["tag"], kv["round"])][kv["server"]] = kv
tags = sorted({t for t, _ in runs}, key=lambda t: (len(t), t))
print("tag via metric: median of per-round ratios to http [min..max] (rounds); medians of the figures")
for tag in tags:
    rounds = {r: v for (t, r), v in runs.items() if t == tag and "http" in v}
    for via in ("grpc", "http-pool"):
        for m in ("pub_per_s", "api_p50_ms", "api_p99_ms", "deliv_per_cpu_s", "lost"):
            pairs = [(float(v[via][m]), float(v["http"][m])) for v in rounds.values()
                     if via in v and m in v[via] and m in v["http"]]
            if not pairs:
                continue
            med = lambda xs: statistics.median(xs)
            figs = f"{via} {med([a for a, _ in pairs]):g}, http {med([b for _, b in pairs]):g}"
            ratios = [a / b for a, b in pairs if b > 0]
            if ratios:
                print(f"{tag} {via} {m}: {med(ratios):.2f}x [{min(ratios):.2f}..{max(ratios):.2f}] ({len(ratios)}); {figs}")
            else:
                print(f"{tag} {via} {m}: -; {figs}")
PY
fi

# ---------------------------------------------------------------- part: delta (issue 16)
if [[ " $PARTS " == *" delta "* ]]; then
  DC="${DL_CONNS:-1000}"; DSZ="${DL_DOC:-2048}"; DR="${DL_RATE:-20}"; DD="${DL_SECS:-$DURATION}s"
  log "part delta: rotor-bench delta --delta off/on, $DC subscribers, $DSZ-byte documents"
  DRES="$OUT_DIR/delta-results.txt"; : >>"$DRES"
  DPORT=$((BASE_PORT + 80))
  cat >"$OUT_DIR/rotor-delta.json" <<CONF
{
  "address": "127.0.0.1",
  "port": $DPORT,
  "engine": "memory",
  "token_hmac_secret_key": "secret",
  "api_key": "api",
  "presence": false,
  "join_leave": false,
  "log_level": "error",
  "namespaces": [
    {"name": "delta", "history_size": 10, "history_lifetime": 300,
     "force_positioning": true, "allowed_delta_types": ["fossil"]}
  ]
}
CONF
  # tag|extra rotor-bench arguments
  DL_MATRIX="
json-max|
json-rate$DR|--rate $DR
protobuf-max|--protobuf
"
  for r in $(seq 1 "$ROUNDS"); do
    while IFS='|' read -r tag extra; do
      [ -n "$tag" ] || continue
      for d in off on; do
        label="rotor-delta-$tag-$d-r$r"
        PORT=$DPORT
        "$ROTOR" -c "$OUT_DIR/rotor-delta.json" </dev/null >"$OUT_DIR/server-$label.log" 2>&1 &
        SERVER_PID=$!
        up=0
        for _ in $(seq 1 200); do
          kill -0 "$SERVER_PID" 2>/dev/null || break
          if (exec 3<>"/dev/tcp/127.0.0.1/$DPORT") 2>/dev/null; then up=1; sleep 0.3; break; fi
          sleep 0.1
        done
        if [ "$up" != 1 ]; then
          log "rotor did not start; see $OUT_DIR/server-$label.log"; stop_server
          echo "server=rotor round=$r tag=$tag delta=$d error=server_start" >>"$DRES"; continue
        fi
        load="$(cut -d' ' -f1 /proc/loadavg)"
        # shellcheck disable=SC2086
        timeout -k 10 $((${DD%s} + 120)) "$RB" delta --delta "$d" --conns "$DC" --doc-size "$DSZ" \
          --duration "$DD" --channel "delta:rb$r" --label "$label" $extra \
          --ws "ws://127.0.0.1:$DPORT/connection/websocket" --api "http://127.0.0.1:$DPORT/api" \
          --server-pid "$SERVER_PID" </dev/null >"$OUT_DIR/$label.log" 2>"$OUT_DIR/$label.err"
        RES="$DRES" record "$OUT_DIR/$label.log" "server=rotor round=$r tag=$tag loadavg_start=$load" \
          "rotor_bench_rc_$?" "(negotiated|ws_bytes_per_deliv|cpu_us_per_deliv|errors)"
        stop_server
        sleep 1
      done
    done <<<"$DL_MATRIX"
  done
  mkdir -p "$BENCH_DIR/delta"
  cp "$DRES" "$BENCH_DIR/delta/results.txt"
  # Per round: the on run divided by the off run of the same tag; then medians and ranges.
  python3 - "$DRES" <<'PY' | tee "$BENCH_DIR/delta/paired-ratios.txt"
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    if not line.startswith("server=") or " error=" in line:
        continue
    kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
    runs[(kv["tag"], kv["round"])]["on" if kv.get("delta") == "true" else "off"] = kv
print("tag metric: median of per-round ratios on/off [min..max] (rounds); medians off, on")
for tag in sorted({t for t, _ in runs}):
    pairs = [v for (t, _), v in runs.items() if t == tag and "on" in v and "off" in v]
    for m in ("ws_bytes_per_deliv", "tcp_bytes_per_deliv", "deliv_per_s", "pub_per_s",
              "cpu_us_per_deliv", "p50_ms", "p99_ms"):
        xs = [(float(v["on"][m]), float(v["off"][m])) for v in pairs
              if m in v["on"] and m in v["off"] and v["off"][m] != "-" and v["on"][m] != "-"]
        rs = [a / b for a, b in xs if b > 0]
        if rs:
            med = statistics.median
            print(f"{tag} {m}: {med(rs):.3f}x [{min(rs):.3f}..{max(rs):.3f}] ({len(rs)}); "
                  f"{med([b for _, b in xs]):g}, {med([a for a, _ in xs]):g}")
PY
fi

# ---------------------------------------------------------------- report
# (skipped when no part wrote to results.txt, e.g. PARTS=proxy: it keeps its own files)
if grep -q '^server=' "$RES"; then
  cp "$RES" "$BENCH_DIR/results.txt"
  "$RB" report "$RES" --out "$BENCH_DIR" --reference ref | tee "$OUT_DIR/report.md"
fi
log "results: $RES; tables and charts: $BENCH_DIR"
