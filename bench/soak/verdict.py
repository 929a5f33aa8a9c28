#!/usr/bin/env python3
"""Verdict of one soak run (bench/soak/run.sh): reads the samples CSV and prints the figures
and whether the targets hold.

usage: verdict.py CSV WARMUP_S "after-load key=value ..." "fanout RESULT" "churn RESULT"

Targets:
* RSS after warm-up stays within 10 %: every sample after the warm-up is within +-10 % of the
  first sample after it (the baseline).
* Nothing grows without bound: for RSS, open fds, async tasks, subscriptions, queued bytes and
  (Redis) used memory, the median of the last third of the post-warm-up samples is at most
  10 % (plus a small absolute slack for counts that move with the churn) above the median of
  the first third. A least-squares slope per hour is printed beside it.
"""
import statistics
import sys


def kv(s):
    out = {}
    for part in s.split():
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def slope_per_h(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600


def main():
    path, warmup = sys.argv[1], float(sys.argv[2])
    after = kv(sys.argv[3]) if len(sys.argv) > 3 else {}
    fan = kv(sys.argv[4]) if len(sys.argv) > 4 else {}
    churn = kv(sys.argv[5]) if len(sys.argv) > 5 else {}
    with open(path) as f:
        header = f.readline().strip().split(",")
        rows = []
        for line in f:
            cells = line.strip().split(",")
            row = {}
            for h, c in zip(header, cells):
                try:
                    row[h] = float(c)
                except ValueError:
                    pass
            rows.append(row)
    post = [r for r in rows if r.get("t_s", 0) >= warmup]
    ok = True
    print(f"samples={len(rows)} after_warmup={len(post)} warmup_s={warmup:g}")
    if len(post) < 3:
        print("verdict=FAIL reason=too_few_samples")
        return 1
    base = post[0]["rss_kb"]
    lo = min(r["rss_kb"] for r in post)
    hi = max(r["rss_kb"] for r in post)
    dev = max(hi - base, base - lo) / base * 100
    rss_ok = dev <= 10.0
    ok &= rss_ok
    print(
        f"rss_start_kb={rows[0]['rss_kb']:.0f} rss_warm_kb={base:.0f} rss_min_kb={lo:.0f} "
        f"rss_max_kb={hi:.0f} rss_end_kb={post[-1]['rss_kb']:.0f} "
        f"rss_max_dev_pct={dev:.1f} rss_target={'met' if rss_ok else 'MISSED'}"
    )
    third = max(1, len(post) // 3)
    slack = {"fds": 20, "tasks": 40, "subscriptions": 40, "queue_bytes_sum": 65536,
             "queue_bytes_max": 65536, "rss_kb": 0, "redis_used_kb": 256, "clients": 40}
    for col in ["rss_kb", "fds", "tasks", "clients", "subscriptions", "queue_bytes_sum",
                "queue_bytes_max", "redis_used_kb"]:
        vals = [(r["t_s"], r[col]) for r in post if col in r]
        if len(vals) < 3:
            continue
        first = statistics.median(v for _, v in vals[:third])
        last = statistics.median(v for _, v in vals[-third:])
        bound = first * 1.10 + slack.get(col, 0)
        grows = last > bound
        ok &= not grows
        s = slope_per_h([t for t, _ in vals], [v for _, v in vals])
        print(
            f"{col}: first_third_median={first:.0f} last_third_median={last:.0f} "
            f"max={max(v for _, v in vals):.0f} slope_per_h={s:.1f} "
            f"{'GROWS' if grows else 'flat'}"
        )
    if after:
        print("after_load " + " ".join(f"{k}={v}" for k, v in after.items()))
    for name, r in (("fanout", fan), ("churn", churn)):
        keys = ["ok", "failed", "dropped", "lost", "dup", "reorder", "deliv_per_s", "p50_ms",
                "p99_ms", "max_ms", "churn_per_s", "error"]
        print(name + " " + " ".join(f"{k}={r[k]}" for k in keys if k in r))
        if "error" in r:
            ok = False
    if fan.get("lost", "0") not in ("0", ""):
        ok = False
    print(f"verdict={'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
