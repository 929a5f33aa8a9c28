//! `rpc`: `--clients` connections (HS256 connection tokens, so only the rpc goes to the
//! backend) each send `rpc` commands back to back, one outstanding at a time, through the
//! server's rpc proxy. Each command carries `{"rb":[client,id],"pad":".."}`; a reply counts
//! only if it echoes that data back. Reports round trips/s, latency (send to reply), and the
//! server's and the backend's CPU per 1,000 round trips. Clients live in `--procs` child
//! processes and connect before the clock starts.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use clap::Args;
use memchr::memmem;

use crate::child::{say, Children, ParentLink};
use crate::group;
use crate::proto::{self, Proto, ReplyScan};
use crate::proxy::{Backend, BackendOpts};
use crate::scenario::{
    base_kv, closed_loop, first_err, ms, server_mem, set_first, sum_of, OpsRun, OpsShared,
};
use crate::token::{json_str, Signer};
use crate::util::{now_ns, r3, Kv};
use crate::ws::{Msg, Target, WsConn};
use crate::{util, Common};

type Res = Result<Option<Kv>, String>;

#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections, each with one rpc outstanding at a time.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    #[arg(long, default_value = "10s", value_parser = util::parse_duration)]
    pub duration: Duration,
    /// RPC method name sent.
    #[arg(long, default_value = "echo")]
    pub method: String,
    /// Size of each command's data JSON in bytes (at least the marker).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    #[command(flatten)]
    pub backend: BackendOpts,
}

/// Appends an rpc command: v1 `{"id":N,"method":9,"params":{"method":M,"data":D}}`, v2
/// `{"id":N,"rpc":{"method":M,"data":D}}`.
pub fn rpc_cmd(out: &mut Vec<u8>, proto: Proto, id: u32, method: &str, data: &[u8]) {
    let head = match proto {
        Proto::V1 => format!(
            r#"{{"id":{id},"method":9,"params":{{"method":{},"data":"#,
            json_str(method)
        ),
        Proto::V2 => format!(
            r#"{{"id":{id},"rpc":{{"method":{},"data":"#,
            json_str(method)
        ),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"}}");
}

/// The data of one command: `{"rb":[client,id],"pad":"xx.."}`, padded to `size` bytes when it
/// can be; the marker `"rb":[client,id]` is what the reply must echo.
fn rpc_data(out: &mut Vec<u8>, marker: &mut Vec<u8>, client: usize, id: u32, size: usize) {
    marker.clear();
    marker.extend_from_slice(b"\"rb\":[");
    proto::push_uint(marker, client as u64);
    marker.push(b',');
    proto::push_uint(marker, id as u64);
    marker.push(b']');
    out.clear();
    out.push(b'{');
    out.extend_from_slice(marker);
    out.extend_from_slice(b",\"pad\":\"");
    let used = out.len() + 2;
    out.extend(std::iter::repeat_n(b'x', size.saturating_sub(used)));
    out.extend_from_slice(b"\"}");
}

pub async fn rpc(a: RpcArgs, args: Vec<String>) -> Res {
    let c = &a.common;
    if c.child_index.is_some() {
        return child_rpc(&a).await;
    }
    let mut out = base_kv(c, "rpc");
    out.set("clients", a.clients);
    out.set("procs", c.procs.max(1));
    out.set("payload", a.payload);
    let be = Backend::start(&a.backend).await?;
    let res = parent(&a, args, &be, &mut out).await;
    be.stop().await;
    res.map(|()| Some(out))
}

async fn parent(a: &RpcArgs, args: Vec<String>, be: &Backend, out: &mut Kv) -> Result<(), String> {
    let c = &a.common;
    let mut kids = Children::spawn(c.procs.max(1), &args)?;
    let ready = kids
        .collect("READY", c.setup_timeout + Duration::from_secs(30))
        .await?;
    let connected = sum_of(&ready, "ok");
    if let Some(e) = first_err(&ready) {
        kids.finish().await;
        return Err(format!("clients did not connect: {e}"));
    }
    out.set("ok", connected);
    let mark = be.mark().await?;
    let OpsRun {
        ops,
        failed,
        rate,
        hist,
        err,
        elapsed,
        server_cpu_s,
        bench_cpu_s,
    } = closed_loop(kids, c, a.duration, "rpc", out).await?;
    println!(
        "label={} scenario=rpc proto={} clients={}: {ops} rpc round trips in {elapsed:.2}s = {rate:.0}/s, failed={failed}",
        c.label, c.proto, a.clients
    );
    if let Some(e) = &err {
        println!("first error: {e}");
    }
    println!(
        "round trip p50={:.3}ms p99={:.3}ms max={:.3}ms",
        ms(&hist, 0.5).unwrap_or(0.0),
        ms(&hist, 0.99).unwrap_or(0.0),
        hist.max as f64 / 1000.0
    );
    out.set("rpcs", ops);
    out.set("failed", failed);
    out.set("rpc_per_s", rate.round());
    out.set("p50_ms", ms(&hist, 0.5));
    out.set("p99_ms", ms(&hist, 0.99));
    out.set("max_ms", r3(hist.max as f64 / 1000.0));
    if let Some(cpu) = server_cpu_s {
        println!(
            "server CPU {cpu:.2}s over {elapsed:.2}s ({:.0}% of one core), {:.1} µs per rpc; bench CPU {:.2}s",
            100.0 * cpu / elapsed,
            cpu * 1e6 / ops.max(1) as f64,
            bench_cpu_s
        );
        out.set("server_cpu_s", r3(cpu));
        out.set(
            "server_cpu_s_per_1k",
            format!("{:.4}", cpu * 1000.0 / ops.max(1) as f64),
        );
    }
    let d = be.report(&mark, out, ops).await?;
    if (d.num("rpc").unwrap_or(0.0) as u64) < ops {
        out.set(
            "error",
            format!(
                "proxy_not_used:{ops}_rpcs_{}_backend_calls",
                d.get("rpc").unwrap_or("0")
            ),
        );
    }
    server_mem(out, c, "end_");
    out.set("bench_cpu_s", r3(bench_cpu_s));
    if let Some(e) = err {
        out.set("first_error", e);
    }
    Ok(())
}

async fn child_rpc(a: &RpcArgs) -> Res {
    let c = &a.common;
    let target = Target::resolve(&c.ws).await?;
    let range = group::slice(a.clients, c.procs.max(1), c.child_index.unwrap_or(0));
    let mut link = ParentLink::new();
    let signer = Signer::new(&c.secret);
    // Connect every client first (in parallel), then wait for GO.
    let mut setups = Vec::new();
    for i in range.clone() {
        let (target, src_ips, proto) = (target.clone(), c.src_ips, c.proto);
        let token = signer.connection(&format!("rpc-{i}"));
        let limit = c.setup_timeout;
        setups.push(tokio::spawn(async move {
            let r = tokio::time::timeout(limit, async {
                let mut ws =
                    WsConn::connect(&target, group::src_ip(i, src_ips), 4096, now_ns()).await?;
                let mut cmd = Vec::new();
                proto::connect_cmd(&mut cmd, proto, 1, &token);
                ws.send_text(&cmd)
                    .await
                    .map_err(|e| format!("send connect: {e}"))?;
                wait_id(&mut ws, proto, 1).await?;
                Ok::<_, String>(ws)
            })
            .await;
            r.unwrap_or_else(|_| Err("connect timed out".into()))
        }));
    }
    let mut conns = Vec::new();
    let mut first_err = None;
    for (i, t) in range.clone().zip(setups) {
        match t
            .await
            .map_err(|e| format!("setup task: {e}"))
            .and_then(|r| r)
        {
            Ok(ws) => conns.push((i, ws)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    say(&format!(
        "READY ok={} failed={} err={}",
        conns.len(),
        range.len() - conns.len(),
        first_err
            .unwrap_or_default()
            .replace(char::is_whitespace, "_")
    ));
    if !link.wait_go().await {
        return Ok(None);
    }
    let sh = OpsShared::new();
    let start = Instant::now();
    let end = start + a.duration;
    let mut tasks = Vec::new();
    for (i, mut ws) in conns {
        let (sh, proto, method, size) = (sh.clone(), c.proto, a.method.clone(), a.payload);
        tasks.push(tokio::spawn(async move {
            let (mut cmd, mut data, mut marker) = (Vec::new(), Vec::new(), Vec::new());
            let mut id = 1u32;
            while Instant::now() < end {
                id += 1;
                rpc_data(&mut data, &mut marker, i, id, size);
                cmd.clear();
                rpc_cmd(&mut cmd, proto, id, &method, &data);
                let t0 = Instant::now();
                let r = tokio::time::timeout(Duration::from_secs(10), async {
                    ws.send_text(&cmd)
                        .await
                        .map_err(|e| format!("send rpc: {e}"))?;
                    let line = wait_id(&mut ws, proto, id).await?;
                    if memmem::find(&line, &marker).is_none() {
                        return Err(format!(
                            "reply does not echo the data: {}",
                            String::from_utf8_lossy(&line)
                        ));
                    }
                    Ok(())
                })
                .await
                .unwrap_or_else(|_| Err("rpc timed out".into()));
                match r {
                    Ok(()) => {
                        sh.hist.record(t0.elapsed().as_micros() as u64);
                        sh.ops.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        sh.failed.fetch_add(1, Relaxed);
                        set_first(&sh.err, e);
                        // A broken connection stays broken: stop this client.
                        break;
                    }
                }
            }
            let _ = ws.send_close(1000).await;
        }));
    }
    sh.finish(tasks, start, &mut link).await
}

/// Waits for the reply to `id` (answering v2 `{}` pings on the way); an error reply fails.
async fn wait_id(ws: &mut WsConn, proto: Proto, id: u32) -> Result<Vec<u8>, String> {
    loop {
        let mut ping = false;
        while let Some(m) = ws.next_msg().map_err(|e| format!("read: {e}"))? {
            match m {
                Msg::Data(p) => {
                    if proto == Proto::V2 && proto::has_v2_ping(p) {
                        ping = true;
                    }
                    match proto::scan_reply(p, id) {
                        ReplyScan::None => {}
                        ReplyScan::Ok(l) => return Ok(l.to_vec()),
                        ReplyScan::Error(l) => {
                            return Err(format!("error reply: {}", String::from_utf8_lossy(l)))
                        }
                    }
                }
                Msg::Close(code) => return Err(format!("server closed with {code}")),
            }
        }
        if ping {
            ws.send_text(b"{}")
                .await
                .map_err(|e| format!("pong: {e}"))?;
        }
        ws.flush_control().await.map_err(|e| format!("pong: {e}"))?;
        ws.fill().await.map_err(|e| format!("read: {e}"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_markers() {
        let (mut data, mut marker) = (Vec::new(), Vec::new());
        rpc_data(&mut data, &mut marker, 7, 42, 40);
        assert_eq!(data.len(), 40);
        assert_eq!(marker, br#""rb":[7,42]"#);
        let mut cmd = Vec::new();
        rpc_cmd(
            &mut cmd,
            Proto::V1,
            42,
            "echo",
            br#"{"rb":[7,42],"pad":""}"#,
        );
        assert_eq!(
            cmd,
            br#"{"id":42,"method":9,"params":{"method":"echo","data":{"rb":[7,42],"pad":""}}}"#
        );
        cmd.clear();
        rpc_cmd(&mut cmd, Proto::V2, 3, "m", b"{}");
        assert_eq!(cmd, br#"{"id":3,"rpc":{"method":"m","data":{}}}"#);
        // Too small a size still gives the marker in valid JSON.
        rpc_data(&mut data, &mut marker, 0, 1, 0);
        assert_eq!(data, br#"{"rb":[0,1],"pad":""}"#);
    }
}
