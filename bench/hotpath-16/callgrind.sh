#!/bin/bash
# callgrind instruction counts of the server for a fixed workload: 200 v2 subscribers, 100 publications
D=/tmp/hp16; PORT=19413
sed "s/19411/$PORT/" $D/c.json > $D/cg.json
for who in base head; do
  valgrind --tool=callgrind --callgrind-out-file=$D/cg.$who.out $D/$who/rotor -c $D/cg.json > $D/cg.$who.log 2>&1 &
  pid=$!
  for i in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.2; done
  sleep 1
  $D/head/rotor-bench fanout --proto v2 --mode rate --rate ${RATE:-20} --conns 200 --publishers 1 --duration 5s --drain 10s --setup-timeout 120s --ws ws://127.0.0.1:$PORT/connection/websocket --api http://127.0.0.1:$PORT/api --api-key api 2>/dev/null | grep '^RESULT' | tail -1 > $D/cg.$who.res
  kill -TERM $pid; wait $pid 2>/dev/null
  grep -o "delivered=[0-9]*\|published=[0-9]*" $D/cg.$who.res | tr '\n' ' '; grep "summary\|totals" $D/cg.$who.out | head -2
done
