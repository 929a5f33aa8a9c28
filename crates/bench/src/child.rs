//! Child processes: the parent runs the same binary with the same arguments plus
//! `--child-index I`; a child holds its slice of the connections and talks to the parent in
//! lines: the parent writes `GO`, `COUNTS ...`, `STOP` to its stdin; the child writes
//! `STAT k=v ...` (live counters, often), `READY`, `EXPECTED`, `DONE k=v ...` to its stdout.
//! Other child output is passed through to stderr.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, Notify};

use crate::util::Kv;

/// Counters a child reports in `STAT` lines (latest value per child).
pub const STAT_KEYS: &[&str] = &[
    "ok", "failed", "dropped", "d", "u", "f", "j", "last", "in", "ops", "cfail",
];

/// The parent's view of its children.
pub struct Children {
    procs: Vec<Child>,
    stdins: Vec<ChildStdin>,
    /// `stats[child][key]`, in `STAT_KEYS` order.
    stats: Arc<Vec<Vec<AtomicU64>>>,
    /// Woken on every STAT line.
    pub notify: Arc<Notify>,
    events: mpsc::UnboundedReceiver<(usize, String, Kv)>,
    pending: Vec<(usize, String, Kv)>,
}

impl Children {
    /// Starts `n` children: this executable with `args` and `--child-index i`.
    pub fn spawn(n: usize, args: &[String]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let stats: Arc<Vec<Vec<AtomicU64>>> = Arc::new(
            (0..n)
                .map(|_| STAT_KEYS.iter().map(|_| AtomicU64::new(0)).collect())
                .collect(),
        );
        let notify = Arc::new(Notify::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut procs = Vec::new();
        let mut stdins = Vec::new();
        for i in 0..n {
            let mut child = Command::new(&exe)
                .args(args)
                .arg("--child-index")
                .arg(i.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("spawn child {i}: {e}"))?;
            stdins.push(child.stdin.take().expect("piped"));
            let out = child.stdout.take().expect("piped");
            let (stats, notify, tx) = (stats.clone(), notify.clone(), tx.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if let Some(rest) = l.strip_prefix("STAT ") {
                        for w in rest.split(' ') {
                            if let Some((k, v)) = w.split_once('=') {
                                if let (Some(idx), Ok(v)) =
                                    (STAT_KEYS.iter().position(|x| *x == k), v.parse())
                                {
                                    stats[i][idx].store(v, Relaxed);
                                }
                            }
                        }
                        notify.notify_waiters();
                    } else if let Some((tag, rest)) = l
                        .split_once(' ')
                        .filter(|(t, _)| matches!(*t, "READY" | "EXPECTED" | "DONE"))
                    {
                        let _ = tx.send((i, tag.to_string(), Kv::parse(rest)));
                    } else if matches!(l.as_str(), "READY" | "EXPECTED" | "DONE") {
                        let _ = tx.send((i, l.clone(), Kv::default()));
                    } else {
                        eprintln!("[child {i}] {l}");
                    }
                }
                let _ = tx.send((i, "EXIT".into(), Kv::default()));
                notify.notify_waiters();
            });
            procs.push(child);
        }
        Ok(Self {
            procs,
            stdins,
            stats,
            notify,
            events: rx,
            pending: Vec::new(),
        })
    }

    /// Sum of a STAT counter over children.
    pub fn sum(&self, key: &str) -> u64 {
        let idx = STAT_KEYS.iter().position(|k| *k == key).expect("known key");
        self.stats.iter().map(|c| c[idx].load(Relaxed)).sum()
    }

    pub async fn send_all(&mut self, line: &str) -> Result<(), String> {
        for (i, s) in self.stdins.iter_mut().enumerate() {
            s.write_all(format!("{line}\n").as_bytes())
                .await
                .map_err(|e| format!("child {i} stdin: {e}"))?;
            s.flush().await.map_err(|e| format!("child {i}: {e}"))?;
        }
        Ok(())
    }

    /// Waits for one `tag` line from every child (in child order); an `EXIT` first or the
    /// timeout is an error.
    pub async fn collect(&mut self, tag: &str, timeout: Duration) -> Result<Vec<Kv>, String> {
        let mut got: HashMap<usize, Kv> = HashMap::new();
        let mut keep = Vec::new();
        for (i, t, kv) in self.pending.drain(..) {
            if t == tag && !got.contains_key(&i) {
                got.insert(i, kv);
            } else {
                keep.push((i, t, kv));
            }
        }
        self.pending = keep;
        let deadline = tokio::time::Instant::now() + timeout;
        while got.len() < self.procs.len() {
            let ev = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match ev {
                Err(_) => {
                    return Err(format!(
                        "{} of {} children sent {tag} in {timeout:?}",
                        got.len(),
                        self.procs.len()
                    ))
                }
                Ok(None) => return Err("children gone".into()),
                Ok(Some((i, t, kv))) => {
                    if t == tag {
                        got.insert(i, kv);
                    } else if t == "EXIT" {
                        if got.contains_key(&i) {
                            continue;
                        }
                        let status = match self.procs[i].try_wait() {
                            Ok(Some(s)) => s.to_string(),
                            _ => "still running, stdout closed".into(),
                        };
                        return Err(format!("child {i} exited before {tag} ({status})"));
                    } else {
                        self.pending.push((i, t, kv));
                    }
                }
            }
        }
        let mut v: Vec<(usize, Kv)> = got.into_iter().collect();
        v.sort_by_key(|(i, _)| *i);
        Ok(v.into_iter().map(|(_, kv)| kv).collect())
    }

    /// CPU seconds used by the children so far.
    pub fn cpu_s(&self) -> f64 {
        self.procs
            .iter()
            .filter_map(|c| c.id())
            .filter_map(|p| crate::util::proc_cpu_s(Some(p)))
            .sum()
    }

    /// Closes stdin and waits (bounded) for the children to exit; kills stragglers.
    pub async fn finish(mut self) {
        self.stdins.clear();
        for c in &mut self.procs {
            if tokio::time::timeout(Duration::from_secs(30), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }
}

/// Child side: reads the parent's lines from stdin.
pub struct ParentLink {
    lines: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
}

impl Default for ParentLink {
    fn default() -> Self {
        Self::new()
    }
}

impl ParentLink {
    pub fn new() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// The next line from the parent; `None` when the parent closed stdin (or died).
    pub async fn next(&mut self) -> Option<String> {
        self.lines.next_line().await.ok().flatten()
    }

    /// Waits for the parent's `GO` (other lines are skipped); false when stdin closed first.
    pub async fn wait_go(&mut self) -> bool {
        while let Some(l) = self.next().await {
            if l == "GO" {
                return true;
            }
        }
        false
    }
}

/// Writes one line to the parent (stdout is line-buffered).
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
