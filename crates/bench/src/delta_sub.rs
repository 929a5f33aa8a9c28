//! The subscriber side of `delta` (a child process): each connection connects with protocol v2
//! (JSON, or Protobuf with `--protobuf`), subscribes with `"delta":"fossil"` or plainly, then
//! hands every message to its [`Rebuild`] and counts what arrived: WebSocket payload bytes, TCP
//! bytes (frames with their headers, as read), publications by form, errors by kind, latency
//! from the send time in each document. Server pings are answered. The parent reads `STAT`
//! lines (`d` = publications received, `cfail` = documents not rebuilt) and one `DONE` line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use rotor_protocol::protobuf::{split_frame, v2};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::child::{say, ParentLink};
use crate::delta::{DeltaArgs, OnOff};
use crate::delta_doc::{Event, Rebuild, Tally};
use crate::group;
use crate::hist::ShardedHist;
use crate::proto::{self, Proto};
use crate::scenario::set_first;
use crate::token::{json_str, Signer};
use crate::util::{now_ns, Kv};
use crate::ws::{Msg, Target, WsConn};

type Res = Result<Option<Kv>, String>;

/// Counters of one child's connections (the parent reads STAT and DONE lines).
#[derive(Default)]
struct Shared {
    ok: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    negotiated: AtomicU64,
    pubs: AtomicU64,
    good: AtomicU64,
    patches: AtomicU64,
    full_raw: AtomicU64,
    full_str: AtomicU64,
    full_bin: AtomicU64,
    bad_patch: AtomicU64,
    bad_doc: AtomicU64,
    bad_seq: AtomicU64,
    pings: AtomicU64,
    ws_bytes: AtomicU64,
    tcp_bytes: AtomicU64,
    msgs: AtomicU64,
    last_ns: AtomicU64,
    hist: ShardedHist,
    err: Mutex<Option<String>>,
    cancel: CancellationToken,
}

impl Shared {
    fn add(&self, t: &Tally) {
        for (a, v) in [
            (&self.pubs, t.pubs),
            (&self.good, t.good),
            (&self.patches, t.patches),
            (&self.full_raw, t.full_raw),
            (&self.full_str, t.full_str),
            (&self.full_bin, t.full_bin),
            (&self.bad_patch, t.bad_patch),
            (&self.bad_doc, t.bad_doc),
            (&self.bad_seq, t.bad_seq),
            (&self.pings, t.pings),
        ] {
            if v > 0 {
                a.fetch_add(v, Relaxed);
            }
        }
    }

    fn errors(&self) -> u64 {
        self.bad_patch.load(Relaxed) + self.bad_doc.load(Relaxed) + self.bad_seq.load(Relaxed)
    }

    fn stat_line(&self) -> String {
        format!(
            "STAT ok={} failed={} dropped={} d={} cfail={}",
            self.ok.load(Relaxed),
            self.failed.load(Relaxed),
            self.dropped.load(Relaxed),
            self.pubs.load(Relaxed),
            self.errors()
        )
    }
}

/// What every connection of a child needs.
struct Cfg {
    target: Target,
    channel: String,
    delta: bool,
    protobuf: bool,
    signer: Signer,
    src_ips: usize,
    read_buf: usize,
    setup_timeout: Duration,
    dial: Semaphore,
}

/// The child process: holds its slice of the subscribers until the parent says STOP.
pub async fn child(a: &DeltaArgs) -> Res {
    let c = &a.common;
    let procs = c.procs.max(1);
    let mut target = Target::resolve(&c.ws).await?;
    if a.protobuf {
        let sep = if target.path.contains('?') { '&' } else { '?' };
        target.path.push(sep);
        target.path.push_str("format=protobuf");
    }
    let cfg = Arc::new(Cfg {
        target,
        channel: c.channel.clone(),
        delta: a.delta == OnOff::On,
        protobuf: a.protobuf,
        signer: Signer::new(&c.secret),
        src_ips: c.src_ips,
        read_buf: c.read_buf,
        setup_timeout: c.setup_timeout,
        dial: Semaphore::new(c.dial_concurrency.div_ceil(procs).max(1)),
    });
    let range = group::slice(a.conns, procs, c.child_index.unwrap_or(0));
    let n = range.len() as u64;
    let mut link = ParentLink::new();
    if !link.wait_go().await {
        return Ok(None);
    }
    let sh = Arc::new(Shared::default());
    let tasks: Vec<_> = range
        .map(|i| tokio::spawn(conn_task(i, cfg.clone(), sh.clone())))
        .collect();
    let stat = {
        let sh = sh.clone();
        tokio::spawn(async move {
            let (mut last, mut ready) = (String::new(), false);
            loop {
                let line = sh.stat_line();
                if line != last {
                    say(&line);
                    last = line;
                }
                let (ok, failed) = (sh.ok.load(Relaxed), sh.failed.load(Relaxed));
                if !ready && ok + failed >= n {
                    ready = true;
                    let err = sh.err.lock().unwrap_or_else(|x| x.into_inner()).clone();
                    say(&format!(
                        "READY ok={ok} failed={failed} negotiated={} err={}",
                        sh.negotiated.load(Relaxed),
                        err.unwrap_or_default().replace(char::is_whitespace, "_")
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    while let Some(l) = link.next().await {
        if l == "STOP" {
            break;
        }
    }
    sh.cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
    stat.abort();
    say(&sh.stat_line());
    let mut kv = Kv::default();
    for (k, v) in [
        ("ok", &sh.ok),
        ("failed", &sh.failed),
        ("dropped", &sh.dropped),
        ("negotiated", &sh.negotiated),
        ("pubs", &sh.pubs),
        ("good", &sh.good),
        ("patches", &sh.patches),
        ("full_raw", &sh.full_raw),
        ("full_str", &sh.full_str),
        ("full_bin", &sh.full_bin),
        ("bad_patch", &sh.bad_patch),
        ("bad_doc", &sh.bad_doc),
        ("bad_seq", &sh.bad_seq),
        ("pings", &sh.pings),
        ("ws_bytes", &sh.ws_bytes),
        ("tcp_bytes", &sh.tcp_bytes),
        ("msgs", &sh.msgs),
        ("last", &sh.last_ns),
    ] {
        kv.set(k, v.load(Relaxed));
    }
    let err = sh.err.lock().unwrap_or_else(|x| x.into_inner()).clone();
    kv.set("err", err.unwrap_or_default());
    kv.set("hist", sh.hist.snapshot().encode());
    say(&kv.line("DONE"));
    Ok(None)
}

fn first_error(sh: &Shared, e: String) {
    set_first(&sh.err, e);
}

async fn conn_task(i: usize, cfg: Arc<Cfg>, sh: Arc<Shared>) {
    let setup = tokio::time::timeout(cfg.setup_timeout, setup(i, &cfg));
    let mut ws = match setup.await {
        Ok(Ok((ws, negotiated))) => {
            if negotiated {
                sh.negotiated.fetch_add(1, Relaxed);
            }
            sh.ok.fetch_add(1, Relaxed);
            ws
        }
        Ok(Err(e)) => {
            sh.failed.fetch_add(1, Relaxed);
            return first_error(&sh, format!("conn {i}: {e}"));
        }
        Err(_) => {
            sh.failed.fetch_add(1, Relaxed);
            return first_error(&sh, format!("conn {i}: setup timed out"));
        }
    };
    let mut rb = Rebuild::default();
    if let Err(e) = read_loop(&mut ws, &mut rb, &cfg, &sh).await {
        sh.dropped.fetch_add(1, Relaxed);
        first_error(&sh, format!("conn {i}: {e}"));
    }
    sh.add(&rb.tally);
    if let Some(e) = rb.first_err.take() {
        first_error(&sh, format!("conn {i}: {e}"));
    }
}

/// Connects (token for user `delta-I`) and subscribes; whether the server agreed to deltas.
async fn setup(i: usize, cfg: &Cfg) -> Result<(WsConn, bool), String> {
    let _permit = cfg.dial.acquire().await.map_err(|e| e.to_string())?;
    let src = group::src_ip(i, cfg.src_ips);
    let mut ws = WsConn::connect(&cfg.target, src, cfg.read_buf, now_ns() ^ i as u64).await?;
    let token = cfg.signer.connection(&format!("delta-{i}"));
    let delta = if cfg.delta { "fossil" } else { "" };
    let mut cmd = Vec::new();
    if cfg.protobuf {
        let connect = v2::Command {
            id: 1,
            connect: Some(v2::ConnectRequest {
                token,
                ..Default::default()
            }),
            ..Default::default()
        };
        connect
            .encode_length_delimited(&mut cmd)
            .expect("Vec grows");
        ws.send_binary(&cmd)
            .await
            .map_err(|e| format!("send: {e}"))?;
        wait_reply(&mut ws, true, 1).await?;
        cmd.clear();
        let sub = v2::Command {
            id: 2,
            subscribe: Some(v2::SubscribeRequest {
                channel: cfg.channel.clone(),
                delta: delta.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        sub.encode_length_delimited(&mut cmd).expect("Vec grows");
        ws.send_binary(&cmd)
            .await
            .map_err(|e| format!("send: {e}"))?;
    } else {
        proto::connect_cmd(&mut cmd, Proto::V2, 1, &token);
        ws.send_text(&cmd).await.map_err(|e| format!("send: {e}"))?;
        wait_reply(&mut ws, false, 1).await?;
        let d = if cfg.delta {
            r#","delta":"fossil""#
        } else {
            ""
        };
        let sub = format!(
            r#"{{"id":2,"subscribe":{{"channel":{}{d}}}}}"#,
            json_str(&cfg.channel)
        );
        ws.send_text(sub.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    let negotiated = wait_reply(&mut ws, cfg.protobuf, 2).await?;
    Ok((ws, negotiated))
}

#[derive(Deserialize)]
struct JReply {
    #[serde(default)]
    id: u32,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    subscribe: Option<JSubscribed>,
}

#[derive(Deserialize)]
struct JSubscribed {
    #[serde(default)]
    delta: bool,
}

/// Waits for the reply to command `id` (answering pings); true when it is a subscribe result
/// with `delta: true`. An error reply is an error.
async fn wait_reply(ws: &mut WsConn, protobuf: bool, id: u32) -> Result<bool, String> {
    loop {
        let mut ping = false;
        while let Some(m) = ws.next_msg().map_err(|e| format!("read: {e}"))? {
            let p = match m {
                Msg::Data(p) => p,
                Msg::Close(code) => return Err(format!("server closed with {code}")),
            };
            if protobuf {
                for f in split_frame(p) {
                    let f = f.map_err(|e| format!("framing: {e}"))?;
                    if f.is_empty() {
                        ping = true;
                        continue;
                    }
                    let r = v2::Reply::decode(f).map_err(|e| format!("reply: {e}"))?;
                    if let Some(e) = r.error.filter(|_| r.id > 0 && r.id <= id) {
                        return Err(format!("error reply {}: {}", e.code, e.message));
                    }
                    if r.id == id {
                        return Ok(r.subscribe.is_some_and(|s| s.delta));
                    }
                }
            } else {
                for line in p.split(|b| *b == b'\n') {
                    if line.trim_ascii() == b"{}" {
                        ping = true;
                        continue;
                    }
                    let Ok(r) = serde_json::from_slice::<JReply>(line) else {
                        continue;
                    };
                    if let Some(e) = r.error.filter(|_| r.id > 0 && r.id <= id) {
                        return Err(format!("error reply: {e}"));
                    }
                    if r.id == id {
                        return Ok(r.subscribe.is_some_and(|s| s.delta));
                    }
                }
            }
        }
        if ping {
            pong(ws, protobuf).await?;
        }
        ws.flush_control().await.map_err(|e| format!("pong: {e}"))?;
        ws.fill().await.map_err(|e| format!("read: {e}"))?;
    }
}

/// The answer to a protocol v2 server ping: `{}`, or an empty Protobuf command.
async fn pong(ws: &mut WsConn, protobuf: bool) -> Result<(), String> {
    let r = if protobuf {
        ws.send_binary(&[0]).await
    } else {
        ws.send_text(b"{}").await
    };
    r.map_err(|e| format!("pong: {e}"))
}

/// Reads publications until the parent stops the run (Ok) or the connection ends (Err).
async fn read_loop(
    ws: &mut WsConn,
    rb: &mut Rebuild,
    cfg: &Cfg,
    sh: &Shared,
) -> Result<(), String> {
    loop {
        let (mut ping, mut gone, mut bytes, mut msgs) = (false, None, 0u64, 0u64);
        while let Some(m) = ws.next_msg().map_err(|e| format!("read: {e}"))? {
            let p = match m {
                Msg::Data(p) => p,
                Msg::Close(code) => return Err(format!("server closed with {code}")),
            };
            bytes += p.len() as u64;
            msgs += 1;
            let now = now_ns();
            let on = |ev: Event| match ev {
                Event::Ping => ping = true,
                Event::Pub(Some(ts)) => sh.hist.record(now.saturating_sub(ts) / 1000),
                Event::Gone(why) => gone = Some(why),
                Event::Pub(None) | Event::Other => {}
            };
            if cfg.protobuf {
                rb.proto_message(p, on);
            } else {
                rb.json_message(p, on);
            }
        }
        if msgs > 0 {
            sh.ws_bytes.fetch_add(bytes, Relaxed);
            sh.msgs.fetch_add(msgs, Relaxed);
            let t = std::mem::take(&mut rb.tally);
            if t.pubs > 0 {
                sh.last_ns.fetch_max(now_ns(), Relaxed);
            }
            sh.add(&t);
            if let Some(e) = rb.first_err.take() {
                first_error(sh, e);
            }
        }
        if let Some(why) = gone {
            return Err(format!("server ended the subscription: {why}"));
        }
        if ping {
            pong(ws, cfg.protobuf).await?;
        }
        ws.flush_control().await.map_err(|e| format!("pong: {e}"))?;
        tokio::select! {
            biased;
            _ = sh.cancel.cancelled() => return Ok(()),
            r = ws.fill() => {
                let n = r.map_err(|e| format!("read: {e}"))?;
                sh.tcp_bytes.fetch_add(n as u64, Relaxed);
            }
        }
    }
}
