//! The child side of the group scenarios (fanout, channels, api-publish, nodes, idle, join):
//! a child process holds its slice of the connections, reports STAT lines while they come up
//! and receive, answers the parent's COUNTS with EXPECTED and STOP with a DONE line; the
//! parent sums the DONE lines with [`sum_done`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{first_err, Res};
use crate::child::{say, ParentLink};
use crate::group::{self, Channels, GroupCfg, GroupShared};
use crate::hist::Hist;
use crate::token::Signer;
use crate::track::Plan;
use crate::util::Kv;
use crate::ws::Target;
use crate::Common;

/// A group of `total` connections (this child's slice of them) from the common options.
pub(super) fn group_cfg(
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

/// The child side of fanout/channels/idle/join: hold a group of connections, report STAT
/// lines, answer COUNTS with EXPECTED and STOP with DONE.
pub(super) async fn child_group(cfg: GroupCfg, plan: Plan, stat_every: Duration) -> Res {
    let cfg = Arc::new(cfg);
    let sh = Arc::new(GroupShared::new(cfg.range.len()));
    let mut link = ParentLink::new();
    if !link.wait_go().await {
        return Ok(None);
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
pub(super) struct Done {
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) dropped: u64,
    pub(super) received: u64,
    pub(super) unique: u64,
    pub(super) dup: u64,
    pub(super) reorder: u64,
    pub(super) unexpected: u64,
    pub(super) expected: u64,
    pub(super) frames: u64,
    pub(super) msgs: u64,
    pub(super) joins: u64,
    pub(super) last: u64,
    pub(super) last_in: u64,
    pub(super) err: Option<String>,
    pub(super) hist: Hist,
}

pub(super) fn sum_done(lines: &[Kv]) -> Result<Done, String> {
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
        if let Some(h) = kv.get("hist") {
            d.hist.merge_encoded(h)?;
        }
    }
    d.err = first_err(lines);
    Ok(d)
}
