//! `ws-compression`: what WebSocket permessage-deflate saves on the wire and costs the server.
//!
//! `--conns` protocol v2 JSON subscribers (in this process) on one channel of a server started
//! with `websocket_compression` on. With `--compression on` they offer `permessage-deflate` in
//! the upgrade (and inflate what arrives compressed); with `off` they offer nothing, so the same
//! server serves them uncompressed, exactly as with compression off. HTTP API publishers
//! publish JSON documents of `--doc-size` bytes (a counter and a list of items, compressible as
//! real application data is) as fast as the subscribers keep up (at most `--window`
//! publications outstanding per subscriber). Running `--compression off` and `on` against the
//! same server gives the ratios: TCP bytes per delivery and server CPU per delivery.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use flate2::{Decompress, FlushDecompress};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::publish::ApiClient;
use crate::scenario::{base_kv, server_cpu};
use crate::token::{json_str, Signer};
use crate::util::{r3, Kv};
use crate::ws::{dial, encode_client_frame, Target};
use crate::{util, Common};

type Res = Result<Option<Kv>, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args, Debug, Clone)]
pub struct WsCompressionArgs {
    #[command(flatten)]
    pub common: Common,
    /// Offer permessage-deflate (on) or not (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub compression: OnOff,
    /// Subscriber connections.
    #[arg(long, default_value_t = 200)]
    pub conns: usize,
    /// HTTP API publishers.
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    /// Approximate size of each document in bytes.
    #[arg(long, default_value_t = 1024)]
    pub doc_size: usize,
    /// Publishing time.
    #[arg(long, default_value = "10s", value_parser = util::parse_duration)]
    pub duration: Duration,
    /// Publications outstanding (published, not yet delivered) per subscriber.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    /// How long to wait for outstanding deliveries after the last publication.
    #[arg(long, default_value = "5s", value_parser = util::parse_duration)]
    pub drain: Duration,
}

/// Counters the subscribers share.
#[derive(Default)]
struct Shared {
    delivered: AtomicU64,
    tcp_bytes: AtomicU64,
    compressed_msgs: AtomicU64,
    plain_msgs: AtomicU64,
    errors: AtomicU64,
}

/// A document of about `size` bytes: the counter, then items until the size is reached.
fn document(seq: u64, size: usize) -> String {
    let mut s = format!(r#"{{"seq":{seq},"items":["#);
    let mut i = 0u64;
    while s.len() + 2 < size {
        if i > 0 {
            s.push(',');
        }
        let price = (seq * 31 + i * 17) % 10000;
        s.push_str(&format!(
            r#"{{"id":{i},"name":"item-{i}","price":{price},"in_stock":{}}}"#,
            !(seq + i).is_multiple_of(3)
        ));
        i += 1;
    }
    s.push_str("]}");
    s
}

/// Reads until `buf` holds a complete frame; returns (rsv1, opcode, payload).
async fn frame(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    sh: &Shared,
) -> Result<(bool, u8, Vec<u8>), String> {
    loop {
        if buf.len() >= 2 {
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buf.len() >= at + len {
                let f = (
                    buf[0] & 0x40 != 0,
                    buf[0] & 0x0f,
                    buf[at..at + len].to_vec(),
                );
                buf.drain(..at + len);
                return Ok(f);
            }
        }
        let mut chunk = [0u8; 16384];
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        sh.tcp_bytes.fetch_add(n as u64, Relaxed);
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Inflates one message (RFC 7692 §7.2.2).
fn inflate(d: &mut Decompress, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    d.reset(false);
    out.clear();
    let mut input = Vec::with_capacity(data.len() + 4);
    input.extend_from_slice(data);
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    out.reserve(data.len() * 8 + 256);
    loop {
        let done = d.total_in() as usize;
        d.decompress_vec(&input[done..], out, FlushDecompress::Sync)
            .map_err(|e| e.to_string())?;
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
        out.reserve(out.capacity());
    }
}

/// One subscriber: upgrade (offering deflate or not), connect, subscribe, signal, then count
/// publications until the end.
async fn subscriber(
    i: usize,
    target: Target,
    offer: bool,
    token: String,
    channel: String,
    sh: Arc<Shared>,
    ready: tokio::sync::mpsc::Sender<Result<bool, String>>,
) {
    let setup = async {
        let mut s = dial(target.addr, None).await.map_err(|e| e.to_string())?;
        let ext = if offer {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n",
            target.path, target.host
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let end = loop {
            if let Some(p) = memmem::find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") {
            return Err(format!("handshake: {}", head.lines().next().unwrap_or("")));
        }
        let negotiated = head.contains("sec-websocket-extensions: permessage-deflate");
        buf.drain(..end);
        let mut out = Vec::new();
        let connect = format!(r#"{{"id":1,"connect":{{"token":{}}}}}"#, json_str(&token));
        let subscribe = format!(
            r#"{{"id":2,"subscribe":{{"channel":{}}}}}"#,
            json_str(&channel)
        );
        let mask = (i as u32 ^ 0x5a5a_1234).to_be_bytes();
        encode_client_frame(&mut out, 1, connect.as_bytes(), mask);
        encode_client_frame(&mut out, 1, subscribe.as_bytes(), mask);
        s.write_all(&out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((s, buf, negotiated))
    };
    let (mut s, mut buf, negotiated) = match setup.await {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return;
        }
    };
    let mut d = Decompress::new(false);
    let mut text = Vec::new();
    let mut subscribed = false;
    loop {
        let (rsv1, op, payload) = match frame(&mut s, &mut buf, &sh).await {
            Ok(f) => f,
            Err(e) => {
                if !subscribed {
                    let _ = ready.send(Err(e)).await;
                }
                return;
            }
        };
        if op == 0x8 {
            return;
        }
        if op != 0x1 {
            continue;
        }
        let msg: &[u8] = if rsv1 {
            if inflate(&mut d, &payload, &mut text).is_err() {
                sh.errors.fetch_add(1, Relaxed);
                return;
            }
            sh.compressed_msgs.fetch_add(1, Relaxed);
            &text
        } else {
            sh.plain_msgs.fetch_add(1, Relaxed);
            &payload
        };
        for line in msg.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if line == b"{}" {
                let mut pong = Vec::new();
                encode_client_frame(&mut pong, 1, b"{}", [1, 2, 3, 4]);
                let _ = s.write_all(&pong).await;
            } else if memmem::find(line, b"\"pub\"").is_some() {
                sh.delivered.fetch_add(1, Relaxed);
            } else if !subscribed && line.starts_with(b"{\"id\":2") {
                subscribed = true;
                let ok = memmem::find(line, b"\"error\"").is_none();
                let _ = ready
                    .send(if ok {
                        Ok(negotiated)
                    } else {
                        Err(String::from_utf8_lossy(line).into())
                    })
                    .await;
            }
        }
    }
}

pub async fn ws_compression(a: WsCompressionArgs) -> Res {
    let c = &a.common;
    let mut out = base_kv(c, "ws-compression");
    out.set("compression", a.compression == OnOff::On);
    out.set("conns", a.conns);
    out.set("doc_bytes", document(1, a.doc_size).len());
    let target = Target::resolve(&c.ws).await?;
    let api = Target::resolve(&c.api).await?;
    let signer = Signer::new(&c.secret);
    let sh = Arc::new(Shared::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(a.conns.max(1));
    for i in 0..a.conns {
        let token = signer.connection(&format!("wsc-{i}"));
        tokio::spawn(subscriber(
            i,
            target.clone(),
            a.compression == OnOff::On,
            token,
            c.channel.clone(),
            sh.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    let (mut ok, mut negotiated, mut first_err) = (0u64, 0u64, None);
    let deadline = Instant::now() + c.setup_timeout;
    for _ in 0..a.conns {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(Ok(n))) => {
                ok += 1;
                negotiated += u64::from(n);
            }
            Ok(Some(Err(e))) => {
                first_err.get_or_insert(e);
            }
            _ => break,
        }
    }
    println!(
        "label={} scenario=ws-compression compression={:?} conns={} ok={ok} negotiated={negotiated}",
        c.label, a.compression, a.conns
    );
    if let Some(e) = &first_err {
        println!("first connection error: {e}");
    }
    out.set("ok", ok);
    out.set("negotiated", negotiated);
    if ok == 0 {
        out.set("error", "no_connections");
        return Ok(Some(out));
    }
    let published = Arc::new(AtomicU64::new(0));
    let cpu0 = server_cpu(c);
    let start = Instant::now();
    let end = start + a.duration;
    let limit = a.window.max(1) * ok;
    let mut handles = Vec::new();
    for p in 0..a.publishers.max(1) {
        let mut client = ApiClient::new(api.clone(), &c.api_key)?;
        client.connect().await?;
        let (sh, published, channel, size) =
            (sh.clone(), published.clone(), c.channel.clone(), a.doc_size);
        handles.push(tokio::spawn(async move {
            let mut seq = p as u64 * 1_000_000_000;
            while Instant::now() < end {
                let sent = published.load(Relaxed) * ok;
                if sent.saturating_sub(sh.delivered.load(Relaxed)) >= limit {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                seq += 1;
                let body = format!(
                    r#"{{"method":"publish","params":{{"channel":{},"data":{}}}}}"#,
                    json_str(&channel),
                    document(seq, size)
                );
                if client.post(Bytes::from(body)).await.is_ok() {
                    published.fetch_add(1, Relaxed);
                } else {
                    sh.errors.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let expected = published.load(Relaxed) * ok;
    let drain_end = Instant::now() + a.drain;
    while sh.delivered.load(Relaxed) < expected && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let span = start.elapsed().as_secs_f64();
    let cpu1 = server_cpu(c);
    let delivered = sh.delivered.load(Relaxed);
    let tcp = sh.tcp_bytes.load(Relaxed);
    let per = delivered.max(1) as f64;
    println!(
        "published={} delivered={delivered} expected={expected} in {span:.2}s ({:.0}/s); TCP bytes per delivery {:.1}; messages compressed={} plain={}; errors={}",
        published.load(Relaxed),
        delivered as f64 / span,
        tcp as f64 / per,
        sh.compressed_msgs.load(Relaxed),
        sh.plain_msgs.load(Relaxed),
        sh.errors.load(Relaxed)
    );
    out.set("published", published.load(Relaxed));
    out.set("delivered", delivered);
    out.set("expected", expected);
    out.set("lost", expected.saturating_sub(delivered));
    out.set("deliv_per_s", (delivered as f64 / span).round());
    out.set("tcp_bytes_per_deliv", r3(tcp as f64 / per));
    out.set("compressed_msgs", sh.compressed_msgs.load(Relaxed));
    out.set("plain_msgs", sh.plain_msgs.load(Relaxed));
    out.set("errors", sh.errors.load(Relaxed));
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        let cpu = c1 - c0;
        println!(
            "server CPU {cpu:.2}s over {span:.2}s, {:.2} µs per delivery",
            cpu * 1e6 / per
        );
        out.set("server_cpu_s", r3(cpu));
        out.set("cpu_us_per_deliv", r3(cpu * 1e6 / per));
    }
    if a.compression == OnOff::On && negotiated < ok {
        out.set("error", "compression_not_negotiated");
    }
    Ok(Some(out))
}
