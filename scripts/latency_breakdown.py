#!/usr/bin/env python3
"""Splits loadgen's end-to-end latency into the parts a packet capture can see.

Input: the text of `tcpdump -tt -n -A -r capture.pcap` of one loadgen `rate` run against a
server on PORT. Every publication carries `"lg":[publisher,seq,scheduled_ns]`, so the same
marker is seen twice on the wire: in the publisher's `POST /api` (towards PORT) and in each
delivery frame (from PORT). With the scheduled send time from the payload, that gives:

  pub      POST on the wire - scheduled time: the load generator's own timer overshoot and
           HTTP client, before the server has seen anything;
  first    first delivery on the wire - POST on the wire: the server's reaction time;
  last     last delivery on the wire - POST on the wire: the whole fan-out;
  server   each delivery on the wire - POST on the wire (what the server adds);
  wire     each delivery on the wire - scheduled time (loadgen's figure minus its read path).

Prints one `key=value` line (milliseconds) for bench.sh's results file.
Usage: latency_breakdown.py PORT < tcpdump.txt
"""
import re
import sys

HEADER = re.compile(r"^(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+):")
MARK = re.compile(r'"lg":\[(\d+),(\d+),(\d+)\]')


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1e3


def main():
    port = int(sys.argv[1])
    posted = {}  # (publisher, seq) -> (wire time, scheduled time)
    deliveries = []  # (key, wire time)
    current = None
    for line in sys.stdin:
        m = HEADER.match(line)
        if m:
            current = (float(m.group(1)), int(m.group(2)), int(m.group(3)))
            continue
        if current is None:
            continue
        t, src, dst = current
        for mm in MARK.finditer(line):
            key = (int(mm.group(1)), int(mm.group(2)))
            if dst == port:
                posted.setdefault(key, (t, int(mm.group(3)) / 1e9))
            elif src == port:
                deliveries.append((key, t))
    first, last, server, wire = {}, {}, [], []
    for key, t in deliveries:
        if key not in posted:
            continue
        t_post, sched = posted[key]
        first[key] = min(first.get(key, t), t)
        last[key] = max(last.get(key, t), t)
        server.append(t - t_post)
        wire.append(t - sched)
    pub = [t_post - sched for key, (t_post, sched) in posted.items() if key in first]
    firsts = [first[k] - posted[k][0] for k in first]
    lasts = [last[k] - posted[k][0] for k in last]
    out = {
        "publications": len(pub),
        "deliveries": len(server),
        "pub_p50_ms": pct(pub, 0.5),
        "pub_p99_ms": pct(pub, 0.99),
        "first_p50_ms": pct(firsts, 0.5),
        "first_p99_ms": pct(firsts, 0.99),
        "last_p50_ms": pct(lasts, 0.5),
        "last_p99_ms": pct(lasts, 0.99),
        "server_p50_ms": pct(server, 0.5),
        "server_p99_ms": pct(server, 0.99),
        "wire_p50_ms": pct(wire, 0.5),
        "wire_p99_ms": pct(wire, 0.99),
    }
    if not pub:
        out["error"] = "no_publication_seen"
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
