//! What the parent shows while a scenario runs: a status line a second on stderr
//! ([`Progress`]), the children's live STAT sums it reads ([`View`], kept fresh by
//! [`with_view`]), and the wait until every connection of a group is set up.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::child::Children;

/// Prints one status line a second to stderr (rewritten in place on a terminal).
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(mut text: impl FnMut() -> String + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let tty = std::io::stderr().is_terminal();
        let t0 = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if s.load(Relaxed) {
                    break;
                }
                let line = format!("[{:6.1}s] {}", t0.elapsed().as_secs_f64(), text());
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Self { stop, task }
    }

    pub(crate) fn end(self) {
        self.stop.store(true, Relaxed);
        self.task.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
}

/// Live STAT sums shared with the progress task.
#[derive(Clone)]
pub(crate) struct View(Arc<Mutex<Vec<(String, u64)>>>);

impl View {
    pub(crate) fn new() -> Self {
        View(Arc::new(Mutex::new(Vec::new())))
    }
    pub(crate) fn update(&self, kids: &Children, keys: &[&str]) {
        let v = keys.iter().map(|k| (k.to_string(), kids.sum(k))).collect();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
    pub(crate) fn get(&self, k: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(key, _)| key == k)
            .map(|x| x.1)
            .unwrap_or(0)
    }
}

/// Keeps a [`View`] fresh while `fut` runs (the children's counters change on their own).
pub(crate) async fn with_view<T>(
    kids: &mut Children,
    view: &View,
    keys: &[&str],
    fut: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            r = &mut fut => { view.update(kids, keys); return r; }
            _ = tick.tick() => view.update(kids, keys),
        }
    }
}

/// Waits until `ok + failed` reaches `n` (reading STAT), with a progress line.
pub(super) async fn wait_connected(
    kids: &mut Children,
    n: u64,
    limit: Duration,
) -> Result<f64, String> {
    let view = View::new();
    let v = view.clone();
    let prog = Progress::start(move || {
        format!(
            "connecting: ok {} failed {} of {n}",
            v.get("ok"),
            v.get("failed")
        )
    });
    let t0 = Instant::now();
    let r = with_view(
        kids,
        &view,
        &["ok", "failed"],
        tokio::time::timeout(limit, async {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                // Read through `view` is 200 ms stale; poll the children directly instead.
                if view.get("ok") + view.get("failed") >= n {
                    break;
                }
            }
        }),
    )
    .await;
    prog.end();
    r.map_err(|_| format!("connections not set up within {limit:?}"))?;
    Ok(t0.elapsed().as_secs_f64())
}
