//! `delta`: what Fossil delta compression saves on the wire and costs in throughput.
//!
//! `--conns` protocol v2 WebSocket subscribers (JSON, or Protobuf with `--protobuf`) on one
//! channel of a namespace with history, positioning and `allowed_delta_types: ["fossil"]` (the
//! server's configuration; see `scripts/bench.sh` part `delta`). With `--delta on` they ask for
//! `"delta":"fossil"` in subscribe; with `off` they subscribe plainly. `--publishers` HTTP API
//! publishers publish [`DocGen`] documents (`--doc-size` bytes, a few fields changing each time)
//! with `"delta":true`, as fast as the subscribers keep up (at most `--window` publications
//! outstanding per subscriber) or at a fixed `--rate`. Each subscriber rebuilds every document
//! ([`Rebuild`]: full data, or a patch against the previous document), checks that it parses
//! and carries its publisher's next counter, and takes the send time out of it for latency.
//!
//! Reports publications/s, deliveries/s, WebSocket payload bytes and TCP bytes (frames with
//! their headers, as read from the socket) per delivery, the server's CPU per delivery, p50/p99
//! latency, and the errors by kind. Running `--delta off` and `--delta on` against the same
//! server gives the ratios (bytes per delivery, deliveries/s, CPU per delivery).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};

use crate::child::Children;
use crate::delta_doc::DocGen;
use crate::hist::Hist;
use crate::publish::ApiClient;
use crate::scenario::{
    base_kv, drain, feed_publishers, ms, server_cpu, server_mem, set_first, si, Progress, View,
};
use crate::token::json_str;
use crate::util::{now_ns, proc_cpu_s, r3, Interference, Kv};
use crate::ws::Target;
use crate::{util, Common};

type Res = Result<Option<Kv>, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args, Debug, Clone)]
pub struct DeltaArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribe with `"delta":"fossil"` (on) or plainly (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub delta: OnOff,
    /// Subscribers speak Protobuf (`?format=protobuf`) instead of JSON.
    #[arg(long)]
    pub protobuf: bool,
    /// Subscriber connections (protocol v2 whatever `--proto` says).
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// HTTP API publishers (each one keep-alive connection, requests in sequence).
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// Size of each document in bytes.
    #[arg(long, default_value_t = 2048)]
    pub doc_size: usize,
    /// Publishing time.
    #[arg(long, default_value = "10s", value_parser = util::parse_duration)]
    pub duration: Duration,
    /// Publications per second over all publishers; 0 = as fast as `--window` allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Max mode: publications outstanding (published, not yet delivered) per subscriber.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    /// How long to wait for outstanding deliveries after the last publication.
    #[arg(long, default_value = "5s", value_parser = util::parse_duration)]
    pub drain: Duration,
}

// ------------------------------------------------------------------ parent side

/// What the publishers share.
struct PubCtx {
    published: AtomicU64,
    /// Publications sent or being sent (the window counts them).
    attempts: AtomicU64,
    errors: AtomicU64,
    first_err: Mutex<Option<String>>,
    /// Publications received by the subscribers (the children's sum), and its wake-up.
    delivered: AtomicU64,
    notify: tokio::sync::Notify,
    /// The API command up to the data; `}}` closes it.
    prefix: Vec<u8>,
    gen: DocGen,
    /// Subscribers up.
    ok: u64,
    /// Max mode: deliveries outstanding allowed.
    limit: u64,
    end: Instant,
    /// Rate mode: each publisher's interval.
    period: Option<Duration>,
    publishers: usize,
}

/// Publisher `p`: documents with counters 1, 2, .. until the end of the run; a failed call is
/// retried with the same counter.
async fn publisher(p: usize, mut client: ApiClient, pc: Arc<PubCtx>) {
    let mut tick = pc.period.map(|d| {
        let first = tokio::time::Instant::now() + d.mul_f64(p as f64 / pc.publishers as f64);
        tokio::time::interval_at(first, d)
    });
    let mut seq = 1u64;
    let mut body = Vec::new();
    loop {
        match tick.as_mut() {
            Some(t) => {
                t.tick().await;
                if Instant::now() >= pc.end {
                    return;
                }
            }
            None => loop {
                if Instant::now() >= pc.end {
                    return;
                }
                let n = pc.notify.notified();
                tokio::pin!(n);
                n.as_mut().enable();
                let sent = pc.attempts.load(Relaxed) * pc.ok;
                if sent.saturating_sub(pc.delivered.load(Relaxed)) < pc.limit {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(5), n).await;
            },
        }
        body.clear();
        body.extend_from_slice(&pc.prefix);
        pc.gen.write(&mut body, p, seq, now_ns());
        body.extend_from_slice(b"}}");
        pc.attempts.fetch_add(1, Relaxed);
        match client.post(Bytes::copy_from_slice(&body)).await {
            Ok(()) => {
                pc.published.fetch_add(1, Relaxed);
                seq += 1;
            }
            Err(e) => {
                pc.attempts.fetch_sub(1, Relaxed);
                pc.errors.fetch_add(1, Relaxed);
                set_first(&pc.first_err, e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub async fn delta(a: DeltaArgs, args: Vec<String>) -> Res {
    let c = &a.common;
    if c.child_index.is_some() {
        return crate::delta_sub::child(&a).await;
    }
    let mut out = base_kv(c, "delta");
    out.set("proto", "v2");
    out.set("encoding", if a.protobuf { "protobuf" } else { "json" });
    out.set("delta", a.delta == OnOff::On);
    out.set("conns", a.conns);
    out.set("publishers", a.publishers.max(1));
    out.set("mode", if a.rate > 0.0 { "rate" } else { "max" });
    let gen = DocGen::new(a.doc_size);
    let mut sample = Vec::new();
    gen.write(&mut sample, 0, 1, now_ns());
    out.set("doc_bytes", sample.len());
    let api = Target::resolve(&c.api).await?;

    let mut kids = Children::spawn(c.procs.max(1), &args)?;
    kids.send_all("GO").await?;
    let t0 = Instant::now();
    let ready = kids
        .collect("READY", c.setup_timeout + Duration::from_secs(600))
        .await?;
    let conn_s = t0.elapsed().as_secs_f64();
    let sum = |lines: &[Kv], k: &str| -> u64 {
        lines.iter().map(|l| l.num(k).unwrap_or(0.0) as u64).sum()
    };
    let (ok, failed) = (sum(&ready, "ok"), sum(&ready, "failed"));
    let negotiated = sum(&ready, "negotiated");
    println!(
        "label={} scenario=delta delta={:?} encoding={} conns={} ok={ok} failed={failed} delta_negotiated={negotiated} connect+subscribe={conn_s:.2}s",
        c.label,
        a.delta,
        if a.protobuf { "protobuf" } else { "json" },
        a.conns
    );
    if let Some(e) = ready
        .iter()
        .find_map(|k| k.get("err").filter(|e| !e.is_empty() && *e != "-"))
    {
        println!("first connection error: {e}");
    }
    out.set("ok", ok);
    out.set("conn_failed", failed);
    out.set("negotiated", negotiated);
    if ok == 0 {
        out.set("error", "no_connections");
        kids.send_all("STOP").await.ok();
        kids.finish().await;
        return Ok(Some(out));
    }

    let publishers = a.publishers.max(1);
    let mut clients = Vec::new();
    for _ in 0..publishers {
        let mut cl = ApiClient::new(api.clone(), &c.api_key)?;
        cl.connect().await?;
        clients.push(cl);
    }
    let prefix = format!(
        r#"{{"method":"publish","params":{{"channel":{},"delta":true,"data":"#,
        json_str(&c.channel)
    );
    let cpu0 = server_cpu(c);
    let bench0 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let intf = Interference::start(c.server_pid, bench0);
    let pub_start = Instant::now();
    let pub_start_ns = now_ns();
    let pc = Arc::new(PubCtx {
        published: AtomicU64::new(0),
        attempts: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_err: Mutex::new(None),
        delivered: AtomicU64::new(0),
        notify: tokio::sync::Notify::new(),
        prefix: prefix.into_bytes(),
        gen,
        ok,
        limit: a.window.max(1) * ok,
        end: pub_start + a.duration,
        period: (a.rate > 0.0).then(|| Duration::from_secs_f64(publishers as f64 / a.rate)),
        publishers,
    });
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(p, client)| tokio::spawn(publisher(p, client, pc.clone())))
        .collect();
    let shared = pc.clone();

    let view = View::new();
    let keys = ["d", "cfail", "dropped"];
    let prog = {
        let (v, shared) = (view.clone(), shared.clone());
        let mut last = (Instant::now(), 0u64, 0u64);
        Progress::start(move || {
            let (d, pubs) = (v.get("d"), shared.published.load(Relaxed));
            let dt = last.0.elapsed().as_secs_f64().max(1e-3);
            let s = format!(
                "published {} ({}/s) delivered {} ({}/s) errors {} dropped {}",
                si(pubs as f64),
                si((pubs - last.2) as f64 / dt),
                si(d as f64),
                si(d.saturating_sub(last.1) as f64 / dt),
                v.get("cfail"),
                v.get("dropped")
            );
            last = (Instant::now(), d, pubs);
            s
        })
    };
    feed_publishers(&kids, &view, &keys, handles, &pc.delivered, &pc.notify).await;
    let pub_dur = pub_start.elapsed().as_secs_f64();
    let published = shared.published.load(Relaxed);
    let expected = published * ok;
    drain(&kids, &view, &keys, "d", expected, a.drain).await;
    prog.end();
    let cpu1 = server_cpu(c);
    let bench1 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    server_mem(&mut out, c, "end_");
    intf.report(&mut out, bench1);
    kids.send_all("STOP").await?;
    let done = kids.collect("DONE", Duration::from_secs(120)).await?;
    kids.finish().await;

    let n = |k: &str| sum(&done, k);
    let mut hist = Hist::new();
    for kv in &done {
        if let Some(h) = kv.get("hist") {
            hist.merge_encoded(h)?;
        }
    }
    let last = done
        .iter()
        .map(|k| k.num("last").unwrap_or(0.0) as u64)
        .max()
        .unwrap_or(0);
    let pubs = n("pubs");
    let errors = n("bad_patch") + n("bad_doc") + n("bad_seq");
    let span = if last > pub_start_ns {
        (last - pub_start_ns) as f64 / 1e9
    } else {
        pub_dur
    };
    let per = |x: u64| r3(x as f64 / pubs.max(1) as f64);
    println!(
        "published={published} (errors={}) by {publishers} publishers in {pub_dur:.2}s ({:.1}/s), documents of {} bytes",
        shared.errors.load(Relaxed),
        published as f64 / pub_dur,
        sample.len()
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
        "delivered={pubs} expected={expected} lost={} delivered/s={:.0}; rebuilt ok={} errors={errors} (bad_patch={} bad_doc={} bad_seq={}); patches={} full: string={} raw={} binary={}; dropped={}",
        expected.saturating_sub(pubs),
        pubs as f64 / span,
        n("good"),
        n("bad_patch"),
        n("bad_doc"),
        n("bad_seq"),
        n("patches"),
        n("full_str"),
        n("full_raw"),
        n("full_bin"),
        n("dropped")
    );
    if let Some(e) = done
        .iter()
        .find_map(|k| k.get("err").filter(|e| !e.is_empty() && *e != "-"))
    {
        println!("first subscriber error: {e}");
    }
    println!(
        "bytes per delivery: WebSocket payload {:.1}, TCP (frames with headers) {:.1}; {} WebSocket messages",
        per(n("ws_bytes")),
        per(n("tcp_bytes")),
        n("msgs")
    );
    println!(
        "latency p50={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        ms(&hist, 0.5).unwrap_or(0.0),
        ms(&hist, 0.99).unwrap_or(0.0),
        ms(&hist, 0.999).unwrap_or(0.0),
        hist.max as f64 / 1000.0
    );
    match pc.period {
        Some(_) => out.set("target_rate", a.rate),
        None => out.set("window", a.window.max(1)),
    }
    out.set("published", published);
    out.set("pub_errors", shared.errors.load(Relaxed));
    out.set("pub_per_s", (published as f64 / pub_dur).round());
    out.set("delivered", pubs);
    out.set("expected", expected);
    out.set("lost", expected.saturating_sub(pubs));
    out.set("deliv_per_s", (pubs as f64 / span).round());
    out.set("rebuilt", n("good"));
    out.set("errors", errors);
    for k in [
        "bad_patch",
        "bad_doc",
        "bad_seq",
        "patches",
        "full_str",
        "full_raw",
        "full_bin",
        "dropped",
        "msgs",
        "pings",
        "ws_bytes",
        "tcp_bytes",
    ] {
        out.set(k, n(k));
    }
    out.set("ws_bytes_per_deliv", per(n("ws_bytes")));
    out.set("tcp_bytes_per_deliv", per(n("tcp_bytes")));
    out.set("span_s", r3(span));
    out.set("p50_ms", ms(&hist, 0.5));
    out.set("p99_ms", ms(&hist, 0.99));
    out.set("p999_ms", ms(&hist, 0.999));
    out.set("max_ms", r3(hist.max as f64 / 1000.0));
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = c1 - c0;
        println!(
            "server CPU {cpu:.2}s over {span:.2}s ({:.0}% of one core), {:.2} µs per delivery; bench CPU {:.2}s",
            100.0 * cpu / span,
            cpu * 1e6 / pubs.max(1) as f64,
            bench1 - bench0
        );
        out.set("server_cpu_s", r3(cpu));
        out.set("cpu_us_per_deliv", r3(cpu * 1e6 / pubs.max(1) as f64));
        out.set("deliv_per_cpu_s", (pubs as f64 / cpu.max(1e-9)).round());
    }
    out.set("bench_cpu_s", r3(bench1 - bench0));
    if errors > 0 {
        out.set("error", format!("{errors}_documents_not_rebuilt"));
    }
    Ok(Some(out))
}
