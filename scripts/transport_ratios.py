#!/usr/bin/env python3
"""Paired ratios for bench.sh part transports (issue 14).

Reads results files (lines `server=NAME round=R tag=TAG key=value ...`) and, for each round,
divides a transport's figure by the figure of the run it alternated with in the same round
(WebSocket for Rotor's transports, the reference for SockJS), then prints the median of those
per-round ratios with their range. Paired ratios are steadier than a ratio of medians when
the machine's load drifts between rounds.

    scripts/transport_ratios.py bench/transports/results.txt bench/transports/sockjs/results.txt
"""
import statistics
import sys
from collections import defaultdict

# (tag prefix, metric, what "better" means) per table.
METRICS = {
    "fanout": ["deliv_per_s", "deliv_per_cpu_s", "p99_ms", "bench_cpu_s"],
    "idle": ["kb_per_conn"],
    "rtt": ["p50_ms", "p99_ms", "post_p99_ms"],
}


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                if not line.startswith("server="):
                    continue
                kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
                rows.append(kv)
    return rows


def num(kv, k):
    try:
        return float(kv[k])
    except (KeyError, ValueError):
        return None


def main(paths):
    rows = load(paths)
    # (tag, transport) -> round -> server -> row
    runs = defaultdict(lambda: defaultdict(dict))
    for kv in rows:
        if "error" in kv:
            continue
        # SockJS rows: server ref|rotor, one table per transport; Rotor's transports: the
        # server name is the transport.
        if kv["server"] in ("ref", "rotor"):
            key = (kv.get("tag", "-"), kv.get("transport", "websocket"))
        else:
            key = (kv.get("tag", "-"), "(v2)")
        runs[key][kv.get("round", "-")][kv["server"]] = kv
    for (tag, transport), by_round in sorted(runs.items()):
        kind = tag.split("-")[0]
        servers = sorted({s for r in by_round.values() for s in r})
        if "ref" in servers:
            pairs = [("rotor", "ref")]
        elif "websocket" in servers:
            pairs = [(s, "websocket") for s in servers if s != "websocket"]
        else:
            continue
        for a, b in pairs:
            for m in METRICS.get(kind, []):
                ratios, av, bv = [], [], []
                for r in by_round.values():
                    if a in r and b in r:
                        x, y = num(r[a], m), num(r[b], m)
                        if x is not None and y:
                            ratios.append(x / y)
                            av.append(x)
                            bv.append(y)
                if not ratios:
                    continue
                print(
                    f"{tag:<18} {transport:<11} {m:<16} {a}/{b}: median {statistics.median(ratios):.2f}x"
                    f" (range {min(ratios):.2f}..{max(ratios):.2f}, {len(ratios)} rounds;"
                    f" medians {statistics.median(av):.4g} vs {statistics.median(bv):.4g})"
                )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
