//! The Prometheus text exposition format: a writer of metric families (HELP, TYPE, samples
//! with escaped labels, summaries from bucket counts) and its number format.

use std::fmt::Write as _;

use rotor_core::metrics::HistogramSnapshot;

use super::QUANTILES;

/// Prometheus number format: `+Inf`, `-Inf`, `NaN`, else the shortest round-trip decimal.
pub(super) fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The text exposition being written.
#[derive(Default)]
pub(super) struct Writer {
    pub(super) out: String,
}

impl Writer {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for ch in val.chars() {
                    match ch {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&fmt_f64(v));
        self.out.push('\n');
    }

    pub(super) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], s: &HistogramSnapshot) {
        self.histogram_with(name, labels, s, None);
    }

    /// A histogram; with `only`, just those bucket bounds (each one of the snapshot's).
    pub(super) fn histogram_with(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        s: &HistogramSnapshot,
        only: Option<&[f64]>,
    ) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, n) in s.counts.iter().enumerate() {
            cumulative += n;
            let bound = s.bounds.get(i);
            if let (Some(b), Some(only)) = (bound, only) {
                if !only.contains(b) {
                    continue;
                }
            }
            let le = bound.map_or("+Inf".to_string(), |b| fmt_f64(*b));
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, s.sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    /// A summary: quantiles over the window (bucket counts minus `base`), sum and count since
    /// start (as Prometheus summaries report them).
    pub(super) fn summary(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        s: &HistogramSnapshot,
        base: Option<&[u64]>,
    ) {
        let window: Vec<u64> = match base {
            Some(b) if b.len() == s.counts.len() => s
                .counts
                .iter()
                .zip(b)
                .map(|(c, b)| c.saturating_sub(*b))
                .collect(),
            _ => s.counts.clone(),
        };
        for q in QUANTILES {
            let qs = fmt_f64(q);
            let mut l = labels.to_vec();
            l.push(("quantile", &qs));
            self.sample(name, &l, quantile(s.bounds, &window, q));
        }
        self.sample(&format!("{name}_sum"), labels, s.sum);
        self.sample(&format!("{name}_count"), labels, s.count() as f64);
    }
}

/// The `q` quantile estimated from per-bucket counts (linear within a bucket); NaN when empty,
/// as Go reports an empty summary.
pub(super) fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, n) in counts.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let Some(upper) = bounds.get(i) else {
                return bounds.last().copied().unwrap_or(0.0);
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let within = ((rank - seen as f64) / *n as f64).clamp(0.0, 1.0);
            return lower + (upper - lower) * within;
        }
        seen += n;
    }
    bounds.last().copied().unwrap_or(0.0)
}
