//! Helpers for the NATS broker tests: a real `nats-server` on a free port of 127.0.0.1, killed
//! by PID when its guard is dropped (on panic too) and restartable on the same port, and Rotor
//! nodes configured for it in either configuration generation.
//!
//! Tests that need `nats-server` skip (with a message) when it is not installed, unless
//! `ROTOR_REQUIRE_NATS=1` or `CI` is set, where a missing binary fails the test.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{free_port, Server};

/// Whether `nats-server` can run here; panics when it must (CI) but cannot.
pub fn nats_available() -> bool {
    let ok = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let required =
            std::env::var_os("ROTOR_REQUIRE_NATS").is_some() || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "nats-server is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipping: nats-server is not installed");
    }
    ok
}

/// One `nats-server` process.
pub struct NatsProcess {
    pub port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsProcess {
    pub fn start() -> NatsProcess {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("rotor-nats-{}-{port}.log", std::process::id()));
        let mut p = NatsProcess {
            port,
            log,
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            assert!(
                !exited,
                "nats-server on port {} exited at start; log:\n{}",
                self.port,
                self.log()
            );
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} does not accept connections",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "----- nats log (port {}) -----\n{}",
                self.port,
                tail.join("\n")
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Channel options of every NATS test node: presence and join/leave, no history.
pub fn channel_options() -> Value {
    json!({
        "presence": true,
        "join_leave": true,
        "publish": true,
        "client_channel_position_check_delay": 1,
        "health": true,
        "log_level": "debug",
    })
}

/// A 2.x-configured Rotor node: `broker: nats`, `nats_url`, plus `extra` keys.
pub async fn node_v2x(nats: &NatsProcess, name: &str, extra: Value) -> Server {
    let mut cfg = channel_options();
    let obj = cfg.as_object_mut().unwrap();
    obj.insert("broker".into(), json!("nats"));
    obj.insert("nats_url".into(), json!(nats.url()));
    obj.insert("name".into(), json!(name));
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    Server::start(cfg).await
}

/// A v6-configured Rotor node: the `broker` section with NATS, plus `extra` keys.
pub async fn node_v6(nats: &NatsProcess, name: &str, extra: Value) -> Server {
    let mut cfg = channel_options();
    let obj = cfg.as_object_mut().unwrap();
    obj.insert(
        "broker".into(),
        json!({"enabled": true, "type": "nats", "nats": {"url": nats.url(), "prefix": "rotor-v6"}}),
    );
    obj.insert("name".into(), json!(name));
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    Server::start(cfg).await
}

/// A Rotor process started with a config file and extra environment variables (the common
/// `Server` takes no environment); killed by PID on drop.
pub struct EnvNode {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl EnvNode {
    pub fn start(config: Value, env: &[(&str, &str)]) -> EnvNode {
        let port = free_port();
        let mut cfg = crate::common::base_config(port);
        for (k, v) in config.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let dir =
            std::env::temp_dir().join(format!("rotor-nats-env-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        let out = std::fs::File::create(dir.join("out.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("-c")
            .arg(dir.join("config.json"))
            .current_dir(&dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn rotor");
        let mut node = EnvNode { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = node.child.try_wait().ok().flatten().is_some();
            assert!(!exited, "rotor exited at start:\n{}", node.output());
            assert!(
                Instant::now() < deadline,
                "rotor did not listen:\n{}",
                node.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    /// `POST /api` publish (2.x shape); the reply body.
    pub async fn publish(&self, channel: &str, data: Value) -> String {
        let body = json!({"method": "publish", "params": {"channel": channel, "data": data}});
        let auth = format!("apikey {}", crate::common::API_KEY);
        let url = format!("http://127.0.0.1:{}/api", self.port);
        crate::common::post(&url, &[("Authorization", auth.as_str())], body.to_string())
            .await
            .body
    }
}

impl Drop for EnvNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- rotor (env) output -----\n{}", self.output());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
