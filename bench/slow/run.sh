#!/usr/bin/env bash
# Slow consumers: `rotor-bench slow` against a release Rotor (memory engine) with a small
# per-connection queue, once per configuration in CONFIGS; one RESULT line per run appended
# to bench/slow/results.txt, the run's output in bench/slow/<name>.out.
#
#   bench/slow/run.sh
#   CONFIGS="q1m-wt1s" PAIRS=5 bench/slow/run.sh
#
# Configurations (client_queue_max_size / client_message_write_timeout):
#   q1m-wt1s   1 MB / 1 s (the write timeout is the default)
#   q1m-wt10s  1 MB / 10 s (the queue bound acts before the write timeout)
#   q64k-wt1s  64 KB / 1 s
# Environment: ROTOR, RB, CONFIGS, CONNS (1000), STALLED (10), RATE (200), PAYLOAD (200),
# PAIRS (5), PHASE (20s), PROTO (v1), OUT (bench/slow), COMMIT (the build's commit for the
# results; default HEAD). The runs in README.md: RATE=100 PAYLOAD=2000 PAIRS=3 PHASE=45s.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROTOR=${ROTOR:-$ROOT/target/release/rotor}
RB=${RB:-$ROOT/target/release/rotor-bench}
OUT=${OUT:-$ROOT/bench/slow}
CONFIGS=${CONFIGS:-q1m-wt1s q1m-wt10s q64k-wt1s}
CONNS=${CONNS:-1000} STALLED=${STALLED:-10} RATE=${RATE:-200} PAYLOAD=${PAYLOAD:-200}
PAIRS=${PAIRS:-5} PHASE=${PHASE:-20s} PROTO=${PROTO:-v1}
COMMIT=${COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD)}
mkdir -p "$OUT"
SPID=""
stop() { [ -n "$SPID" ] && { kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=""; }; }
trap stop EXIT
trap 'exit 130' INT TERM
status=0
for cfg in $CONFIGS; do
  case $cfg in
    q1m-wt1s) q=1048576 wt=1s ;;
    q1m-wt10s) q=1048576 wt=10s ;;
    q64k-wt1s) q=65536 wt=1s ;;
    *) echo "unknown config $cfg" >&2; exit 2 ;;
  esac
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  conf="$OUT/rotor-$cfg.json"
  cat >"$conf" <<CONF
{"address": "127.0.0.1", "port": $port, "engine": "memory", "token_hmac_secret_key": "secret",
 "api_key": "api", "prometheus": true, "log_level": "error", "presence": false,
 "client_queue_max_size": $q, "client_message_write_timeout": "$wt"}
CONF
  "$ROTOR" -c "$conf" </dev/null >"$OUT/server-$cfg.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$RB" slow --ws "ws://127.0.0.1:$port/connection/websocket" --api "http://127.0.0.1:$port/api" \
    --proto "$PROTO" --conns "$CONNS" --stalled "$STALLED" --rate "$RATE" --payload "$PAYLOAD" \
    --pairs "$PAIRS" --phase "$PHASE" --server-pid "$SPID" --label "$cfg" \
    </dev/null >"$OUT/$cfg.out" 2>&1 || status=1
  echo "commit=$COMMIT config=$cfg queue=$q write_timeout=$wt $(grep '^RESULT' "$OUT/$cfg.out" | tail -1 | sed 's/^RESULT //')" >>"$OUT/results.txt"
  tail -n 12 "$OUT/$cfg.out"
  stop
done
exit $status
