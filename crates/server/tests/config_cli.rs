//! End-to-end tests of configuration and the command line on the real binary: the same settings
//! as a Centrifugo 2.x JSON file, a Centrifugo 6 YAML file, a TOML file and environment
//! variables print the same effective configuration; every error path exits non-zero with one
//! line naming the key; unknown keys warn; each subcommand works against a started server; the
//! first run without configuration prints a token that connects and a `curl` line that
//! publishes; `SIGHUP` swaps the token secret and channel options without dropping connections.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, jwt_with, post, Event, Ws};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// A fresh empty folder (no `config.json` unless a test writes one).
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rotor-cfgcli-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rotor ARGS` in `dir` with only `env` among the configuration variables (any
/// `CENTRIFUGO_*`/`ROTOR_*` of the test process is removed).
fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("CENTRIFUGO_") || k.starts_with("ROTOR_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What a finished command printed.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Asserts exit code 1 and exactly one stderr line, `error: ...` containing `want`.
    #[track_caller]
    fn assert_one_line_error(&self, want: &str) {
        assert_eq!(self.code, Some(1), "{self:#?}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        assert!(lines[0].contains(want), "{want:?} not in {self:#?}");
        // Said once: an error's cause is not printed again after its message.
        assert_eq!(
            lines[0].matches(want).count(),
            1,
            "{want:?} twice: {self:#?}"
        );
    }

    #[track_caller]
    fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "{self:#?}");
    }
}

/// Runs a command that must finish within 20 s.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = command(dir, args, env);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn rotor");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => {
            let out = out.expect("rotor output");
            Out {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("rotor {args:?} did not finish within 20 s");
        }
    }
}

/// A server process; killed on drop (its output is printed when the test failed).
struct Running {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
}

impl Running {
    /// Starts `rotor ARGS` in `dir` and waits (10 s at most) until `port` accepts connections.
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)], port: u16) -> Running {
        let mut cmd = command(dir, args, env);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rotor");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut pipe in pipes {
            let out = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut server = Running {
            child,
            port,
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rotor exited early ({status}):\n{}", server.output());
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "rotor did not listen on {port}:\n{}",
                server.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`.
    async fn wait_output(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not printed within {within:?}:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `POST /api/<method>` with `X-API-Key`; the JSON answer.
    async fn api(&self, key: &str, method: &str, params: Value) -> Value {
        let url = format!("http://127.0.0.1:{}/api/{method}", self.port);
        let headers = [("X-API-Key", key), ("Content-Type", "application/json")];
        let r = post(&url, &headers, params.to_string()).await;
        assert_eq!(r.status, 200, "/api/{method}: {r:?}");
        r.json()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- rotor output -----\n{}\n-----", self.output());
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A v2 connect with `token`: `Ok(connect result)` or `Err(close code)`.
async fn try_connect_v2(url: &str, token: &str) -> Result<Value, u16> {
    let mut ws = Ws::open(url).await;
    let id = ws.cmd_v2("connect", json!({ "token": token })).await;
    loop {
        match ws.next_event_within(Duration::from_secs(5)).await {
            Some(Event::Value(v)) if v["id"] == json!(id) => {
                return match v.get("connect") {
                    Some(res) => Ok(res.clone()),
                    None => Err(v["error"]["code"].as_u64().unwrap_or(0) as u16),
                };
            }
            Some(Event::Value(_)) => {}
            Some(Event::Closed(code, _)) => return Err(code),
            None => panic!("no connect reply"),
        }
    }
}

/// The token a `gentoken`/`gensubtoken` run printed (stdout is the token alone).
fn token_of(out: &Out) -> String {
    out.assert_ok();
    let token = out.stdout.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {out:#?}");
    token
}

// ---------------------------------------------------------------------------------------------
// The same settings four ways
// ---------------------------------------------------------------------------------------------

const SAME_JSON_2X: &str = r#"{
  "address": "127.0.0.1",
  "port": 9100,
  "token_hmac_secret_key": "k1",
  "api_key": "a1",
  "log_level": "debug",
  "allowed_origins": ["http://example.com"],
  "client_channel_limit": 64,
  "websocket_ping_interval": 20,
  "client_expired_close_delay": 10,
  "memory_history_meta_ttl": "720h",
  "redis_history_meta_ttl": 2592000,
  "publish": true,
  "subscribe_to_publish": true,
  "presence": true,
  "history_size": 10,
  "history_lifetime": 300,
  "history_recover": true,
  "namespaces": [
    {"name": "chat", "publish": true, "history_size": 5, "history_lifetime": 60},
    {"name": "room", "presence": true, "join_leave": true, "presence_disable_for_client": true}
  ]
}"#;

const SAME_YAML_V6: &str = r#"
http_server:
  address: 127.0.0.1
  port: 9100
client:
  token:
    hmac_secret_key: k1
  allowed_origins:
    - http://example.com
  channel_limit: 64
  # The v6 default is 1 MB; the 2.x files here get 2.x's 10 MB.
  queue_max_size: 10485760
  ping_interval: 20s
  expired_close_delay: 10s
http_api:
  key: a1
log:
  level: debug
channel:
  without_namespace:
    allow_subscribe_for_client: true
    allow_publish_for_subscriber: true
    presence: true
    allow_presence_for_subscriber: true
    history_size: 10
    history_ttl: 5m
    force_recovery: true
    allow_history_for_subscriber: true
  namespaces:
    - name: chat
      allow_subscribe_for_client: true
      allow_publish_for_client: true
      allow_history_for_client: true
      history_size: 5
      history_ttl: 60s
    - name: room
      allow_subscribe_for_client: true
      presence: true
      join_leave: true
"#;

const SAME_TOML: &str = r#"
address = "127.0.0.1"
port = "9100"
secret = "k1"
api_key = "a1"
log_level = "DEBUG"
allowed_origins = ["http://example.com"]
client_channel_limit = 64
client_ping_interval = "20s"
client_expired_close_delay = "10s"
memory_history_meta_ttl = "720h"
redis_history_meta_ttl = 2592000
publish = true
subscribe_to_publish = true
presence = true
history_size = 10
history_lifetime = "5m"
history_recover = true

[[namespaces]]
name = "chat"
publish = true
history_size = 5
history_ttl = "1m"
allow_history_for_client = true
allow_subscribe_for_client = true

[[namespaces]]
name = "room"
presence = true
join_leave = true
presence_disable_for_client = true
"#;

const SAME_ENV: &[(&str, &str)] = &[
    ("CENTRIFUGO_HTTP_SERVER_ADDRESS", "127.0.0.1"),
    ("CENTRIFUGO_PORT", "9100"),
    ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "k1"),
    ("ROTOR_API_KEY", "a1"),
    ("CENTRIFUGO_LOG_LEVEL", "debug"),
    ("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS", "http://example.com"),
    ("CENTRIFUGO_CLIENT_CHANNEL_LIMIT", "64"),
    ("CENTRIFUGO_CLIENT_QUEUE_MAX_SIZE", "10485760"),
    ("CENTRIFUGO_CLIENT_PING_INTERVAL", "20s"),
    ("CENTRIFUGO_CLIENT_EXPIRED_CLOSE_DELAY", "10"),
    // Environment alone does not tell the generation: the v6 defaults are spelled out.
    ("CENTRIFUGO_CHANNEL_HISTORY_META_TTL", "720h"),
    ("CENTRIFUGO_REDIS_HISTORY_META_TTL", "2592000"),
    (
        "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_SUBSCRIBE_FOR_CLIENT",
        "true",
    ),
    (
        "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_PUBLISH_FOR_SUBSCRIBER",
        "true",
    ),
    ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_PRESENCE", "true"),
    (
        "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_PRESENCE_FOR_SUBSCRIBER",
        "true",
    ),
    ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE", "10"),
    ("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_HISTORY_TTL", "300s"),
    (
        "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_FORCE_RECOVERY",
        "true",
    ),
    (
        "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_ALLOW_HISTORY_FOR_SUBSCRIBER",
        "true",
    ),
    ("CENTRIFUGO_CHANNEL_NAMESPACES", "chat room"),
    (
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ALLOW_SUBSCRIBE_FOR_CLIENT",
        "true",
    ),
    (
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ALLOW_PUBLISH_FOR_CLIENT",
        "true",
    ),
    (
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_ALLOW_HISTORY_FOR_CLIENT",
        "true",
    ),
    ("CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_HISTORY_SIZE", "5"),
    ("CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_HISTORY_TTL", "1m"),
    (
        "CENTRIFUGO_CHANNEL_NAMESPACES_ROOM_ALLOW_SUBSCRIBE_FOR_CLIENT",
        "true",
    ),
    ("CENTRIFUGO_CHANNEL_NAMESPACES_ROOM_PRESENCE", "true"),
    ("CENTRIFUGO_CHANNEL_NAMESPACES_ROOM_JOIN_LEAVE", "true"),
];

#[test]
fn same_settings_as_2x_json_v6_yaml_toml_and_env_print_the_same_configuration() {
    let dir = scratch();
    let json_file = write(&dir, "c2.json", SAME_JSON_2X);
    let yaml_file = write(&dir, "c6.yaml", SAME_YAML_V6);
    let toml_file = write(&dir, "c.toml", SAME_TOML);
    let outs = [
        (
            "2.x JSON",
            run(&dir, &["checkconfig", "-c", s(&json_file)], &[]),
        ),
        (
            "v6 YAML",
            run(&dir, &["checkconfig", "-c", s(&yaml_file)], &[]),
        ),
        (
            "TOML",
            run(&dir, &["checkconfig", "-c", s(&toml_file)], &[]),
        ),
        ("env", run(&dir, &["checkconfig"], SAME_ENV)),
    ];
    for (what, out) in &outs {
        out.assert_ok();
        assert!(!out.stderr.contains("warning"), "{what}: {out:#?}");
        assert!(out.stderr.contains("is valid"), "{what}: {out:#?}");
    }
    let reference = &outs[0].1.stdout;
    for (what, out) in &outs[1..] {
        assert_eq!(&out.stdout, reference, "{what} differs from 2.x JSON");
    }
    // And it is the configuration that was meant (secrets masked).
    let v: Value = serde_json::from_str(reference).unwrap();
    assert_eq!(v["port"], json!(9100));
    assert_eq!(v["token_hmac_secret_key"], json!("********"));
    assert_eq!(v["api_key"], json!("********"));
    assert_eq!(v["websocket_ping_interval"], json!("20s"));
    assert_eq!(v["client_expired_close_delay"], json!("10s"));
    assert_eq!(v["allowed_origins"], json!(["http://example.com"]));
    assert_eq!(
        (&v["history_lifetime"], &v["history_recover"]),
        (&json!(300), &json!(true))
    );
    assert_eq!(v["namespaces"][0]["history_lifetime"], json!(60));
    assert_eq!(
        v["namespaces"][1]["presence_disable_for_client"],
        json!(true)
    );
    assert!(!reference.contains("k1") && !reference.contains("a1"));
    // A different value prints differently.
    let other = write(&dir, "o.json", &SAME_JSON_2X.replace("9100", "9101"));
    let out = run(&dir, &["checkconfig", "-c", s(&other)], &[]);
    assert_ne!(&out.stdout, reference);
    // Precedence: env over file, flags over env.
    let env = [("CENTRIFUGO_HTTP_SERVER_PORT", "9200")];
    let out = run(&dir, &["checkconfig", "-c", s(&json_file)], &env);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["port"], json!(9200));
    let out = run(
        &dir,
        &["-p", "9300", "checkconfig", "-c", s(&json_file)],
        &env,
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["port"], json!(9300));
    // The 2.x gRPC API flags.
    let out = run(
        &dir,
        &[
            "--grpc_api",
            "--grpc_api_port",
            "10555",
            "--grpc_api_tls_disable",
            "checkconfig",
            "-c",
            s(&json_file),
        ],
        &[],
    );
    out.assert_ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (
            &v["grpc_api"],
            &v["grpc_api_port"],
            &v["grpc_api_tls_disable"]
        ),
        (&json!(true), &json!(10555), &json!(true)),
        "{out:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Errors and warnings
// ---------------------------------------------------------------------------------------------

#[test]
fn every_error_exits_non_zero_with_one_line_naming_the_key() {
    let dir = scratch();
    let cases: &[(&str, &str, &str)] = &[
        // Wrong types, each format and key generation.
        (
            "json",
            r#"{"presence":"yes"}"#,
            r#"config key "presence": expected a boolean, got string"#,
        ),
        (
            "yaml",
            "client:\n  channel_limit: many\n",
            r#"config key "client.channel_limit": expected an integer, got string"#,
        ),
        (
            "toml",
            "port = true\n",
            r#"config key "port": expected an integer"#,
        ),
        (
            "yaml",
            "channel:\n  namespaces:\n    - name: chat\n      history_size: lots\n",
            r#"config key "history_size" in namespace "chat": expected an integer"#,
        ),
        (
            "json",
            r#"{"client":{"ping_interval":"soon"}}"#,
            r#"config key "client.ping_interval": invalid duration "soon""#,
        ),
        (
            "yaml",
            "client: 5\n",
            r#"config key "client": expected an object"#,
        ),
        // Files that are not configuration.
        ("json", "{nope", "is not valid JSON"),
        ("yaml", "a: [1,\n  b: {", "is not valid YAML"),
        ("toml", "x = \n[y", "is not valid TOML"),
        ("json", "[1, 2]", "the top level must be a JSON object"),
        // Impossible combinations.
        (
            "json",
            r#"{"history_recover":true}"#,
            "history_recover needs history_size and history_lifetime",
        ),
        (
            "yaml",
            "channel:\n  without_namespace:\n    force_recovery: true\n",
            "history_recover needs history_size and history_lifetime",
        ),
        (
            "json",
            r#"{"user_subscribe_to_personal":true,"user_personal_single_connection":true}"#,
            "user_personal_single_connection needs presence",
        ),
        (
            "json",
            r#"{"namespaces":[{"name":"chat"},{"name":"chat"}]}"#,
            r#"namespace "chat" is defined twice"#,
        ),
        (
            "json",
            r#"{"namespaces":[{"name":"a b"}]}"#,
            r#"invalid namespace name "a b""#,
        ),
        ("json", r#"{"tls":true}"#, r#"config key "tls_cert""#),
        (
            "yaml",
            "engine:\n  type: nats\n",
            r#"config key "engine": unknown engine "nats""#,
        ),
        (
            "json",
            r#"{"log_level":"loud"}"#,
            r#"config key "log_level""#,
        ),
    ];
    for (i, (ext, text, want)) in cases.iter().enumerate() {
        let file = write(&dir, &format!("bad{i}.{ext}"), text);
        let out = run(&dir, &["checkconfig", "-c", s(&file)], &[]);
        out.assert_one_line_error(want);
        // The server refuses the same configuration before listening.
        let out = run(&dir, &["-c", s(&file)], &[]);
        out.assert_one_line_error(want);
    }
    // Environment values name the variable.
    let out = run(
        &dir,
        &["checkconfig"],
        &[("CENTRIFUGO_CLIENT_INSECURE", "maybe")],
    );
    out.assert_one_line_error(r#"config key "client.insecure": expected a boolean"#);
    assert!(
        out.stderr.contains("from env CENTRIFUGO_CLIENT_INSECURE"),
        "{out:#?}"
    );
    let out = run(&dir, &["checkconfig"], &[("ROTOR_HISTORY_SIZE", "-3")]);
    out.assert_one_line_error("ROTOR_HISTORY_SIZE");
    // A file that is not there.
    let out = run(&dir, &["checkconfig", "-c", "missing.json"], &[]);
    out.assert_one_line_error("cannot read config file missing.json");
    // Flags are checked too.
    let out = run(&dir, &["--log_level", "loud", "checkconfig"], &[]);
    out.assert_one_line_error("(from the command line)");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_and_unsupported_keys_warn_naming_each() {
    let dir = scratch();
    let file = write(
        &dir,
        "w.yaml",
        "foo: 1\nclient:\n  bar: 2\n  subscription_token:\n    hmac_secret_key: x\n\
         graphite:\n  enabled: true\nchannel:\n  namespaces:\n    - name: chat\n      \
         allow_subscribe_for_client: true\n      baz: 3\n      delta_publish: true\n",
    );
    let env = [
        ("CENTRIFUGO_QUX", "1"),
        ("CENTRIFUGO_HTTP_SERVER_QUUX", "1"),
        ("CENTRIFUGO_SWAGGER_ENABLED", "true"),
    ];
    let out = run(&dir, &["checkconfig", "-c", s(&file)], &env);
    out.assert_ok();
    for want in [
        r#"warning: unknown config key "foo""#,
        r#"warning: unknown config key "client.bar""#,
        "warning: client.subscription_token.hmac_secret_key set but the separate \
         subscription-token block is off",
        r#"warning: config key "graphite" is not supported yet"#,
        r#"warning: unknown config key "baz" in namespace "chat""#,
        r#"warning: unknown config key "qux" (from env CENTRIFUGO_QUX)"#,
        r#"warning: unknown config key "http_server_quux" (from env CENTRIFUGO_HTTP_SERVER_QUUX)"#,
        r#"warning: config key "swagger" is not supported yet; ignored (from env CENTRIFUGO_SWAGGER_ENABLED)"#,
    ] {
        assert!(out.stderr.contains(want), "{want:?} not in {out:#?}");
    }
    // A Centrifugo 6 option Rotor implements is not warned about.
    assert!(!out.stderr.contains("delta_publish"), "{out:#?}");
    // The effective configuration is still printed.
    assert!(
        serde_json::from_str::<Value>(&out.stdout).is_ok(),
        "{out:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Subcommands
// ---------------------------------------------------------------------------------------------

#[test]
fn version_and_help_on_every_subcommand() {
    let dir = scratch();
    let want = format!("rotor {}", env!("CARGO_PKG_VERSION"));
    // `version` names the build: the commit of this checkout, the profile and the target.
    let out = run(&dir, &["version"], &[]);
    out.assert_ok();
    let line = out.stdout.trim();
    assert!(line.starts_with(&format!("{want} (commit ")), "{line}");
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(commit) = git {
        // A build from this checkout; HEAD may have moved since (a commit without a rebuild
        // cannot happen under `cargo test`, which rebuilds on a HEAD change).
        assert!(
            line.contains(&format!("commit {commit},")),
            "{line} vs {commit}"
        );
    }
    assert!(
        line.contains(", debug, ") || line.contains(", release, "),
        "{line}"
    );
    assert!(line.ends_with(')') && line.contains("-linux-"), "{line}");
    let out = run(&dir, &["--version"], &[]);
    assert_eq!(out.stdout.trim(), want);
    let out = run(&dir, &["--help"], &[]);
    out.assert_ok();
    for sub in [
        "genconfig",
        "checkconfig",
        "gentoken",
        "gensubtoken",
        "checktoken",
        "checksubtoken",
        "version",
    ] {
        assert!(out.stdout.contains(sub), "{sub} in --help: {}", out.stdout);
        let out = run(&dir, &[sub, "--help"], &[]);
        out.assert_ok();
        assert!(
            out.stdout.contains(&format!("Usage: rotor {sub}")),
            "{sub} --help: {out:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn genconfig_writes_a_config_that_starts_a_server_and_never_overwrites() {
    let dir = scratch();
    let out = run(&dir, &["genconfig"], &[]);
    out.assert_ok();
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg: Value = serde_json::from_str(&text).unwrap();
    for key in [
        "token_hmac_secret_key",
        "api_key",
        "admin_password",
        "admin_secret",
    ] {
        assert!(
            cfg[key].as_str().is_some_and(|v| v.len() >= 32),
            "{key}: {text}"
        );
    }
    // Fresh secrets each time, and no overwriting.
    let out = run(&dir, &["genconfig"], &[]);
    out.assert_one_line_error("config.json already exists");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    for name in ["other.yaml", "other.yml", "other.toml", "other.json"] {
        let out = run(&dir, &["genconfig", "-c", name], &[]);
        out.assert_ok();
        let out = run(&dir, &["checkconfig", "-c", name], &[]);
        out.assert_ok();
        assert!(
            out.stderr.lines().all(|l| !l.starts_with("warning")),
            "{out:#?}"
        );
        let other: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(other["token_hmac_secret_key"], json!("********"));
    }
    let yaml = std::fs::read_to_string(dir.join("other.yaml")).unwrap();
    assert!(
        !yaml.contains(cfg["api_key"].as_str().unwrap()),
        "fresh secrets"
    );
    let out = run(&dir, &["genconfig", "-c", "conf.ini"], &[]);
    out.assert_one_line_error(".json, .yaml, .yml or .toml");

    // --format: the Centrifugo 6 nested form, config.<format> by default, checked clean.
    for (format, file) in [
        ("yaml", "config.yaml"),
        ("toml", "config.toml"),
        ("json", "v6.json"),
    ] {
        let mut args = vec!["genconfig", "--format", format];
        if file == "v6.json" {
            args.extend(["-c", file]);
        }
        let out = run(&dir, &args, &[]);
        out.assert_ok();
        assert!(out.stdout.contains("Centrifugo 6 keys"), "{out:#?}");
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            text.contains("hmac_secret_key") && !text.contains("token_hmac"),
            "{text}"
        );
        let out = run(&dir, &["checkconfig", "-c", file], &[]);
        out.assert_ok();
        assert!(
            out.stderr.lines().all(|l| !l.starts_with("warning")),
            "{out:#?}"
        );
        let eff: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(eff["token_hmac_secret_key"], json!("********"), "{eff}");
        assert_eq!(eff["api_key"], json!("********"), "{eff}");
    }
    let out = run(&dir, &["genconfig", "--format", "yaml"], &[]);
    out.assert_one_line_error("config.yaml already exists");
    let out = run(
        &dir,
        &["genconfig", "--format", "toml", "-c", "x.yaml"],
        &[],
    );
    out.assert_one_line_error("--format toml needs a file name ending in .toml");

    // `rotor` in that folder uses config.json: a gentoken token connects, the API key works.
    let port = free_port();
    let p = port.to_string();
    let server = Running::start(&dir, &["-a", "127.0.0.1", "-p", &p], &[], port);
    server
        .wait_output("config.json", Duration::from_secs(5))
        .await;
    let token = token_of(&run(&dir, &["gentoken", "-u", "alice"], &[]));
    let res = try_connect_v2(&server.ws_url(), &token).await.unwrap();
    assert!(res["client"].is_string(), "{res}");
    let api_key = cfg["api_key"].as_str().unwrap();
    let info = server.api(api_key, "info", json!({})).await;
    assert!(info.get("error").is_none(), "{info}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A server on a free port with `token_hmac_secret_key: "secret-1"` and `api_key: "api-1"`.
fn server_with_config(dir: &Path) -> (Running, PathBuf) {
    let port = free_port();
    let cfg = json!({
        "address": "127.0.0.1",
        "port": port,
        "token_hmac_secret_key": "secret-1",
        "api_key": "api-1",
    });
    let path = write(dir, "server.json", &cfg.to_string());
    let server = Running::start(dir, &["-c", s(&path)], &[], port);
    (server, path)
}

#[tokio::test]
async fn gentoken_tokens_connect_with_both_protocol_generations() {
    let dir = scratch();
    let (server, cfg) = server_with_config(&dir);
    let c = s(&cfg);
    let out = run(&dir, &["gentoken", "-c", c, "-u", "alice", "-t", "1h"], &[]);
    let token = token_of(&out);
    assert!(out.stderr.contains(r#"user "alice""#), "{out:#?}");
    assert!(
        out.stderr.contains("in 1h0m0s") || out.stderr.contains("in 59m"),
        "{out:#?}"
    );
    assert!(try_connect_v2(&server.ws_url(), &token).await.is_ok());
    let mut ws = Ws::open(&server.ws_url()).await;
    let res = ws.connect_v1(&token).await;
    assert!(res["client"].is_string(), "{res}");
    // Without expiry.
    let token = token_of(&run(
        &dir,
        &["gentoken", "-c", c, "-u", "bob", "-t", "0"],
        &[],
    ));
    assert!(try_connect_v2(&server.ws_url(), &token).await.is_ok());
    // A secret that is not the server's is refused.
    let other = write(&dir, "other.json", r#"{"token_hmac_secret_key":"nope"}"#);
    let token = token_of(&run(&dir, &["gentoken", "-c", s(&other), "-u", "eve"], &[]));
    assert_eq!(try_connect_v2(&server.ws_url(), &token).await, Err(3500));
    // No secret configured: one clear line.
    let empty = write(&dir, "empty.json", "{}");
    let out = run(&dir, &["gentoken", "-c", s(&empty), "-u", "x"], &[]);
    out.assert_one_line_error("token_hmac_secret_key is not set");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn gensubtoken_tokens_subscribe_to_private_channels() {
    let dir = scratch();
    let (server, cfg) = server_with_config(&dir);
    let c = s(&cfg);
    let token = token_of(&run(&dir, &["gentoken", "-c", c, "-u", "bob"], &[]));
    let channel = "$private";
    // v2 client: the subscription token carries the user, no client ID needed.
    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v2(&token).await;
    let rep = ws.call_v2("subscribe", json!({ "channel": channel })).await;
    assert_eq!(rep["error"]["code"], json!(103), "no token: {rep}");
    let args = ["gensubtoken", "-c", c, "-u", "bob", "--channel", channel];
    let out = run(&dir, &args, &[]);
    let sub = token_of(&out);
    assert!(out.stderr.contains(r#"channel "$private""#), "{out:#?}");
    let rep = ws
        .call_v2("subscribe", json!({ "channel": channel, "token": sub }))
        .await;
    assert!(
        rep.get("error").is_none() && rep["subscribe"].is_object(),
        "{rep}"
    );
    server
        .api(
            "api-1",
            "publish",
            json!({"channel": channel, "data": {"n": 1}}),
        )
        .await;
    let push = ws.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"n": 1}), "{push}");
    // v1 client (centrifuge-js 2.x): the token names the client ID (`--client`).
    let mut v1 = Ws::open(&server.ws_url()).await;
    let res = v1.connect_v1(&token).await;
    let client = res["client"].as_str().unwrap().to_string();
    let args = [
        "gensubtoken",
        "-c",
        c,
        "-u",
        "bob",
        "-s",
        channel,
        "--client",
        &client,
        "-t",
        "10m",
    ];
    let sub = token_of(&run(&dir, &args, &[]));
    let rep = v1.subscribe_v1_token(channel, &sub).await;
    assert!(rep.get("error").is_none(), "{rep}");
    // checksubtoken reads it back.
    let out = run(&dir, &["checksubtoken", "-c", c, &sub], &[]);
    out.assert_ok();
    assert!(out.stdout.contains(r#"channel "$private""#), "{out:#?}");
    assert!(out.stdout.contains(&client), "{out:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn checktoken_accepts_valid_tokens_and_rejects_the_rest() {
    let dir = scratch();
    let cfg = write(&dir, "c.json", r#"{"token_hmac_secret_key":"secret-1"}"#);
    let c = s(&cfg);
    let token = token_of(&run(&dir, &["gentoken", "-c", c, "-u", "alice"], &[]));
    let out = run(&dir, &["checktoken", "-c", c, &token], &[]);
    out.assert_ok();
    assert!(
        out.stdout
            .contains(r#"valid connection token for user "alice""#),
        "{out:#?}"
    );
    assert!(out.stdout.contains("expires at unix time"), "{out:#?}");
    // Another secret, an expired token, garbage: rejected with one line.
    let other = jwt_with("HS256", b"other", &json!({"sub": "alice"}));
    let out = run(&dir, &["checktoken", "-c", c, &other], &[]);
    out.assert_one_line_error("token is not valid");
    let past = common::now() - 60;
    let expired = jwt_with("HS256", b"secret-1", &json!({"sub": "alice", "exp": past}));
    let out = run(&dir, &["checktoken", "-c", c, &expired], &[]);
    out.assert_one_line_error("expired");
    let out = run(&dir, &["checktoken", "-c", c, "not-a-token"], &[]);
    out.assert_one_line_error("token is not valid");
    // The secret may come from the environment (v6 name) instead of a file.
    let env = [("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "secret-1")];
    let out = run(&dir, &["checktoken", &token], &env);
    out.assert_ok();
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// First run
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn first_run_prints_a_token_that_connects_and_a_curl_line_that_publishes() {
    let dir = scratch();
    let port = free_port();
    let p = port.to_string();
    let server = Running::start(&dir, &["-a", "127.0.0.1", "-p", &p], &[], port);
    let out = server.wait_output("curl ", Duration::from_secs(5)).await;
    let line_with = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{out}"))
            .to_string()
    };
    let secret = line_with("token_hmac_secret_key: ");
    let secret = secret.rsplit(' ').next().unwrap();
    assert_eq!(secret.len(), 64, "{out}");
    let token = line_with("connection token for user");
    let token = token.rsplit(' ').next().unwrap().to_string();
    let curl = line_with("curl ");
    let curl = &curl[curl.find("curl ").unwrap()..];
    assert!(
        curl.contains(&format!("http://127.0.0.1:{port}/api/publish")),
        "{curl}"
    );

    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v2(&token).await;
    let rep = ws.subscribe_v2("chat").await;
    assert!(rep.get("error").is_none(), "{rep}");
    let curl = curl.to_string();
    let done = tokio::task::spawn_blocking(move || {
        Command::new("sh").arg("-c").arg(&curl).output().unwrap()
    })
    .await
    .unwrap();
    assert!(done.status.success(), "{done:?}");
    let answer: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    let push = ws.push().await;
    assert_eq!(push["push"]["channel"], json!("chat"), "{push}");
    assert_eq!(
        push["push"]["pub"]["data"],
        json!({"text": "hello"}),
        "{push}"
    );

    // The next run generates other secrets: this token stops working there.
    drop(server);
    let port = free_port();
    let p = port.to_string();
    let server = Running::start(&dir, &["-a", "127.0.0.1", "-p", &p], &[], port);
    server.wait_output("curl ", Duration::from_secs(5)).await;
    assert_eq!(try_connect_v2(&server.ws_url(), &token).await, Err(3500));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_config_that_lacks_things_still_says_what_is_missing() {
    let dir = scratch();
    let port = free_port();
    let cfg = write(
        &dir,
        "c.json",
        &json!({"address": "127.0.0.1", "port": port}).to_string(),
    );
    let server = Running::start(&dir, &["-c", s(&cfg)], &[], port);
    let out = server
        .wait_output("token_hmac_secret_key is not set", Duration::from_secs(5))
        .await;
    assert!(!out.contains("curl "), "{out}");
}

// ---------------------------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------------------------

fn v6_yaml(port: u16, secret: &str, publish: bool) -> String {
    format!(
        "http_server:\n  address: 127.0.0.1\n  port: {port}\nclient:\n  token:\n    \
         hmac_secret_key: {secret}\nhttp_api:\n  key: api-1\nchannel:\n  namespaces:\n    \
         - name: chat\n      allow_subscribe_for_client: true\n      \
         allow_publish_for_subscriber: {publish}\n"
    )
}

#[tokio::test]
async fn sighup_reloads_secret_and_channel_options_without_dropping_connections() {
    let dir = scratch();
    let port = free_port();
    let path = write(&dir, "config.yaml", &v6_yaml(port, "old-secret", false));
    let server = Running::start(&dir, &["-c", s(&path)], &[], port);
    let c = s(&path);
    let old_token = token_of(&run(&dir, &["gentoken", "-c", c, "-u", "u1"], &[]));

    let mut ws = Ws::open(&server.ws_url()).await;
    ws.connect_v2(&old_token).await;
    let rep = ws.subscribe_v2("chat:room").await;
    assert!(rep.get("error").is_none(), "{rep}");
    let rep = ws
        .call_v2("publish", json!({"channel": "chat:room", "data": {"a": 1}}))
        .await;
    assert_eq!(rep["error"]["code"], json!(103), "publishing is off: {rep}");

    std::fs::write(&path, v6_yaml(port, "new-secret", true)).unwrap();
    let new_token = token_of(&run(&dir, &["gentoken", "-c", c, "-u", "u2"], &[]));
    assert_eq!(
        try_connect_v2(&server.ws_url(), &new_token).await,
        Err(3500)
    );
    server.signal("HUP");
    server
        .wait_output("configuration reloaded", Duration::from_secs(5))
        .await;

    // The new secret lets new connections in, the old one no longer does.
    assert!(try_connect_v2(&server.ws_url(), &new_token).await.is_ok());
    assert_eq!(
        try_connect_v2(&server.ws_url(), &old_token).await,
        Err(3500)
    );
    // The connection made with the old secret is still up, and sees the new channel options.
    server
        .api(
            "api-1",
            "publish",
            json!({"channel": "chat:room", "data": {"b": 2}}),
        )
        .await;
    let push = ws.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"b": 2}), "{push}");
    let rep = ws
        .call_v2("publish", json!({"channel": "chat:room", "data": {"c": 3}}))
        .await;
    assert!(rep.get("error").is_none(), "publishing is on now: {rep}");
    let push = ws.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"c": 3}), "{push}");

    // A broken file is reported and changes nothing.
    std::fs::write(&path, "client: [").unwrap();
    server.signal("HUP");
    server
        .wait_output("configuration not reloaded", Duration::from_secs(5))
        .await;
    assert!(try_connect_v2(&server.ws_url(), &new_token).await.is_ok());
    ws.assert_open_for(Duration::from_millis(200)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn token_audience_and_issuer_reach_gentoken_checktoken_and_sighup() {
    let dir = scratch();
    let port = free_port();
    let cfg = |aud: &str| {
        format!(
            r#"{{"address":"127.0.0.1","port":{port},"token_hmac_secret_key":"k",
            "token_audience":"{aud}","token_issuer":"https://app.example"}}"#
        )
    };
    let path = write(&dir, "config.json", &cfg("a1"));
    let c = s(&path);
    let out = run(&dir, &["checkconfig", "-c", c], &[]);
    out.assert_ok();
    assert!(
        !out.stderr.contains("token_audience"),
        "no warning: {out:#?}"
    );
    let server = Running::start(&dir, &["-c", c], &[], port);
    // gentoken mints tokens with the configured aud and iss; checktoken checks them.
    let t1 = token_of(&run(&dir, &["gentoken", "-c", c, "-u", "u1"], &[]));
    run(&dir, &["checktoken", "-c", c, &t1], &[]).assert_ok();
    assert!(try_connect_v2(&server.ws_url(), &t1).await.is_ok());
    let no_iss = jwt_with("HS256", b"k", &json!({"sub": "u1", "aud": "a1"}));
    run(&dir, &["checktoken", "-c", c, &no_iss], &[]).assert_one_line_error("token is not valid");
    assert_eq!(try_connect_v2(&server.ws_url(), &no_iss).await, Err(3500));

    // SIGHUP applies a new audience like a new secret.
    std::fs::write(&path, cfg("a2")).unwrap();
    let t2 = token_of(&run(&dir, &["gentoken", "-c", c, "-u", "u2"], &[]));
    assert_eq!(try_connect_v2(&server.ws_url(), &t2).await, Err(3500));
    server.signal("HUP");
    server
        .wait_output("configuration reloaded", Duration::from_secs(5))
        .await;
    assert!(try_connect_v2(&server.ws_url(), &t2).await.is_ok());
    assert_eq!(try_connect_v2(&server.ws_url(), &t1).await, Err(3500));
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Proxies to the backend
// ---------------------------------------------------------------------------------------------

const PROXY_V6: &str = r#"
client:
  proxy:
    connect:
      enabled: true
      endpoint: http://127.0.0.1:1/connect
      http_headers: [Cookie]
channel:
  proxy:
    subscribe:
      endpoint: http://127.0.0.1:1/subscribe
  namespaces:
    - name: chat
      allow_subscribe_for_client: true
      subscribe_proxy_enabled: true
    - name: shop
      allow_subscribe_for_client: true
      publish_proxy_enabled: true
      publish_proxy_name: shop-proxy
rpc:
  without_namespace:
    proxy_enabled: true
    proxy_name: shop-proxy
proxies:
  - name: shop-proxy
    endpoint: grpc://127.0.0.1:1
    timeout: 2s
"#;

#[test]
fn checkconfig_validates_the_proxies_of_both_generations() {
    let dir = scratch();
    let v6 = write(&dir, "p6.yaml", PROXY_V6);
    let out = run(&dir, &["checkconfig", "-c", s(&v6)], &[]);
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "no warning: {out:#?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let p = &v["proxy"];
    assert_eq!(p["generation"], json!("6.x"), "{p}");
    assert_eq!(
        p["connect"]["endpoint"],
        json!("http://127.0.0.1:1/connect")
    );
    assert_eq!(p["connect"]["http_headers"], json!(["cookie"]));
    assert_eq!(p["proxies"][0]["transport"], json!("grpc"));
    assert_eq!(
        p["rpc_without_namespace"]["proxy_name"],
        json!("shop-proxy")
    );
    assert_eq!(
        v["namespaces"][1]["publish_proxy_name"],
        json!("shop-proxy")
    );

    let v2 = write(
        &dir,
        "p2.json",
        r#"{"proxy_connect_endpoint": "http://127.0.0.1:1/c", "proxy_connect_timeout": 2,
            "proxy_extra_http_headers": ["X-App"],
            "namespaces": [{"name": "chat", "proxy_subscribe": true}]}"#,
    );
    let out = run(&dir, &["checkconfig", "-c", s(&v2)], &[]);
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "no warning: {out:#?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["proxy"]["generation"], json!("2.x"));
    assert_eq!(v["proxy"]["connect"]["timeout"], json!("2s"));
    let headers = v["proxy"]["connect"]["http_headers"].as_array().unwrap();
    assert!(headers.contains(&json!("cookie")) && headers.contains(&json!("x-app")));
    assert_eq!(v["namespaces"][0]["proxy_subscribe"], json!(true));

    let env = [
        ("CENTRIFUGO_CLIENT_PROXY_CONNECT_ENABLED", "true"),
        (
            "CENTRIFUGO_CLIENT_PROXY_CONNECT_ENDPOINT",
            "http://127.0.0.1:1/e",
        ),
    ];
    let out = run(&dir, &["checkconfig"], &env);
    out.assert_ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["proxy"]["connect"]["endpoint"],
        json!("http://127.0.0.1:1/e")
    );

    // Valid keys, but the connect proxy cannot send a header with a space in its name.
    let bad_header = PROXY_V6.replace(
        "      http_headers: [Cookie]\n",
        "      http_headers: [Cookie]\n      http:\n        static_headers: {\"bad header\": x}\n",
    );
    let broken = [
        (
            PROXY_V6.replace("publish_proxy_name: shop-proxy", "publish_proxy_name: nope"),
            r#"namespace "shop" publish_proxy_name: unknown proxy name "nope""#,
        ),
        (
            PROXY_V6.replace("      endpoint: http://127.0.0.1:1/connect\n", ""),
            "client.proxy.connect: endpoint is required",
        ),
        (
            PROXY_V6.replace(
                "      endpoint: http://127.0.0.1:1/subscribe\n",
                "      timeout: 1s\n",
            ),
            r#"channel.proxy.subscribe: endpoint is required (namespace "chat" has subscribe_proxy_enabled on)"#,
        ),
        (
            format!("{PROXY_V6}proxy_rpc_endpoint: http://127.0.0.1:1/rpc\n"),
            r#"proxy keys of two generations are set: "proxy_rpc_endpoint""#,
        ),
        (
            PROXY_V6.replace("publish_proxy_enabled", "subscribe_stream_proxy_enabled"),
            r#"config key "subscribe_stream_proxy_enabled" in namespace "shop": subscribe stream proxies are not supported"#,
        ),
        (
            bad_header.clone(),
            "cannot set up the proxies to the backend",
        ),
        (
            "proxy_connect_endpoint: http://a\nproxy_connect_timeout: 0\n".to_string(),
            r#"config key "proxy_connect_timeout": must be greater than 0"#,
        ),
        (
            "proxy_http_headers: [Cookie]\n".to_string(),
            r#"config key "proxy_http_headers": Centrifugo 3-5 proxy keys are not supported"#,
        ),
    ];
    for (text, want) in broken {
        let file = write(&dir, "broken.yaml", &text);
        run(&dir, &["checkconfig", "-c", s(&file)], &[]).assert_one_line_error(want);
    }
    let env = [("CENTRIFUGO_CLIENT_PROXY_CONNECT_ENABLED", "true")];
    run(&dir, &["checkconfig"], &env)
        .assert_one_line_error("client.proxy.connect: endpoint is required");
    // The server refuses to start with proxies it cannot build, before listening.
    let port = free_port().to_string();
    let text = format!("port: {port}\n{bad_header}");
    let file = write(&dir, "server.yaml", &text);
    run(&dir, &["-c", s(&file)], &[])
        .assert_one_line_error("cannot set up the proxies to the backend");
    let _ = std::fs::remove_dir_all(dir);
}

/// A connect-proxy backend on a free port: answers every POST with user `u1` and records the
/// `cookie` header of each call.
async fn cookie_backend() -> (u16, Arc<Mutex<Vec<String>>>) {
    use axum::routing::post as route_post;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/connect",
        route_post(move |headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                let cookie = headers.get("cookie").and_then(|v| v.to_str().ok());
                record
                    .lock()
                    .unwrap()
                    .push(cookie.unwrap_or("").to_string());
                axum::Json(json!({"result": {"user": "u1"}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// A v2 connect without a token over `ws`: whether the server accepted it.
async fn connects_without_token<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let frame = json!({"id": 1, "connect": {}}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    match next.expect("a reply within 5 s") {
        Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("no connect reply: {other:?}"),
    }
}

/// The upgrade request's headers reach the connect proxy whichever way the upgrade arrives:
/// as the connection's first request (the fast path) or after a keep-alive request (hyper).
#[tokio::test]
async fn a_proxy_config_installs_the_backend_on_both_upgrade_paths() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (backend, seen) = cookie_backend().await;
    let dir = scratch();
    let port = free_port();
    let cfg = json!({"address": "127.0.0.1", "port": port, "health": true,
        "proxy_connect_endpoint": format!("http://127.0.0.1:{backend}/connect")});
    let path = write(&dir, "config.json", &cfg.to_string());
    let server = Running::start(&dir, &["-c", s(&path)], &[], port);
    let request = |cookie: &str| {
        let mut r = server.ws_url().into_client_request().unwrap();
        r.headers_mut().insert("cookie", cookie.parse().unwrap());
        r
    };

    let (mut ws, _) = tokio_tungstenite::connect_async(request("s=fast"))
        .await
        .unwrap();
    let reply = connects_without_token(&mut ws).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request("s=hyper"), tcp)
        .await
        .unwrap();
    let reply = connects_without_token(&mut ws).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    assert_eq!(*seen.lock().unwrap(), ["s=fast", "s=hyper"]);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn checkconfig_refuses_what_the_engine_would_refuse_at_start() {
    let dir = scratch();
    for (text, want) in [
        (
            r#"{"broker": {"enabled": true, "type": "nats", "nats": {"tls": {"enabled": true, "server_ca_pem": "/nonexistent/ca.pem"}}}}"#,
            "nats_tls_server_ca_pem",
        ),
        (
            r#"{"broker": {"enabled": true, "type": "nats", "nats": {"allow_wildcards": true}}}"#,
            "allow_wildcards",
        ),
        (
            r#"{"engine": {"type": "redis", "redis": {"address": "127.0.0.1:6379", "tls": {"enabled": true, "cert_pem": "/nonexistent/c.pem", "key_pem": "/nonexistent/k.pem"}}}}"#,
            "redis_tls_cert_pem",
        ),
        (
            r#"{"engine": "redis", "redis_sharded_pub_sub_partitions": 8, "redis_cluster_addrs": ["a:1", "b:2"]}"#,
            "redis_sharded_pub_sub_partitions",
        ),
    ] {
        let file = write(&dir, "bad.json", text);
        run(&dir, &["checkconfig", "-c", s(&file)], &[]).assert_one_line_error(want);
    }
}
