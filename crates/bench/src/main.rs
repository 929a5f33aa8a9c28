//! rotor-bench: a load generator for Rotor and other Centrifugo-compatible servers.
//!
//! Scenarios (each prints progress to stderr, human-readable lines and one machine-readable
//! `RESULT key=value ...` line to stdout):
//!
//! * `fanout`   N subscribers on one channel; K HTTP API publishers, `--mode max` (as fast as
//!   the server delivers, with a bounded window) or `--mode rate` (fixed rate, for latency);
//! * `api-publish` the `fanout` subscribers, publications sent through the gRPC server API (one
//!   HTTP/2 channel) or `POST /api/publish` (one keep-alive connection, or a pool) by
//!   `--publishers` concurrent callers: publications/s and the API call's p50/p99;
//! * `nodes`    broker throughput: subscribers spread over several nodes (`--ws` list, child
//!   `i` on node `i % n`), a few per channel on many channels, publications through one node;
//! * `channels` each connection on a personal channel plus a group channel of 10; publications
//!   spread round-robin over all channels;
//! * `delta`    N v2 subscribers (JSON or Protobuf) with or without Fossil delta compression,
//!   publications of a ~2 KB document with a few fields changing: bytes per delivery,
//!   deliveries/s, server CPU per delivery, latency; each document rebuilt and checked;
//! * `ws-compression` N v2 subscribers offering permessage-deflate or not to a server with
//!   `websocket_compression` on: TCP bytes and server CPU per delivery;
//! * `idle`     N connections with one subscription each, held: server RSS per connection and
//!   server CPU per connection-second;
//! * `churn`    workers loop connect + private `$` subscribe (fresh subscription token for the
//!   client ID) + disconnect: cycles/s;
//! * `join`     N subscribers join one channel with join/leave on: seconds until all are in;
//! * `proxy-churn` the churn cycle through the server's connect and subscribe proxies;
//! * `rpc`      clients send `rpc` commands in a loop (the server's rpc proxy): round trips/s;
//! * `emulation-rtt` clients publish over their transport (`/emulation` for HTTP-streaming and
//!   SSE) and wait for their own publication: round-trip latency;
//! * `backend`  the application backend those proxies call (a separate process);
//! * `token-keys` RS256 / ES256 / EdDSA key pairs and a JWKS document for `churn --alg`;
//! * `jwks`     serves that JWKS document (a separate process, each fetch logged);
//! * `slow`     slow-consumer isolation: 1 % of the subscribers stop reading in alternate
//!   phases; the others' latency with and without them, and when the server closes them;
//! * `soak-chart` a PNG of the time series a soak run (`bench/soak/run.sh`) sampled;
//! * `report`   tables and PNG charts from a results file written by `scripts/bench.sh`.
//!
//! `fanout`, `channels`, `idle` and `emulation-rtt` take `--transport websocket|http_stream|sse|
//! sockjs-xhr|sockjs-ws` (the non-WebSocket clients are in `stream.rs` and `sockjs.rs`).
//!
//! Connections live in child processes (`--procs`, the open-file limit is per process) and
//! bind to source addresses 127.0.0.2.. (`--src-ips`); the parent publishes, reads the
//! server's /proc figures and adds everything up.

mod apipub;
mod backend;
mod child;
mod conn;
mod delta;
mod delta_doc;
mod delta_sub;
mod group;
mod hist;
mod nodes;
mod proto;
mod proxy;
mod publish;
mod report;
mod rpc;
mod rtt;
mod scenario;
mod sigs;
mod slow;
mod soakchart;
mod sockjs;
mod stream;
mod token;
mod track;
mod util;
mod ws;
mod ws_compression;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::proto::Proto;

#[derive(Parser, Debug)]
#[command(
    name = "rotor-bench",
    version,
    about = "Load generator and benchmarks for Centrifugo-compatible servers (Rotor, the reference)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// N subscribers on one channel, K HTTP API publishers: deliveries/s, latency, loss.
    Fanout(PubArgs),
    /// The fan-out subscribers, publications through the gRPC API or `POST /api/publish` by
    /// `--publishers` concurrent callers on one connection: publications/s, API p50/p99.
    ApiPublish(apipub::ApiPublishArgs),
    /// Clients publish over the transport (`/emulation` for http_stream and sse) and wait for
    /// their own publication on their stream: round-trip latency.
    EmulationRtt(rtt::RttArgs),
    /// Subscribers spread over several nodes (`--ws a,b,c`), a few per channel on many
    /// channels, publications through one node's API: broker publications/s and deliveries/s.
    Nodes(nodes::NodesArgs),
    /// Personal channel + group channel of `--group-size` per connection; publications spread
    /// over all channels.
    Channels(ChannelsArgs),
    /// N v2 subscribers with (`--delta on`) or without Fossil deltas, documents published
    /// with `delta: true`: bytes and server CPU per delivery, deliveries/s, latency.
    Delta(delta::DeltaArgs),
    /// N v2 subscribers offering permessage-deflate (`--compression on`) or not, against a
    /// server with websocket_compression on: TCP bytes and server CPU per delivery.
    WsCompression(ws_compression::WsCompressionArgs),
    /// N connections with one subscription each held for `--hold`: server RSS and CPU.
    Idle(IdleArgs),
    /// Connect + private subscribe + disconnect in a loop: cycles/s.
    Churn(ChurnArgs),
    /// N subscribers join one channel with join/leave on: time until all are in.
    Join(JoinArgs),
    /// The churn cycle through the connect and subscribe proxies (no tokens): cycles/s, and
    /// the server's and the backend's CPU per 1,000 cycles.
    ProxyChurn(proxy::ProxyChurnArgs),
    /// `--clients` connections send `rpc` commands back to back (the rpc proxy): round trips/s
    /// and latency.
    Rpc(rpc::RpcArgs),
    /// A minimal application backend answering the server's HTTP proxy calls (keep-alive).
    Backend(backend::BackendArgs),
    /// Tables and PNG charts from results files (lines of `key=value`).
    Report(report::ReportArgs),
    /// N subscribers, a fixed publication rate; in alternate phases 1 % stop reading: the
    /// others' p50/p99 with and without them, and the time until the server closes them (3008).
    Slow(slow::SlowArgs),
    /// A PNG of time series (one panel per column) from a soak CSV (`bench/soak/run.sh`).
    SoakChart(soakchart::SoakChartArgs),
    /// Generates the RS256 / ES256 / EdDSA keys (PKCS#8, public PEM, JWKS) for `churn --alg`.
    TokenKeys(sigs::KeysArgs),
    /// Serves the JWKS document written by `token-keys` over HTTP (each request logged).
    Jwks(sigs::JwksArgs),
}

/// Options every load scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// WebSocket endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8000/connection/websocket")]
    pub ws: String,
    /// Server HTTP API endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8000/api")]
    pub api: String,
    #[arg(long, default_value = "api")]
    pub api_key: String,
    /// HS256 secret for connection and subscription tokens.
    #[arg(long, default_value = "secret")]
    pub secret: String,
    /// Client protocol generation: v1 (Centrifugo 2.x) or v2 (Centrifugo 4+), JSON.
    #[arg(long, default_value = "v1")]
    pub proto: Proto,
    /// Server PID: RSS from /proc/PID/status, CPU from /proc/PID/stat.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Bind client sockets to 127.0.0.2 .. 127.0.0.(K+1) (more than ~28k ports; churn).
    #[arg(long, default_value_t = 0)]
    pub src_ips: usize,
    /// Child processes holding the connections (a process may hold ~20,000 sockets here).
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// Runtime threads per child (0 = cores / procs, at least 1).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Label printed with the results.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Other processes (`name=PID,...`) whose CPU over the publishing window is reported as
    /// `cpu_<name>_s` / `cpu_<name>_pct` (publish scenarios).
    #[arg(long, default_value = "")]
    pub watch: String,
    /// Channel name (or prefix).
    #[arg(long, default_value = "rb")]
    pub channel: String,
    /// Connections setting up at the same time (over all processes).
    #[arg(long, default_value_t = 64)]
    pub dial_concurrency: usize,
    /// Initial read buffer per connection, bytes (grows for larger frames).
    #[arg(long, default_value_t = 16384)]
    pub read_buf: usize,
    /// Seconds a connection may take to connect and subscribe.
    #[arg(long, default_value = "30s", value_parser = util::parse_duration)]
    pub setup_timeout: std::time::Duration,
    /// Internal: this process is child number I.
    #[arg(long, hide = true)]
    pub child_index: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// As fast as the server delivers, at most `--window` publications outstanding.
    Max,
    /// A fixed total `--rate` of publications per second (latency).
    Rate,
}

#[derive(Args, Debug, Clone)]
pub struct PubArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Concurrent HTTP API publishers (each one keep-alive connection, requests in sequence).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    #[arg(long, value_enum, default_value_t = Mode::Max)]
    pub mode: Mode,
    /// Publishing time.
    #[arg(long, default_value = "10s", value_parser = util::parse_duration)]
    pub duration: std::time::Duration,
    /// Rate mode: publications per second over all publishers.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Max mode: publications outstanding (published, not yet delivered), averaged over
    /// subscribers; 0 = max(8, 100000 / conns).
    #[arg(long, default_value_t = 0)]
    pub window: u64,
    /// Size of each publication's data JSON in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    #[command(flatten)]
    pub transport: conn::TransportArgs,
    /// Publications per HTTP request (newline-separated API commands).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// How long to wait for outstanding deliveries after the last publication.
    #[arg(long, default_value = "5s", value_parser = util::parse_duration)]
    pub drain: std::time::Duration,
}

#[derive(Args, Debug, Clone)]
pub struct ChannelsArgs {
    #[command(flatten)]
    pub pubs: PubArgs,
    /// Connections per group channel.
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
}

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// How long to hold the connections while measuring server CPU.
    #[arg(long, default_value = "10s", value_parser = util::parse_duration)]
    pub hold: std::time::Duration,
    /// Pause after connecting before reading the server's RSS.
    #[arg(long, default_value = "2s", value_parser = util::parse_duration)]
    pub settle: std::time::Duration,
    /// All connections on one channel instead of one channel each.
    #[arg(long)]
    pub shared_channel: bool,
    #[command(flatten)]
    pub transport: conn::TransportArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent workers (over all processes).
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    #[arg(long, default_value = "10s", value_parser = util::parse_duration)]
    pub duration: std::time::Duration,
    /// Signature algorithm of the connection and subscription tokens (non-HS256: the private
    /// key from `--key-dir`, written by `rotor-bench token-keys`).
    #[arg(long, value_enum, default_value_t = sigs::Alg::Hs256)]
    pub alg: sigs::Alg,
    /// Directory of the `token-keys` output.
    #[arg(long, default_value = "target/bench/token-keys")]
    pub key_dir: std::path::PathBuf,
    /// Pace the cycles: this many per second over all workers (0 = each worker back to back).
    /// Compares server CPU per cycle at the same rate when the bench's own cost (RS256
    /// signing) would otherwise cap one algorithm's rate and not another's.
    #[arg(long, default_value_t = 0.0)]
    pub cycle_rate: f64,
    /// `kid` header of the tokens (a server with a JWKS endpoint picks the key by it; `token-keys`
    /// names them rb-rs256 and rb-eddsa).
    #[arg(long)]
    pub kid: Option<String>,
    /// Set by `proxy-churn`: connect without a token and subscribe in this namespace, so both
    /// go through the server's connect and subscribe proxies.
    #[arg(skip)]
    pub proxy_ns: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct JoinArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Give up waiting for all subscribers after this long.
    #[arg(long, default_value = "300s", value_parser = util::parse_duration)]
    pub timeout: std::time::Duration,
    /// After all are in, wait at most this long for the join pushes to stop arriving.
    #[arg(long, default_value = "30s", value_parser = util::parse_duration)]
    pub settle_timeout: std::time::Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.cmd {
        Cmd::Fanout(a) => a.common.clone(),
        Cmd::ApiPublish(a) => a.pubs.common.clone(),
        Cmd::Channels(a) => a.pubs.common.clone(),
        Cmd::Nodes(a) => a.pubs.common.clone(),
        Cmd::Delta(a) => a.common.clone(),
        Cmd::WsCompression(a) => a.common.clone(),
        Cmd::Idle(a) => a.common.clone(),
        Cmd::Churn(a) => a.common.clone(),
        Cmd::Join(a) => a.common.clone(),
        Cmd::ProxyChurn(a) => a.churn.common.clone(),
        Cmd::Rpc(a) => a.common.clone(),
        Cmd::EmulationRtt(a) => a.common.clone(),
        Cmd::Backend(a) => {
            return match backend::main(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rotor-bench backend: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Report(a) => {
            return match report::run(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rotor-bench report: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::TokenKeys(a) => return exit("token-keys", sigs::generate(a)),
        Cmd::SoakChart(a) => return exit("soak-chart", soakchart::run(a)),
        Cmd::Slow(a) => return exit("slow", slow::main(a)),
        Cmd::Jwks(a) => return exit("jwks", sigs::serve_jwks(a)),
    };
    let is_child = common.child_index.is_some();
    let rt = if is_child {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let threads = if common.threads > 0 {
            common.threads
        } else {
            (cores / common.procs.max(1)).max(1)
        };
        if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
        }
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rotor-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Children get the same arguments (minus the program name).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Fanout(a) => scenario::pubsub(a, None, None, args).await,
            Cmd::ApiPublish(a) => {
                let path = a.path();
                scenario::pubsub(a.pubs, None, Some(path), args).await
            }
            Cmd::Channels(a) => scenario::pubsub(a.pubs, Some(a.group_size), None, args).await,
            Cmd::Nodes(a) => nodes::nodes(a, args).await,
            Cmd::Delta(a) => delta::delta(a, args).await,
            Cmd::WsCompression(a) => ws_compression::ws_compression(a).await,
            Cmd::Idle(a) => scenario::idle(a, args).await,
            Cmd::Churn(a) => scenario::churn(a, args).await,
            Cmd::Join(a) => scenario::join(a, args).await,
            Cmd::ProxyChurn(a) => proxy::proxy_churn(a, args).await,
            Cmd::Rpc(a) => rpc::rpc(a, args).await,
            Cmd::EmulationRtt(a) => rtt::rtt(a).await,
            Cmd::Report(_)
            | Cmd::Backend(_)
            | Cmd::TokenKeys(_)
            | Cmd::Jwks(_)
            | Cmd::SoakChart(_)
            | Cmd::Slow(_) => {
                unreachable!("handled above")
            }
        }
    });
    // Do not wait for connection tasks still parked in the runtime.
    rt.shutdown_background();
    match res {
        Ok(Some(kv)) => {
            println!("{}", kv.line("RESULT"));
            let failed = kv.get("error").is_some();
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(None) => ExitCode::SUCCESS, // a child: it reported to its parent
        Err(e) => {
            eprintln!("rotor-bench: {e}");
            if !is_child {
                let mut kv = util::Kv::default();
                kv.set("label", common.label.as_str());
                kv.set("error", e.as_str());
                println!("{}", kv.line("RESULT"));
            }
            ExitCode::FAILURE
        }
    }
}

/// The exit code of a helper subcommand, its error on stderr.
fn exit(what: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotor-bench {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
