//! A group of subscriber connections: the part of a run that lives in a child process.
//!
//! Each connection is one task that owns its socket: it dials (from a spread source address),
//! sends connect + subscribe(s) in one frame, then reads. Every message is scanned once, with
//! one clock reading per `read`: replies while setting up, publications (`"rb":[`) for
//! latency and loss accounting, join pushes when counted, v2 pings (answered with `{}`).

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conn::{Conn, Dialer};
use crate::hist::{ShardedCounter, ShardedHist};
use crate::proto::{self, Proto, ReplyScan};
use crate::token::Signer;
use crate::track::{ConnTracks, Counts, Tally};
use crate::util::now_ns;
use crate::ws::Msg;

/// How connections map to channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every connection on one channel (`<prefix>`).
    Single,
    /// Connection `i` on its own channel `<prefix>-<i>`.
    PerConn,
    /// Connection `i` on its personal channel `<prefix>-u<i>` and on the group channel
    /// `<prefix>-g<i / size>` (groups of `size`).
    PersonalGroup { size: usize },
    /// Connection `i` on channel `<prefix>-<i % channels>`: with the connections split in
    /// contiguous slices over the processes (and each process on its own node), the
    /// subscribers of one channel sit in different processes (`nodes`).
    Striped { channels: usize },
}

/// The channels of a run, numbered 0..count(): what publishers and subscribers agree on.
#[derive(Clone, Debug)]
pub struct Channels {
    pub layout: Layout,
    pub prefix: String,
    /// Subscriber connections in the whole run (all processes).
    pub conns: usize,
}

impl Channels {
    pub fn count(&self) -> usize {
        match self.layout {
            Layout::Single => 1,
            Layout::PerConn => self.conns,
            Layout::PersonalGroup { size } => self.conns + self.conns.div_ceil(size.max(1)),
            Layout::Striped { channels } => channels.clamp(1, self.conns.max(1)),
        }
    }

    pub fn name(&self, c: usize) -> String {
        match self.layout {
            Layout::Single => self.prefix.clone(),
            Layout::PerConn | Layout::Striped { .. } => format!("{}-{c}", self.prefix),
            Layout::PersonalGroup { .. } if c < self.conns => format!("{}-u{c}", self.prefix),
            Layout::PersonalGroup { .. } => format!("{}-g{}", self.prefix, c - self.conns),
        }
    }

    /// Global channel numbers of connection `i`.
    pub fn of_conn(&self, i: usize) -> Vec<u32> {
        match self.layout {
            Layout::Single => vec![0],
            Layout::PerConn => vec![i as u32],
            Layout::PersonalGroup { size } => {
                vec![i as u32, (self.conns + i / size.max(1)) as u32]
            }
            Layout::Striped { .. } => vec![(i % self.count()) as u32],
        }
    }

    /// Subscribers of channel `c` when every connection is up.
    pub fn subscribers(&self, c: usize) -> usize {
        match self.layout {
            Layout::Single => self.conns,
            Layout::PerConn => 1,
            Layout::PersonalGroup { .. } if c < self.conns => 1,
            Layout::PersonalGroup { size } => {
                let g = c - self.conns;
                (self.conns - g * size).min(size)
            }
            Layout::Striped { .. } => {
                let n = self.count();
                self.conns / n + usize::from(c < self.conns % n)
            }
        }
    }
}

/// The part of connection indices `0..total` that process `index` of `procs` holds.
pub fn slice(total: usize, procs: usize, index: usize) -> Range<usize> {
    let procs = procs.max(1);
    let base = total / procs;
    let extra = total % procs;
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    start..start + len
}

/// Source address for connection (or dial) number `i`: 127.0.0.2 .. 127.0.0.(k+1).
pub fn src_ip(i: usize, k: usize) -> Option<IpAddr> {
    if k == 0 {
        return None;
    }
    let k = k.min(253);
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % k) as u8)))
}

pub struct GroupCfg {
    pub proto: Proto,
    pub channels: Channels,
    /// Connection indices held here.
    pub range: Range<usize>,
    pub publishers: usize,
    pub src_ips: usize,
    pub dial_concurrency: usize,
    pub read_buf: usize,
    /// Ask a v2 server for join/leave pushes.
    pub join_leave: bool,
    pub count_joins: bool,
    pub signer: Signer,
    pub user_prefix: String,
    pub setup_timeout: Duration,
    /// The transport the connections use (`--transport`; WebSocket to `target` by default).
    pub dialer: Arc<Dialer>,
}

/// Live counters of a group, read by the STAT printer.
pub struct GroupShared {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub delivered: ShardedCounter,
    pub unique: ShardedCounter,
    pub frames: ShardedCounter,
    /// WebSocket messages received (any content).
    pub msgs: ShardedCounter,
    pub joins: ShardedCounter,
    pub last_recv_ns: AtomicU64,
    /// When the last connection finished setting up (ns).
    pub last_in_ns: AtomicU64,
    pub hist: ShardedHist,
    pub first_err: Mutex<Option<String>>,
    pub cancel: CancellationToken,
    ok_flags: Vec<AtomicBool>,
    pub counts: OnceLock<Counts>,
}

impl GroupShared {
    pub fn new(n: usize) -> Self {
        Self {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            delivered: ShardedCounter::default(),
            unique: ShardedCounter::default(),
            frames: ShardedCounter::default(),
            msgs: ShardedCounter::default(),
            joins: ShardedCounter::default(),
            last_recv_ns: AtomicU64::new(0),
            last_in_ns: AtomicU64::new(0),
            hist: ShardedHist::new(),
            first_err: Mutex::new(None),
            cancel: CancellationToken::new(),
            ok_flags: (0..n).map(|_| AtomicBool::new(false)).collect(),
            counts: OnceLock::new(),
        }
    }

    pub fn error(&self, e: String) {
        let mut g = self.first_err.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publications the connections that are up should receive, given the counts.
    pub fn expected(&self, cfg: &GroupCfg, counts: &Counts) -> u64 {
        cfg.range
            .clone()
            .zip(&self.ok_flags)
            .filter(|(_, ok)| ok.load(Relaxed))
            .map(|(i, _)| {
                cfg.channels
                    .of_conn(i)
                    .iter()
                    .map(|c| counts.to_channel(*c as usize))
                    .sum::<u64>()
            })
            .sum()
    }
}

/// Dials every connection of the group (at most `dial_concurrency` setting up at once) and
/// returns when all of them have ended (after `cancel`); the sum of their tallies.
pub async fn run_group(cfg: Arc<GroupCfg>, sh: Arc<GroupShared>) -> Tally {
    let sem = Arc::new(Semaphore::new(cfg.dial_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(cfg.range.len());
    for (local, i) in cfg.range.clone().enumerate() {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => p.expect("semaphore is never closed"),
            _ = sh.cancel.cancelled() => break,
        };
        tasks.push(tokio::spawn(conn_task(
            i,
            local,
            cfg.clone(),
            sh.clone(),
            permit,
        )));
    }
    let mut total = Tally::default();
    for t in tasks {
        if let Ok(tally) = t.await {
            total.add(&tally);
        }
    }
    total
}

enum Ended {
    Cancelled,
    Dropped(String),
    SetupFailed(String),
}

async fn conn_task(
    i: usize,
    local: usize,
    cfg: Arc<GroupCfg>,
    sh: Arc<GroupShared>,
    permit: OwnedSemaphorePermit,
) -> Tally {
    let chans = cfg.channels.of_conn(i);
    let mut tracks = ConnTracks::new(cfg.publishers, chans.clone());
    let deadline = Instant::now() + cfg.setup_timeout;
    let seed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ now_ns();
    let mut frame = Vec::with_capacity(512);
    let token = cfg.signer.connection(&format!("{}{i}", cfg.user_prefix));
    proto::connect_cmd(&mut frame, cfg.proto, 1, &token);
    for (k, c) in chans.iter().enumerate() {
        frame.push(b'\n');
        let name = cfg.channels.name(*c as usize);
        proto::subscribe_cmd(
            &mut frame,
            cfg.proto,
            k as u32 + 2,
            &name,
            None,
            cfg.join_leave,
        );
    }
    let last_id = chans.len() as u32 + 1;
    let connected = tokio::select! {
        r = tokio::time::timeout_at(
            deadline,
            Conn::start(&cfg.dialer, src_ip(i, cfg.src_ips), cfg.read_buf, seed, &frame),
        ) => r,
        _ = sh.cancel.cancelled() => return tracks.tally,
    };
    let mut ws = match connected {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return setup_failed(&sh, e, tracks.tally),
        Err(_) => return setup_failed(&sh, "connect timed out".into(), tracks.tally),
    };
    drop(frame);
    let mut permit = Some(permit);
    let cancel = sh.cancel.clone();
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let ended = 'conn: loop {
        let now = now_ns();
        let (mut delivered, mut fresh, mut frames, mut joins) = (0u64, 0u64, 0u64, 0u64);
        let mut msgs = 0u64;
        let mut ping = false;
        let mut setup: Option<Result<(), String>> = None;
        let mut closed = None;
        loop {
            let m = match ws.next_msg() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => break 'conn Ended::Dropped(format!("read: {e}")),
            };
            match m {
                Msg::Data(p) => {
                    msgs += 1;
                    if permit.is_some() && setup.is_none() {
                        match proto::scan_reply(p, last_id) {
                            ReplyScan::None => {}
                            ReplyScan::Ok(_) => setup = Some(Ok(())),
                            ReplyScan::Error(l) => {
                                setup = Some(Err(String::from_utf8_lossy(l).into_owned()))
                            }
                        }
                    }
                    let n = proto::for_each_delivery(p, |d| {
                        if tracks.record(d.publisher, d.channel, d.seq) {
                            fresh += 1;
                        }
                        sh.hist.record(now.saturating_sub(d.ts_ns) / 1000);
                    });
                    if n > 0 {
                        delivered += n as u64;
                        frames += 1;
                    }
                    if cfg.count_joins {
                        joins += proto::count_joins(p, cfg.proto);
                    }
                    if cfg.proto == Proto::V2 && proto::has_v2_ping(p) {
                        ping = true;
                    }
                }
                Msg::Close(code) => {
                    closed = Some(code);
                    break;
                }
            }
        }
        if delivered > 0 {
            sh.delivered.add(delivered);
            sh.unique.add(fresh);
            sh.frames.add(frames);
            sh.last_recv_ns.fetch_max(now, Relaxed);
        }
        if joins > 0 {
            sh.joins.add(joins);
        }
        if msgs > 0 {
            sh.msgs.add(msgs);
        }
        match setup {
            Some(Ok(())) => {
                permit = None;
                sh.ok_flags[local].store(true, Relaxed);
                sh.ok.fetch_add(1, Relaxed);
                sh.last_in_ns.fetch_max(now_ns(), Relaxed);
            }
            Some(Err(e)) => break Ended::SetupFailed(format!("setup reply: {e}")),
            None => {}
        }
        if let Some(code) = closed {
            break Ended::Dropped(format!("server closed the connection with {code}"));
        }
        if let Err(e) = ws.flush_control().await {
            break Ended::Dropped(format!("pong: {e}"));
        }
        if ping {
            if let Err(e) = ws.send_text(b"{}").await {
                break Ended::Dropped(format!("v2 pong: {e}"));
            }
        }
        let r = if permit.is_some() {
            tokio::select! {
                biased;
                _ = &mut cancelled => break Ended::Cancelled,
                r = tokio::time::timeout_at(deadline, ws.fill()) => match r {
                    Ok(r) => r,
                    Err(_) => break Ended::SetupFailed("no subscribe reply in time".into()),
                },
            }
        } else {
            tokio::select! {
                biased;
                _ = &mut cancelled => break Ended::Cancelled,
                r = ws.fill() => r,
            }
        };
        if let Err(e) = r {
            break Ended::Dropped(format!("read: {e}"));
        }
    };
    match ended {
        Ended::Cancelled => {
            if permit.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.send_close(1000)).await;
            }
        }
        Ended::SetupFailed(e) => return setup_failed(&sh, e, tracks.tally),
        Ended::Dropped(e) => {
            if permit.is_some() {
                return setup_failed(&sh, e, tracks.tally);
            }
            sh.dropped.fetch_add(1, Relaxed);
            sh.error(format!("conn {i}: {e}"));
        }
    }
    tracks.tally
}

fn setup_failed(sh: &GroupShared, e: String, tally: Tally) -> Tally {
    sh.failed.fetch_add(1, Relaxed);
    sh.error(e);
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_everything_once() {
        for total in [0usize, 1, 7, 1000, 19_001] {
            for procs in 1..5 {
                let mut next = 0;
                for i in 0..procs {
                    let r = slice(total, procs, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn channel_layouts() {
        let c = Channels {
            layout: Layout::PersonalGroup { size: 10 },
            prefix: "b".into(),
            conns: 25,
        };
        assert_eq!(c.count(), 28);
        assert_eq!(c.of_conn(0), vec![0, 25]);
        assert_eq!(c.of_conn(24), vec![24, 27]);
        assert_eq!(c.name(3), "b-u3");
        assert_eq!(c.name(27), "b-g2");
        assert_eq!(c.subscribers(3), 1);
        assert_eq!(c.subscribers(25), 10);
        assert_eq!(c.subscribers(27), 5);
        let total: usize = (0..c.count()).map(|x| c.subscribers(x)).sum();
        assert_eq!(total, 50);
        let s = Channels {
            layout: Layout::Single,
            prefix: "one".into(),
            conns: 9,
        };
        assert_eq!(
            (s.count(), s.name(0), s.subscribers(0)),
            (1, "one".into(), 9)
        );
        let st = Channels {
            layout: Layout::Striped { channels: 4 },
            prefix: "s".into(),
            conns: 10,
        };
        assert_eq!(st.count(), 4);
        assert_eq!(
            (st.of_conn(1), st.of_conn(5), st.name(1)),
            (vec![1], vec![1], "s-1".into())
        );
        assert_eq!((st.subscribers(1), st.subscribers(2)), (3, 2));
        let total: usize = (0..st.count()).map(|x| st.subscribers(x)).sum();
        assert_eq!(total, 10);
        assert_eq!(src_ip(0, 0), None);
        assert_eq!(src_ip(5, 3), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))));
    }
}
