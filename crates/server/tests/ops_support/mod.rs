//! Helpers shared by the operations tests (`ops_*.rs`): a Prometheus text parser for
//! `/metrics`, and waiting for the server process to exit.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::common::{http, Server};

/// One scrape: `name{labels}` (labels as written, sorted by the server) → value, and the
/// declared type of every family.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: BTreeMap<String, f64>,
    pub types: BTreeMap<String, String>,
    pub text: String,
}

impl Scrape {
    /// Parses the text format, panicking (with the line) on anything malformed.
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape {
            text: text.to_string(),
            ..Default::default()
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                s.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    && !name.starts_with(|c: char| c.is_ascii_digit()),
                "bad metric name in {line:?}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "bad labels in {line:?}");
            }
            let v = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            s.samples.insert(series.to_string(), v);
        }
        s
    }

    /// The value of `name` with exactly these labels (in the server's order); 0 when absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(&series(name, labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Sum over every series of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| {
                let n = k.split('{').next().unwrap();
                n == name
                    && labels
                        .iter()
                        .all(|(lk, lv)| k.contains(&format!("{lk}=\"{lv}\"")))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Every label set of `name`, as written.
    pub fn series_of(&self, name: &str) -> Vec<String> {
        self.samples
            .keys()
            .filter(|k| k.split('{').next() == Some(name))
            .cloned()
            .collect()
    }
}

pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// GET `url`; (status, body).
pub async fn get(url: &str) -> (u16, String) {
    let resp = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Scrapes `http://127.0.0.1:<port>/metrics`.
pub async fn scrape_port(port: u16) -> Scrape {
    let (status, body) = get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(status, 200, "/metrics answered {status}: {body}");
    Scrape::parse(&body)
}

pub async fn scrape(server: &Server) -> Scrape {
    scrape_port(server.port).await
}

/// Waits for the process to exit by itself; panics (with its output) after `within`.
pub async fn wait_exit(server: &Server, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = server.exit_status() {
            return status;
        }
        if Instant::now() > deadline {
            panic!(
                "rotor did not exit within {within:?}; output:\n{}",
                server.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
