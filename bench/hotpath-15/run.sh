#!/bin/bash
# Paired WebSocket fan-out: base (before this session) vs head, alternating, fresh server per run.
BENCH=/tmp/head/rotor-bench
PORT=19311
conf() { cat > /tmp/hp/c.json <<J
{"address":"127.0.0.1","port":$PORT,"engine":"memory","token_hmac_secret_key":"secret","api_key":"api",
 "history_size":100,"history_lifetime":300,"history_recover":true,"presence":false,"join_leave":false,"publish":true,"log_level":"error"}
J
}
conf
for r in 1 2 3 4 5 6; do
  for who in base head; do
    /tmp/$who/rotor -c /tmp/hp/c.json >/tmp/hp/$who.log 2>&1 &
    pid=$!
    for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    sleep 0.3
    line=$($BENCH fanout --proto v2 --mode max --conns 1000 --publishers 4 --duration 6s --ws ws://127.0.0.1:$PORT/connection/websocket --api http://127.0.0.1:$PORT/api --api-key api --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
    echo "round=$r who=$who $line" >> /tmp/hp/results.txt
    kill -TERM $pid; wait $pid 2>/dev/null
    sleep 1
  done
done
