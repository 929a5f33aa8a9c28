//! The scenarios: a parent side (children, publishers, /proc readings, results) and a child
//! side (a group of connections, or churn workers) for each.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::apipub::{self, ApiPath, Sink, Via};
use crate::child::{say, Children, ParentLink};
use crate::group::{self, Channels, GroupCfg, GroupShared, Layout};
use crate::hist::{Hist, ShardedHist};
use crate::proto::{self, Proto, ReplyScan};
use crate::token::{json_str, Signer};
use crate::track::Plan;
use crate::util::{now_ns, proc_cpu_s, proc_mem_kb, r3, Interference, Kv};
use crate::ws::{Msg, Target, WsConn};
use crate::{ChurnArgs, Common, IdleArgs, JoinArgs, Mode, PubArgs};

type Res = Result<Option<Kv>, String>;

pub(crate) fn ms(h: &Hist, p: f64) -> Option<f64> {
    h.quantile(p).map(|us| r3(us / 1000.0))
}

pub(crate) fn base_kv(c: &Common, scenario: &str) -> Kv {
    let mut kv = Kv::default();
    kv.set("label", c.label.as_str());
    kv.set("scenario", scenario);
    kv.set("proto", c.proto.to_string());
    kv
}

pub(crate) fn server_mem(out: &mut Kv, c: &Common, prefix: &str) {
    if let Some((rss, hwm)) = c.server_pid.and_then(proc_mem_kb) {
        out.set(&format!("{prefix}rss_kb"), rss);
        out.set(&format!("{prefix}hwm_kb"), hwm);
    }
}

pub(crate) fn server_cpu(c: &Common) -> Option<f64> {
    c.server_pid.and_then(|p| proc_cpu_s(Some(p)))
}

fn group_cfg(
    c: &Common,
    target: Target,
    channels: Channels,
    total: usize,
    publishers: usize,
    join_leave: bool,
    count_joins: bool,
) -> GroupCfg {
    let procs = c.procs.max(1);
    let idx = c.child_index.unwrap_or(0);
    GroupCfg {
        proto: c.proto,
        channels,
        range: group::slice(total, procs, idx),
        publishers,
        src_ips: c.src_ips,
        dial_concurrency: c.dial_concurrency.div_ceil(procs).max(1),
        read_buf: c.read_buf,
        join_leave,
        count_joins,
        signer: Signer::new(&c.secret),
        user_prefix: "rb-".into(),
        setup_timeout: c.setup_timeout,
        dialer: Arc::new(crate::conn::Dialer::websocket(target)),
    }
}

/// Keeps the first error.
pub(crate) fn set_first(slot: &Mutex<Option<String>>, e: String) {
    let mut g = slot.lock().unwrap_or_else(|x| x.into_inner());
    if g.is_none() {
        *g = Some(e);
    }
}

// ------------------------------------------------------------------ progress line

/// Prints one status line a second to stderr (rewritten in place on a terminal).
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(mut text: impl FnMut() -> String + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let tty = std::io::stderr().is_terminal();
        let t0 = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if s.load(Relaxed) {
                    break;
                }
                let line = format!("[{:6.1}s] {}", t0.elapsed().as_secs_f64(), text());
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Self { stop, task }
    }

    pub(crate) fn end(self) {
        self.stop.store(true, Relaxed);
        self.task.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
}

pub(crate) fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Live STAT sums shared with the progress task.
#[derive(Clone)]
pub(crate) struct View(Arc<Mutex<Vec<(String, u64)>>>);

impl View {
    pub(crate) fn new() -> Self {
        View(Arc::new(Mutex::new(Vec::new())))
    }
    pub(crate) fn update(&self, kids: &Children, keys: &[&str]) {
        let v = keys.iter().map(|k| (k.to_string(), kids.sum(k))).collect();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
    pub(crate) fn get(&self, k: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(key, _)| key == k)
            .map(|x| x.1)
            .unwrap_or(0)
    }
}

/// Keeps a [`View`] fresh while `fut` runs (the children's counters change on their own).
pub(crate) async fn with_view<T>(
    kids: &mut Children,
    view: &View,
    keys: &[&str],
    fut: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            r = &mut fut => { view.update(kids, keys); return r; }
            _ = tick.tick() => view.update(kids, keys),
        }
    }
}

/// Waits until `ok + failed` reaches `n` (reading STAT), with a progress line.
async fn wait_connected(kids: &mut Children, n: u64, limit: Duration) -> Result<f64, String> {
    let view = View::new();
    let v = view.clone();
    let prog = Progress::start(move || {
        format!(
            "connecting: ok {} failed {} of {n}",
            v.get("ok"),
            v.get("failed")
        )
    });
    let t0 = Instant::now();
    let r = with_view(
        kids,
        &view,
        &["ok", "failed"],
        tokio::time::timeout(limit, async {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                // Read through `view` is 200 ms stale; poll the children directly instead.
                if view.get("ok") + view.get("failed") >= n {
                    break;
                }
            }
        }),
    )
    .await;
    prog.end();
    r.map_err(|_| format!("connections not set up within {limit:?}"))?;
    Ok(t0.elapsed().as_secs_f64())
}

// ------------------------------------------------------------------ child side (groups)

/// The child side of fanout/channels/idle/join: hold a group of connections, report STAT
/// lines, answer COUNTS with EXPECTED and STOP with DONE.
async fn child_group(cfg: GroupCfg, plan: Plan, stat_every: Duration) -> Res {
    let cfg = Arc::new(cfg);
    let sh = Arc::new(GroupShared::new(cfg.range.len()));
    let mut link = ParentLink::new();
    loop {
        match link.next().await {
            Some(l) if l == "GO" => break,
            Some(_) => continue,
            None => return Ok(None),
        }
    }
    let group = tokio::spawn(group::run_group(cfg.clone(), sh.clone()));
    let n = cfg.range.len() as u64;
    let stat = {
        let sh = sh.clone();
        tokio::spawn(async move {
            let mut last = String::new();
            let mut ready = false;
            loop {
                let line = stat_line(&sh);
                if line != last {
                    say(&line);
                    last = line;
                }
                let (ok, failed) = (sh.ok.load(Relaxed), sh.failed.load(Relaxed));
                if !ready && ok + failed >= n {
                    ready = true;
                    let err = sh.first_error().unwrap_or_default();
                    say(&format!(
                        "READY ok={ok} failed={failed} err={}",
                        err.replace(char::is_whitespace, "_")
                    ));
                }
                tokio::time::sleep(stat_every).await;
            }
        })
    };
    let mut expected = None;
    loop {
        match link.next().await {
            Some(l) if l.starts_with("COUNTS ") => {
                let kv = Kv::parse(&l);
                let attempts: Vec<u64> = kv
                    .get("attempts")
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let failed: Vec<(usize, u64)> = kv
                    .get("failed")
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|x| {
                        let (p, j) = x.split_once(':')?;
                        Some((p.parse().ok()?, j.parse().ok()?))
                    })
                    .collect();
                let counts = plan.counts(&attempts, &failed);
                let exp = sh.expected(&cfg, &counts);
                let _ = sh.counts.set(counts);
                expected = Some(exp);
                say(&format!("EXPECTED exp={exp}"));
            }
            Some(l) if l == "STOP" => break,
            Some(_) => {}
            None => break,
        }
    }
    sh.cancel.cancel();
    let tally = group.await.map_err(|e| format!("group: {e}"))?;
    stat.abort();
    say(&stat_line(&sh));
    let mut kv = Kv::default();
    kv.set("ok", sh.ok.load(Relaxed));
    kv.set("failed", sh.failed.load(Relaxed));
    kv.set("dropped", sh.dropped.load(Relaxed));
    kv.set("received", tally.received);
    kv.set("unique", tally.unique);
    kv.set("dup", tally.dup);
    kv.set("reorder", tally.reorder);
    kv.set("unexpected", tally.unexpected);
    kv.set("expected", expected.unwrap_or(0));
    kv.set("frames", sh.frames.get());
    kv.set("joins", sh.joins.get());
    kv.set("msgs", sh.msgs.get());
    kv.set("last", sh.last_recv_ns.load(Relaxed));
    kv.set("in", sh.last_in_ns.load(Relaxed));
    kv.set("err", sh.first_error().unwrap_or_default());
    kv.set("hist", sh.hist.snapshot().encode());
    say(&kv.line("DONE"));
    Ok(None)
}

fn stat_line(sh: &GroupShared) -> String {
    format!(
        "STAT ok={} failed={} dropped={} d={} u={} f={} j={} last={} in={}",
        sh.ok.load(Relaxed),
        sh.failed.load(Relaxed),
        sh.dropped.load(Relaxed),
        sh.delivered.get(),
        sh.unique.get(),
        sh.frames.get(),
        sh.joins.get(),
        sh.last_recv_ns.load(Relaxed),
        sh.last_in_ns.load(Relaxed),
    )
}

/// Sums of the children's DONE lines.
#[derive(Default)]
struct Done {
    ok: u64,
    failed: u64,
    dropped: u64,
    received: u64,
    unique: u64,
    dup: u64,
    reorder: u64,
    unexpected: u64,
    expected: u64,
    frames: u64,
    msgs: u64,
    joins: u64,
    last: u64,
    last_in: u64,
    err: Option<String>,
    hist: Hist,
}

fn sum_done(lines: &[Kv]) -> Result<Done, String> {
    let mut d = Done::default();
    for kv in lines {
        let n = |k: &str| kv.num(k).unwrap_or(0.0) as u64;
        d.ok += n("ok");
        d.failed += n("failed");
        d.dropped += n("dropped");
        d.received += n("received");
        d.unique += n("unique");
        d.dup += n("dup");
        d.reorder += n("reorder");
        d.unexpected += n("unexpected");
        d.expected += n("expected");
        d.frames += n("frames");
        d.joins += n("joins");
        d.msgs += n("msgs");
        d.last = d.last.max(n("last"));
        d.last_in = d.last_in.max(n("in"));
        if d.err.is_none() {
            d.err = kv
                .get("err")
                .filter(|e| !e.is_empty() && *e != "-")
                .map(str::to_string);
        }
        if let Some(h) = kv.get("hist") {
            d.hist.merge_encoded(h)?;
        }
    }
    Ok(d)
}

// ------------------------------------------------------------------ fanout / channels

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
    let ok: u64 = ready
        .iter()
        .map(|k| k.num("ok").unwrap_or(0.0) as u64)
        .sum();
    let failed: u64 = ready
        .iter()
        .map(|k| k.num("failed").unwrap_or(0.0) as u64)
        .sum();
    let first_err = ready
        .iter()
        .filter_map(|k| {
            k.get("err")
                .filter(|e| !e.is_empty() && *e != "-")
                .map(str::to_string)
        })
        .next();
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
    let notify = Arc::new(tokio::sync::Notify::new());

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
            _ = tick.tick() => view.update(&kids, &keys),
        }
    }
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
    let exp: u64 = kids
        .collect("EXPECTED", Duration::from_secs(60))
        .await?
        .iter()
        .map(|k| k.num("exp").unwrap_or(0.0) as u64)
        .sum();
    let drain_end = Instant::now() + a.drain;
    while kids.sum("u") < exp && Instant::now() < drain_end {
        let _ = tokio::time::timeout(Duration::from_millis(10), kids.notify.notified()).await;
        view.update(&kids, &keys);
    }
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

// ------------------------------------------------------------------ idle

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
    let ok: u64 = ready
        .iter()
        .map(|k| k.num("ok").unwrap_or(0.0) as u64)
        .sum();
    let failed: u64 = ready
        .iter()
        .map(|k| k.num("failed").unwrap_or(0.0) as u64)
        .sum();
    println!(
        "label={} scenario=idle proto={} conns={} ok={ok} failed={failed} procs={} connect+subscribe={conn_s:.2}s ({:.0} conn/s)",
        c.label,
        c.proto,
        a.conns,
        c.procs.max(1),
        ok as f64 / conn_s
    );
    if let Some(e) = ready
        .iter()
        .filter_map(|k| k.get("err").filter(|e| !e.is_empty() && *e != "-"))
        .next()
    {
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

// ------------------------------------------------------------------ join

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

// ------------------------------------------------------------------ churn

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
    let mut kids = Children::spawn(c.procs.max(1), &args)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = server_cpu(c);
    let bench0 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let intf = Interference::start(c.server_pid, bench0);
    let start = Instant::now();
    kids.send_all("GO").await?;
    let view = View::new();
    let prog = {
        let v = view.clone();
        let mut last = (Instant::now(), 0u64);
        Progress::start(move || {
            let ops = v.get("ops");
            let dt = last.0.elapsed().as_secs_f64().max(1e-3);
            let s = format!(
                "cycles {ops} ({}/s) failed {}",
                si((ops - last.1) as f64 / dt),
                v.get("cfail")
            );
            last = (Instant::now(), ops);
            s
        })
    };
    with_view(
        &mut kids,
        &view,
        &["ops", "cfail"],
        tokio::time::sleep(a.duration),
    )
    .await;
    let lines = kids.collect("DONE", Duration::from_secs(120)).await;
    prog.end();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = server_cpu(c);
    let bench1 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    intf.report(&mut out, bench1);
    kids.finish().await;
    let lines = lines?;
    let mut hist = Hist::new();
    let (mut ops, mut failed, mut rate) = (0u64, 0u64, 0f64);
    let mut err = None;
    for kv in &lines {
        let o = kv.num("ops").unwrap_or(0.0);
        ops += o as u64;
        failed += kv.num("failed").unwrap_or(0.0) as u64;
        if let Some(s) = kv.num("secs").filter(|s| *s > 0.0) {
            rate += o / s;
        }
        if let Some(h) = kv.get("hist") {
            hist.merge_encoded(h)?;
        }
        if err.is_none() {
            err = kv
                .get("err")
                .filter(|e| !e.is_empty() && *e != "-")
                .map(str::to_string);
        }
    }
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
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = c1 - c0;
        println!(
            "server CPU {cpu:.2}s over {elapsed:.2}s ({:.0}% of one core), {:.0} cycles per server CPU-second; bench CPU {:.2}s",
            100.0 * cpu / elapsed,
            ops as f64 / cpu.max(1e-9),
            bench1 - bench0
        );
        out.set("server_cpu_s", r3(cpu));
        out.set("cycles_per_cpu_s", (ops as f64 / cpu.max(1e-9)).round());
        out.set(
            "server_cpu_s_per_1k",
            format!("{:.4}", cpu * 1000.0 / ops.max(1) as f64),
        );
    }
    server_mem(&mut out, c, "end_");
    out.set("bench_cpu_s", r3(bench1 - bench0));
    if let Some(e) = err {
        out.set("first_error", e);
    }
    Ok(Some(out))
}

/// What the workers of a closed-loop child (churn, rpc) share: counts, latencies, the first
/// error; [`OpsShared::finish`] reports them to the parent.
pub(crate) struct OpsShared {
    pub(crate) ops: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) hist: ShardedHist,
    pub(crate) err: Mutex<Option<String>>,
}

impl OpsShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            ops: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hist: ShardedHist::new(),
            err: Mutex::new(None),
        })
    }

    fn stat_line(&self) -> String {
        format!(
            "STAT ops={} cfail={}",
            self.ops.load(Relaxed),
            self.failed.load(Relaxed)
        )
    }

    /// Reports progress every 200 ms while `tasks` run, then the DONE line with the totals,
    /// and waits for the parent to close stdin so the DONE line is read before the child exits.
    pub(crate) async fn finish(
        self: &Arc<Self>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        start: Instant,
        link: &mut ParentLink,
    ) -> Res {
        let stat = {
            let sh = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    say(&sh.stat_line());
                }
            })
        };
        for t in tasks {
            let _ = t.await;
        }
        let secs = start.elapsed().as_secs_f64();
        stat.abort();
        let mut kv = Kv::default();
        kv.set("ops", self.ops.load(Relaxed));
        kv.set("failed", self.failed.load(Relaxed));
        kv.set("secs", r3(secs));
        kv.set(
            "err",
            self.err
                .lock()
                .unwrap_or_else(|x| x.into_inner())
                .clone()
                .unwrap_or_default(),
        );
        kv.set("hist", self.hist.snapshot().encode());
        say(&self.stat_line());
        say(&kv.line("DONE"));
        while link.next().await.is_some() {}
        Ok(None)
    }
}

async fn child_churn(a: &ChurnArgs) -> Res {
    let c = &a.common;
    let target = Target::resolve(&c.ws).await?;
    let procs = c.procs.max(1);
    let range = group::slice(a.workers, procs, c.child_index.unwrap_or(0));
    let mut link = ParentLink::new();
    loop {
        match link.next().await {
            Some(l) if l == "GO" => break,
            Some(_) => continue,
            None => return Ok(None),
        }
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
    let token = signer.subscription(client, channel, (proto == Proto::V2).then_some(user));
    sub.clear();
    proto::subscribe_cmd(sub, proto, 2, channel, Some(&token), false);
    ws.send_text(sub)
        .await
        .map_err(|e| format!("send subscribe: {e}"))?;
    wait_reply(&mut ws, 2).await?;
    let _ = ws.send_close(1000).await;
    Ok(())
}

pub(crate) async fn wait_reply(ws: &mut WsConn, id: u32) -> Result<Vec<u8>, String> {
    loop {
        while let Some(m) = ws.next_msg().map_err(|e| format!("read: {e}"))? {
            match m {
                Msg::Data(p) => match proto::scan_reply(p, id) {
                    ReplyScan::None => {}
                    ReplyScan::Ok(l) => return Ok(l.to_vec()),
                    ReplyScan::Error(l) => {
                        return Err(format!("error reply: {}", String::from_utf8_lossy(l)))
                    }
                },
                Msg::Close(code) => return Err(format!("server closed with {code}")),
            }
        }
        ws.flush_control().await.map_err(|e| format!("pong: {e}"))?;
        ws.fill().await.map_err(|e| format!("read: {e}"))?;
    }
}
