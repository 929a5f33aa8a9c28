//! `rotor-bench slow`: slow-consumer isolation. N WebSocket subscribers on one channel and a
//! fixed publication rate through the HTTP API; in alternating phases every subscriber reads
//! (baseline) or a few of them (`--stalled`, 1 % by default) stop reading while keeping the
//! socket open (stalled). The other subscribers' delivery latency is compared between the two
//! kinds of phase, and the stalled ones' disconnection by the server is timed.
//!
//! * **Who is measured.** `conns - stalled` steady readers stay connected for the whole run and
//!   are the only ones whose latency counts. The `stalled` swing connections read during a
//!   baseline phase and stop at the start of a stalled phase; after it they resume reading and
//!   report what they find (a close frame and its code, or the end of the stream). A fresh
//!   swing group connects before each baseline phase.
//! * **Phases.** Each publication carries its phase number in the bench's data (the
//!   `publisher` field of `"rb":[..]`), so a delivery counts in the phase it was published in,
//!   whenever it arrives. Its time is the scheduled send time (no coordinated omission).
//! * **Disconnects.** The server's `/metrics` is polled every 20 ms (in both kinds of phase,
//!   so that the polling weighs on both alike; only a stalled phase's results count):
//!   each step of `centrifugo_client_num_server_disconnects{code="3008"}` is one subscriber
//!   closed as slow, each step of `code="3009"` one cut by the write timeout (a write error),
//!   and each drop of `centrifugo_node_num_clients` one connection gone. The server needs
//!   `prometheus: true`.
//! * **Stalled sockets.** Their receive buffer is fixed (`--stalled-rcvbuf`, 64 KB) so the
//!   kernel does not grow it while nothing is read: what a stalled client holds is then that
//!   buffer plus the server's send buffer, and the server's own bounds (queue size, write
//!   timeout) decide when it is closed. 0 leaves the kernel's autotuning on.
//! * **Result.** Per phase p50/p99/p99.9/max; the medians over the pairs of each kind and
//!   their ratio (also the median of the per-pair ratios); the times from the stall to each
//!   disconnect; the server's RSS at the start and at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::hist::{ShardedCounter, ShardedHist};
use crate::proto::{self, Proto, ReplyScan};
use crate::publish::ApiClient;
use crate::token::{json_str, Signer};
use crate::util::{now_ns, proc_mem_kb, r3, Kv};
use crate::ws::{Msg, Target, WsConn};
use crate::Common;

#[derive(Args, Debug, Clone)]
pub struct SlowArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribers on the channel (steady readers plus the stalled ones).
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Subscribers that stop reading in a stalled phase.
    #[arg(long, default_value_t = 10)]
    pub stalled: usize,
    /// Publications per second (over all publishers).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Size of each publication's data JSON in bytes.
    #[arg(long, default_value_t = 200)]
    pub payload: usize,
    /// Concurrent HTTP API publishers (each one keep-alive connection).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Pairs of phases (baseline, then stalled).
    #[arg(long, default_value_t = 3)]
    pub pairs: usize,
    /// Length of each phase.
    #[arg(long, default_value = "20s", value_parser = crate::util::parse_duration)]
    pub phase: Duration,
    /// How long resumed stalled connections may take to reach the end of their stream.
    #[arg(long, default_value = "15s", value_parser = crate::util::parse_duration)]
    pub resume_timeout: Duration,
    /// Receive buffer of the stalled connections' sockets, bytes (fixed, so the kernel does not
    /// grow it while they do not read; 0 = the kernel's default autotuning).
    #[arg(long, default_value_t = 65536)]
    pub stalled_rcvbuf: u32,
    /// The server's Prometheus endpoint (default: the API URL with `/metrics` for `/api`).
    #[arg(long)]
    pub metrics: Option<String>,
}

/// What a swing connection is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Swing {
    Read,
    Stall,
    Resume,
}

struct Ctx {
    proto: Proto,
    channel: String,
    signer: Signer,
    target: Target,
    read_buf: usize,
    setup_timeout: Duration,
    resume_timeout: Duration,
    stalled_rcvbuf: Option<u32>,
    /// Latency of the steady readers, per phase.
    hists: Vec<ShardedHist>,
    /// Deliveries to steady readers, per phase.
    delivered: Vec<ShardedCounter>,
    /// Publications sent, per phase.
    published: Vec<AtomicU64>,
    phase: AtomicUsize,
    stop: AtomicBool,
    steady_up: AtomicU64,
    steady_dropped: AtomicU64,
    first_err: Mutex<Option<String>>,
}

impl Ctx {
    fn error(&self, e: String) {
        let mut g = self.first_err.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert(e);
    }
}

pub fn main(a: &SlowArgs) -> Result<(), String> {
    let threads = if a.common.threads > 0 {
        a.common.threads
    } else {
        2
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let kv = rt.block_on(run(a.clone()));
    rt.shutdown_background();
    let kv = kv?;
    println!("{}", kv.line("RESULT"));
    match kv.get("error") {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

async fn run(a: SlowArgs) -> Result<Kv, String> {
    let c = &a.common;
    if a.stalled >= a.conns {
        return Err("--stalled must be below --conns".into());
    }
    // Two phases per pair, and one more tag (last) for the time between a stalled phase's end
    // and the next baseline (not measured).
    let phases = a.pairs.max(1) * 2;
    let between = phases;
    let metrics_url = a
        .metrics
        .clone()
        .unwrap_or_else(|| format!("{}/metrics", c.api.trim_end_matches("/api")));
    let metrics = Target::resolve(&metrics_url).await?;
    scrape(&metrics).await.map_err(|e| {
        format!("{metrics_url}: {e} (the server needs prometheus: true, or pass --metrics)")
    })?;
    let ctx = Arc::new(Ctx {
        proto: c.proto,
        channel: c.channel.clone(),
        signer: Signer::new(&c.secret),
        target: Target::resolve(&c.ws).await?,
        read_buf: c.read_buf,
        setup_timeout: c.setup_timeout,
        resume_timeout: a.resume_timeout,
        stalled_rcvbuf: (a.stalled_rcvbuf > 0).then_some(a.stalled_rcvbuf),
        hists: (0..=phases).map(|_| ShardedHist::new()).collect(),
        delivered: (0..=phases).map(|_| ShardedCounter::default()).collect(),
        published: (0..=phases).map(|_| AtomicU64::new(0)).collect(),
        phase: AtomicUsize::new(between),
        stop: AtomicBool::new(false),
        steady_up: AtomicU64::new(0),
        steady_dropped: AtomicU64::new(0),
        first_err: Mutex::new(None),
    });
    let mut out = Kv::default();
    out.set("scenario", "slow");
    out.set("label", c.label.as_str());
    out.set("proto", c.proto.to_string());
    out.set("conns", a.conns);
    out.set("stalled", a.stalled);
    out.set("rate", a.rate);
    out.set("payload", a.payload);
    out.set("pairs", a.pairs.max(1));
    out.set("phase_s", a.phase.as_secs_f64());
    out.set("stalled_rcvbuf", a.stalled_rcvbuf);
    let rss = || c.server_pid.and_then(proc_mem_kb).map(|m| m.0);
    out.set("rss_start_kb", rss());

    // Steady readers.
    let steady = a.conns - a.stalled;
    let sem = Arc::new(Semaphore::new(c.dial_concurrency.max(1)));
    let mut tasks = Vec::new();
    for i in 0..steady {
        let permit = sem.clone().acquire_owned().await.expect("never closed");
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            steady_reader(i, ctx, permit).await;
        }));
    }
    let t_setup = Instant::now();
    while ctx.steady_up.load(Relaxed) < steady as u64 {
        if t_setup.elapsed() > c.setup_timeout {
            return Err(format!(
                "only {} of {steady} steady readers subscribed: {}",
                ctx.steady_up.load(Relaxed),
                ctx.first_err.lock().unwrap().clone().unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{steady} steady readers subscribed");

    // Publishers.
    let api_target = Target::resolve(&c.api).await?;
    let start = Instant::now() + Duration::from_millis(200);
    let mut pubs = Vec::new();
    for j in 0..a.publishers.max(1) {
        let mut api = ApiClient::new(api_target.clone(), &c.api_key)?;
        api.connect().await?;
        let ctx = ctx.clone();
        let (k, rate, size) = (a.publishers.max(1), a.rate, a.payload);
        pubs.push(tokio::spawn(async move {
            publisher(j, k, rate, size, start, api, ctx).await
        }));
    }

    let mut base_p99 = Vec::new();
    let mut stall_p99 = Vec::new();
    let mut base_p50 = Vec::new();
    let mut stall_p50 = Vec::new();
    let mut ttd_3008: Vec<f64> = Vec::new();
    let mut ttd_3009: Vec<f64> = Vec::new();
    let mut ttd_gone: Vec<f64> = Vec::new();
    let mut outcomes: Vec<String> = Vec::new();
    let mut phase_lines = Vec::new();
    for pair in 0..a.pairs.max(1) {
        // A fresh swing group, reading.
        let (tx, rx) = watch::channel(Swing::Read);
        let done = Arc::new(Mutex::new(Vec::new()));
        let up = Arc::new(AtomicU64::new(0));
        for s in 0..a.stalled {
            let (ctx, rx, done, up) = (ctx.clone(), rx.clone(), done.clone(), up.clone());
            let idx = steady + pair * a.stalled + s;
            tokio::spawn(async move {
                let r = swing_conn(idx, &ctx, rx, &up).await;
                done.lock().unwrap().push(r);
            });
        }
        let t = Instant::now();
        while up.load(Relaxed) < a.stalled as u64 {
            if t.elapsed() > c.setup_timeout {
                return Err(format!("swing group {pair}: not all subscribed"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Baseline phase: everybody reads.
        let pb = pair * 2;
        ctx.phase.store(pb, Relaxed);
        // Scraped as often as in a stalled phase, so both kinds of phase carry the same load.
        let deadline = Instant::now() + a.phase;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = scrape(&metrics).await;
        }
        // Stalled phase.
        let ps = pb + 1;
        let before = scrape(&metrics).await?;
        ctx.phase.store(ps, Relaxed);
        let _ = tx.send(Swing::Stall);
        let stall_at = Instant::now();
        let deadline = stall_at + a.phase;
        let (mut n3008, mut n3009, mut clients) = before;
        let mut gone_here = 0usize;
        let mut slow_here = 0usize;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Ok((d, w, cl)) = scrape(&metrics).await else {
                continue;
            };
            let ms = stall_at.elapsed().as_secs_f64() * 1000.0;
            for _ in n3008..d {
                ttd_3008.push(ms);
                slow_here += 1;
            }
            for _ in cl..clients {
                ttd_gone.push(ms);
                gone_here += 1;
            }
            for _ in n3009..w {
                ttd_3009.push(ms);
            }
            n3008 = n3008.max(d);
            n3009 = n3009.max(w);
            clients = clients.min(cl);
        }
        ctx.phase.store(between, Relaxed);
        let _ = tx.send(Swing::Resume);
        let t = Instant::now();
        while done.lock().unwrap().len() < a.stalled
            && t.elapsed() < a.resume_timeout + Duration::from_secs(1)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut o = done.lock().unwrap().clone();
        o.resize(a.stalled.max(o.len()), "no-end-in-time".to_string());
        eprintln!(
            "pair {pair}: {slow_here} closed as slow (3008), {gone_here} connections gone; \
             resumed readers saw: {}",
            o.join(",")
        );
        outcomes.extend(o);
        // Let publications of the stalled phase arrive before reading its histogram.
        for (p, kind) in [(pb, "baseline"), (ps, "stalled")] {
            let h = ctx.hists[p].snapshot();
            let q = |x: f64| h.quantile(x).map(|v| r3(v / 1000.0));
            let line = format!(
                "phase {p} {kind}: published {} deliveries {} p50 {:?} p99 {:?} p99.9 {:?} max {} ms",
                ctx.published[p].load(Relaxed),
                ctx.delivered[p].get(),
                q(0.5),
                q(0.99),
                q(0.999),
                r3(h.max as f64 / 1000.0)
            );
            if p == pb {
                // The baseline phase ended a whole phase ago: complete by now.
                base_p50.push(q(0.5).unwrap_or(f64::NAN));
                base_p99.push(q(0.99).unwrap_or(f64::NAN));
            }
            phase_lines.push((p, kind, line));
        }
    }
    ctx.stop.store(true, Relaxed);
    for p in pubs {
        if let Ok(Err(e)) = p.await {
            ctx.error(format!("publisher: {e}"));
        }
    }
    // In-flight publications of the last stalled phase.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for pair in 0..a.pairs.max(1) {
        let h = ctx.hists[pair * 2 + 1].snapshot();
        stall_p50.push(h.quantile(0.5).map(|v| v / 1000.0).unwrap_or(f64::NAN));
        stall_p99.push(h.quantile(0.99).map(|v| v / 1000.0).unwrap_or(f64::NAN));
    }
    phase_lines.sort_by_key(|l| l.0);
    for (_, _, l) in &phase_lines {
        println!("{l}");
    }
    let mut lost = 0i64;
    for p in 0..=phases {
        let expect = ctx.published[p].load(Relaxed) * steady as u64;
        lost += expect as i64 - ctx.delivered[p].get() as i64;
    }
    out.set("rss_end_kb", rss());
    let med = |v: &[f64]| median(v.to_vec());
    let ratios: Vec<f64> = base_p99
        .iter()
        .zip(&stall_p99)
        .map(|(b, s)| s / b)
        .collect();
    out.set("base_p50_ms", r3(med(&base_p50)));
    out.set("base_p99_ms", r3(med(&base_p99)));
    out.set("stalled_p50_ms", r3(med(&stall_p50)));
    out.set("stalled_p99_ms", r3(med(&stall_p99)));
    out.set("p99_ratio", r3(med(&stall_p99) / med(&base_p99)));
    out.set("p99_ratio_median_of_pairs", r3(med(&ratios)));
    out.set("base_p99_pairs", join(&base_p99));
    out.set("stalled_p99_pairs", join(&stall_p99));
    out.set("slow_3008", ttd_3008.len());
    out.set("write_error_3009", ttd_3009.len());
    out.set("ttd_3009_median_ms", r3(med(&ttd_3009)));
    out.set("conns_gone", ttd_gone.len());
    out.set("ttd_3008_ms", join(&ttd_3008));
    out.set("ttd_gone_ms", join(&ttd_gone));
    out.set("ttd_3008_median_ms", r3(med(&ttd_3008)));
    out.set(
        "ttd_3008_max_ms",
        ttd_3008.iter().copied().fold(f64::NAN, f64::max),
    );
    let mut tally: Vec<(String, usize)> = Vec::new();
    for o in &outcomes {
        match tally.iter_mut().find(|(k, _)| k == o) {
            Some(e) => e.1 += 1,
            None => tally.push((o.clone(), 1)),
        }
    }
    let tally: Vec<String> = tally.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    out.set("resumed_saw", tally.join(","));
    out.set("steady_dropped", ctx.steady_dropped.load(Relaxed));
    out.set("lost", lost);
    if let Some(e) = ctx.first_err.lock().unwrap().clone() {
        if ctx.steady_dropped.load(Relaxed) > 0 {
            out.set("error", e);
        } else {
            out.set("first_error", e);
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn join(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|x| format!("{}", r3(*x)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The 3008 (slow) and 3009 (write error) disconnect counters and the number of clients, from
/// one `/metrics` scrape (a plain HTTP/1.0 GET on a fresh connection).
async fn scrape(m: &Target) -> Result<(u64, u64, u64), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = async {
        let mut s = crate::ws::dial(m.addr, None).await?;
        let req = format!("GET {} HTTP/1.0\r\nHost: {}\r\n\r\n", m.path, m.host);
        s.write_all(req.as_bytes()).await?;
        let mut body = Vec::with_capacity(64 << 10);
        s.read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .map_err(|_| "metrics: timed out".to_string())?
        .map_err(|e| format!("metrics: {e}"))?;
    let text = String::from_utf8_lossy(&body);
    // HTTP/1.0: the body is not chunked, so no line is split.
    if text.split(' ').nth(1) != Some("200") {
        return Err(format!(
            "metrics: {}",
            text.lines().next().unwrap_or("no answer")
        ));
    }
    let val = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    let clients = val("centrifugo_node_num_clients").ok_or("no centrifugo_node_num_clients")?;
    Ok((
        val("centrifugo_client_num_server_disconnects{code=\"3008\"}").unwrap_or(0),
        val("centrifugo_client_num_server_disconnects{code=\"3009\"}").unwrap_or(0),
        clients,
    ))
}

/// Publisher `j` of `k`: publication number `n = j, j+k, ...` is due at `start + n / rate`
/// and carries its phase and that scheduled time.
async fn publisher(
    j: usize,
    k: usize,
    rate: f64,
    size: usize,
    start: Instant,
    mut api: ApiClient,
    ctx: Arc<Ctx>,
) -> Result<(), String> {
    let prefix = format!(
        r#"{{"method":"publish","params":{{"channel":{},"data":"#,
        json_str(&ctx.channel)
    );
    let t0_ns = now_ns() + start.saturating_duration_since(Instant::now()).as_nanos() as u64;
    let mut n = j as u64;
    let mut body = Vec::with_capacity(size + 128);
    while !ctx.stop.load(Relaxed) {
        let offset = Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(start + offset).await;
        let phase = ctx.phase.load(Relaxed);
        body.clear();
        body.extend_from_slice(prefix.as_bytes());
        let due = t0_ns + offset.as_nanos() as u64;
        proto::publication_data(&mut body, phase, 0, n, due, size);
        body.extend_from_slice(b"}}");
        api.post(Bytes::copy_from_slice(&body)).await?;
        ctx.published[phase].fetch_add(1, Relaxed);
        n += k as u64;
    }
    Ok(())
}

/// Connects and subscribes; the socket, or why not.
async fn subscribe(i: usize, ctx: &Ctx, rcvbuf: Option<u32>) -> Result<WsConn, String> {
    let seed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ now_ns();
    let mut ws = tokio::time::timeout(
        ctx.setup_timeout,
        WsConn::connect_with(&ctx.target, None, ctx.read_buf, seed, rcvbuf),
    )
    .await
    .map_err(|_| "connect timed out".to_string())??;
    let mut frame = Vec::with_capacity(512);
    proto::connect_cmd(
        &mut frame,
        ctx.proto,
        1,
        &ctx.signer.connection(&format!("slow{i}")),
    );
    frame.push(b'\n');
    proto::subscribe_cmd(&mut frame, ctx.proto, 2, &ctx.channel, None, false);
    ws.send_text(&frame)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + ctx.setup_timeout;
    loop {
        while let Some(m) = ws.next_msg().map_err(|e| e.to_string())? {
            match m {
                Msg::Data(p) => match proto::scan_reply(p, 2) {
                    ReplyScan::Ok(_) => return Ok(ws),
                    ReplyScan::Error(l) => return Err(String::from_utf8_lossy(l).into_owned()),
                    ReplyScan::None => {}
                },
                Msg::Close(code) => return Err(format!("closed with {code} while subscribing")),
            }
        }
        match tokio::time::timeout_at(deadline, ws.fill()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Err(_) => return Err("no subscribe reply in time".into()),
        }
    }
}

/// Takes every complete message in the buffer: latency of the deliveries (into phase
/// histograms when `record`), pings answered. `Err` with the close code on a close.
async fn drain(ws: &mut WsConn, ctx: &Ctx, record: bool) -> Result<(), String> {
    let now = now_ns();
    let mut ping = false;
    let mut closed = None;
    while let Some(m) = ws.next_msg().map_err(|e| format!("read: {e}"))? {
        match m {
            Msg::Data(p) => {
                if record {
                    proto::for_each_delivery(p, |d| {
                        let ph = (d.publisher as usize).min(ctx.hists.len() - 1);
                        ctx.hists[ph].record(now.saturating_sub(d.ts_ns) / 1000);
                        ctx.delivered[ph].add(1);
                    });
                }
                if ctx.proto == Proto::V2 && proto::has_v2_ping(p) {
                    ping = true;
                }
            }
            Msg::Close(code) => {
                closed = Some(code);
                break;
            }
        }
    }
    if let Some(code) = closed {
        return Err(format!("close:{code}"));
    }
    ws.flush_control().await.map_err(|e| format!("pong: {e}"))?;
    if ping {
        ws.send_text(b"{}")
            .await
            .map_err(|e| format!("v2 pong: {e}"))?;
    }
    Ok(())
}

async fn steady_reader(i: usize, ctx: Arc<Ctx>, permit: tokio::sync::OwnedSemaphorePermit) {
    let mut ws = match subscribe(i, &ctx, None).await {
        Ok(ws) => ws,
        Err(e) => {
            ctx.error(format!("steady {i}: {e}"));
            return;
        }
    };
    drop(permit);
    ctx.steady_up.fetch_add(1, Relaxed);
    let e = loop {
        if let Err(e) = drain(&mut ws, &ctx, true).await {
            break e;
        }
        if let Err(e) = ws.fill().await {
            break format!("read: {e}");
        }
    };
    if !ctx.stop.load(Relaxed) {
        ctx.steady_dropped.fetch_add(1, Relaxed);
        ctx.error(format!("steady reader {i} dropped: {e}"));
    }
}

/// A swing connection: reads until told to stall, then does not read until told to resume,
/// then reads to the end of its stream. Returns what ended it (`close:3008`, `eof`, ...).
async fn swing_conn(i: usize, ctx: &Ctx, mut rx: watch::Receiver<Swing>, up: &AtomicU64) -> String {
    let mut ws = match subscribe(i, ctx, ctx.stalled_rcvbuf).await {
        Ok(ws) => ws,
        Err(e) => {
            ctx.error(format!("swing {i}: {e}"));
            return "setup-failed".into();
        }
    };
    up.fetch_add(1, Relaxed);
    // Reading.
    loop {
        if *rx.borrow() != Swing::Read {
            break;
        }
        if let Err(e) = drain(&mut ws, ctx, false).await {
            return format!("before-stall-{e}");
        }
        tokio::select! {
            r = ws.fill() => if let Err(e) = r { return format!("before-stall-{}", kind(&e)); },
            _ = rx.changed() => {}
        }
    }
    // Stalled: the socket stays open, nothing is read.
    while *rx.borrow() == Swing::Stall {
        if rx.changed().await.is_err() {
            break;
        }
    }
    // Resumed: read what the kernel kept, up to the close frame or the end; a connection the
    // server has not closed by then is dropped here.
    let end = async {
        loop {
            match ws.next_msg() {
                Ok(Some(Msg::Close(code))) => return format!("close:{code}"),
                Ok(Some(Msg::Data(_))) => continue,
                Ok(None) => {}
                Err(e) => return format!("bad-frame:{e}"),
            }
            // A resumed client answers pings again (v1: a server hears nothing from a peer
            // that does not, and drops it after two ping intervals).
            if ws.flush_control().await.is_err() {
                return "pong-failed".into();
            }
            if let Err(e) = ws.fill().await {
                return kind(&e).into();
            }
        }
    };
    tokio::time::timeout(ctx.resume_timeout, end)
        .await
        .unwrap_or_else(|_| "still-open".into())
}

fn kind(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "eof",
        std::io::ErrorKind::ConnectionReset => "reset",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_lists() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![f64::NAN]).is_nan());
        assert_eq!(join(&[1.23456, 2.0]), "1.235,2");
        assert_eq!(join(&[]), "-");
    }
}
