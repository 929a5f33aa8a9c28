//! `emulation-rtt`: `--clients` connections, each subscribed to a channel of its own, publish
//! over their transport and wait for their own publication to come back on their stream. Over
//! HTTP-streaming and SSE the publish command travels as `POST /emulation` (sent apart, so the
//! stream is read while the POST is in flight); over SockJS xhr-streaming as `xhr_send`; over a
//! WebSocket in the socket. Reports the round trip (publish sent → publication read) and, for
//! the POSTing transports, the POST's own time until its 204. One process, no children: the
//! load is light by design (`--interval` between one client's round trips).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::conn::{Conn, Dialer, TransportArgs};
use crate::hist::{Hist, ShardedHist};
use crate::proto::{self, Proto, ReplyScan};
use crate::scenario::{base_kv, ms, server_cpu, set_first, Progress};
use crate::token::{json_str, Signer};
use crate::util::{now_ns, r3, Kv};
use crate::ws::Msg;
use crate::Common;

#[derive(Args, Debug, Clone)]
pub struct RttArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Publishing clients (each on its own channel).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    #[arg(long, default_value = "10s", value_parser = crate::util::parse_duration)]
    pub duration: Duration,
    /// Pause between one client's round trips.
    #[arg(long, default_value = "10ms", value_parser = crate::util::parse_duration)]
    pub interval: Duration,
    /// Size of each publication's data JSON in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
}

struct Shared {
    rtt: ShardedHist,
    post: ShardedHist,
    ok: AtomicU64,
    failed: AtomicU64,
    up: AtomicU64,
    err: Mutex<Option<String>>,
}

fn publish_cmd(out: &mut Vec<u8>, p: Proto, id: u32, channel: &str) {
    let ch = json_str(channel);
    match p {
        Proto::V1 => out.extend_from_slice(
            format!(r#"{{"id":{id},"method":3,"params":{{"channel":{ch},"data":"#).as_bytes(),
        ),
        Proto::V2 => out.extend_from_slice(
            format!(r#"{{"id":{id},"publish":{{"channel":{ch},"data":"#).as_bytes(),
        ),
    }
}

/// Reads until `pred` is satisfied by a message (or an error reply / close).
async fn read_until(
    c: &mut Conn,
    mut pred: impl FnMut(&[u8]) -> Result<bool, String>,
) -> Result<(), String> {
    loop {
        let mut done = false;
        while let Some(m) = c.next_msg().map_err(|e| format!("read: {e}"))? {
            match m {
                Msg::Data(p) => done |= pred(p)?,
                Msg::Close(code) => return Err(format!("closed with {code}")),
            }
        }
        if done {
            return Ok(());
        }
        c.flush_control().await.map_err(|e| format!("pong: {e}"))?;
        c.fill().await.map_err(|e| format!("read: {e}"))?;
    }
}

async fn client(i: usize, a: Arc<RttArgs>, d: Arc<Dialer>, sh: Arc<Shared>, end: Instant) {
    let c = &a.common;
    let channel = format!("{}-rtt-{i}", c.channel);
    let signer = Signer::new(&c.secret);
    let mut frame = Vec::new();
    proto::connect_cmd(
        &mut frame,
        c.proto,
        1,
        &signer.connection(&format!("rtt-{i}")),
    );
    frame.push(b'\n');
    proto::subscribe_cmd(&mut frame, c.proto, 2, &channel, None, false);
    let seed = now_ns() ^ (i as u64) << 40;
    let setup = async {
        let mut conn = Conn::start(&d, None, c.read_buf, seed, &frame).await?;
        read_until(&mut conn, |p| match proto::scan_reply(p, 2) {
            ReplyScan::None => Ok(false),
            ReplyScan::Ok(_) => Ok(true),
            ReplyScan::Error(l) => Err(format!("setup: {}", String::from_utf8_lossy(l))),
        })
        .await?;
        Ok::<Conn, String>(conn)
    };
    let mut conn = match tokio::time::timeout(c.setup_timeout, setup).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return fail(&sh, e),
        Err(_) => return fail(&sh, "setup timed out".into()),
    };
    sh.up.fetch_add(1, Relaxed);
    let mut id = 2u32;
    let mut seq = 0u64;
    let mut cmd = Vec::with_capacity(256 + a.payload);
    while Instant::now() < end {
        id += 1;
        seq += 1;
        cmd.clear();
        publish_cmd(&mut cmd, c.proto, id, &channel);
        proto::publication_data(&mut cmd, 0, i, seq, now_ns(), a.payload);
        cmd.extend_from_slice(b"}}");
        let t0 = Instant::now();
        let round = async {
            let post = match conn.detached_post(&cmd) {
                Some((poster, path, body)) => {
                    let sh = sh.clone();
                    Some(tokio::spawn(async move {
                        let r = poster.post(&path, body, 204).await;
                        sh.post.record(t0.elapsed().as_micros() as u64);
                        r
                    }))
                }
                None => {
                    conn.send_text(&cmd)
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    None
                }
            };
            let (mut got, mut replied) = (false, false);
            read_until(&mut conn, |p| {
                proto::for_each_delivery(p, |dl| {
                    if dl.seq == seq && dl.channel == i as u64 && !got {
                        got = true;
                        sh.rtt.record(t0.elapsed().as_micros() as u64);
                    }
                });
                match proto::scan_reply(p, id) {
                    ReplyScan::Ok(_) => replied = true,
                    ReplyScan::Error(l) => {
                        return Err(format!("publish: {}", String::from_utf8_lossy(l)))
                    }
                    ReplyScan::None => {}
                }
                Ok(got && replied)
            })
            .await?;
            if let Some(h) = post {
                h.await
                    .map_err(|e| format!("post task: {e}"))?
                    .map_err(|e| format!("post: {e}"))?;
            }
            Ok::<(), String>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), round).await {
            Ok(Ok(())) => {
                sh.ok.fetch_add(1, Relaxed);
            }
            Ok(Err(e)) => return fail(&sh, e),
            Err(_) => return fail(&sh, "round trip timed out (5 s)".into()),
        }
        if !a.interval.is_zero() {
            tokio::time::sleep(a.interval).await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.send_close(1000)).await;
}

fn fail(sh: &Shared, e: String) {
    sh.failed.fetch_add(1, Relaxed);
    set_first(&sh.err, e);
}

pub async fn rtt(a: RttArgs) -> Result<Option<Kv>, String> {
    let c = &a.common;
    let d = Arc::new(Dialer::new(&a.transport, &c.ws, c.proto).await?);
    let mut out = base_kv(c, "emulation-rtt");
    out.set("transport", a.transport.transport.name());
    out.set("clients", a.clients);
    out.set("interval_ms", r3(a.interval.as_secs_f64() * 1000.0));
    out.set("payload", a.payload);
    let sh = Arc::new(Shared {
        rtt: ShardedHist::new(),
        post: ShardedHist::new(),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        up: AtomicU64::new(0),
        err: Mutex::new(None),
    });
    let a = Arc::new(a);
    let cpu0 = server_cpu(&a.common);
    let start = Instant::now();
    let end = start + a.duration;
    let prog = {
        let sh = sh.clone();
        Progress::start(move || {
            format!(
                "clients up {} round trips {} failed {}",
                sh.up.load(Relaxed),
                sh.ok.load(Relaxed),
                sh.failed.load(Relaxed)
            )
        })
    };
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| tokio::spawn(client(i, a.clone(), d.clone(), sh.clone(), end)))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    prog.end();
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = server_cpu(&a.common);
    let (rtt, post): (Hist, Hist) = (sh.rtt.snapshot(), sh.post.snapshot());
    let (ok, failed) = (sh.ok.load(Relaxed), sh.failed.load(Relaxed));
    println!(
        "label={} scenario=emulation-rtt transport={} proto={} clients={}: {ok} round trips in {secs:.2}s ({:.0}/s), failed {failed}",
        a.common.label,
        a.transport.transport.name(),
        a.common.proto,
        a.clients,
        ok as f64 / secs
    );
    println!(
        "round trip (publish sent -> own publication read) p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        ms(&rtt, 0.5).unwrap_or(0.0),
        ms(&rtt, 0.9).unwrap_or(0.0),
        ms(&rtt, 0.99).unwrap_or(0.0),
        ms(&rtt, 0.999).unwrap_or(0.0),
        rtt.max as f64 / 1000.0
    );
    if post.count() > 0 {
        println!(
            "POST until its 204: p50={:.3}ms p99={:.3}ms max={:.3}ms",
            ms(&post, 0.5).unwrap_or(0.0),
            ms(&post, 0.99).unwrap_or(0.0),
            post.max as f64 / 1000.0
        );
    }
    let err = sh.err.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(e) = &err {
        println!("first error: {e}");
    }
    out.set("ok", sh.up.load(Relaxed));
    out.set("rtts", ok);
    out.set("failed", failed);
    out.set("rtt_per_s", (ok as f64 / secs).round());
    out.set("p50_ms", ms(&rtt, 0.5));
    out.set("p90_ms", ms(&rtt, 0.9));
    out.set("p99_ms", ms(&rtt, 0.99));
    out.set("p999_ms", ms(&rtt, 0.999));
    out.set("max_ms", r3(rtt.max as f64 / 1000.0));
    if post.count() > 0 {
        out.set("post_p50_ms", ms(&post, 0.5));
        out.set("post_p99_ms", ms(&post, 0.99));
    }
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        out.set("server_cpu_s", r3(c1 - c0));
    }
    if let Some(e) = err {
        out.set("first_error", e);
    }
    Ok(Some(out))
}
