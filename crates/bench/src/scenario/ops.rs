//! The closed-loop scenarios (churn, proxy-churn, rpc): on the child side the workers'
//! shared counts, latencies and first error ([`OpsShared`]), reported as STAT and DONE lines;
//! on the parent side the timed run over the children and the sums of their DONE lines
//! ([`closed_loop`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{first_err, server_cpu, si, with_view, Progress, Res, View};
use crate::child::{say, Children, ParentLink};
use crate::hist::{Hist, ShardedHist};
use crate::util::{proc_cpu_s, r3, Interference, Kv};
use crate::Common;

/// What the workers of a closed-loop child (churn, rpc) share: counts, latencies, the first
/// error; [`OpsShared::finish`] reports them to the parent.
pub(crate) struct OpsShared {
    pub(crate) ops: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) hist: ShardedHist,
    pub(crate) err: Mutex<Option<String>>,
}

impl OpsShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            ops: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hist: ShardedHist::new(),
            err: Mutex::new(None),
        })
    }

    fn stat_line(&self) -> String {
        format!(
            "STAT ops={} cfail={}",
            self.ops.load(Relaxed),
            self.failed.load(Relaxed)
        )
    }

    /// Reports progress every 200 ms while `tasks` run, then the DONE line with the totals,
    /// and waits for the parent to close stdin so the DONE line is read before the child exits.
    pub(crate) async fn finish(
        self: &Arc<Self>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        start: Instant,
        link: &mut ParentLink,
    ) -> Res {
        let stat = {
            let sh = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    say(&sh.stat_line());
                }
            })
        };
        for t in tasks {
            let _ = t.await;
        }
        let secs = start.elapsed().as_secs_f64();
        stat.abort();
        let mut kv = Kv::default();
        kv.set("ops", self.ops.load(Relaxed));
        kv.set("failed", self.failed.load(Relaxed));
        kv.set("secs", r3(secs));
        kv.set(
            "err",
            self.err
                .lock()
                .unwrap_or_else(|x| x.into_inner())
                .clone()
                .unwrap_or_default(),
        );
        kv.set("hist", self.hist.snapshot().encode());
        say(&self.stat_line());
        say(&kv.line("DONE"));
        while link.next().await.is_some() {}
        Ok(None)
    }
}

/// What the parent of a closed-loop run measured.
pub(crate) struct OpsRun {
    /// Operations (cycles, round trips) that succeeded.
    pub(crate) ops: u64,
    pub(crate) failed: u64,
    /// The sum of the children's rates (each child's operations over its own run time).
    pub(crate) rate: f64,
    /// Time per operation (µs).
    pub(crate) hist: Hist,
    pub(crate) err: Option<String>,
    /// Seconds from GO until the DONE lines were in.
    pub(crate) elapsed: f64,
    /// The server's CPU seconds over the run (when its PID is known).
    pub(crate) server_cpu_s: Option<f64>,
    pub(crate) bench_cpu_s: f64,
}

/// The parent side of a closed-loop run: reads the CPU counters, sends GO, shows
/// `<what> N (rate/s) failed F` while the children run for `duration`, collects their DONE
/// lines, adds the interference figures to `out`, and sums the lines.
pub(crate) async fn closed_loop(
    mut kids: Children,
    c: &Common,
    duration: Duration,
    what: &'static str,
    out: &mut Kv,
) -> Result<OpsRun, String> {
    let cpu0 = server_cpu(c);
    let bench0 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    let intf = Interference::start(c.server_pid, bench0);
    let start = Instant::now();
    kids.send_all("GO").await?;
    let view = View::new();
    let prog = {
        let v = view.clone();
        let mut last = (Instant::now(), 0u64);
        Progress::start(move || {
            let ops = v.get("ops");
            let dt = last.0.elapsed().as_secs_f64().max(1e-3);
            let s = format!(
                "{what} {ops} ({}/s) failed {}",
                si((ops - last.1) as f64 / dt),
                v.get("cfail")
            );
            last = (Instant::now(), ops);
            s
        })
    };
    with_view(
        &mut kids,
        &view,
        &["ops", "cfail"],
        tokio::time::sleep(duration),
    )
    .await;
    let lines = kids.collect("DONE", Duration::from_secs(120)).await;
    prog.end();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = server_cpu(c);
    let bench1 = proc_cpu_s(None).unwrap_or(0.0) + kids.cpu_s();
    intf.report(out, bench1);
    kids.finish().await;
    let lines = lines?;
    let mut hist = Hist::new();
    let (mut ops, mut failed, mut rate) = (0u64, 0u64, 0f64);
    for kv in &lines {
        let o = kv.num("ops").unwrap_or(0.0);
        ops += o as u64;
        failed += kv.num("failed").unwrap_or(0.0) as u64;
        if let Some(s) = kv.num("secs").filter(|s| *s > 0.0) {
            rate += o / s;
        }
        if let Some(h) = kv.get("hist") {
            hist.merge_encoded(h)?;
        }
    }
    Ok(OpsRun {
        ops,
        failed,
        rate,
        hist,
        err: first_err(&lines),
        elapsed,
        server_cpu_s: cpu0.zip(cpu1).map(|(c0, c1)| c1 - c0),
        bench_cpu_s: bench1 - bench0,
    })
}
