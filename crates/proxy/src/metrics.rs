//! Proxy call metrics, named as Centrifugo 6 names them (namespace `centrifugo`, subsystem
//! `proxy`, labels `protocol`, `type`, `name`):
//!
//! * `centrifugo_proxy_duration_seconds` — summary (0.5, 0.99, 0.999) of call durations;
//! * `centrifugo_proxy_duration_seconds_histogram` — the same as a histogram (Prometheus'
//!   default buckets);
//! * `centrifugo_proxy_errors` — calls that failed (network, timeout, status, bad body; not the
//!   backend's own `error`/`disconnect` answers);
//! * `centrifugo_proxy_inflight_requests` — calls under way.
//!
//! One [`Series`] per (protocol, type, name), held by the proxy object that records into it, so
//! a call touches only its own sharded, lock-free counters. The registry (locked only when a
//! series is first made and at scrape time) keeps every series for [`snapshot`], which the
//! server's `/metrics` renders. Building the same proxies again (a reload, another backend in
//! a test) finds the existing series, as Prometheus' `WithLabelValues` does.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rotor_core::metrics::{Counter, Gauge, Histogram, HistogramSnapshot, API_BUCKETS};

use crate::ProxyKind;

/// Summary quantiles cover about the last ten minutes, as Go's default summary does.
const SUMMARY_WINDOW: Duration = Duration::from_secs(600);
/// Window snapshots are kept at most this often.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(15);

/// The counters of one (protocol, type, name).
pub(crate) struct Series {
    protocol: &'static str,
    kind: ProxyKind,
    name: String,
    /// Finer buckets than the exported histogram's (which they contain), for the summary.
    duration: Histogram,
    errors: Counter,
    inflight: Gauge,
    window: Mutex<VecDeque<(Instant, Vec<u64>)>>,
}

/// A call under way: counted in `inflight_requests` until dropped.
pub(crate) struct Inflight<'a>(&'a Gauge);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

impl Series {
    /// Marks a call as started.
    pub(crate) fn start(&self) -> Inflight<'_> {
        self.inflight.add(1);
        Inflight(&self.inflight)
    }

    /// Records a finished call.
    pub(crate) fn observe(&self, took: Duration, ok: bool) {
        self.duration.observe(took);
        if !ok {
            self.errors.inc();
        }
    }
}

static REGISTRY: Mutex<Vec<Arc<Series>>> = Mutex::new(Vec::new());

fn series(protocol: &'static str, kind: ProxyKind, name: &str) -> Arc<Series> {
    let mut all = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = all
        .iter()
        .find(|s| s.protocol == protocol && s.kind == kind && s.name == name)
    {
        return s.clone();
    }
    let s = Arc::new(Series {
        protocol,
        kind,
        name: name.to_string(),
        duration: Histogram::new(API_BUCKETS),
        errors: Counter::new(),
        inflight: Gauge::new(),
        window: Mutex::new(VecDeque::new()),
    });
    all.push(s.clone());
    s
}

/// The series of one proxy object, one per event type, made on first use (or when declared).
pub(crate) struct ProxyMetrics {
    protocol: &'static str,
    name: String,
    kinds: [OnceLock<Arc<Series>>; 6],
}

impl ProxyMetrics {
    /// `protocol`: `http` or `grpc`.
    pub(crate) fn new(name: &str, protocol: &'static str) -> Self {
        Self {
            protocol,
            name: name.to_string(),
            kinds: Default::default(),
        }
    }

    /// The series of calls of `kind` through this proxy.
    pub(crate) fn get(&self, kind: ProxyKind) -> &Series {
        self.kinds[kind as usize].get_or_init(|| series(self.protocol, kind, &self.name))
    }

    /// Makes the series of `kind` visible before any call (as Centrifugo registers the label
    /// sets of its configured proxies at start).
    pub(crate) fn declare(&self, kind: ProxyKind) {
        self.get(kind);
    }
}

/// A read of one series for the exposition.
#[derive(Debug, Clone)]
pub struct SeriesSnapshot {
    pub protocol: &'static str,
    /// The `type` label: `connect`, `refresh`, `subscribe`, `publish`, `sub_refresh`, `rpc`.
    pub kind: &'static str,
    pub name: String,
    pub duration: HistogramSnapshot,
    /// The bucket counts at the start of the summary window (`None`: since start).
    pub window_base: Option<Vec<u64>>,
    pub errors: u64,
    pub inflight: i64,
}

impl SeriesSnapshot {
    /// The labels, in Centrifugo's order.
    pub fn labels(&self) -> [(&'static str, &str); 3] {
        [
            ("protocol", self.protocol),
            ("type", self.kind),
            ("name", &self.name),
        ]
    }
}

/// Every series, for `/metrics` (sorted by type, name, protocol). Each call moves the summary
/// window forward.
pub fn snapshot() -> Vec<SeriesSnapshot> {
    let all: Vec<Arc<Series>> = REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let now = Instant::now();
    let mut out: Vec<SeriesSnapshot> = all
        .iter()
        .map(|s| {
            let duration = s.duration.snapshot();
            let mut w = s.window.lock().unwrap_or_else(|e| e.into_inner());
            while w
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > SUMMARY_WINDOW)
            {
                w.pop_front();
            }
            let window_base = w.front().map(|(_, c)| c.clone());
            if w.back()
                .is_none_or(|(t, _)| now.duration_since(*t) >= SNAPSHOT_EVERY)
            {
                w.push_back((now, duration.counts.clone()));
            }
            SeriesSnapshot {
                protocol: s.protocol,
                kind: s.kind.as_str(),
                name: s.name.clone(),
                duration,
                window_base,
                errors: s.errors.get(),
                inflight: s.inflight.get(),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.name, a.protocol).cmp(&(b.kind, &b.name, b.protocol)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(kind: &str, name: &str) -> Option<SeriesSnapshot> {
        snapshot()
            .into_iter()
            .find(|s| s.kind == kind && s.name == name)
    }

    #[test]
    fn calls_are_timed_counted_and_shared_by_label_set() {
        let m = ProxyMetrics::new("metrics-unit", "http");
        assert!(find("rpc", "metrics-unit").is_none());
        m.declare(ProxyKind::Rpc);
        let s = find("rpc", "metrics-unit").expect("declared");
        assert_eq!((s.duration.count(), s.errors, s.inflight), (0, 0, 0));
        {
            let series = m.get(ProxyKind::Rpc);
            let _call = series.start();
            assert_eq!(find("rpc", "metrics-unit").map(|s| s.inflight), Some(1));
            series.observe(Duration::from_millis(3), true);
        }
        // Another proxy object with the same labels records into the same series.
        let again = ProxyMetrics::new("metrics-unit", "http");
        again
            .get(ProxyKind::Rpc)
            .observe(Duration::from_millis(20), false);
        let s = find("rpc", "metrics-unit").expect("series");
        assert_eq!(s.duration.count(), 2);
        assert_eq!(s.errors, 1);
        assert_eq!(s.inflight, 0);
        assert!((s.duration.sum - 0.023).abs() < 1e-9);
        assert_eq!(
            s.labels(),
            [
                ("protocol", "http"),
                ("type", "rpc"),
                ("name", "metrics-unit")
            ]
        );
        assert!(find("connect", "metrics-unit").is_none());
    }
}
