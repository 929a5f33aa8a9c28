//! `join`: `--conns` connections subscribe to one channel with join/leave on, all at once,
//! and the run measures how long until all are in and how many join pushes arrive (a strict
//! order implies N(N+1)/2), with the server's CPU and WebSocket messages per push.

use std::time::{Duration, Instant};

use super::group_child::{child_group, group_cfg, sum_done};
use super::{base_kv, server_cpu, server_mem, si, with_view, Progress, Res, View};
use crate::child::Children;
use crate::group::{Channels, Layout};
use crate::track::Plan;
use crate::util::{now_ns, proc_cpu_s, r3};
use crate::ws::Target;
use crate::JoinArgs;

pub async fn join(a: JoinArgs, args: Vec<String>) -> Res {
    let c = &a.common;
    let channels = Channels {
        layout: Layout::Single,
        prefix: c.channel.clone(),
        conns: a.conns,
    };
    let plan = Plan {
        publishers: 0,
        channels: 1,
    };
    if c.child_index.is_some() {
        let target = Target::resolve(&c.ws).await?;
        let cfg = group_cfg(c, target, channels, a.conns, 0, true, true);
        return child_group(cfg, plan, Duration::from_millis(20)).await;
    }
    let mut out = base_kv(c, "join");
    out.set("conns", a.conns);
    let n = a.conns as u64;
    let mut kids = Children::spawn(c.procs.max(1), &args)?;
    // Let the children start up before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = server_cpu(c);
    let bench0 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let t0 = now_ns();
    let start = Instant::now();
    kids.send_all("GO").await?;
    let view = View::new();
    let prog = {
        let v = view.clone();
        Progress::start(move || {
            format!(
                "joined {} of {n} (failed {}), join pushes received {}",
                v.get("ok"),
                v.get("failed"),
                si(v.get("j") as f64)
            )
        })
    };
    let keys = ["ok", "failed", "j", "dropped"];
    let all_in = with_view(
        &mut kids,
        &view,
        &keys,
        tokio::time::timeout(a.timeout, async {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if view.get("ok") + view.get("failed") >= n {
                    break;
                }
            }
        }),
    )
    .await
    .is_ok();
    let in_wall = start.elapsed().as_secs_f64();
    // Then let the join pushes settle: stop when none arrived for a second, or all the
    // pushes a strict order implies (N(N+1)/2, each subscriber sees itself and later ones).
    let want = n * (n + 1) / 2;
    let settle_end = Instant::now() + a.settle_timeout;
    let mut last = (kids.sum("j"), Instant::now());
    while all_in && Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let j = kids.sum("j");
        view.update(&kids, &keys);
        if j >= want || (j == last.0 && last.1.elapsed() > Duration::from_secs(1)) {
            break;
        }
        if j != last.0 {
            last = (j, Instant::now());
        }
    }
    prog.end();
    let settled_s = start.elapsed().as_secs_f64();
    let cpu1 = server_cpu(c);
    let bench1 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    server_mem(&mut out, c, "end_");
    kids.send_all("STOP").await?;
    let done = sum_done(&kids.collect("DONE", Duration::from_secs(120)).await?)?;
    kids.finish().await;
    let all_in_s = if done.ok + done.failed >= n && done.last_in > t0 {
        Some(r3((done.last_in - t0) as f64 / 1e9))
    } else {
        None
    };
    println!(
        "label={} scenario=join proto={} conns={n} ok={} failed={} all in after {} (waited {in_wall:.2}s); join pushes received {} of {want} in {settled_s:.2}s; dropped {}",
        c.label,
        c.proto,
        done.ok,
        done.failed,
        all_in_s.map_or("-(timeout)".to_string(), |s| format!("{s:.3}s")),
        done.joins,
        done.dropped,
    );
    if let Some(e) = &done.err {
        println!("first error: {e}");
    }
    out.set("ok", done.ok);
    out.set("conn_failed", done.failed);
    out.set("all_in_s", all_in_s);
    out.set("timeout", !all_in);
    out.set("joins", done.joins);
    out.set("joins_strict", want);
    out.set("settle_s", r3(settled_s));
    out.set("dropped", done.dropped);
    out.set("ws_msgs", done.msgs);
    if done.msgs > 0 {
        out.set("joins_per_msg", r3(done.joins as f64 / done.msgs as f64));
    }
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        println!(
            "server CPU {:.2}s, bench CPU {:.2}s, {} WebSocket messages ({:.1} joins per message)",
            c1 - c0,
            bench1 - bench0,
            done.msgs,
            done.joins as f64 / done.msgs.max(1) as f64
        );
        out.set("server_cpu_s", r3(c1 - c0));
    }
    out.set("bench_cpu_s", r3(bench1 - bench0));
    Ok(Some(out))
}
