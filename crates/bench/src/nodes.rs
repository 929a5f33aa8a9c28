//! The `nodes` scenario: broker throughput across several server nodes.
//!
//! `--ws` takes a comma-separated list of node endpoints; child process `i` holds its
//! connections on node `i % nodes`, so with `--procs` a multiple of the node count every node
//! carries the same share of subscribers. Connections sit on `conns / --subs-per-channel`
//! channels striped over the processes (connection `i` on channel `i % channels`), so the
//! subscribers of one channel are on different nodes and every publication (through the one
//! `--api` node) has to cross the broker to reach them. Publishers, max/rate modes, loss and
//! latency accounting are the `fanout` ones. `--watch name=PID,...` reports the CPU each of
//! those processes (the other nodes, the brokers) used while publishing, to tell which process
//! bounds a figure. `--chart FILE...` draws the grouped bar chart of such results instead
//! of measuring (`nodes_chart.rs`).

use std::path::PathBuf;

use clap::Args;

use crate::group::Layout;
use crate::util::{proc_cpu_s, r3, Kv};
use crate::PubArgs;

#[path = "nodes_chart.rs"]
mod chart;

#[derive(Args, Debug, Clone)]
pub struct NodesArgs {
    #[command(flatten)]
    pub pubs: PubArgs,
    /// Subscribers per channel (each on a different node when it is at most the node count).
    #[arg(long, default_value_t = 2)]
    pub subs_per_channel: usize,
    /// Instead of measuring: draw a bar chart of these results files (run.sh lines) to
    /// `--chart-out`.
    #[arg(long, num_args = 1..)]
    pub chart: Vec<PathBuf>,
    #[command(flatten)]
    pub chart_opts: chart::ChartOpts,
}

/// The WebSocket endpoint of child process `child`: the list's element `child % len`.
pub fn ws_for(list: &str, child: usize) -> &str {
    let urls: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return list;
    }
    urls[child % urls.len()]
}

fn node_count(list: &str) -> usize {
    list.split(',')
        .filter(|u| !u.trim().is_empty())
        .count()
        .max(1)
}

/// Parses `name=PID,name=PID` (`--watch`).
pub fn parse_watch(s: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, pid) = part
            .split_once('=')
            .ok_or_else(|| format!("--watch: {part:?} is not name=PID"))?;
        let pid = pid
            .parse::<u32>()
            .map_err(|_| format!("--watch: {pid:?} is not a PID"))?;
        out.push((name.to_string(), pid));
    }
    Ok(out)
}

/// CPU seconds of each watched process now (`None` for one that is gone).
pub fn cpu_snapshot(watch: &[(String, u32)]) -> Vec<Option<f64>> {
    watch.iter().map(|(_, p)| proc_cpu_s(Some(*p))).collect()
}

/// Sets `cpu_<name>_s` and `cpu_<name>_pct` (of one core over `span_s`) for each watched
/// process, from two snapshots.
pub fn cpu_report(out: &mut Kv, watch: &[(String, u32)], before: &[Option<f64>], span_s: f64) {
    let after = cpu_snapshot(watch);
    let mut parts = Vec::new();
    for (((name, _), b), a) in watch.iter().zip(before).zip(&after) {
        if let (Some(b), Some(a)) = (b, a) {
            let used = a - b;
            out.set(&format!("cpu_{name}_s"), r3(used));
            out.set(
                &format!("cpu_{name}_pct"),
                (100.0 * used / span_s.max(1e-9)).round(),
            );
            parts.push(format!("{name} {used:.2}s"));
        }
    }
    if !parts.is_empty() {
        println!("CPU while publishing: {}", parts.join(", "));
    }
}

pub async fn nodes(a: NodesArgs, args: Vec<String>) -> Result<Option<Kv>, String> {
    if !a.chart.is_empty() {
        chart::run(&a.chart, &a.chart_opts)?;
        return Ok(None);
    }
    let n = node_count(&a.pubs.common.ws);
    let procs = a.pubs.common.procs.max(1);
    if !procs.is_multiple_of(n) {
        return Err(format!(
            "--procs {procs} is not a multiple of the {n} nodes in --ws: the nodes would carry unequal shares"
        ));
    }
    let per = a.subs_per_channel.max(1);
    let channels = (a.pubs.conns / per).max(1);
    let mut out =
        crate::scenario::pubsub_layout(a.pubs, Layout::Striped { channels }, None, args).await?;
    if let Some(kv) = out.as_mut() {
        kv.set("nodes", n);
        kv.set("subs_per_channel", per);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_robin() {
        let l = "ws://a/x, ws://b/x,ws://c/x";
        assert_eq!(ws_for(l, 0), "ws://a/x");
        assert_eq!(ws_for(l, 1), "ws://b/x");
        assert_eq!(ws_for(l, 5), "ws://c/x");
        assert_eq!(ws_for("ws://one", 3), "ws://one");
        assert_eq!(node_count(l), 3);
    }

    #[test]
    fn watch_list() {
        assert_eq!(
            parse_watch("redis=12, b=7").unwrap(),
            vec![("redis".to_string(), 12), ("b".to_string(), 7)]
        );
        assert!(parse_watch("x").is_err());
        assert!(parse_watch("x=y").is_err());
        assert!(parse_watch("").unwrap().is_empty());
    }
}
