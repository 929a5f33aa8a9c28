//! Observability endpoints: `/metrics` (Prometheus text format 0.0.4, written by hand from
//! rotor-core's lock-free counters), `/health` and `/ready`.
//!
//! Metric names and labels are Centrifugo's (namespace `centrifugo`; the label sets of
//! Centrifugo 6, whose extra labels such as `channel_namespace` are always empty here, which
//! Prometheus treats as absent, so 2.8 queries match too). Rotor's own metrics are prefixed
//! `rotor_`; the usual `process_*` metrics come from `/proc` on Linux.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rotor_core::api::ApiProtocol;
use rotor_core::metrics::{
    Action, FrameType, HistogramSnapshot, MessageType, API_METHODS, DEFAULT_BUCKETS, METRICS,
};
use rotor_core::Node;

use crate::app::SharedState;

mod exposition;

#[cfg(test)]
use exposition::quantile;
use exposition::{fmt_f64, Writer};

/// `/health`: 200 `{}` while the node serves; 503 while draining at shutdown or while the
/// engine cannot serve (e.g. Redis unreachable).
pub async fn health(State(st): State<SharedState>) -> Response {
    ready_response(&st)
}

/// `/ready`: the same test as `/health`, under the name load balancers and Kubernetes use.
pub async fn ready(State(st): State<SharedState>) -> Response {
    ready_response(&st)
}

fn ready_response(st: &SharedState) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    if st.draining.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json,
            r#"{"status":"draining"}"#,
        )
            .into_response()
    } else if !st.node.engine_healthy() {
        let body = r#"{"status":"engine unavailable"}"#;
        (StatusCode::SERVICE_UNAVAILABLE, json, body).into_response()
    } else {
        (StatusCode::OK, json, "{}").into_response()
    }
}

/// `/metrics`.
pub async fn handler(State(st): State<SharedState>) -> Response {
    let body = render(&st.node, st.draining.is_cancelled());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Summaries report quantiles over roughly the last ten minutes, as Go's default summary does:
/// each scrape keeps a snapshot of the bucket counts and compares with the oldest one kept.
const SUMMARY_WINDOW: Duration = Duration::from_secs(600);
/// Snapshots are kept at most this often.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(15);
const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// Bucket counts of every summarised histogram, in a fixed order: client commands, then API.
type Snapshot = Vec<Vec<u64>>;

static WINDOW: Mutex<VecDeque<(Instant, Snapshot)>> = Mutex::new(VecDeque::new());

fn command_types() -> impl Iterator<Item = FrameType> {
    FrameType::ALL.into_iter().filter(|t| t.is_command())
}

/// The Prometheus exposition of everything this process counts.
pub fn render(node: &Node, draining: bool) -> String {
    let mut w = Writer::default();
    let hub = node.hub();

    // ---------------------------------------------------------------- node
    let version = &node.config().version;
    w.family("centrifugo_node_build", "gauge", "Node build info.");
    w.sample("centrifugo_node_build", &[("version", version)], 1.0);
    let gauges: [(&str, &str, f64); 5] = [
        (
            "centrifugo_node_num_clients",
            "Number of clients connected.",
            hub.num_clients() as f64,
        ),
        (
            "centrifugo_node_num_users",
            "Number of unique users connected.",
            hub.num_users() as f64,
        ),
        (
            "centrifugo_node_num_channels",
            "Number of channels with one or more subscribers.",
            hub.num_channels() as f64,
        ),
        (
            "centrifugo_node_num_subscriptions",
            "Number of subscriptions.",
            METRICS.subscriptions.get().max(0) as f64,
        ),
        (
            "centrifugo_node_num_nodes",
            "Number of nodes in cluster.",
            node.api_info().len() as f64,
        ),
    ];
    for (name, help, v) in gauges {
        w.family(name, "gauge", help);
        w.sample(name, &[], v);
    }
    for (name, help, counters) in [
        (
            "centrifugo_node_messages_sent_count",
            "Number of messages sent.",
            &METRICS.messages_sent,
        ),
        (
            "centrifugo_node_messages_received_count",
            "Number of messages received.",
            &METRICS.messages_received,
        ),
    ] {
        w.family(name, "counter", help);
        for t in MessageType::ALL {
            let v = counters[t as usize].get() as f64;
            w.sample(name, &[("type", t.name()), ("channel_namespace", "")], v);
        }
    }
    let name = "centrifugo_node_action_count";
    w.family(name, "counter", "Number of node actions called.");
    for a in Action::ALL {
        let v = METRICS.actions[a as usize].get() as f64;
        w.sample(name, &[("action", a.name()), ("channel_namespace", "")], v);
    }
    w.family(
        "centrifugo_node_broadcast_duration_seconds",
        "histogram",
        "Broadcast duration in seconds",
    );
    w.histogram(
        "centrifugo_node_broadcast_duration_seconds",
        &[("type", "publication"), ("channel_namespace", "")],
        &METRICS.broadcast_duration.snapshot(),
    );

    // ---------------------------------------------------------------- client
    let commands: Vec<(FrameType, HistogramSnapshot)> = command_types()
        .map(|t| (t, METRICS.command_duration[t as usize].snapshot()))
        .collect();
    // Every (protocol, method) pair, protocol-major.
    let api: Vec<HistogramSnapshot> = METRICS
        .api_duration
        .iter()
        .flatten()
        .map(|h| h.snapshot())
        .collect();
    let baseline = window_baseline(&commands, &api);

    let name = "centrifugo_client_command_duration_seconds";
    w.family(name, "summary", "Client command duration summary.");
    for (i, (t, snap)) in commands.iter().enumerate() {
        let labels = [("method", t.name()), ("channel_namespace", "")];
        w.summary(name, &labels, snap, baseline.as_ref().map(|b| &b[i][..]));
    }
    let hname = "centrifugo_client_command_duration_seconds_histogram";
    w.family(hname, "histogram", "Client command duration histogram.");
    for (t, snap) in &commands {
        let labels = [("method", t.name()), ("channel_namespace", "")];
        w.histogram(hname, &labels, snap);
    }
    let name = "centrifugo_client_num_reply_errors";
    w.family(
        name,
        "counter",
        "Number of errors in replies sent to clients.",
    );
    for t in command_types() {
        for (code, n) in METRICS.reply_errors[t as usize].snapshot() {
            let code = code.to_string();
            let labels = [
                ("method", t.name()),
                ("code", &code),
                ("channel_namespace", ""),
            ];
            w.sample(name, &labels, n as f64);
        }
    }
    let name = "centrifugo_client_num_server_disconnects";
    w.family(name, "counter", "Number of server initiated disconnects.");
    for (code, n) in METRICS.server_disconnects.snapshot() {
        w.sample(name, &[("code", &code.to_string())], n as f64);
    }
    let name = "centrifugo_client_num_server_unsubscribes";
    w.family(name, "counter", "Number of server initiated unsubscribes.");
    for (code, n) in METRICS.server_unsubscribes.snapshot() {
        let code = code.to_string();
        w.sample(
            name,
            &[("code", &code), ("channel_namespace", "")],
            n as f64,
        );
    }
    let name = "centrifugo_client_recover";
    w.family(name, "counter", "Count of recover operations.");
    for (label, c) in [("yes", &METRICS.recovered), ("no", &METRICS.not_recovered)] {
        let labels = [("recovered", label), ("channel_namespace", "")];
        w.sample(name, &labels, c.get() as f64);
    }
    let name = "centrifugo_client_ping_pong_duration_seconds";
    w.family(name, "histogram", "Ping/Pong duration in seconds");
    w.histogram(
        name,
        &[("transport", "websocket")],
        &METRICS.ping_pong.snapshot(),
    );
    let name = "centrifugo_client_connections_inflight";
    w.family(name, "gauge", "Number of inflight client connections.");
    let labels = [
        ("transport", "websocket"),
        ("client_name", ""),
        ("client_version", ""),
    ];
    w.sample(name, &labels, hub.num_clients() as f64);
    let name = "centrifugo_client_subscriptions_inflight";
    w.family(name, "gauge", "Number of inflight client subscriptions.");
    let labels = [("client_name", ""), ("channel_namespace", "")];
    w.sample(name, &labels, METRICS.subscriptions.get().max(0) as f64);
    let name = "centrifugo_node_client_connection_limit";
    let help = "Number of refused requests due to node client connection limit.";
    w.family(name, "counter", help);
    w.sample(name, &[], crate::limits::limit_refusals() as f64);
    let name = "centrifugo_rate_limit_client_over_limit_count";
    let help = "Number of client commands over a rate limit (refused unless dry_run).";
    w.family(name, "counter", help);
    for o in rotor_core::ratelimit::over_limit_counts() {
        let dry = if o.dry_run { "true" } else { "false" };
        let labels = [
            ("layer", o.layer),
            ("command", o.command),
            ("namespace", ""),
            ("dry_run", dry),
        ];
        w.sample(name, &labels, o.count as f64);
    }

    // ---------------------------------------------------------------- transport
    for (name, help, counters) in [
        (
            "centrifugo_transport_messages_sent",
            "Number of messages sent to client connections over specific transport.",
            &METRICS.transport_sent,
        ),
        (
            "centrifugo_transport_messages_sent_size",
            "Size in bytes of messages sent to client connections over specific transport.",
            &METRICS.transport_sent_bytes,
        ),
        (
            "centrifugo_transport_messages_received",
            "Number of messages received from client connections over specific transport.",
            &METRICS.transport_received,
        ),
        (
            "centrifugo_transport_messages_received_size",
            "Size in bytes of messages received from client connections over specific transport.",
            &METRICS.transport_received_bytes,
        ),
    ] {
        w.family(name, "counter", help);
        for t in FrameType::ALL {
            let v = counters[t as usize].get();
            if v > 0 {
                let labels = [
                    ("transport", "websocket"),
                    ("frame_type", t.name()),
                    ("channel_namespace", ""),
                ];
                w.sample(name, &labels, v as f64);
            }
        }
    }
    let name = "centrifugo_transport_connect_count";
    w.family(
        name,
        "counter",
        "Number of connections to specific transport.",
    );
    for t in rotor_core::transport::ALL {
        let v = METRICS.transport_connects[t.id].get() as f64;
        w.sample(name, &[("transport", t.name)], v);
    }

    // ---------------------------------------------------------------- server API
    let name = "centrifugo_api_command_duration_seconds";
    w.family(name, "summary", "Duration of API per command.");
    let n = API_METHODS.len();
    for (i, snap) in api.iter().enumerate() {
        let labels = [
            ("protocol", ApiProtocol::ALL[i / n].name()),
            ("method", API_METHODS[i % n]),
        ];
        let base = baseline.as_ref().map(|b| &b[commands.len() + i][..]);
        w.summary(name, &labels, snap, base);
    }
    let hname = "centrifugo_api_command_duration_seconds_histogram";
    w.family(
        hname,
        "histogram",
        "Histogram of duration of API per command.",
    );
    for (i, snap) in api.iter().enumerate() {
        let labels = [
            ("protocol", ApiProtocol::ALL[i / n].name()),
            ("method", API_METHODS[i % n]),
        ];
        w.histogram_with(hname, &labels, snap, Some(DEFAULT_BUCKETS));
    }
    let name = "centrifugo_api_command_errors_total";
    w.family(name, "counter", "Total errors in API commands.");
    for protocol in ApiProtocol::ALL {
        for (i, method) in API_METHODS.iter().enumerate() {
            for (code, count) in METRICS.api_errors[protocol as usize][i].snapshot() {
                let code = code.to_string();
                let labels = [
                    ("protocol", protocol.name()),
                    ("method", method),
                    ("error", &code),
                ];
                w.sample(name, &labels, count as f64);
            }
        }
    }

    proxy_metrics(&mut w);
    jwks_metrics(&mut w);

    // ---------------------------------------------------------------- Rotor's own
    queue_bytes(&mut w, node);
    let name = "rotor_broker_publish_duration_seconds";
    w.family(
        name,
        "histogram",
        "Time the broker took to accept a publication (with Redis: the round trip), i.e. broker lag.",
    );
    w.histogram(name, &[], &METRICS.broker_publish_duration.snapshot());
    let name = "rotor_broker_healthy";
    w.family(
        name,
        "gauge",
        "1 while the engine can serve, 0 while it cannot.",
    );
    let healthy = if node.engine_healthy() { 1.0 } else { 0.0 };
    w.sample(name, &[], healthy);
    let name = "rotor_node_draining";
    w.family(
        name,
        "gauge",
        "1 while the node shuts down (readiness fails).",
    );
    w.sample(name, &[], if draining { 1.0 } else { 0.0 });
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let name = "rotor_runtime_alive_tasks";
        w.family(
            name,
            "gauge",
            "Tasks alive in the server's async runtime (spawned, not yet finished).",
        );
        w.sample(name, &[], rt.metrics().num_alive_tasks() as f64);
    }

    process_metrics(&mut w);
    w.out
}

/// The oldest snapshot within the summary window (None on the first scrape: everything since
/// start is the window), after recording the current one.
fn window_baseline(
    commands: &[(FrameType, HistogramSnapshot)],
    api: &[HistogramSnapshot],
) -> Option<Snapshot> {
    let now = Instant::now();
    let current: Snapshot = commands
        .iter()
        .map(|(_, s)| s.counts.clone())
        .chain(api.iter().map(|s| s.counts.clone()))
        .collect();
    let mut window = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    while window
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > SUMMARY_WINDOW)
    {
        window.pop_front();
    }
    let baseline = window.front().map(|(_, s)| s.clone());
    if window
        .back()
        .is_none_or(|(t, _)| now.duration_since(*t) >= SNAPSHOT_EVERY)
    {
        window.push_back((now, current));
    }
    baseline
}

/// JWKS key sources of the token verifier, per token block (`token`, `subscription_token`):
/// Rotor's own `rotor_jwks_*` counters (Centrifugo exports none). Nothing without JWKS.
fn jwks_metrics(w: &mut Writer) {
    let sources = crate::config::jwks_stats();
    if sources.is_empty() {
        return;
    }
    type Pick = fn(&rotor_jwks::JwksStats) -> u64;
    let families: [(&str, &str, Pick); 6] = [
        ("rotor_jwks_fetches_total", "JWKS requests sent.", |s| {
            s.fetches
        }),
        (
            "rotor_jwks_fetch_failures_total",
            "JWKS requests that failed.",
            |s| s.fetch_failures,
        ),
        (
            "rotor_jwks_cache_hits_total",
            "Token key lookups answered from the JWKS cache.",
            |s| s.cache_hits,
        ),
        (
            "rotor_jwks_cache_misses_total",
            "Token key lookups that found no cached JWKS key.",
            |s| s.cache_misses,
        ),
        (
            "rotor_jwks_refetches_held_back_total",
            "JWKS refetches not sent (URL fetched less than an interval ago).",
            |s| s.refetches_held_back,
        ),
        (
            "rotor_jwks_unresolved_total",
            "Tokens whose iss/aud resolved to no configured JWKS URL (no request made).",
            |s| s.unresolved,
        ),
    ];
    for (name, help, pick) in families {
        w.family(name, "counter", help);
        for (block, _, stats) in &sources {
            w.sample(name, &[("block", block)], pick(stats) as f64);
        }
    }
}

/// Proxy calls to the application backend, per (protocol, type, proxy name): Centrifugo 6's
/// `centrifugo_proxy_*` families (summary quantiles over the same window as the others).
fn proxy_metrics(w: &mut Writer) {
    let series = rotor_proxy::metrics::snapshot();
    if series.is_empty() {
        return;
    }
    let name = "centrifugo_proxy_duration_seconds";
    w.family(name, "summary", "Duration of proxy call.");
    for s in &series {
        w.summary(name, &s.labels(), &s.duration, s.window_base.as_deref());
    }
    let name = "centrifugo_proxy_duration_seconds_histogram";
    w.family(name, "histogram", "Histogram of duration of proxy call.");
    for s in &series {
        w.histogram_with(name, &s.labels(), &s.duration, Some(DEFAULT_BUCKETS));
    }
    let name = "centrifugo_proxy_errors";
    w.family(name, "counter", "Proxy call error count.");
    for s in &series {
        w.sample(name, &s.labels(), s.errors as f64);
    }
    let name = "centrifugo_proxy_inflight_requests";
    w.family(name, "gauge", "Number of inflight proxy requests.");
    for s in &series {
        w.sample(name, &s.labels(), s.inflight.max(0) as f64);
    }
}

/// Per-connection bytes waiting in writer queues: a summary across this node's connections
/// (read at scrape time, never on the message path).
fn queue_bytes(w: &mut Writer, node: &Node) {
    let mut sizes = Vec::new();
    node.hub()
        .for_each_client(|c| sizes.push(c.queue.queued_bytes() as f64));
    sizes.sort_by(|a, b| a.total_cmp(b));
    let name = "rotor_client_queue_bytes";
    w.family(
        name,
        "summary",
        "Bytes queued for writing per connection, across this node's connections.",
    );
    for q in [0.5, 0.9, 0.99, 1.0] {
        let v = if sizes.is_empty() {
            0.0
        } else {
            let i = ((q * sizes.len() as f64).ceil() as usize).clamp(1, sizes.len()) - 1;
            sizes[i]
        };
        w.sample(name, &[("quantile", &fmt_f64(q))], v);
    }
    w.sample(&format!("{name}_sum"), &[], sizes.iter().sum());
    w.sample(&format!("{name}_count"), &[], sizes.len() as f64);
}

/// Go's process collector names, from `/proc/self` (Linux only; skipped elsewhere).
fn process_metrics(w: &mut Writer) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Field numbers from proc(5), minus 3 (pid, comm and state come first).
    let ticks = 100.0; // USER_HZ on every Linux platform Rotor targets
    let page = 4096.0;
    let cpu = (num(11) + num(12)) / ticks;
    let start_ticks = num(19);
    let vsize = num(20);
    let rss = num(21) * page;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .unwrap_or(0.0);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let items: [(&str, &str, &str, f64); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            cpu,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            vsize,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max_fds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot + start_ticks / ticks,
        ),
    ];
    for (name, kind, help, v) in items {
        w.family(name, kind, help);
        w.sample(name, &[], v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let bounds = [1.0, 2.0, 4.0];
        assert!(quantile(&bounds, &[0, 0, 0, 0], 0.5).is_nan());
        assert_eq!(quantile(&bounds, &[10, 0, 0, 0], 0.5), 0.5);
        assert_eq!(quantile(&bounds, &[0, 10, 0, 0], 1.0), 2.0);
        assert_eq!(quantile(&bounds, &[0, 0, 0, 3], 0.5), 4.0);
    }

    #[tokio::test]
    async fn proxy_calls_are_exposed_with_centrifugo_names() {
        use rotor_core::backend::{Backend, BackendStyle, ConnContext, SubscribeEvent};
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}/sub", free.local_addr().expect("addr"));
        drop(free);
        let cfg = rotor_proxy::ProxyConfig {
            style: BackendStyle::Modern,
            named: vec![rotor_proxy::ProxySettings {
                name: "exposed-proxy".into(),
                endpoint,
                ..rotor_proxy::ProxySettings::default()
            }],
            ..rotor_proxy::ProxyConfig::default()
        };
        let backend = rotor_proxy::ProxyBackend::new(&cfg).expect("backend");
        let ctx = ConnContext {
            client: "c".into(),
            transport: "websocket",
            encoding: rotor_protocol::Encoding::Json,
            generation: rotor_protocol::Generation::V2,
            user: String::new(),
            meta: None,
            headers: Vec::new().into(),
            emulated_headers: Vec::new().into(),
        };
        let ev = SubscribeEvent::default();
        assert!(backend.subscribe("exposed-proxy", &ctx, ev).await.is_err());
        let mut w = Writer::default();
        proxy_metrics(&mut w);
        let labels = r#"{protocol="http",type="subscribe",name="exposed-proxy""#;
        for line in [
            "# TYPE centrifugo_proxy_duration_seconds summary".to_string(),
            format!("centrifugo_proxy_duration_seconds_count{labels}}} 1"),
            format!("centrifugo_proxy_duration_seconds_histogram_bucket{labels},le=\"0.005\"}}"),
            format!("centrifugo_proxy_errors{labels}}} 1"),
            format!("centrifugo_proxy_inflight_requests{labels}}} 0"),
        ] {
            assert!(w.out.contains(&line), "{line} not in:\n{}", w.out);
        }
    }

    #[test]
    fn exposition_lines() {
        let mut w = Writer::default();
        w.family("a_total", "counter", "A.");
        w.sample("a_total", &[("k", "q\"\\\n")], 1.5);
        w.histogram(
            "h",
            &[("m", "x")],
            &HistogramSnapshot {
                bounds: &[0.1],
                counts: vec![1, 2],
                sum: 3.0,
            },
        );
        let want = "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"q\\\"\\\\\\n\"} 1.5\n\
            h_bucket{m=\"x\",le=\"0.1\"} 1\nh_bucket{m=\"x\",le=\"+Inf\"} 3\nh_sum{m=\"x\"} 3\n\
            h_count{m=\"x\"} 3\n";
        assert_eq!(w.out, want);
    }
}
