//! Proxy mode: the scenarios that make the server call its application backend. This module
//! holds what they share (the backend process: started here or found at `--backend`, its
//! call counters and CPU; the tokenless connect frame) and `proxy-churn`, which is the `churn`
//! scenario with both of its auth decisions moved to the backend: connect without a token
//! (the connect proxy names the user) and subscribe to a channel of a namespace with
//! `proxy_subscribe` (the subscribe proxy allows it), instead of an HS256 connection token and
//! a subscription token for a private channel. The `rpc` scenario is in `rpc.rs`.

use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::proto::{self, Proto};
use crate::scenario;
use crate::util::{proc_cpu_s, r3, Kv};
use crate::ws::Target;
use crate::ChurnArgs;

type Res = Result<Option<Kv>, String>;

/// Where the backend is, and whether rotor-bench starts it.
#[derive(Args, Debug, Clone)]
pub struct BackendOpts {
    /// The backend's address (the server's proxy endpoints must point there).
    #[arg(long, default_value = "127.0.0.1:18560")]
    pub backend: String,
    /// Start `rotor-bench backend --listen <--backend>` as a separate process for the run
    /// (otherwise one must already listen there).
    #[arg(long)]
    pub spawn_backend: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ProxyChurnArgs {
    #[command(flatten)]
    pub churn: ChurnArgs,
    /// Namespace with `proxy_subscribe: true` on the server; channels are `NS:<channel>-W-I`.
    #[arg(long, default_value = "px")]
    pub namespace: String,
    #[command(flatten)]
    pub backend: BackendOpts,
}

/// The backend for one run: its process when we started it, its PID (from `/stats`).
pub struct Backend {
    addr: String,
    pid: u32,
    child: Option<Child>,
}

impl Backend {
    /// Starts the backend (`--spawn-backend`) or finds the one at `--backend`.
    pub async fn start(o: &BackendOpts) -> Result<Self, String> {
        let mut child = None;
        if o.spawn_backend {
            let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
            let mut c = Command::new(exe)
                .args(["backend", "--listen", &o.backend, "--exit-on-eof"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("spawn backend: {e}"))?;
            let out = c.stdout.take().ok_or("backend stdout")?;
            let mut lines = BufReader::new(out).lines();
            let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .map_err(|_| "backend did not start within 10 s".to_string())?
                .map_err(|e| format!("backend stdout: {e}"))?
                .unwrap_or_default();
            if !first.starts_with("LISTENING ") {
                return Err(format!("backend did not start (said {first:?})"));
            }
            child = Some(c);
        }
        let mut b = Backend {
            addr: o.backend.clone(),
            pid: 0,
            child,
        };
        let st = b.stats().await?;
        b.pid = st
            .num("pid")
            .map(|p| p as u32)
            .ok_or_else(|| format!("backend at {}: no pid in /stats", b.addr))?;
        Ok(b)
    }

    /// The backend's call counters (`GET /stats`).
    pub async fn stats(&self) -> Result<Kv, String> {
        let body = http_get(&self.addr, "/stats")
            .await
            .map_err(|e| format!("backend at {}: {e}", self.addr))?;
        Ok(Kv::parse(&body))
    }

    /// CPU seconds the backend process used so far.
    pub fn cpu_s(&self) -> Option<f64> {
        proc_cpu_s(Some(self.pid))
    }

    /// Stops the backend if we started it (closing its stdin ends it; killed if it lingers).
    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            if tokio::time::timeout(Duration::from_secs(5), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }

    /// Readings taken before a run.
    pub async fn mark(&self) -> Result<Mark, String> {
        Ok(Mark {
            stats: self.stats().await?,
            cpu: self.cpu_s(),
        })
    }

    /// Adds `backend_*` keys to `out`: calls per path during the run, connections the server
    /// opened to it (few: keep-alive), CPU seconds (total and per 1,000 `ops`); and takes the backend's CPU out of
    /// `other_cpu_s`, which counted it as interference.
    pub async fn report(&self, m: &Mark, out: &mut Kv, ops: u64) -> Result<Kv, String> {
        let now = self.stats().await?;
        let mut delta = Kv::default();
        for k in ["conns", "connect", "subscribe", "rpc", "bad"] {
            let mut d = now.num(k).unwrap_or(0.0) - m.stats.num(k).unwrap_or(0.0);
            if k == "conns" {
                d -= 1.0; // this `/stats` request's own connection
            }
            delta.set(k, d);
            out.set(&format!("backend_{k}"), d);
        }
        if let (Some(c0), Some(c1)) = (m.cpu, self.cpu_s()) {
            let cpu = c1 - c0;
            out.set("backend_cpu_s", r3(cpu));
            out.set(
                "backend_cpu_s_per_1k",
                format!("{:.4}", cpu * 1000.0 / ops.max(1) as f64),
            );
            if let Some(o) = out.num("other_cpu_s") {
                out.set("other_cpu_s", r3((o - cpu).max(0.0)));
            }
            println!(
                "backend CPU {cpu:.2}s ({:.1} µs per operation), {} keep-alive connections from the server",
                cpu * 1e6 / ops.max(1) as f64,
                delta.get("conns").unwrap_or("0")
            );
        }
        Ok(delta)
    }
}

/// Backend readings at the start of a run.
pub struct Mark {
    stats: Kv,
    cpu: Option<f64>,
}

/// One `GET` over a fresh connection (`Connection: close`); the body as text.
pub(crate) async fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "read timed out".to_string())?
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response head")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}

/// Appends a connect command without a token (the server asks its connect proxy).
pub fn connect_anon_cmd(out: &mut Vec<u8>, proto: Proto, id: u32) {
    let s = match proto {
        Proto::V1 => format!(r#"{{"id":{id},"params":{{}}}}"#),
        Proto::V2 => format!(r#"{{"id":{id},"connect":{{}}}}"#),
    };
    out.extend_from_slice(s.as_bytes());
}

/// One proxied cycle: dial, handshake, connect without a token, subscribe to `channel`
/// without a token (a namespace whose subscribes go to the proxy), close.
pub async fn proxy_cycle(
    target: &Target,
    src: Option<std::net::IpAddr>,
    proto: Proto,
    connect: &[u8],
    channel: &str,
    sub: &mut Vec<u8>,
) -> Result<(), String> {
    let (ws, _client) = scenario::dial_connect(target, src, connect).await?;
    sub.clear();
    proto::subscribe_cmd(sub, proto, 2, channel, None, false);
    scenario::subscribe_and_close(ws, sub).await
}

/// `proxy-churn`: the churn scenario's parent and children, with the proxied cycle, plus the
/// backend's figures. Every counted cycle must have reached the backend twice.
pub async fn proxy_churn(mut a: ProxyChurnArgs, args: Vec<String>) -> Res {
    a.churn.proxy_ns = Some(a.namespace.clone());
    if a.churn.common.child_index.is_some() {
        return scenario::churn(a.churn, args).await;
    }
    let be = Backend::start(&a.backend).await?;
    let mark = be.mark().await?;
    let res = scenario::churn(a.churn, args).await;
    let res = match res {
        Ok(Some(mut out)) => {
            let cycles = out.num("cycles").unwrap_or(0.0) as u64;
            match be.report(&mark, &mut out, cycles).await {
                Ok(d) => {
                    let (c, s) = (
                        d.num("connect").unwrap_or(0.0) as u64,
                        d.num("subscribe").unwrap_or(0.0) as u64,
                    );
                    if c < cycles || s < cycles {
                        out.set(
                            "error",
                            format!(
                                "proxy_not_used:{cycles}_cycles_{c}_connect_{s}_subscribe_calls"
                            ),
                        );
                    }
                }
                Err(e) => out.set("error", e.as_str()),
            }
            Ok(Some(out))
        }
        other => other,
    };
    be.stop().await;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenless_connect() {
        let mut b = Vec::new();
        connect_anon_cmd(&mut b, Proto::V1, 1);
        assert_eq!(b, br#"{"id":1,"params":{}}"#);
        b.clear();
        connect_anon_cmd(&mut b, Proto::V2, 3);
        assert_eq!(b, br#"{"id":3,"connect":{}}"#);
    }
}
