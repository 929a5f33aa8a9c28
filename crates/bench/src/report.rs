//! `rotor-bench report`: medians, spreads and ratios to the reference as Markdown tables, and
//! PNG charts (plotters, bitmap backend), from results files whose lines are
//! `server=NAME round=R tag=TAG key=value ...` (what `scripts/bench.sh` writes: its own
//! prefix followed by a rotor-bench `RESULT` line).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use plotters::prelude::*;

use crate::util::Kv;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Results files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Folder for tables.md and the PNG charts.
    #[arg(long, default_value = "bench")]
    pub out: PathBuf,
    /// Name of the reference server (ratios are other / reference).
    #[arg(long, default_value = "ref")]
    pub reference: String,
    /// TrueType font for chart text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub font: PathBuf,
}

/// Metrics shown per scenario, with whether higher is better.
fn metrics(scenario: &str, mode: &str) -> &'static [(&'static str, bool)] {
    match (scenario, mode) {
        // loadgen-max: bench.sh part redis (two nodes on one Redis).
        ("fanout" | "channels", "max") | ("loadgen-max", _) => &[
            ("pub_per_s", true),
            ("deliv_per_s", true),
            ("deliv_per_cpu_s", true),
            ("msgs_per_frame", true),
            ("p50_ms", false),
            ("p99_ms", false),
            ("lost", false),
            ("dup", false),
            ("reorder", false),
        ],
        ("fanout" | "channels", _) | ("loadgen-rate", _) => &[
            ("p50_ms", false),
            ("p99_ms", false),
            ("p999_ms", false),
            ("max_ms", false),
            ("deliv_per_s", true),
            ("max_pub_lag_ms", false),
            ("api_p99_ms", false),
            ("api_max_ms", false),
            ("lost", false),
        ],
        // scripts/latency_breakdown.py: where loadgen's rate-mode latency goes (packet capture).
        ("latency-breakdown", _) => &[
            ("pub_p50_ms", false),
            ("pub_p99_ms", false),
            ("first_p50_ms", false),
            ("last_p50_ms", false),
            ("last_p99_ms", false),
            ("server_p50_ms", false),
            ("server_p99_ms", false),
            ("wire_p50_ms", false),
            ("wire_p99_ms", false),
        ],
        ("idle", _) => &[
            ("kb_per_conn", false),
            ("rss_after_kb", false),
            ("cpu_us_per_conn_s", false),
            ("idle_cpu_pct", false),
            ("conn_per_s", true),
            ("dropped", false),
        ],
        ("churn", _) => &[
            ("churn_per_s", true),
            ("cycles_per_cpu_s", true),
            ("server_cpu_s_per_1k", false),
            ("backend_cpu_s_per_1k", false),
            ("cycle_p50_ms", false),
            ("cycle_p99_ms", false),
            ("failed", false),
        ],
        // Round trips through the server's rpc proxy (bench.sh part proxy).
        ("rpc", _) => &[
            ("rpc_per_s", true),
            ("p50_ms", false),
            ("p99_ms", false),
            ("server_cpu_s_per_1k", false),
            ("backend_cpu_s_per_1k", false),
            ("failed", false),
        ],
        // Publish over the transport, own publication back (issue 14).
        ("emulation-rtt", _) => &[
            ("p50_ms", false),
            ("p90_ms", false),
            ("p99_ms", false),
            ("p999_ms", false),
            ("max_ms", false),
            ("post_p50_ms", false),
            ("post_p99_ms", false),
            ("rtt_per_s", true),
            ("server_cpu_s", false),
            ("failed", false),
        ],
        // Publications through the gRPC API or POST /api/publish (issue 15).
        ("api-publish", _) => &[
            ("pub_per_s", true),
            ("api_p50_ms", false),
            ("api_p99_ms", false),
            ("deliv_per_s", true),
            ("deliv_per_cpu_s", true),
            ("p99_ms", false),
            ("lost", false),
            ("dropped", false),
        ],
        ("join", _) => &[
            ("all_in_s", false),
            ("joins", true),
            ("settle_s", false),
            ("server_cpu_s", false),
            ("bench_cpu_s", false),
            ("joins_per_msg", true),
            ("dropped", false),
        ],
        _ => &[],
    }
}

struct Row {
    server: String,
    kv: Kv,
}

fn load(paths: &[PathBuf]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let kv = Kv::parse(line);
            let Some(server) = kv.get("server").map(str::to_string) else {
                continue;
            };
            if kv.get("scenario").is_none() {
                continue;
            }
            rows.push(Row { server, kv });
        }
    }
    Ok(rows)
}

/// Median of the values (mean of the middle two for an even count).
fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{:.0}", x)
    } else if x.abs() >= 10.0 {
        format!("{:.1}", x)
    } else {
        format!("{:.3}", x)
    }
}

/// Series name: the server, plus the protocol generation when it is not v1.
fn series(r: &Row) -> String {
    match r.kv.get("proto") {
        Some(p) if p != "v1" => format!("{} ({p})", r.server),
        _ => r.server.clone(),
    }
}

fn group_key(kv: &Kv) -> String {
    let g = |k: &str| kv.get(k).unwrap_or("-").to_string();
    // A transport other than WebSocket (issue 14) gets tables of its own.
    let transport = match kv.get("transport") {
        Some(t) if t != "websocket" => format!(" transport={t}"),
        _ => String::new(),
    };
    let key = match g("scenario").as_str() {
        "fanout" | "channels" => format!(
            "{} {} conns={} publishers={} batch={}{}",
            g("scenario"),
            g("mode"),
            g("conns"),
            g("publishers"),
            g("batch"),
            if g("mode") == "rate" {
                format!(" rate={}/s", g("target_rate"))
            } else {
                String::new()
            }
        ),
        "api-publish" => format!(
            "api-publish {} conns={} callers={}",
            g("mode"),
            g("conns"),
            g("callers")
        ),
        "idle" | "join" => format!("{} conns={}", g("scenario"), g("conns")),
        "churn" => format!("churn workers={}", g("workers")),
        "rpc" => format!("rpc clients={} payload={}", g("clients"), g("payload")),
        // loadgen's `rate` runs (bench.sh part latency): one table per rate.
        "loadgen-rate" => format!(
            "loadgen-rate conns={} rate={}/s",
            g("conns"),
            g("target_rate")
        ),
        "emulation-rtt" => format!(
            "emulation-rtt clients={} interval={}ms",
            g("clients"),
            g("interval_ms")
        ),
        s => s.to_string(),
    };
    key + &transport
}

fn tables(rows: &[Row], reference: &str) -> String {
    // group -> series -> metric -> values
    let mut groups: BTreeMap<String, BTreeMap<String, Vec<&Kv>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for r in rows {
        let g = group_key(&r.kv);
        if !order.contains(&g) {
            order.push(g.clone());
        }
        groups
            .entry(g)
            .or_default()
            .entry(series(r))
            .or_default()
            .push(&r.kv);
    }
    let mut out = String::new();
    for g in &order {
        let by_series = &groups[g];
        let any = by_series.values().next().and_then(|v| v.first());
        let Some(any) = any else { continue };
        let ms = metrics(
            any.get("scenario").unwrap_or(""),
            any.get("mode").unwrap_or(""),
        );
        let names: Vec<&String> = by_series.keys().collect();
        out.push_str(&format!("\n### {g}\n\n| metric |"));
        for n in &names {
            out.push_str(&format!(" {n} |"));
        }
        let others: Vec<&&String> = names.iter().filter(|n| **n != reference).collect();
        let has_ref = by_series.contains_key(reference);
        if has_ref {
            for n in &others {
                out.push_str(&format!(" {n} / {reference} |"));
            }
        }
        out.push_str("\n|---|");
        for _ in 0..names.len() + if has_ref { others.len() } else { 0 } {
            out.push_str("---|");
        }
        out.push('\n');
        for (m, higher) in ms {
            let med = |n: &String| -> Option<(f64, f64, f64, usize)> {
                let mut v: Vec<f64> = by_series[n].iter().filter_map(|kv| kv.num(m)).collect();
                let k = v.len();
                let md = median(&mut v)?;
                Some((md, v[0], v[k - 1], k))
            };
            if names.iter().all(|n| med(n).is_none()) {
                continue;
            }
            out.push_str(&format!("| {m} {} |", if *higher { "↑" } else { "↓" }));
            for n in &names {
                match med(n) {
                    Some((md, lo, hi, k)) if k > 1 && lo != hi => {
                        out.push_str(&format!(" {} ({}..{}) |", fmt(md), fmt(lo), fmt(hi)))
                    }
                    Some((md, _, _, _)) => out.push_str(&format!(" {} |", fmt(md))),
                    None => out.push_str(" – |"),
                }
            }
            if has_ref {
                let rv = med(&reference.to_string()).map(|x| x.0);
                for n in &others {
                    match (med(n).map(|x| x.0), rv) {
                        (Some(a), Some(b)) if b != 0.0 => {
                            out.push_str(&format!(" {:.2}× |", a / b))
                        }
                        _ => out.push_str(" – |"),
                    }
                }
            }
            out.push('\n');
        }
        let rounds = by_series.values().map(|v| v.len()).max().unwrap_or(0);
        out.push_str(&format!(
            "\n(median of {rounds} run(s); min..max in brackets)\n"
        ));
    }
    out
}

/// Points per series name.
type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// (series, x, median y) points for rows matching `filter`; x is the connection count.
fn points(rows: &[Row], filter: impl Fn(&Kv) -> bool, y: impl Fn(&Kv) -> Option<f64>) -> Series {
    points_by(rows, filter, |kv| kv.num("conns"), y)
}

/// [`points`] with any x.
fn points_by(
    rows: &[Row],
    filter: impl Fn(&Kv) -> bool,
    x: impl Fn(&Kv) -> Option<f64>,
    y: impl Fn(&Kv) -> Option<f64>,
) -> Series {
    let mut acc: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| filter(&r.kv)) {
        let (Some(x), Some(v)) = (x(&r.kv), y(&r.kv)) else {
            continue;
        };
        acc.entry(series(r))
            .or_default()
            .entry(x as u64)
            .or_default()
            .push(v);
    }
    acc.into_iter()
        .map(|(s, m)| {
            let pts = m
                .into_iter()
                .filter_map(|(x, mut v)| median(&mut v).map(|y| (x as f64, y)))
                .collect();
            (s, pts)
        })
        .collect()
}

const PALETTE: [RGBColor; 5] = [
    RGBColor(0x9a, 0x9a, 0x9a), // reference: grey
    RGBColor(0xd9, 0x48, 0x1c), // rotor: orange-red
    RGBColor(0x1f, 0x6f, 0xb4),
    RGBColor(0x2a, 0x9d, 0x50),
    RGBColor(0x7b, 0x3f, 0xa0),
];

fn color_of(name: &str, reference: &str, idx: usize) -> RGBColor {
    if name == reference {
        PALETTE[0]
    } else {
        PALETTE[1 + idx % (PALETTE.len() - 1)]
    }
}

struct ChartSpec<'a> {
    path: &'a Path,
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    reference: &'a str,
    log_y: bool,
}

fn chart(spec: &ChartSpec, data: &Series) -> Result<bool, String> {
    let all: Vec<(f64, f64)> = data.values().flatten().copied().collect();
    if all.is_empty() {
        return Ok(false);
    }
    let e = |x: &dyn std::fmt::Display| format!("{}: {x}", spec.path.display());
    let xmin = all.iter().map(|p| p.0).fold(f64::MAX, f64::min).max(1.0);
    let xmax = all.iter().map(|p| p.0).fold(0.0, f64::max).max(xmin * 2.0);
    let ymax = all.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-6);
    let ymin_pos = all
        .iter()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::MAX, f64::min);
    let root = BitMapBackend::new(spec.path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(spec.title, ("sans-serif", 26))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(90);
    let xr = (xmin / 1.25..xmax * 1.25).log_scale();
    // Series are drawn the same way on either y axis kind.
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(spec.x_desc)
                .y_desc(spec.y_desc)
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .x_label_formatter(&|x| nice_label(*x))
                .y_label_formatter(&|y| {
                    if spec.log_y {
                        nice_label(*y)
                    } else {
                        short(*y)
                    }
                })
                .light_line_style(RGBColor(238, 238, 238))
                .draw()
                .map_err(|x| e(&x))?;
            let mut others = 0;
            for (name, pts) in data {
                let col = color_of(name, spec.reference, others);
                if name != spec.reference {
                    others += 1;
                }
                let style = ShapeStyle::from(&col).stroke_width(3);
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), style))
                    .map_err(|x| e(&x))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3))
                    });
                chart
                    .draw_series(pts.iter().map(|p| Circle::new(*p, 5, col.filled())))
                    .map_err(|x| e(&x))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 18))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|x| e(&x))?;
        }};
    }
    if spec.log_y {
        let yr = (ymin_pos / 1.5..ymax * 1.5).log_scale();
        draw!(builder.build_cartesian_2d(xr, yr).map_err(|x| e(&x))?);
    } else {
        draw!(builder
            .build_cartesian_2d(xr, 0.0..ymax * 1.15)
            .map_err(|x| e(&x))?);
    }
    root.present().map_err(|x| e(&x))?;
    Ok(true)
}

/// Labels for log axes: only 1, 2 and 5 times a power of ten (the others stay unlabelled).
fn nice_label(v: f64) -> String {
    if v <= 0.0 {
        return String::new();
    }
    let p = 10f64.powf(v.log10().floor());
    let m = v / p;
    if [1.0, 2.0, 5.0].iter().any(|n| (m - n).abs() < 0.02) {
        short(v)
    } else {
        String::new()
    }
}

fn short(y: f64) -> String {
    let a = y.abs();
    if a >= 1e6 {
        format!("{}M", trim(y / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(y / 1e3))
    } else {
        trim(y)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn run(a: &ReportArgs) -> Result<(), String> {
    let rows = load(&a.inputs)?;
    if rows.is_empty() {
        return Err("no result lines (server=... scenario=...) in the inputs".into());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let t = tables(&rows, &a.reference);
    let tpath = a.out.join("tables.md");
    std::fs::write(&tpath, &t).map_err(|e| format!("{}: {e}", tpath.display()))?;
    println!("{t}");

    let font = std::fs::read(&a.font).map_err(|e| {
        format!(
            "font {}: {e} (Debian package fonts-dejavu-core, or pass --font)",
            a.font.display()
        )
    })?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| format!("{}: not a usable font", a.font.display()))?;

    let v1_fanout = |mode: &'static str| {
        move |kv: &Kv| {
            kv.get("scenario") == Some("fanout")
                && kv.get("mode") == Some(mode)
                && kv.get("error").is_none()
        }
    };
    type Spec<'a> = (&'a str, String, &'a str, &'a str, bool, Series);
    let specs: Vec<Spec> = vec![
        (
            "fanout-deliveries.png",
            "Fan-out at saturation: deliveries/s (higher is better)".into(),
            "subscribers on one channel",
            "deliveries per second",
            false,
            points(&rows, v1_fanout("max"), |kv| kv.num("deliv_per_s")),
        ),
        (
            "fanout-p99.png",
            format!(
                "Latency p99 at a fixed {} deliveries/s (lower is better)",
                rows.iter()
                    .find(|r| v1_fanout("rate")(&r.kv))
                    .and_then(|r| Some(r.kv.num("target_rate")? * r.kv.num("conns")?))
                    .map(short)
                    .unwrap_or_else(|| "?".into())
            ),
            "subscribers on one channel",
            "p99 latency, ms (log)",
            true,
            points(&rows, v1_fanout("rate"), |kv| kv.num("p99_ms")),
        ),
        (
            "latency-rate.png",
            "loadgen, 100 subscribers: p99 latency against the rate (lower is better)".into(),
            "deliveries per second (publications/s × 100)",
            "p99 latency, ms (log)",
            true,
            points_by(
                &rows,
                |kv| {
                    kv.get("scenario") == Some("loadgen-rate")
                        && kv.num("conns") == Some(100.0)
                        && kv.get("error").is_none()
                },
                |kv| Some(kv.num("target_rate")? * kv.num("conns")?),
                |kv| kv.num("p99_ms"),
            ),
        ),
        (
            "idle-rss.png",
            "Server memory with idle connections (lower is better)".into(),
            "connections (one subscription each)",
            "server RSS, MB",
            false,
            points(
                &rows,
                |kv| kv.get("scenario") == Some("idle") && kv.get("error").is_none(),
                |kv| kv.num("rss_after_kb").map(|k| k / 1024.0),
            ),
        ),
    ];
    for (file, title, xd, yd, log_y, data) in specs {
        let path = a.out.join(file);
        let spec = ChartSpec {
            path: &path,
            title: &title,
            x_desc: xd,
            y_desc: yd,
            reference: &a.reference,
            log_y,
        };
        if chart(&spec, &data)? {
            eprintln!("wrote {}", path.display());
        } else {
            eprintln!("no data for {}", path.display());
        }
    }
    eprintln!("wrote {}", tpath.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows from results lines, as `load` makes them.
    fn rows(lines: &[&str]) -> Vec<Row> {
        lines
            .iter()
            .map(|l| {
                let kv = Kv::parse(l);
                Row {
                    server: kv.get("server").unwrap().to_string(),
                    kv,
                }
            })
            .collect()
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn table_has_medians_and_ratios() {
        let rows = rows(&[
            "server=ref round=1 scenario=fanout proto=v1 mode=max conns=1000 publishers=4 batch=1 deliv_per_s=100 lost=0",
            "server=ref round=2 scenario=fanout proto=v1 mode=max conns=1000 publishers=4 batch=1 deliv_per_s=300 lost=0",
            "server=rotor round=1 scenario=fanout proto=v1 mode=max conns=1000 publishers=4 batch=1 deliv_per_s=600 lost=0",
            "server=rotor round=2 scenario=fanout proto=v1 mode=max conns=1000 publishers=4 batch=1 deliv_per_s=800 lost=0",
        ]);
        let t = tables(&rows, "ref");
        assert!(t.contains("### fanout max conns=1000"), "{t}");
        assert!(
            t.contains("| deliv_per_s ↑ | 200.0 (100.0..300.0) | 700.0 (600.0..800.0) | 3.50× |"),
            "{t}"
        );
        let p = points(&rows, |_| true, |kv| kv.num("deliv_per_s"));
        assert_eq!(p["rotor"], vec![(1000.0, 700.0)]);
    }

    #[test]
    fn proxy_part_tables_compare_against_jwt() {
        let rows = rows(&[
            "server=rotor-jwt round=1 scenario=churn auth=jwt proto=v1 workers=32 churn_per_s=20000 server_cpu_s_per_1k=0.0400",
            "server=rotor-proxy round=1 scenario=churn auth=proxy proto=v1 workers=32 churn_per_s=12000 server_cpu_s_per_1k=0.0520 backend_cpu_s_per_1k=0.0100",
            "server=rotor-proxy round=1 scenario=rpc proto=v1 clients=100 payload=64 rpc_per_s=9000 p99_ms=20",
        ]);
        let t = tables(&rows, "rotor-jwt");
        assert!(t.contains("### churn workers=32"), "{t}");
        assert!(
            t.contains("| server_cpu_s_per_1k ↓ | 0.040 | 0.052 | 1.30× |"),
            "{t}"
        );
        assert!(
            t.contains("| backend_cpu_s_per_1k ↓ | – | 0.010 | – |"),
            "{t}"
        );
        assert!(t.contains("### rpc clients=100 payload=64"), "{t}");
        assert!(t.contains("| rpc_per_s ↑ | 9000 |"), "{t}");
    }

    #[test]
    fn loadgen_rate_runs_are_grouped_and_charted_per_rate() {
        let rows = rows(&[
            "server=ref round=1 scenario=loadgen-rate conns=100 target_rate=200 p99_ms=2",
            "server=ref round=1 scenario=loadgen-rate conns=100 target_rate=3000 p99_ms=20",
            "server=rotor round=1 scenario=loadgen-rate conns=100 target_rate=200 p99_ms=2",
            "server=rotor round=1 scenario=loadgen-rate conns=100 target_rate=3000 p99_ms=3",
        ]);
        let t = tables(&rows, "ref");
        assert!(t.contains("### loadgen-rate conns=100 rate=200/s"), "{t}");
        assert!(t.contains("### loadgen-rate conns=100 rate=3000/s"), "{t}");
        assert!(t.contains("| p99_ms ↓ | 20.0 | 3.000 | 0.15× |"), "{t}");
        let p = points_by(
            &rows,
            |_| true,
            |kv| Some(kv.num("target_rate")? * kv.num("conns")?),
            |kv| kv.num("p99_ms"),
        );
        assert_eq!(p["ref"], vec![(20_000.0, 2.0), (300_000.0, 20.0)]);
    }
}
