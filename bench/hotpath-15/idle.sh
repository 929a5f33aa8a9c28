#!/bin/bash
BENCH=/tmp/head/rotor-bench
PORT=19311
for r in 1 2 3; do
  for who in base head; do
    /tmp/$who/rotor -c /tmp/hp/c.json >/tmp/hp/$who.log 2>&1 &
    pid=$!
    for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    sleep 0.3
    line=$($BENCH idle --proto v2 --conns 1000 --hold 8s --procs 2 --src-ips 100 --ws ws://127.0.0.1:$PORT/connection/websocket --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
    echo "round=$r who=$who $line" >> /tmp/hp/idle.txt
    kill -TERM $pid; wait $pid 2>/dev/null
    sleep 1
  done
done
