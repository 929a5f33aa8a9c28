//! Clock, /proc readings, durations and the `key=value` result line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock nanoseconds since the Unix epoch (the same clock in every bench process).
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Parses `10s`, `500ms`, `2m`, `1.5s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else {
        (s, 1.0)
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?} (e.g. 10s, 500ms, 2m)"))?;
    if !(x >= 0.0 && x.is_finite()) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(x * mult))
}

/// VmRSS and VmHWM of a process in kB.
pub fn proc_mem_kb(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// utime + stime of a process in seconds (`None` = self).
pub fn proc_cpu_s(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clock_ticks())
}

fn clock_ticks() -> f64 {
    100.0 // USER_HZ on Linux
}

/// Whole-machine busy and steal CPU seconds from /proc/stat.
pub fn host_cpu_s() -> Option<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    if v.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Some((busy / clock_ticks(), v[7] / clock_ticks()))
}

/// Ordered `key=value` pairs printed as one `RESULT ...` line (no spaces inside values).
#[derive(Default, Debug, Clone)]
pub struct Kv {
    items: Vec<(String, String)>,
}

impl Kv {
    pub fn set(&mut self, k: &str, v: impl KvValue) {
        let mut s = v.render().replace(char::is_whitespace, "_");
        if s.is_empty() {
            s = "-".into();
        }
        match self.items.iter_mut().find(|(key, _)| key == k) {
            Some(item) => item.1 = s,
            None => self.items.push((k.to_string(), s)),
        }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn line(&self, prefix: &str) -> String {
        let mut s = prefix.to_string();
        for (k, v) in &self.items {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    /// Parses `key=value` words (other words are ignored).
    pub fn parse(line: &str) -> Kv {
        let mut kv = Kv::default();
        for w in line.split_whitespace() {
            if let Some((k, v)) = w.split_once('=') {
                kv.items.push((k.to_string(), v.to_string()));
            }
        }
        kv
    }

    pub fn num(&self, k: &str) -> Option<f64> {
        self.get(k)?.parse().ok()
    }
}

pub trait KvValue {
    fn render(&self) -> String;
}

impl KvValue for f64 {
    fn render(&self) -> String {
        if !self.is_finite() {
            "-".into()
        } else if *self == self.trunc() && self.abs() < 1e15 {
            format!("{}", *self as i64)
        } else {
            format!("{self:.3}")
        }
    }
}

macro_rules! kv_display {
    ($($t:ty),*) => {$(
        impl KvValue for $t {
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
kv_display!(u64, u32, usize, i64, bool, &str, String);

impl<T: KvValue> KvValue for Option<T> {
    fn render(&self) -> String {
        match self {
            Some(v) => v.render(),
            None => "-".into(),
        }
    }
}

/// Rounds to 3 decimals (for ratios and milliseconds).
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU used by other processes than the server and the bench during a window (interference).
pub struct Interference {
    busy0: Option<(f64, f64)>,
    server0: Option<f64>,
    bench0: f64,
    server: Option<u32>,
}

impl Interference {
    pub fn start(server: Option<u32>, bench_cpu: f64) -> Self {
        Self {
            busy0: host_cpu_s(),
            server0: server.and_then(|p| proc_cpu_s(Some(p))),
            bench0: bench_cpu,
            server,
        }
    }

    /// Sets host_busy_s, other_cpu_s (busy − server − bench), steal_s.
    pub fn report(&self, out: &mut Kv, bench_cpu: f64) {
        let (Some((b0, st0)), Some((b1, st1))) = (self.busy0, host_cpu_s()) else {
            return;
        };
        let mut other = (b1 - b0) - (bench_cpu - self.bench0);
        if let (Some(s0), Some(s1)) = (self.server0, self.server.and_then(|p| proc_cpu_s(Some(p))))
        {
            other -= s1 - s0;
        }
        out.set("host_busy_s", r3(b1 - b0));
        out.set("other_cpu_s", r3(other.max(0.0)));
        out.set("steal_s", r3(st1 - st0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn kv_line() {
        let mut kv = Kv::default();
        kv.set("a", 1.0f64);
        kv.set("b", 2.5f64);
        kv.set("c", "x y");
        kv.set("d", "");
        kv.set("a", 3u64);
        assert_eq!(kv.line("RESULT"), "RESULT a=3 b=2.500 c=x_y d=-");
        let p = Kv::parse("RESULT a=3 b=2.500 junk");
        assert_eq!(p.num("b"), Some(2.5));
        assert_eq!(p.get("a"), Some("3"));
    }

    #[test]
    fn proc_readings_of_self() {
        let pid = std::process::id();
        let (rss, hwm) = proc_mem_kb(pid).unwrap();
        assert!(rss > 0 && hwm >= rss);
        assert!(proc_cpu_s(None).unwrap() >= 0.0);
        assert!(proc_cpu_s(Some(pid)).is_some());
        assert!(host_cpu_s().is_some());
    }
}
