//! Helpers for the Redis-engine tests: real `redis-server` / `redis-sentinel` processes on free
//! ports of 127.0.0.1 (no persistence: `--save '' --appendonly no`), a three-master local Redis
//! Cluster, a master + replica + sentinel group, Rotor nodes configured for them, and a few
//! `redis-cli` calls. Every process is killed when its guard is dropped, on panic too.
//!
//! Tests that need `redis-server` skip (with a message) when it is not installed, unless
//! `ROTOR_REQUIRE_REDIS=1` or `CI` is set, where a missing binary fails the test.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{free_port, Server};

/// Whether `redis-server` can run here; panics when it must (CI) but cannot.
pub fn redis_available() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let required =
            std::env::var_os("ROTOR_REQUIRE_REDIS").is_some() || std::env::var_os("CI").is_some();
        assert!(
            !required,
            "redis-server is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipping: redis-server is not installed");
    }
    ok
}

/// `redis-cli -p PORT args...`, stdout trimmed (panics if redis-cli cannot run).
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rotor-redis-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("create redis scratch dir");
    dir
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// One `redis-server` (or sentinel) process.
pub struct RedisProcess {
    pub port: u16,
    /// `requirepass` of the server, used by [`RedisProcess::cli`].
    pub password: Option<String>,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
    sentinel: bool,
}

impl RedisProcess {
    /// A plain server (no persistence) on a free port.
    pub fn start() -> RedisProcess {
        Self::start_with(free_port(), &[])
    }

    /// A server on `port` with extra arguments.
    pub fn start_with(port: u16, extra: &[&str]) -> RedisProcess {
        let dir = scratch("server");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.to_str().unwrap(),
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_string());
        let mut p = RedisProcess {
            port,
            password,
            args,
            dir,
            child: None,
            sentinel: false,
        };
        p.spawn();
        p
    }

    /// A sentinel on a free port monitoring `master_name` at `master_port` (quorum 1, down
    /// after 1 s).
    pub fn sentinel(master_name: &str, master_port: u16) -> RedisProcess {
        let port = free_port();
        let dir = scratch("sentinel");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile sentinel.log\n\
                 sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 5000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut p = RedisProcess {
            port,
            password: None,
            args: vec![conf.to_str().unwrap().to_string(), "--sentinel".into()],
            dir,
            child: None,
            sentinel: true,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Our process must be the one answering (a parallel test may have taken the port).
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            assert!(
                !exited,
                "redis-server on port {} exited at start; log:\n{}",
                self.port,
                self.log()
            );
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis on port {} did not answer PING; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let name = if self.sentinel {
            "sentinel.log"
        } else {
            "redis.log"
        };
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// SIGKILL (no chance to save or say goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same arguments (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        match &self.password {
            Some(pw) => {
                let mut all = vec!["-a", pw, "--no-auth-warning"];
                all.extend(args);
                cli(self.port, &all)
            }
            None => cli(self.port, args),
        }
    }

    /// Whether the process is still running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- redis log (port {}) -----\n{}",
                self.port,
                self.log()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters, no replicas, all 16384 slots assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisProcess>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        Self::start_custom(0, &[])
    }

    /// Three masters with one replica each (`--cluster-replicas 1`), a 1 s node timeout (a
    /// dead master is replaced within a few seconds), every replica in sync.
    pub fn start_with_replicas() -> RedisCluster {
        Self::start_custom(1, &[])
    }

    /// Three masters, `replicas` replicas each, `extra` arguments on every node (a
    /// `--requirepass pw` also sets `--masterauth` and is used by `redis-cli`).
    pub fn start_custom(replicas: usize, extra: &[&str]) -> RedisCluster {
        let timeout = if replicas > 0 { "1000" } else { "2000" };
        let mut args_all: Vec<&str> = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            timeout,
            "--cluster-replica-validity-factor",
            "0",
            "--repl-diskless-sync-delay",
            "0",
        ];
        args_all.extend(extra);
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_string());
        if let Some(pw) = &password {
            args_all.extend(["--masterauth", pw.as_str()]);
        }
        let nodes: Vec<RedisProcess> = (0..3 * (1 + replicas))
            .map(|_| RedisProcess::start_with(free_cluster_port(), &args_all))
            .collect();
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(RedisProcess::addr));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        if let Some(pw) = &password {
            args.extend(["-a".into(), pw.clone(), "--no-auth-warning".into()]);
        }
        let out = Command::new("redis-cli")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        let cluster = RedisCluster { nodes };
        while cluster.pairs().len() < 3 * replicas {
            assert!(Instant::now() < deadline, "replicas not attached");
            std::thread::sleep(Duration::from_millis(50));
        }
        for (_, r) in cluster.pairs() {
            let replica = &cluster.nodes[r];
            while !replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
            {
                assert!(
                    Instant::now() < deadline,
                    "replica {} not in sync",
                    replica.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// A node that is still running (for questions to the cluster).
    pub fn live(&self) -> &RedisProcess {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node")
    }

    /// (master, replica) index pairs into `nodes`, from `CLUSTER NODES` of a live node.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let listing = self.live().cli(&["CLUSTER", "NODES"]);
        let index = |addr: &str| {
            let port: u16 = addr.split(['@', ':']).nth(1)?.parse().ok()?;
            self.nodes.iter().position(|n| n.port == port)
        };
        let mut by_id = std::collections::HashMap::new();
        for l in listing.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() > 3 {
                by_id.insert(f[0].to_string(), f[1].to_string());
            }
        }
        let mut out = Vec::new();
        for l in listing.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() > 3 && f[2].contains("slave") && !f[2].contains("fail") {
                let (Some(m), Some(r)) = (by_id.get(f[3]).and_then(|a| index(a)), index(f[1]))
                else {
                    continue;
                };
                out.push((m, r));
            }
        }
        out
    }

    /// The replica of master `m` (index into `nodes`).
    pub fn replica_of(&self, m: usize) -> usize {
        self.pairs()
            .into_iter()
            .find(|(mm, _)| *mm == m)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("master {m} has no replica"))
    }

    /// Index into `nodes` of the node owning `key`'s slot.
    pub fn index_for(&self, key: &str) -> usize {
        let port = self.node_for(key).port;
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }

    /// Waits until node `r` is a master and every live node says `cluster_state:ok`.
    pub fn wait_promoted(&self, r: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let promoted = self.nodes[r].cli(&["ROLE"]).starts_with("master");
            let ok = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if promoted && ok {
                return;
            }
            assert!(Instant::now() < deadline, "replica {r} was not promoted");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisProcess::addr).collect()
    }

    /// The node owning `key`'s slot (asks node 0; a MOVED answer names the owner).
    pub fn node_for(&self, key: &str) -> &RedisProcess {
        let asked = self.live();
        let out = asked.cli(&["EXISTS", key]);
        let port = match out.strip_prefix("MOVED ") {
            Some(rest) => rest
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
                .unwrap_or_else(|| panic!("cannot parse {out:?}")),
            None => asked.port,
        };
        self.nodes.iter().find(|n| n.port == port).unwrap()
    }
}

impl RedisCluster {
    /// The master owning `slot`: the node whose own `CLUSTER NODES` line lists it.
    pub fn owner_of_slot(&self, slot: u16) -> &RedisProcess {
        for n in &self.nodes {
            let nodes = n.cli(&["CLUSTER", "NODES"]);
            let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
                continue;
            };
            let owns = me.split(' ').skip(8).any(|r| match r.split_once('-') {
                Some((lo, hi)) => {
                    lo.parse::<u16>().is_ok_and(|lo| lo <= slot)
                        && hi.parse::<u16>().is_ok_and(|hi| slot <= hi)
                }
                None => r.parse::<u16>() == Ok(slot),
            });
            if owns {
                return n;
            }
        }
        panic!("no master owns slot {slot}");
    }

    /// Moves `slot` with its keys to node `to` (index into `nodes`), the way `redis-cli
    /// --cluster reshard` does: IMPORTING on the target, MIGRATING on the source, MIGRATE of
    /// every key, then SETSLOT NODE on the target, the source and every other master.
    pub fn migrate_slot(&self, slot: u16, to: usize) {
        let src = self.owner_of_slot(slot);
        let dst = &self.nodes[to];
        assert_ne!(src.port, dst.port, "slot {slot} is already on node {to}");
        let src_id = src.cli(&["CLUSTER", "MYID"]);
        let dst_id = dst.cli(&["CLUSTER", "MYID"]);
        let s = slot.to_string();
        assert_eq!(
            dst.cli(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id]),
            "OK"
        );
        assert_eq!(
            src.cli(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id]),
            "OK"
        );
        loop {
            let keys = src.cli(&["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = dst.port.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            let out = src.cli(&args);
            assert!(out == "OK" || out == "NOKEY", "MIGRATE: {out}");
        }
        for n in std::iter::once(dst).chain(std::iter::once(src)) {
            assert_eq!(n.cli(&["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]), "OK");
        }
        for n in &self.nodes {
            if n.port != src.port && n.port != dst.port {
                n.cli(&["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]);
            }
        }
    }
}

/// The channel options every Redis test node gets (`chat:` namespace-free top level).
pub fn channel_options() -> Value {
    json!({
        "presence": true,
        "join_leave": true,
        "history_size": 2000,
        "history_lifetime": 300,
        "history_recover": true,
        "publish": true,
        "v3_use_offset": true,
        "client_channel_position_check_delay": 1,
    })
}

/// A Rotor node on the Redis engine: `redis` holds the `redis_*` keys.
pub async fn node(redis: Value, name: &str) -> Server {
    let mut cfg = channel_options();
    let obj = cfg.as_object_mut().unwrap();
    obj.insert("engine".into(), json!("redis"));
    obj.insert("name".into(), json!(name));
    obj.insert("health".into(), json!(true));
    obj.insert("log_level".into(), json!("debug"));
    for (k, v) in redis.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    Server::start(cfg).await
}

/// `GET /health` status.
pub async fn health(server: &Server) -> u16 {
    match crate::common::http()
        .get(server.http_url("/health"))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Polls `f` every 50 ms until it returns true; panics with `what` after `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
