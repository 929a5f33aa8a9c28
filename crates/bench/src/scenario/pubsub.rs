//! The publish-and-deliver scenarios: `fanout` (one channel), `channels` (personal group
//! channels), `api-publish` (publications through a chosen server API) and `nodes` (channels
//! striped over several nodes). Children hold the subscribers; the parent's publishers send
//! as fast as a window of outstanding deliveries allows (max mode) or at a fixed rate paced
//! by a thread, then the parent drains, sums the children's DONE lines and reports
//! deliveries, losses, latency and CPU.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::group_child::{child_group, group_cfg, sum_done};
use super::progress::wait_connected;
use super::{
    base_kv, first_err, ms, server_cpu, server_mem, set_first, si, sum_of, Progress, Res, View,
};
use crate::apipub::{self, ApiPath, Sink, Via};
use crate::child::Children;
use crate::group::{Channels, Layout};
use crate::hist::ShardedHist;
use crate::proto;
use crate::token::json_str;
use crate::track::Plan;
use crate::util::{now_ns, proc_cpu_s, proc_mem_kb, r3, Interference};
use crate::ws::Target;
use crate::{Mode, PubArgs};

struct PubShared {
    attempts: Vec<AtomicU64>,
    failed: Mutex<Vec<(usize, u64)>>,
    ok: AtomicU64,
    errors: AtomicU64,
    first_err: Mutex<Option<String>>,
    /// Deliveries the publications sent so far should cause (all subscribers up).
    nominal: AtomicU64,
    max_lag_ns: AtomicU64,
    /// Duration of each API request (µs).
    api: ShardedHist,
}

/// `fanout` (group_size None), `channels` (group channels of `group_size`) and `api-publish`
/// (`path`: the API the publications go through; None: `POST /api` commands).
pub async fn pubsub(
    a: PubArgs,
    group_size: Option<usize>,
    path: Option<ApiPath>,
    args: Vec<String>,
) -> Res {
    let layout = match group_size {
        None => Layout::Single,
        Some(s) => Layout::PersonalGroup { size: s.max(1) },
    };
    pubsub_layout(a, layout, path, args).await
}

/// [`pubsub`] on any channel layout (`nodes` uses [`Layout::Striped`]).
pub async fn pubsub_layout(
    a: PubArgs,
    layout: Layout,
    path: Option<ApiPath>,
    args: Vec<String>,
) -> Res {
    let c = &a.common;
    let channels = Channels {
        layout,
        prefix: c.channel.clone(),
        conns: a.conns,
    };
    let publishers = a.publishers.max(1);
    let plan = Plan {
        publishers,
        channels: channels.count(),
    };
    if let Some(idx) = c.child_index {
        // `--ws` may list several nodes: child i connects to node i % n.
        let ws = crate::nodes::ws_for(&c.ws, idx);
        let target = Target::resolve(ws).await?;
        let mut cfg = group_cfg(c, target, channels, a.conns, publishers, false, false);
        cfg.dialer = Arc::new(crate::conn::Dialer::new(&a.transport, ws, c.proto).await?);
        return child_group(cfg, plan, Duration::from_millis(5)).await;
    }
    let scenario = match (&path, layout) {
        (Some(_), _) => "api-publish",
        (None, Layout::PersonalGroup { .. }) => "channels",
        (None, Layout::Striped { .. }) => "nodes",
        (None, _) => "fanout",
    };
    let watch = crate::nodes::parse_watch(&c.watch)?;
    if path.is_some() && a.batch > 1 {
        return Err("api-publish publishes one publication per call (--batch 1)".into());
    }
    let mut out = base_kv(c, scenario);
    out.set(
        "mode",
        match a.mode {
            Mode::Max => "max",
            Mode::Rate => "rate",
        },
    );
    out.set("transport", a.transport.transport.name());
    out.set("conns", a.conns);
    out.set("channels", channels.count());
    out.set("publishers", publishers);
    out.set("batch", a.batch.max(1));
    out.set("payload", a.payload);
    if let Some(p) = &path {
        out.set("via", p.via.name());
        out.set("callers", publishers);
        out.set(
            "api_conns",
            if p.via == Via::HttpPool {
                publishers
            } else {
                1
            },
        );
    }
    let api = Target::resolve(&c.api).await?;

    let mut kids = Children::spawn(c.procs.max(1), &args)?;
    kids.send_all("GO").await?;
    let conn_s = wait_connected(
        &mut kids,
        a.conns as u64,
        c.setup_timeout + Duration::from_secs(600),
    )
    .await?;
    let ready = kids.collect("READY", Duration::from_secs(30)).await?;
    let (ok, failed) = (sum_of(&ready, "ok"), sum_of(&ready, "failed"));
    let first_err = first_err(&ready);
    println!(
        "label={} scenario={scenario} proto={} conns={} ok={ok} failed={failed} connect+subscribe={conn_s:.2}s ({:.0} conn/s)",
        c.label,
        c.proto,
        a.conns,
        ok as f64 / conn_s
    );
    if let Some(e) = &first_err {
        println!("first connection error: {e}");
    }
    out.set("ok", ok);
    out.set("conn_failed", failed);
    out.set("conn_per_s", (ok as f64 / conn_s).round());
    if let Some((r1, _)) = c.server_pid.and_then(proc_mem_kb) {
        out.set("conn_rss_kb", r1);
    }
    if ok == 0 {
        out.set("error", "no_connections");
        kids.send_all("STOP").await.ok();
        kids.finish().await;
        return Ok(Some(out));
    }

    // Publishers: their API connections are opened before the clock starts.
    let batch = a.batch.max(1);
    let framing: Vec<(Vec<u8>, &'static [u8])> = (0..channels.count())
        .map(|ch| apipub::framing(path.as_ref(), &json_str(&channels.name(ch))))
        .collect();
    let suffix = framing.first().map_or(&b"}}"[..], |f| f.1);
    let prefixes: Arc<Vec<Vec<u8>>> = Arc::new(framing.into_iter().map(|f| f.0).collect());
    let fanout: Arc<Vec<u32>> = Arc::new(
        (0..channels.count())
            .map(|ch| channels.subscribers(ch) as u32)
            .collect(),
    );
    let shared = Arc::new(PubShared {
        attempts: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
        failed: Mutex::new(Vec::new()),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_err: Mutex::new(None),
        nominal: AtomicU64::new(0),
        max_lag_ns: AtomicU64::new(0),
        api: ShardedHist::new(),
    });
    let names = Arc::new((0..channels.count()).map(|ch| channels.name(ch)).collect());
    let clients = Sink::open(path.as_ref(), &api, &c.api_key, publishers, names).await?;
    let window = if a.window > 0 {
        a.window
    } else {
        (100_000 / ok).max(8)
    };
    // Outstanding deliveries allowed (max mode), scaled to the connections that are up.
    let limit = window * ok;
    let scale = ok as f64 / a.conns as f64;
    let delivered = Arc::new(AtomicU64::new(0)); // mirror of the children's sum, for publishers
    let notify = Arc::new(Notify::new());

    let cpu0 = server_cpu(c);
    let watch0 = crate::nodes::cpu_snapshot(&watch);
    let bench0 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let intf = Interference::start(c.server_pid, bench0);
    let pub_start = Instant::now();
    let pub_start_ns = now_ns();
    let end = pub_start + a.duration;

    // Rate mode: a pacing thread hands each publisher its scheduled send times (std sleep is
    // finer than the runtime's millisecond timer); the publication carries the scheduled time.
    let mut tickets: Vec<Option<mpsc::UnboundedReceiver<u64>>> = Vec::new();
    let pacer_stop = Arc::new(AtomicBool::new(false));
    let mut pacer = None;
    if a.mode == Mode::Rate {
        let mut txs = Vec::new();
        for _ in 0..publishers {
            let (tx, rx) = mpsc::unbounded_channel();
            txs.push(tx);
            tickets.push(Some(rx));
        }
        let per_req = batch as f64 / a.rate.max(0.001);
        let total = (a.duration.as_secs_f64() / per_req).floor() as u64;
        let stop = pacer_stop.clone();
        pacer = Some(std::thread::spawn(move || {
            for g in 0..total {
                let off = Duration::from_secs_f64(g as f64 * per_req);
                let target = pub_start + off;
                let now = Instant::now();
                if target > now {
                    std::thread::sleep(target - now);
                }
                if stop.load(Relaxed) {
                    break;
                }
                let ts = pub_start_ns + off.as_nanos() as u64;
                if txs[(g % txs.len() as u64) as usize].send(ts).is_err() {
                    break;
                }
            }
        }));
    } else {
        tickets.resize_with(publishers, || None);
    }

    let mut handles = Vec::new();
    for (p, (mut client, rx)) in clients.into_iter().zip(tickets).enumerate() {
        let (shared, prefixes, fanout) = (shared.clone(), prefixes.clone(), fanout.clone());
        let (delivered, notify) = (delivered.clone(), notify.clone());
        let payload = a.payload;
        let mode = a.mode;
        handles.push(tokio::spawn(async move {
            let mut rx = rx;
            let mut seqs = vec![0u64; prefixes.len()];
            let mut body: Vec<u8> = Vec::with_capacity(256 * batch);
            let mut j = 0u64;
            loop {
                let ts = match mode {
                    Mode::Max => {
                        loop {
                            if Instant::now() >= end {
                                return;
                            }
                            let n = notify.notified();
                            tokio::pin!(n);
                            n.as_mut().enable();
                            let sent = shared.nominal.load(Relaxed) as f64 * scale;
                            if sent - (delivered.load(Relaxed) as f64) < limit as f64 {
                                break;
                            }
                            let _ = tokio::time::timeout(Duration::from_millis(5), n).await;
                        }
                        now_ns()
                    }
                    Mode::Rate => match rx.as_mut().expect("rate mode").recv().await {
                        Some(t) => {
                            let lag = now_ns().saturating_sub(t);
                            shared.max_lag_ns.fetch_max(lag, Relaxed);
                            t
                        }
                        None => return,
                    },
                };
                body.clear();
                let mut nominal = 0u64;
                for b in 0..batch as u64 {
                    let ch = plan.channel(p, j + b);
                    seqs[ch] += 1;
                    if b > 0 {
                        body.push(b'\n');
                    }
                    body.extend_from_slice(&prefixes[ch]);
                    proto::publication_data(&mut body, p, ch, seqs[ch], ts, payload);
                    body.extend_from_slice(suffix);
                    nominal += fanout[ch] as u64;
                }
                shared.nominal.fetch_add(nominal, Relaxed);
                shared.attempts[p].fetch_add(batch as u64, Relaxed);
                let first = j;
                j += batch as u64;
                let sent_at = Instant::now();
                // (a gRPC call carries one publication: batch is 1 there)
                let res = client
                    .send(plan.channel(p, first), Bytes::copy_from_slice(&body))
                    .await;
                shared.api.record(sent_at.elapsed().as_micros() as u64);
                match res {
                    Ok(()) => {
                        shared.ok.fetch_add(batch as u64, Relaxed);
                    }
                    Err(e) => {
                        shared.errors.fetch_add(batch as u64, Relaxed);
                        shared
                            .failed
                            .lock()
                            .unwrap_or_else(|x| x.into_inner())
                            .extend((first..j).map(|x| (p, x)));
                        set_first(&shared.first_err, e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }

    // Feed the publishers the delivered count and show progress until they are done.
    let view = View::new();
    let prog = {
        let (v, shared) = (view.clone(), shared.clone());
        let mut last = (Instant::now(), 0u64, 0u64);
        Progress::start(move || {
            let (d, pubs) = (v.get("d"), shared.ok.load(Relaxed));
            let dt = last.0.elapsed().as_secs_f64().max(1e-3);
            let s = format!(
                "published {} ({}/s) delivered {} ({}/s) dropped {} pub_errors {}",
                si(pubs as f64),
                si((pubs - last.2) as f64 / dt),
                si(d as f64),
                si((d.saturating_sub(last.1)) as f64 / dt),
                v.get("dropped"),
                shared.errors.load(Relaxed)
            );
            last = (Instant::now(), d, pubs);
            s
        })
    };
    let keys = ["d", "u", "dropped"];
    feed_publishers(&kids, &view, &keys, handles, &delivered, &notify).await;
    pacer_stop.store(true, Relaxed);
    if let Some(t) = pacer {
        let _ = t.join();
    }
    let pub_dur = pub_start.elapsed().as_secs_f64();
    let delivered_at_pub_end = kids.sum("d");

    // Drain: tell the children what went out, then wait until every expected publication
    // arrived or the drain time is up.
    let attempts: Vec<String> = shared
        .attempts
        .iter()
        .map(|x| x.load(Relaxed).to_string())
        .collect();
    let failed_list: Vec<String> = shared
        .failed
        .lock()
        .unwrap_or_else(|x| x.into_inner())
        .iter()
        .map(|(p, j)| format!("{p}:{j}"))
        .collect();
    kids.send_all(&format!(
        "COUNTS attempts={} failed={}",
        attempts.join(","),
        if failed_list.is_empty() {
            "-".to_string()
        } else {
            failed_list.join(",")
        }
    ))
    .await?;
    let exp = sum_of(
        &kids.collect("EXPECTED", Duration::from_secs(60)).await?,
        "exp",
    );
    drain(&kids, &view, &keys, "u", exp, a.drain).await;
    prog.end();
    let cpu1 = server_cpu(c);
    crate::nodes::cpu_report(&mut out, &watch, &watch0, pub_start.elapsed().as_secs_f64());
    let bench1 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    server_mem(&mut out, c, "end_");
    intf.report(&mut out, bench1);
    kids.send_all("STOP").await?;
    let done = sum_done(&kids.collect("DONE", Duration::from_secs(120)).await?)?;
    kids.finish().await;

    let published = shared.ok.load(Relaxed);
    let pub_errors = shared.errors.load(Relaxed);
    let lost = done.expected.saturating_sub(done.unique);
    let span = if done.last > pub_start_ns {
        (done.last - pub_start_ns) as f64 / 1e9
    } else {
        pub_dur
    };
    let deliv_per_s = done.received as f64 / span;
    let h = &done.hist;
    println!(
        "published={published} (errors={pub_errors}) by {publishers} publishers in {pub_dur:.2}s ({:.1}/s){}",
        published as f64 / pub_dur,
        match a.mode {
            Mode::Max => format!(" window={window}"),
            Mode::Rate => format!(" target_rate={}/s", a.rate),
        }
    );
    if let Some(e) = shared
        .first_err
        .lock()
        .unwrap_or_else(|x| x.into_inner())
        .as_ref()
    {
        println!("first publish error: {e}");
    }
    println!(
        "delivered={} expected={} lost={lost} duplicated={} reordered={} unexpected={} delivered/s={deliv_per_s:.0} (first publish to last delivery {span:.2}s; {:.0}/s while publishing)",
        done.received,
        done.expected,
        done.dup,
        done.reorder,
        done.unexpected,
        delivered_at_pub_end as f64 / pub_dur
    );
    if done.frames > 0 {
        println!(
            "WebSocket messages carrying publications={} ({:.2} per message)",
            done.frames,
            done.received as f64 / done.frames as f64
        );
    }
    println!(
        "latency p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms{}",
        ms(h, 0.5).unwrap_or(0.0),
        ms(h, 0.9).unwrap_or(0.0),
        ms(h, 0.99).unwrap_or(0.0),
        ms(h, 0.999).unwrap_or(0.0),
        h.max as f64 / 1000.0,
        if a.mode == Mode::Rate {
            format!(
                " (from scheduled send time; max publisher lag {:.2}ms)",
                shared.max_lag_ns.load(Relaxed) as f64 / 1e6
            )
        } else {
            String::new()
        }
    );
    if done.dropped > 0 {
        println!(
            "connections dropped by the server during the run: {} ({})",
            done.dropped,
            done.err.as_deref().unwrap_or("")
        );
    }
    match a.mode {
        Mode::Max => out.set("window", window),
        Mode::Rate => {
            out.set("target_rate", a.rate);
            out.set(
                "max_pub_lag_ms",
                r3(shared.max_lag_ns.load(Relaxed) as f64 / 1e6),
            );
        }
    }
    let api = shared.api.snapshot();
    println!(
        "API request time p50={:.3}ms p99={:.3}ms max={:.3}ms",
        ms(&api, 0.5).unwrap_or(0.0),
        ms(&api, 0.99).unwrap_or(0.0),
        api.max as f64 / 1000.0
    );
    out.set("published", published);
    out.set("pub_errors", pub_errors);
    out.set("api_p50_ms", ms(&api, 0.5));
    out.set("api_p99_ms", ms(&api, 0.99));
    out.set("api_max_ms", r3(api.max as f64 / 1000.0));
    out.set("pub_per_s", (published as f64 / pub_dur).round());
    out.set("delivered", done.received);
    out.set("expected", done.expected);
    out.set("lost", lost);
    out.set("dup", done.dup);
    out.set("reorder", done.reorder);
    out.set("unexpected", done.unexpected);
    out.set("dropped", done.dropped);
    out.set("deliv_per_s", deliv_per_s.round());
    out.set("frames", done.frames);
    if done.frames > 0 {
        out.set(
            "msgs_per_frame",
            r3(done.received as f64 / done.frames as f64),
        );
    }
    out.set("span_s", r3(span));
    out.set("p50_ms", ms(h, 0.5));
    out.set("p90_ms", ms(h, 0.9));
    out.set("p99_ms", ms(h, 0.99));
    out.set("p999_ms", ms(h, 0.999));
    out.set("max_ms", r3(h.max as f64 / 1000.0));
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = c1 - c0;
        println!(
            "server CPU {cpu:.2}s over {span:.2}s ({:.0}% of one core), {:.0} deliveries per server CPU-second; bench CPU {:.2}s",
            100.0 * cpu / span,
            done.received as f64 / cpu.max(1e-9),
            bench1 - bench0
        );
        out.set("server_cpu_s", r3(cpu));
        out.set(
            "deliv_per_cpu_s",
            (done.received as f64 / cpu.max(1e-9)).round(),
        );
    }
    out.set("bench_cpu_s", r3(bench1 - bench0));
    Ok(Some(out))
}

/// Runs until every publisher in `handles` has ended. Whenever a child reports, stores the
/// children's delivered sum (`d`) in `delivered` and wakes the publishers waiting on `notify`
/// (max mode keeps a window of outstanding deliveries); refreshes `view` every 200 ms.
pub(crate) async fn feed_publishers<T>(
    kids: &Children,
    view: &View,
    keys: &[&str],
    handles: Vec<tokio::task::JoinHandle<T>>,
    delivered: &AtomicU64,
    notify: &Notify,
) {
    let all_done = async {
        for h in handles {
            let _ = h.await;
        }
    };
    tokio::pin!(all_done);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            _ = kids.notify.notified() => {
                delivered.store(kids.sum("d"), Relaxed);
                notify.notify_waiters();
            }
            _ = tick.tick() => view.update(kids, keys),
        }
    }
}

/// Waits until the children's sum of `key` reaches `want` or `limit` has passed, refreshing
/// `view` meanwhile.
pub(crate) async fn drain(
    kids: &Children,
    view: &View,
    keys: &[&str],
    key: &str,
    want: u64,
    limit: Duration,
) {
    let end = Instant::now() + limit;
    while kids.sum(key) < want && Instant::now() < end {
        let _ = tokio::time::timeout(Duration::from_millis(10), kids.notify.notified()).await;
        view.update(kids, keys);
    }
}
