#!/bin/bash
# Issue 16: WebSocket permessage-deflate on and off, one server with websocket_compression on
# (level 1, min size 0); subscribers offer the extension (on) or not (off), alternating, a fresh
# server per run. Binaries in /tmp/hp16/head/.
set -u
D=/tmp/hp16
PORT=19412
cat > $D/cz.json <<J
{"address":"127.0.0.1","port":$PORT,"engine":"memory","token_hmac_secret_key":"secret","api_key":"api",
 "websocket_compression":true,"websocket_compression_level":1,"websocket_compression_min_size":0,
 "presence":false,"join_leave":false,"publish":true,"log_level":"error"}
J
for r in 1 2 3 4; do for c in off on; do
  $D/head/rotor -c $D/cz.json >$D/cz.log 2>&1 &
  pid=$!
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
  line=$($D/head/rotor-bench ws-compression --proto v2 --compression $c --conns 1000 --doc-size 1024 --duration 6s --ws ws://127.0.0.1:$PORT/connection/websocket --api http://127.0.0.1:$PORT/api --api-key api --server-pid $pid 2>/dev/null | grep '^RESULT' | tail -1)
  echo "round=$r compression=$c $line" >> $D/compression.txt
  kill -TERM $pid; wait $pid 2>/dev/null; sleep 1
done; done
