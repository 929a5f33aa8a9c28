//! The load scenarios that drive connection groups and closed-loop workers, one module per
//! family: publish-and-deliver ([`pubsub`]: fanout, channels, api-publish, nodes), [`idle`]
//! connections, [`join`] storms and connection [`churn`]. Each runs as a parent (children,
//! publishers, /proc readings, results) and a child side (a group of connections, see
//! [`group_child`], or closed-loop workers, see [`ops`]). This module holds what the scenarios,
//! and the other scenario modules of the crate, share: result lines, CPU and memory readings,
//! the first error, number formatting and waiting for a command's reply.

mod churn;
mod group_child;
mod idle;
mod join;
mod ops;
mod progress;
mod pubsub;

use std::sync::Mutex;

use crate::hist::Hist;
use crate::proto::{self, ReplyScan};
use crate::util::{proc_cpu_s, proc_mem_kb, r3, Kv};
use crate::ws::{Msg, WsConn};
use crate::Common;

pub use churn::churn;
pub(crate) use churn::{dial_connect, subscribe_and_close};
pub use idle::idle;
pub use join::join;
pub(crate) use ops::{closed_loop, OpsRun, OpsShared};
pub(crate) use progress::{with_view, Progress, View};
pub(crate) use pubsub::{drain, feed_publishers};
pub use pubsub::{pubsub, pubsub_layout};

type Res = Result<Option<Kv>, String>;

/// Quantile `p` of a histogram of µs, in ms (3 decimals).
pub(crate) fn ms(h: &Hist, p: f64) -> Option<f64> {
    h.quantile(p).map(|us| r3(us / 1000.0))
}

/// The first keys of every RESULT line: label, scenario, protocol.
pub(crate) fn base_kv(c: &Common, scenario: &str) -> Kv {
    let mut kv = Kv::default();
    kv.set("label", c.label.as_str());
    kv.set("scenario", scenario);
    kv.set("proto", c.proto.to_string());
    kv
}

/// The server's RSS and its high-water mark (kB) as `<prefix>rss_kb` / `<prefix>hwm_kb`.
pub(crate) fn server_mem(out: &mut Kv, c: &Common, prefix: &str) {
    if let Some((rss, hwm)) = c.server_pid.and_then(proc_mem_kb) {
        out.set(&format!("{prefix}rss_kb"), rss);
        out.set(&format!("{prefix}hwm_kb"), hwm);
    }
}

/// The server's CPU seconds so far (when its PID is known).
pub(crate) fn server_cpu(c: &Common) -> Option<f64> {
    c.server_pid.and_then(|p| proc_cpu_s(Some(p)))
}

/// Keeps the first error.
pub(crate) fn set_first(slot: &Mutex<Option<String>>, e: String) {
    let mut g = slot.lock().unwrap_or_else(|x| x.into_inner());
    if g.is_none() {
        *g = Some(e);
    }
}

/// A count in short form: 12.3k, 1.23M.
pub(crate) fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Reads `ws` until the reply to command `id`: its line, or the error reply as an error.
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

/// The first `err` the children's lines report (empty and `-` stand for none).
pub(crate) fn first_err(lines: &[Kv]) -> Option<String> {
    lines.iter().find_map(|k| {
        k.get("err")
            .filter(|e| !e.is_empty() && *e != "-")
            .map(str::to_string)
    })
}

/// The sum of `key` over the children's lines.
pub(crate) fn sum_of(lines: &[Kv], key: &str) -> u64 {
    lines.iter().map(|k| k.num(key).unwrap_or(0.0) as u64).sum()
}
