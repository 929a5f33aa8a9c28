#!/usr/bin/env python3
"""Markdown tables from bench/brokers results files (lines written by run.sh).

    python3 bench/brokers/table.py bench/brokers/run1/results.txt [more files...]

Per (topology, server, nodes): medians [min..max] over rounds of publications/s, deliveries/s,
the CPU (% of one core) of node 0, the other nodes, the broker processes and rotor-bench, the CPU
of processes outside the run (other helpers), and publications per CPU-second of the run's own
processes. Then ratios paired by round (same round = measured minutes apart): sharded topologies
against one Redis, NATS against one Redis, Rotor against the reference.
"""
import collections
import statistics
import sys


def parse(paths):
    rows = []
    for p in paths:
        for line in open(p):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "error" in kv or "pub_per_s" not in kv:
                continue
            rows.append(kv)
    return rows


def num(kv, k):
    try:
        return float(kv[k])
    except (KeyError, ValueError):
        return None


def own_cpu(kv):
    """(node0, other nodes, broker, bench) CPU seconds over the publishing window."""
    node0 = num(kv, "server_cpu_s") or 0.0
    nodes = sum(float(v) for k, v in kv.items() if k.startswith("cpu_node") and k.endswith("_s"))
    broker = sum(
        float(v)
        for k, v in kv.items()
        if k.startswith("cpu_") and k.endswith("_s") and not k.startswith("cpu_node")
    )
    bench = num(kv, "bench_cpu_s") or 0.0
    return node0, nodes, broker, bench


def busiest_broker(kv):
    """CPU seconds of the busiest broker process (one Redis master, or nats-server)."""
    v = [
        float(v)
        for k, v in kv.items()
        if k.startswith("cpu_") and k.endswith("_s") and not k.startswith("cpu_node")
    ]
    return max(v) if v else None


def ceiling(kv):
    """Publications per CPU-second of the busiest broker process: the rate at which that
    process would fill one core (a single-threaded Redis saturates there)."""
    b = busiest_broker(kv)
    if not b:
        return None
    return num(kv, "pub_per_s") * num(kv, "span_s") / b


def outside_cpu(kv):
    other = num(kv, "other_cpu_s") or 0.0
    watched = sum(float(v) for k, v in kv.items() if k.startswith("cpu_") and k.endswith("_s"))
    return max(other - watched, 0.0)


def spread(v):
    v = [x for x in v if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v)


def fmt(s, unit="", digits=0):
    if s is None:
        return "–"
    m, lo, hi = s
    f = lambda x: f"{x:,.{digits}f}{unit}"
    return f"{f(m)} [{f(lo)}..{f(hi)}]"


def main(paths):
    rows = parse(paths)
    groups = collections.OrderedDict()
    order = ["redis1", "shard3", "cluster", "cluster-sharded", "nats"]
    for kv in rows:
        groups.setdefault((kv["topo"], kv["server"], kv["nodes"]), []).append(kv)
    keys = sorted(groups, key=lambda k: (k[2], order.index(k[0]) if k[0] in order else 99, k[1]))
    print("| topology | server | nodes | runs | publications/s | deliveries/s | node 0 CPU % | other nodes CPU % | broker CPU % | rotor-bench CPU % | outside CPU % | pubs per own CPU-s | pubs per busiest-broker CPU-s | lost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        g = groups[k]
        pct = lambda f: spread([100 * f(kv) / num(kv, "span_s") for kv in g])
        per_cpu = spread([num(kv, "pub_per_s") * num(kv, "span_s") / max(sum(own_cpu(kv)), 1e-9) for kv in g])
        lost = sum(int(kv.get("lost", 0)) for kv in g)
        print(
            f"| {k[0]} | {k[1]} | {k[2]} | {len(g)} | {fmt(spread([num(kv, 'pub_per_s') for kv in g]))} "
            f"| {fmt(spread([num(kv, 'deliv_per_s') for kv in g]))} "
            f"| {fmt(pct(lambda kv: own_cpu(kv)[0]))} | {fmt(pct(lambda kv: own_cpu(kv)[1]))} "
            f"| {fmt(pct(lambda kv: own_cpu(kv)[2]))} | {fmt(pct(lambda kv: own_cpu(kv)[3]))} "
            f"| {fmt(pct(outside_cpu))} | {fmt(per_cpu)} | {fmt(spread([ceiling(kv) for kv in g]))} | {lost} |"
        )
    # Paired ratios: same round, same node count.
    by = {(kv["topo"], kv["server"], kv["nodes"], kv["label"].rsplit("-r", 1)[-1]): kv for kv in rows}
    pairs = [
        ("shard3", "rotor", "redis1", "rotor", "3 sharded Redis / 1 Redis (Rotor)"),
        ("cluster-sharded", "rotor", "redis1", "rotor", "cluster, sharded PUB/SUB / 1 Redis (Rotor)"),
        ("cluster", "rotor", "redis1", "rotor", "cluster, classic PUB/SUB / 1 Redis (Rotor)"),
        ("cluster-sharded", "rotor", "cluster", "rotor", "cluster sharded / classic (Rotor)"),
        ("nats", "rotor", "redis1", "rotor", "NATS / 1 Redis (Rotor)"),
        ("redis1", "rotor", "redis1", "ref", "Rotor / reference, 1 Redis"),
        ("cluster", "rotor", "cluster", "ref", "Rotor / reference, cluster classic"),
        ("cluster", "ref", "redis1", "ref", "cluster / 1 Redis (reference)"),
    ]
    print()
    print("| ratio (paired by round) | nodes | publications/s | pubs per own CPU-s | pubs per busiest-broker CPU-s |")
    print("|---|---|---|---|---|")
    nodes = sorted({kv["nodes"] for kv in rows})
    for a_t, a_s, b_t, b_s, name in pairs:
        for n in nodes:
            r_pub, r_cpu, r_ceil = [], [], []
            for (t, s, nn, rnd), kv in by.items():
                if (t, s, nn) != (a_t, a_s, n):
                    continue
                other = by.get((b_t, b_s, n, rnd))
                if not other:
                    continue
                r_pub.append(num(kv, "pub_per_s") / num(other, "pub_per_s"))
                eff = lambda x: num(x, "pub_per_s") * num(x, "span_s") / max(sum(own_cpu(x)), 1e-9)
                r_cpu.append(eff(kv) / eff(other))
                if ceiling(kv) and ceiling(other):
                    r_ceil.append(ceiling(kv) / ceiling(other))
            if r_pub:
                print(f"| {name} | {n} | {fmt(spread(r_pub), '×', 2)} | {fmt(spread(r_cpu), '×', 2)} | {fmt(spread(r_ceil), '×', 2)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
