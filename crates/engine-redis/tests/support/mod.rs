//! Shared harness of the Redis engine tests: a real `redis-server` on a free port (killed on
//! drop), an engine connected to it, and a handler that records what the broker delivers.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rotor_core::engine::{Broker, BrokerEventHandler, PublishOptions};
use rotor_engine_redis::{RedisConfig, RedisEngine};
use rotor_protocol::{ClientInfo, Publication};

pub struct Redis {
    pub port: u16,
    pub child: Option<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn redis_available() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("ROTOR_REQUIRE_REDIS").is_none(),
            "redis-server is not installed"
        );
        eprintln!("skipping: redis-server is not installed");
    }
    ok
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(self.port, &["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn engine(&self) -> RedisEngine {
        let mut cfg = RedisConfig::single(&format!("127.0.0.1:{}", self.port)).unwrap();
        cfg.ping_interval = Duration::from_millis(200);
        RedisEngine::start(cfg)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Default)]
pub struct Collector {
    pub publications: Mutex<Vec<(String, Publication)>>,
    pub joins: Mutex<Vec<(String, ClientInfo)>>,
    pub leaves: Mutex<Vec<(String, ClientInfo)>>,
    pub controls: Mutex<Vec<Vec<u8>>>,
    pub reconnects: Mutex<usize>,
}

impl BrokerEventHandler for Collector {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        self.publications
            .lock()
            .push((channel.to_owned(), publication));
    }
    fn handle_join(&self, channel: &str, info: ClientInfo) {
        self.joins.lock().push((channel.to_owned(), info));
    }
    fn handle_leave(&self, channel: &str, info: ClientInfo) {
        self.leaves.lock().push((channel.to_owned(), info));
    }
    fn handle_control(&self, data: &[u8]) {
        self.controls.lock().push(data.to_vec());
    }
    fn handle_reconnect(&self) {
        *self.reconnects.lock() += 1;
    }
}

pub async fn ready(redis: &Redis) -> (RedisEngine, Arc<Collector>) {
    let engine = redis.engine();
    assert!(
        engine.wait_ready(Duration::from_secs(5)).await,
        "engine ready"
    );
    let c = Arc::new(Collector::default());
    engine.broker.set_handler(c.clone());
    (engine, c)
}

pub fn opts(size: usize, lifetime: u64) -> PublishOptions {
    PublishOptions {
        history_size: size,
        history_lifetime: lifetime,
        ..Default::default()
    }
}

pub async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn info(user: &str, client: &str) -> ClientInfo {
    ClientInfo {
        user: user.into(),
        client: client.into(),
        conn_info: Some(Bytes::from_static(b"{\"n\":1}")),
        chan_info: None,
    }
}

pub fn offsets(p: &[Publication]) -> Vec<u64> {
    p.iter().map(|p| p.offset).collect()
}
