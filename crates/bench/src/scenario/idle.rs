//! `idle`: hold `--conns` subscribed connections (one channel each, or a shared one) that
//! receive nothing, and measure what they cost the server: RSS per connection after setup and
//! after the hold, and CPU per connection-second while idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::group_child::{child_group, group_cfg, sum_done};
use super::progress::wait_connected;
use super::{base_kv, first_err, server_cpu, sum_of, with_view, Progress, Res, View};
use crate::child::Children;
use crate::group::{Channels, Layout};
use crate::track::Plan;
use crate::util::{proc_cpu_s, proc_mem_kb, r3, Interference};
use crate::ws::Target;
use crate::IdleArgs;

pub async fn idle(a: IdleArgs, args: Vec<String>) -> Res {
    let c = &a.common;
    let channels = Channels {
        layout: if a.shared_channel {
            Layout::Single
        } else {
            Layout::PerConn
        },
        prefix: c.channel.clone(),
        conns: a.conns,
    };
    let plan = Plan {
        publishers: 0,
        channels: channels.count(),
    };
    if c.child_index.is_some() {
        let target = Target::resolve(&c.ws).await?;
        let mut cfg = group_cfg(c, target, channels, a.conns, 0, false, false);
        cfg.dialer = Arc::new(crate::conn::Dialer::new(&a.transport, &c.ws, c.proto).await?);
        cfg.read_buf = cfg.read_buf.min(4096);
        return child_group(cfg, plan, Duration::from_millis(200)).await;
    }
    let mut out = base_kv(c, "idle");
    out.set("transport", a.transport.transport.name());
    out.set("conns", a.conns);
    out.set("procs", c.procs.max(1));
    let rss0 = c.server_pid.and_then(proc_mem_kb).map(|x| x.0);
    let mut kids = Children::spawn(c.procs.max(1), &args)?;
    kids.send_all("GO").await?;
    let conn_s = wait_connected(
        &mut kids,
        a.conns as u64,
        c.setup_timeout + Duration::from_secs(1200),
    )
    .await?;
    let ready = kids.collect("READY", Duration::from_secs(30)).await?;
    let (ok, failed) = (sum_of(&ready, "ok"), sum_of(&ready, "failed"));
    println!(
        "label={} scenario=idle proto={} conns={} ok={ok} failed={failed} procs={} connect+subscribe={conn_s:.2}s ({:.0} conn/s)",
        c.label,
        c.proto,
        a.conns,
        c.procs.max(1),
        ok as f64 / conn_s
    );
    if let Some(e) = first_err(&ready) {
        println!("first connection error: {e}");
    }
    out.set("ok", ok);
    out.set("conn_failed", failed);
    out.set("conn_per_s", (ok as f64 / conn_s).round());
    tokio::time::sleep(a.settle).await;
    let rss1 = c.server_pid.and_then(proc_mem_kb);
    let cpu0 = server_cpu(c);
    let bench0 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let intf = Interference::start(c.server_pid, bench0);
    let t0 = Instant::now();
    let view = View::new();
    let prog = {
        let v = view.clone();
        Progress::start(move || format!("holding {ok} connections, dropped {}", v.get("dropped")))
    };
    with_view(&mut kids, &view, &["dropped"], tokio::time::sleep(a.hold)).await;
    prog.end();
    let held = t0.elapsed().as_secs_f64();
    let cpu1 = server_cpu(c);
    let bench1 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let rss2 = c.server_pid.and_then(proc_mem_kb).map(|x| x.0);
    intf.report(&mut out, bench1);
    kids.send_all("STOP").await?;
    let done = sum_done(&kids.collect("DONE", Duration::from_secs(120)).await?)?;
    kids.finish().await;
    if let (Some(r0), Some((r1, hwm))) = (rss0, rss1) {
        let per = (r1 as f64 - r0 as f64) / ok.max(1) as f64;
        println!(
            "server RSS before={r0} kB after={r1} kB (peak {hwm} kB) after hold={} kB -> {per:.2} kB per connection",
            rss2.unwrap_or(0)
        );
        out.set("rss_before_kb", r0);
        out.set("rss_after_kb", r1);
        out.set("hwm_kb", hwm);
        out.set("rss_after_hold_kb", rss2);
        out.set("kb_per_conn", r3(per));
    }
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = c1 - c0;
        let per_conn_s = cpu * 1e6 / (ok.max(1) as f64 * held);
        println!(
            "server CPU while idle: {cpu:.2}s over {held:.1}s ({:.2}% of one core) = {per_conn_s:.3} µs per connection-second; dropped during hold={}",
            100.0 * cpu / held,
            done.dropped
        );
        out.set("server_cpu_s", r3(cpu));
        out.set("idle_cpu_pct", r3(100.0 * cpu / held));
        out.set("cpu_us_per_conn_s", r3(per_conn_s));
    }
    out.set("dropped", done.dropped);
    out.set("hold_s", r3(held));
    out.set("bench_cpu_s", r3(bench1 - bench0));
    Ok(Some(out))
}
