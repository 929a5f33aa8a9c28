//! `rotor-bench soak-chart`: one PNG of time series from a CSV that `bench/soak/run.sh`
//! writes (a header line, then one row per sample; the first column is seconds since the
//! start). Each chosen column gets its own panel with a linear y axis from zero, so growth
//! over the run is visible at a glance; the warm-up end is drawn as a dashed line.

use std::path::PathBuf;

use clap::Args;
use plotters::prelude::*;

#[derive(Args, Debug, Clone)]
pub struct SoakChartArgs {
    /// The CSV file (header line; first column: seconds).
    pub csv: PathBuf,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Chart title.
    #[arg(long, default_value = "soak")]
    pub title: String,
    /// Columns to draw, one panel each (`name` or `name:scale:label`, the value divided by
    /// `scale`, e.g. `rss_kb:1024:RSS MB`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub columns: Vec<String>,
    /// End of the warm-up, seconds (a dashed line; 0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// TrueType font for chart text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub font: PathBuf,
}

struct Column {
    name: String,
    scale: f64,
    label: String,
}

fn parse_column(s: &str) -> Result<Column, String> {
    let mut parts = s.splitn(3, ':');
    let name = parts.next().unwrap_or("").to_string();
    let scale = match parts.next() {
        Some(v) => v
            .parse::<f64>()
            .map_err(|_| format!("bad scale in {s:?}"))?,
        None => 1.0,
    };
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("bad scale in {s:?}"));
    }
    let label = parts.next().map(str::to_string).unwrap_or(name.clone());
    Ok(Column { name, scale, label })
}

/// A CSV's rows of cells (`None` where a cell is not a number).
type Rows = Vec<Vec<Option<f64>>>;

/// The header and the numeric rows of a CSV.
fn read_csv(text: &str) -> Result<(Vec<String>, Rows), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or("empty CSV")?
        .split(',')
        .map(|h| h.trim().to_string())
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|c| c.trim().parse::<f64>().ok()).collect())
        .collect();
    Ok((header, rows))
}

pub fn run(a: &SoakChartArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&a.csv).map_err(|e| format!("{}: {e}", a.csv.display()))?;
    let (header, rows) = read_csv(&text)?;
    let cols: Vec<Column> = a
        .columns
        .iter()
        .map(|c| parse_column(c))
        .collect::<Result<_, _>>()?;
    let mut series = Vec::new();
    for c in &cols {
        let i = header
            .iter()
            .position(|h| *h == c.name)
            .ok_or_else(|| format!("no column {:?} in {}", c.name, a.csv.display()))?;
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.first().copied()?? / 60.0, r.get(i).copied()?? / c.scale)))
            .collect();
        series.push((c, pts));
    }
    let font = std::fs::read(&a.font).map_err(|e| format!("font {}: {e}", a.font.display()))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| format!("{}: not a usable font", a.font.display()))?;
    let xmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(0.0, f64::max)
        .max(0.1);
    let height = 60 + 230 * series.len() as u32;
    let root = BitMapBackend::new(&a.out, (1000, height)).into_drawing_area();
    let e = |x: &dyn std::fmt::Display| format!("{}: {x}", a.out.display());
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root
        .titled(&a.title, ("sans-serif", 24))
        .map_err(|x| e(&x))?;
    let panels = root.split_evenly((series.len(), 1));
    let color = RGBColor(0xd9, 0x48, 0x1c);
    for (area, (c, pts)) in panels.iter().zip(&series) {
        let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .y_desc(c.label.as_str())
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .y_label_formatter(&|y| short(*y))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied(),
                ShapeStyle::from(&color).stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
        if a.warmup > 0.0 {
            let w = a.warmup / 60.0;
            chart
                .draw_series(DashedLineSeries::new(
                    [(w, 0.0), (w, ymax)],
                    6,
                    4,
                    ShapeStyle::from(&RGBColor(0x60, 0x60, 0x60)).stroke_width(1),
                ))
                .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

/// A compact axis label: 1.5k, 12M, 0.25.
fn short(y: f64) -> String {
    let a = y.abs();
    if a >= 1e9 {
        format!("{:.3}G", y / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", y / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", y / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_csv() {
        let c = parse_column("rss_kb:1024:RSS MB").unwrap();
        assert_eq!(
            (c.name.as_str(), c.scale, c.label.as_str()),
            ("rss_kb", 1024.0, "RSS MB")
        );
        assert_eq!(parse_column("fds").unwrap().scale, 1.0);
        assert!(parse_column("x:0").is_err());
        let (h, rows) = read_csv("t_s,a,b\n0,1,x\n10,2,3\n").unwrap();
        assert_eq!(h, vec!["t_s", "a", "b"]);
        assert_eq!(rows[0], vec![Some(0.0), Some(1.0), None]);
        assert_eq!(rows[1][2], Some(3.0));
        assert_eq!(short(15_000.0), "15.0k");
    }
}
