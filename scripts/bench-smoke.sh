#!/usr/bin/env bash
# Smoke run of every rotor-bench scenario against the dev build of rotor, so the benchmark tool
# cannot silently rot: a few hundred connections for a few seconds each; a check fails unless
# publications were delivered and none was lost, duplicated, reordered or misrouted (or, for
# idle/churn/join, every connection or cycle went through). Figures are not judged: this is
# not a benchmark (the machine may be busy).
#
#   scripts/bench-smoke.sh            # uses target/debug/rotor and target/debug/rotor-bench
#   ROTOR_BIN=... BENCH_BIN=... scripts/bench-smoke.sh
#
# Builds the two binaries (dev profile) if they are missing. Every server is started on a
# loopback port and stopped by PID; every run has a timeout. Ends with "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
ROTOR_BIN="${ROTOR_BIN:-$TARGET_DIR/debug/rotor}"
BENCH_BIN="${BENCH_BIN:-$TARGET_DIR/debug/rotor-bench}"
PORT="${SMOKE_PORT:-18470}"
WORK="$TARGET_DIR/bench-smoke"
mkdir -p "$WORK"

if [ ! -x "$ROTOR_BIN" ] || [ ! -x "$BENCH_BIN" ]; then
  echo "building rotor and rotor-bench (dev profile)"
  cargo build -p rotor-server -p rotor-bench || exit 1
fi

passed=0
failed=0
SERVER_PID=""

start_rotor() { # $1 join_leave (true|false)  [$2 name suffix  $3 more top-level keys, each ending in a comma]
  local conf="$WORK/rotor-$1${2:-}.json"
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
  "join_leave": $1,${3:+
  $3}
  "publish": true,
  "log_level": "error"
}
EOF
  "$ROTOR_BIN" -c "$conf" >"$WORK/rotor-$1${2:-}.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "rotor did not start; see $WORK/rotor-$1${2:-}.log" >&2
  return 1
}

stop_rotor() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
trap stop_rotor EXIT INT TERM

# val KEY RESULT-LINE
val() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }

# run NAME CHECKS -- ARGS... ; CHECKS is a space-separated list of KEY=VALUE (exact) or KEY>0
run() {
  local name="$1" checks="$2"
  shift 3
  local log="$WORK/$name.log"
  printf '\n-- %s: rotor-bench %s\n' "$name" "$*"
  timeout --kill-after=10 120 "$BENCH_BIN" "$@" \
    --ws "ws://127.0.0.1:$PORT/connection/websocket" --api "http://127.0.0.1:$PORT/api" \
    --server-pid "$SERVER_PID" --label "smoke-$name" >"$log" 2>&1
  local rc=$?
  local line
  line=$(grep '^RESULT' "$log" | tail -1)
  local bad=""
  [ "$rc" = 0 ] || bad="exit code $rc"
  [ -n "$line" ] || bad="${bad:+$bad; }no RESULT line"
  for c in $checks; do
    local k v want
    case "$c" in
      *'>0') k="${c%>0}"; v=$(val "$k" "$line")
        if ! [[ "$v" =~ ^[0-9.]+$ ]] || ! awk -v x="$v" 'BEGIN { exit !(x > 0) }'; then
          bad="${bad:+$bad; }$k=$v (want > 0)"
        fi ;;
      *=*) k="${c%%=*}"; want="${c#*=}"; v=$(val "$k" "$line")
        [ "$v" = "$want" ] || bad="${bad:+$bad; }$k=$v (want $want)" ;;
    esac
  done
  if [ -z "$bad" ]; then
    passed=$((passed + 1))
    echo "ok   $name: $(echo " $line" | grep -oE ' (ok|delivered|lost|dup|reorder|deliv_per_s|p99_ms|kb_per_conn|cycles|churn_per_s|all_in_s|joins)=[^ ]*' | tr -d '\n')"
  else
    failed=$((failed + 1))
    echo "FAIL $name: $bad"
    echo "     log: $log"
    tail -n 15 "$log" | sed 's/^/     | /'
  fi
}

DELIVERY="ok>0 conn_failed=0 delivered>0 lost=0 dup=0 reorder=0 unexpected=0 dropped=0 pub_errors=0"

if start_rotor false; then
  run fanout-max-v1 "$DELIVERY" -- fanout --conns 300 --publishers 4 --mode max --duration 3s
  run fanout-rate-v1 "$DELIVERY p99_ms>0" -- fanout --conns 200 --publishers 2 --mode rate --rate 100 --duration 3s --channel rate
  run fanout-max-v2 "$DELIVERY" -- fanout --proto v2 --conns 300 --mode max --duration 3s --procs 2 --channel v2
  run channels-v1 "$DELIVERY" -- channels --conns 300 --publishers 4 --batch 10 --duration 3s --src-ips 4
  run idle-v1 "ok=400 conn_failed=0 dropped=0" -- idle --conns 400 --hold 2s --settle 1s --procs 2 --src-ips 4
  run churn-v1 "cycles>0 failed=0" -- churn --workers 8 --duration 3s --src-ips 16
  run churn-v2 "cycles>0 failed=0" -- churn --proto v2 --workers 8 --duration 2s --src-ips 16 --channel c2
  stop_rotor
else
  failed=$((failed + 1))
fi

if start_rotor true; then
  run join-v1 "ok=300 conn_failed=0 joins>0 all_in_s>0" -- join --conns 300 --timeout 60s --settle-timeout 10s
  run join-v2 "ok=300 conn_failed=0 joins>0 all_in_s>0" -- join --proto v2 --conns 300 --timeout 60s --settle-timeout 10s --channel j2
  stop_rotor
else
  failed=$((failed + 1))
fi

# Proxy mode (issue 12): the 2.x proxy keys point at `rotor-bench backend`, which each run
# starts as a process of its own (--spawn-backend); every cycle or rpc must reach it.
BPORT=$((PORT + 1))
PROXY_KEYS="\"proxy_connect_endpoint\": \"http://127.0.0.1:$BPORT/connect\",
  \"proxy_subscribe_endpoint\": \"http://127.0.0.1:$BPORT/subscribe\",
  \"proxy_rpc_endpoint\": \"http://127.0.0.1:$BPORT/rpc\",
  \"namespaces\": [{\"name\": \"px\", \"proxy_subscribe\": true}],"
BE="--spawn-backend --backend 127.0.0.1:$BPORT"
if start_rotor false -proxy "$PROXY_KEYS"; then
  # shellcheck disable=SC2086
  run proxy-churn-v1 "cycles>0 failed=0 backend_connect>0 backend_subscribe>0" -- proxy-churn --workers 8 --duration 3s --src-ips 16 $BE
  # shellcheck disable=SC2086
  run proxy-churn-v2 "cycles>0 failed=0 backend_connect>0" -- proxy-churn --proto v2 --workers 8 --duration 2s --src-ips 16 --channel c2 $BE
  # shellcheck disable=SC2086
  run rpc-v1 "ok=1 rpcs>0 failed=0 backend_rpc>0 p99_ms>0" -- rpc --clients 1 --duration 2s $BE
  # shellcheck disable=SC2086
  run rpc-v2 "ok=20 rpcs>0 failed=0 backend_rpc>0" -- rpc --proto v2 --clients 20 --duration 2s --procs 2 $BE
  stop_rotor
else
  failed=$((failed + 1))
fi

# Token algorithms (issue 13): keys from `rotor-bench token-keys`; RS256 and ES256 through the
# 2.x PEM keys beside the HMAC secret, EdDSA and RS256 through `rotor-bench jwks` (fetched
# once, then cached: the JWKS server must have been asked at least once, and not per cycle).
KEYS="$WORK/token-keys"
JPORT=$((PORT + 2))
if "$BENCH_BIN" token-keys --dir "$KEYS" >"$WORK/token-keys.log" 2>&1; then
  pem_json() { sed ':a;N;$!ba;s/\n/\\n/g' "$1"; }
  TK_STATIC="\"token_rsa_public_key\": \"$(pem_json "$KEYS/rs256.pub.pem")\",
  \"token_ecdsa_public_key\": \"$(pem_json "$KEYS/es256.pub.pem")\","
  if start_rotor false -tk-static "$TK_STATIC"; then
    run churn-rs256 "cycles>0 failed=0 alg=RS256" -- churn --alg rs256 --key-dir "$KEYS" --workers 4 --duration 2s --src-ips 4 --channel tkrs
    # Paced (--cycle-rate, as bench.sh's paced token rows): at most 2 s x 100/s cycles.
    run churn-es256-paced "cycles>0 failed=0 alg=ES256 cycle_rate=100" -- churn --alg es256 --key-dir "$KEYS" --workers 4 --duration 2s --src-ips 4 --channel tkes --cycle-rate 100
    stop_rotor
  else
    failed=$((failed + 1))
  fi
  "$BENCH_BIN" jwks --file "$KEYS/jwks.json" --listen "127.0.0.1:$JPORT" </dev/null >/dev/null 2>"$WORK/jwks.log" &
  JWKS_PID=$!
  if start_rotor false -tk-jwks "\"token_jwks_public_endpoint\": \"http://127.0.0.1:$JPORT/jwks.json\","; then
    run churn-eddsa-jwks "cycles>0 failed=0 alg=EdDSA" -- churn --alg eddsa --kid rb-eddsa --key-dir "$KEYS" --workers 4 --duration 2s --src-ips 4 --channel tked
    run churn-rs256-jwks "cycles>0 failed=0 alg=RS256" -- churn --proto v2 --alg rs256 --kid rb-rs256 --key-dir "$KEYS" --workers 4 --duration 2s --src-ips 4 --channel tkrs
    stop_rotor
    fetches=$(grep -c 'jwks: request' "$WORK/jwks.log")
    cycles=$(grep -h '^RESULT' "$WORK/churn-eddsa-jwks.log" "$WORK/churn-rs256-jwks.log" | tr ' ' '\n' | sed -n 's/^cycles=//p' | awk '{ s += $1 } END { print s }')
    if [ "$fetches" -ge 1 ] && [ "$fetches" -le 4 ]; then
      echo "ok   jwks-cached: $fetches JWKS fetches for ${cycles:-?} cycles"
      passed=$((passed + 1))
    else
      echo "FAIL jwks-cached: $fetches JWKS fetches for ${cycles:-?} cycles (want 1..4)"
      failed=$((failed + 1))
    fi
  else
    failed=$((failed + 1))
  fi
  kill -TERM "$JWKS_PID" 2>/dev/null; wait "$JWKS_PID" 2>/dev/null
else
  echo "FAIL token-keys: see $WORK/token-keys.log"
  failed=$((failed + 1))
fi

# Transports (issue 14): fan-out over HTTP-streaming, SSE (both with /emulation, protocol v2)
# and SockJS xhr-streaming / websocket sub-transport (v1); idle over SSE; the emulation round trip.
if start_rotor false -transports "\"http_stream\": true, \"sse\": true,"; then
  run fanout-http-stream "$DELIVERY transport=http_stream" -- fanout --proto v2 --transport http_stream --conns 100 --duration 2s --channel ths
  run fanout-sse "$DELIVERY transport=sse" -- fanout --proto v2 --transport sse --conns 100 --duration 2s --procs 2 --channel tsse
  run fanout-sockjs-xhr "$DELIVERY transport=sockjs-xhr" -- fanout --transport sockjs-xhr --conns 100 --duration 2s --channel tsx
  run fanout-sockjs-ws "$DELIVERY transport=sockjs-ws" -- fanout --transport sockjs-ws --conns 100 --duration 2s --channel tsw
  run idle-sse "ok=200 conn_failed=0 dropped=0 transport=sse" -- idle --proto v2 --transport sse --conns 200 --hold 1s --settle 1s --procs 2
  run rtt-http-stream "ok=4 rtts>0 failed=0 p99_ms>0 post_p99_ms>0" -- emulation-rtt --proto v2 --transport http_stream --clients 4 --duration 2s
  run rtt-sse "ok=4 rtts>0 failed=0 p99_ms>0" -- emulation-rtt --proto v2 --transport sse --clients 4 --duration 2s --channel rsse
  stop_rotor
else
  failed=$((failed + 1))
fi

# gRPC server API (issue 15): api-publish through gRPC (one HTTP/2 channel) and through
# POST /api/publish (one keep-alive connection), 4 callers, 100 subscribers, no loss.
GPORT=$((PORT + 3))
if start_rotor false -grpc "\"grpc_api\": true, \"grpc_api_port\": $GPORT, \"grpc_api_key\": \"api\","; then
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$GPORT") 2>/dev/null && break; sleep 0.1; done
  run api-publish-grpc "$DELIVERY via=grpc api_p99_ms>0" -- api-publish --via grpc --grpc "http://127.0.0.1:$GPORT" --conns 100 --publishers 4 --duration 2s --channel gapi
  run api-publish-http "$DELIVERY via=http api_p99_ms>0" -- api-publish --via http --conns 100 --publishers 4 --duration 2s --channel hapi
  stop_rotor
else
  failed=$((failed + 1))
fi

# bench.sh's latency split: a three-packet capture with known times (publication scheduled at
# t=1000 s, POST on the wire 0.1 ms later, deliveries 0.2 and 0.4 ms after the POST).
BD_EXPECT="publications=1 deliveries=2 pub_p50_ms=0.100 pub_p99_ms=0.100 first_p50_ms=0.200 first_p99_ms=0.200 last_p50_ms=0.400 last_p99_ms=0.400"
bd_out=$(python3 "$ROOT/scripts/latency_breakdown.py" 8000 <<'CAPTURE'
1000.000100 IP 127.0.0.1.40000 > 127.0.0.1.8000: Flags [P.], length 180
..POST /api HTTP/1.1..{"method":"publish","params":{"channel":"c","data":{"lg":[0,1,1000000000000],"pad":"x"}}}
1000.000300 IP 127.0.0.1.8000 > 127.0.0.1.50000: Flags [P.], length 90
...{"result":{"channel":"c","data":{"data":{"lg":[0,1,1000000000000],"pad":"x"}}}}
1000.000500 IP 127.0.0.1.8000 > 127.0.0.1.50001: Flags [P.], length 90
...{"result":{"channel":"c","data":{"data":{"lg":[0,1,1000000000000],"pad":"x"}}}}
CAPTURE
)
if [[ "$bd_out" == "$BD_EXPECT"* ]]; then
  echo "PASS latency_breakdown.py"
  passed=$((passed + 1))
else
  echo "FAIL latency_breakdown.py: got '$bd_out'"
  failed=$((failed + 1))
fi

echo
echo "bench-smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
