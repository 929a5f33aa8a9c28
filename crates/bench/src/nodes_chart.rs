//! `rotor-bench nodes --chart`: a grouped bar chart (PNG) of `nodes` results per broker
//! topology: one bar per server and node count, the median over rounds with a whisker from
//! the slowest to the fastest round. Input lines are `server=S ... topo=T ... nodes=N key=v`
//! (what `bench/brokers/run.sh` writes); lines with an `error` are skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use plotters::prelude::*;

use crate::util::Kv;

#[derive(Args, Debug, Clone)]
pub struct ChartOpts {
    /// PNG to write (`--chart`).
    #[arg(long, default_value = "bench/brokers/throughput.png")]
    pub chart_out: PathBuf,
    /// Topologies in chart order (others are left out).
    #[arg(long, default_value = "redis1,shard3,cluster,cluster-sharded,nats")]
    pub chart_topos: String,
    /// TrueType font for chart text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub chart_font: PathBuf,
}

/// (median, min, max) of the values.
pub fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some((med, s[0], s[n - 1]))
}

/// Values of `key` per (topology, "server Nn").
fn collect(text: &str, key: &str) -> BTreeMap<(String, String), Vec<f64>> {
    let mut m: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let kv = Kv::parse(line.trim());
        if kv.get("error").is_some() {
            continue;
        }
        let (Some(s), Some(t), Some(n), Some(v)) = (
            kv.get("server"),
            kv.get("topo"),
            kv.get("nodes"),
            kv.num(key),
        ) else {
            continue;
        };
        m.entry((t.to_string(), format!("{s} {n}n")))
            .or_default()
            .push(v);
    }
    m
}

const COLORS: [RGBColor; 4] = [
    RGBColor(150, 150, 150),
    RGBColor(31, 119, 180),
    RGBColor(90, 90, 90),
    RGBColor(214, 39, 40),
];

pub fn run(inputs: &[PathBuf], a: &ChartOpts) -> Result<(), String> {
    let (font_path, out) = (&a.chart_font, &a.chart_out);
    let font =
        std::fs::read(font_path).map_err(|e| format!("font {}: {e}", font_path.display()))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| format!("{}: not a usable font", font_path.display()))?;
    let mut text = String::new();
    for p in inputs {
        text += &std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        text.push('\n');
    }
    let topos: Vec<&str> = a.chart_topos.split(',').filter(|t| !t.is_empty()).collect();
    let series = ["ref 2n", "rotor 2n", "ref 3n", "rotor 3n"];
    let e = |x: &dyn std::fmt::Display| format!("{}: {x}", out.display());
    let root = BitMapBackend::new(out, (1100, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let panels = root.split_evenly((2, 1));
    for (panel, (key, title)) in panels.iter().zip([
        (
            "pub_per_s",
            "Publications/s through the broker (median, whisker min..max)",
        ),
        ("deliv_per_s", "Deliveries/s to subscribers on all nodes"),
    ]) {
        let data = collect(&text, key);
        let ymax = data
            .values()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..topos.len() as f64, 0.0..ymax)
            .map_err(|x| e(&x))?;
        let names = topos.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(topos.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let f = x.fract();
                if (f - 0.5).abs() < 0.01 {
                    names
                        .get(*x as usize)
                        .map_or(String::new(), |s| s.to_string())
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
            .label_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|x| e(&x))?;
        let w = 0.8 / series.len() as f64;
        for (si, name) in series.iter().enumerate() {
            let col = COLORS[si];
            let mut bars = Vec::new();
            let mut whiskers = Vec::new();
            for (ti, t) in topos.iter().enumerate() {
                let Some((med, lo, hi)) = data
                    .get(&(t.to_string(), name.to_string()))
                    .and_then(|v| spread(v))
                else {
                    continue;
                };
                let x0 = ti as f64 + 0.1 + si as f64 * w;
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + w * 0.9, med)],
                    col.filled(),
                ));
                let xm = x0 + w * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, lo), (xm, hi)],
                    BLACK.stroke_width(2),
                ));
            }
            chart
                .draw_series(bars)
                .map_err(|x| e(&x))?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], col.filled()));
            chart.draw_series(whiskers).map_err(|x| e(&x))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_grouping() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(&[]), None);
        let t = "# header\nserver=rotor topo=redis1 nodes=2 pub_per_s=10\n\
                 server=rotor topo=redis1 nodes=2 pub_per_s=30\n\
                 server=rotor topo=redis1 nodes=2 error=x pub_per_s=99\n\
                 server=ref topo=redis1 nodes=3 pub_per_s=5\n";
        let m = collect(t, "pub_per_s");
        assert_eq!(m[&("redis1".into(), "rotor 2n".into())], vec![10.0, 30.0]);
        assert_eq!(m[&("redis1".into(), "ref 3n".into())], vec![5.0]);
        assert_eq!(m.len(), 2);
    }
}
