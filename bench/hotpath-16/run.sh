#!/bin/bash
# Issue 16: paired WebSocket fan-out, idle memory and churn: base (7384fb5, before issue 16's
# remainder) vs head, alternating, a fresh server per run. Binaries in /tmp/hp16/{base,head}/.
# Usage: bench/hotpath-16/run.sh [fanout|idle|churn|ratelimit] ...
set -u
D=/tmp/hp16
BENCH=$D/head/rotor-bench
PORT=19411
WS=ws://127.0.0.1:$PORT/connection/websocket
conf() { cat > $D/c.json <<J
{"address":"127.0.0.1","port":$PORT,"engine":"memory","token_hmac_secret_key":"secret","api_key":"api",
 "history_size":100,"history_lifetime":300,"history_recover":true,"presence":false,"join_leave":false,"publish":true,"log_level":"error"}
J
}
start() { # $1 = binary dir, extra env after
  local who=$1; shift
  env "$@" $D/$who/rotor -c $D/c.json >$D/$who.log 2>&1 &
  pid=$!
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
}
stop() { kill -TERM $pid; wait $pid 2>/dev/null; sleep 1; }
conf
# Limits configured on every command layer, far above what the run reaches (never hit).
RL='{"client_command":{"enabled":true,"default":{"enabled":true,"buckets":[{"interval":"1s","rate":1000000}]},"total":{"enabled":true,"buckets":[{"interval":"1s","rate":1000000}]}},"user_command":{"enabled":true,"connect":{"enabled":true,"buckets":[{"interval":"1s","rate":1000000}]},"default":{"enabled":true,"buckets":[{"interval":"1s","rate":1000000}]}}}'
for part in "$@"; do
  case $part in
  fanout)
    for r in 1 2 3 4 5 6; do for who in base head; do
      start $who
      line=$($BENCH fanout --proto v2 --mode max --conns 1000 --publishers 4 --duration 6s --ws $WS --api http://127.0.0.1:$PORT/api --api-key api --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
      echo "round=$r who=$who $line" >> $D/fanout.txt; stop
    done; done ;;
  idle)
    for r in 1 2 3; do for who in base head; do
      start $who
      line=$($BENCH idle --proto v2 --conns 1000 --hold 8s --procs 2 --src-ips 100 --ws $WS --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
      echo "round=$r who=$who $line" >> $D/idle.txt; stop
    done; done ;;
  churn)
    for r in 1 2 3 4; do for who in base head; do
      start $who
      line=$($BENCH churn --proto v2 --duration 6s --ws $WS --secret secret --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
      echo "round=$r who=$who $line" >> $D/churn.txt; stop
    done; done ;;
  ratelimit)
    for r in 1 2 3 4; do for rl in off on; do
      if [ $rl = on ]; then start head CENTRIFUGO_CLIENT_RATE_LIMIT="$RL"; else start head; fi
      line=$($BENCH churn --proto v2 --duration 6s --ws $WS --secret secret --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
      echo "round=$r limits=$rl $line" >> $D/ratelimit.txt; stop
    done; done ;;
  esac
done
