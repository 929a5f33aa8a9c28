//! `churn` (and `proxy-churn`, through the connect and subscribe proxies): closed-loop
//! workers, spread over the child processes, each repeat a cycle of dial, handshake, connect,
//! subscribe to a fresh channel and close, back to back or paced by `--cycle-rate`; the parent
//! reports cycles/s, cycle time and the server's CPU per cycle.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::ops::{closed_loop, OpsRun, OpsShared};
use super::{base_kv, ms, server_mem, set_first, wait_reply, Res};
use crate::child::{Children, ParentLink};
use crate::group;
use crate::proto::{self, Proto};
use crate::token::Signer;
use crate::util::{now_ns, r3};
use crate::ws::{Target, WsConn};
use crate::ChurnArgs;

pub async fn churn(a: ChurnArgs, args: Vec<String>) -> Res {
    let c = &a.common;
    if c.child_index.is_some() {
        return child_churn(&a).await;
    }
    let mut out = base_kv(c, "churn");
    out.set("auth", if a.proxy_ns.is_some() { "proxy" } else { "jwt" });
    if a.proxy_ns.is_none() {
        out.set("alg", a.alg.jws());
        if let Some(k) = &a.kid {
            out.set("kid", k.as_str());
        }
        // Fail here, before the children start, when the key is missing.
        Signer::for_alg(a.alg, &c.secret, &a.key_dir, a.kid.as_deref())?;
    }
    out.set("workers", a.workers);
    out.set("procs", c.procs.max(1));
    if a.cycle_rate > 0.0 {
        out.set("cycle_rate", a.cycle_rate);
    }
    let kids = Children::spawn(c.procs.max(1), &args)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let OpsRun {
        ops,
        failed,
        rate,
        hist,
        err,
        elapsed,
        server_cpu_s,
        bench_cpu_s,
    } = closed_loop(kids, c, a.duration, "cycles", &mut out).await?;
    println!(
        "label={} scenario=churn proto={} workers={} procs={}: {ops} connect+{}-subscribe cycles in {elapsed:.2}s = {rate:.0}/s, failed={failed}",
        c.label,
        c.proto,
        a.workers,
        c.procs.max(1),
        if a.proxy_ns.is_some() {
            "proxied"
        } else {
            "private"
        }
    );
    if let Some(e) = &err {
        println!("first error: {e}");
    }
    println!(
        "cycle time (dial+handshake+connect+subscribe) p50={:.3}ms p99={:.3}ms max={:.3}ms",
        ms(&hist, 0.5).unwrap_or(0.0),
        ms(&hist, 0.99).unwrap_or(0.0),
        hist.max as f64 / 1000.0
    );
    out.set("cycles", ops);
    out.set("failed", failed);
    out.set("churn_per_s", rate.round());
    out.set("cycle_p50_ms", ms(&hist, 0.5));
    out.set("cycle_p99_ms", ms(&hist, 0.99));
    if let Some(cpu) = server_cpu_s {
        println!(
            "server CPU {cpu:.2}s over {elapsed:.2}s ({:.0}% of one core), {:.0} cycles per server CPU-second; bench CPU {:.2}s",
            100.0 * cpu / elapsed,
            ops as f64 / cpu.max(1e-9),
            bench_cpu_s
        );
        out.set("server_cpu_s", r3(cpu));
        out.set("cycles_per_cpu_s", (ops as f64 / cpu.max(1e-9)).round());
        out.set(
            "server_cpu_s_per_1k",
            format!("{:.4}", cpu * 1000.0 / ops.max(1) as f64),
        );
    }
    server_mem(&mut out, c, "end_");
    out.set("bench_cpu_s", r3(bench_cpu_s));
    if let Some(e) = err {
        out.set("first_error", e);
    }
    Ok(Some(out))
}

async fn child_churn(a: &ChurnArgs) -> Res {
    let c = &a.common;
    let target = Target::resolve(&c.ws).await?;
    let procs = c.procs.max(1);
    let range = group::slice(a.workers, procs, c.child_index.unwrap_or(0));
    let mut link = ParentLink::new();
    if !link.wait_go().await {
        return Ok(None);
    }
    let sh = OpsShared::new();
    let start = Instant::now();
    let end = start + a.duration;
    let signer = match &a.proxy_ns {
        Some(_) => Signer::new(&c.secret),
        None => Signer::for_alg(a.alg, &c.secret, &a.key_dir, a.kid.as_deref())?,
    };
    let mut tasks = Vec::new();
    for w in range {
        let (sh, target, signer) = (sh.clone(), target.clone(), signer.clone());
        let (proto, prefix, src_ips, workers) = (c.proto, c.channel.clone(), c.src_ips, a.workers);
        let proxy_ns = a.proxy_ns.clone();
        // --cycle-rate: each worker's cycles start one period apart, workers staggered.
        let period =
            (a.cycle_rate > 0.0).then(|| Duration::from_secs_f64(workers as f64 / a.cycle_rate));
        let mut next =
            start + period.map_or(Duration::ZERO, |p| p.mul_f64(w as f64 / workers as f64));
        tasks.push(tokio::spawn(async move {
            let user = format!("churn-{w}");
            let mut connect = Vec::new();
            match &proxy_ns {
                // Through the connect proxy: no token; the backend names the user.
                Some(_) => crate::proxy::connect_anon_cmd(&mut connect, proto, 1),
                None => proto::connect_cmd(&mut connect, proto, 1, &signer.connection(&user)),
            }
            let mut iter = 0usize;
            let mut sub = Vec::with_capacity(512);
            while Instant::now() < end {
                if let Some(p) = period {
                    if next >= end {
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                    // Behind by more than a period (a slow cycle): no catch-up burst.
                    next = (next + p).max(Instant::now());
                }
                let t0 = Instant::now();
                let src = group::src_ip(w + iter * workers, src_ips);
                let ch = match &proxy_ns {
                    Some(ns) => format!("{ns}:{prefix}-{w}-{iter}"),
                    None => format!("${prefix}-{w}-{iter}"),
                };
                iter += 1;
                let cycle = async {
                    match &proxy_ns {
                        Some(_) => {
                            crate::proxy::proxy_cycle(&target, src, proto, &connect, &ch, &mut sub)
                                .await
                        }
                        None => {
                            churn_cycle(
                                &target, src, proto, &connect, &signer, &user, &ch, &mut sub,
                            )
                            .await
                        }
                    }
                };
                let r = tokio::time::timeout(Duration::from_secs(10), cycle)
                    .await
                    .unwrap_or_else(|_| Err("cycle timed out".into()));
                match r {
                    Ok(()) => {
                        sh.hist.record(t0.elapsed().as_micros() as u64);
                        sh.ops.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        sh.failed.fetch_add(1, Relaxed);
                        set_first(&sh.err, e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    sh.finish(tasks, start, &mut link).await
}

/// One cycle: dial, handshake, connect (token for the worker's user), subscribe to a fresh
/// private channel with a token for the client ID the server just assigned, close.
#[allow(clippy::too_many_arguments)]
async fn churn_cycle(
    target: &Target,
    src: Option<std::net::IpAddr>,
    proto: Proto,
    connect: &[u8],
    signer: &Signer,
    user: &str,
    channel: &str,
    sub: &mut Vec<u8>,
) -> Result<(), String> {
    let (ws, client) = dial_connect(target, src, connect).await?;
    let token = signer.subscription(&client, channel, (proto == Proto::V2).then_some(user));
    sub.clear();
    proto::subscribe_cmd(sub, proto, 2, channel, Some(&token), false);
    subscribe_and_close(ws, sub).await
}

/// Dials `target` (from `src`), sends the `connect` command (id 1) and waits for its reply;
/// the connection and the client ID the server assigned.
pub(crate) async fn dial_connect(
    target: &Target,
    src: Option<std::net::IpAddr>,
    connect: &[u8],
) -> Result<(WsConn, String), String> {
    let mut ws = WsConn::connect(target, src, 2048, now_ns()).await?;
    ws.send_text(connect)
        .await
        .map_err(|e| format!("send connect: {e}"))?;
    let line = wait_reply(&mut ws, 1).await?;
    let client = proto::client_id(&line).ok_or_else(|| {
        format!(
            "no client id in connect reply {}",
            String::from_utf8_lossy(&line)
        )
    })?;
    Ok((ws, client.to_string()))
}

/// Sends the `sub` command (id 2) on `ws`, waits for its reply, and closes the connection.
pub(crate) async fn subscribe_and_close(mut ws: WsConn, sub: &[u8]) -> Result<(), String> {
    ws.send_text(sub)
        .await
        .map_err(|e| format!("send subscribe: {e}"))?;
    wait_reply(&mut ws, 2).await?;
    let _ = ws.send_close(1000).await;
    Ok(())
}
