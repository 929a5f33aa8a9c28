//! The Redis engine on a Redis Cluster of three masters with one replica each, under master
//! failover (issue 17):
//!
//! * `seed_master_killed_mid_publish_nothing_missing_silently`: three Rotor nodes whose only
//!   configured seed is the master that is SIGKILLed mid-publish; its replica is promoted. v1 and
//!   v2 subscribers on every node, on a channel of the killed master's slots and on one of
//!   another master, follow like the real clients (reconnect / resubscribe with recovery).
//!   Per subscriber: acknowledged, delivered, signalled (`recovered: false` after the ack) and
//!   silently missing publications; the last must be 0. Delivery resumes within a bound,
//!   `/health` answers 503 during the outage and 200 after, on every node.
//! * `lossy_failover_answers_recovered_false`: the replica is cut off from its master (it cannot
//!   resync: wrong `masterauth`), publications it never got are acknowledged, the master dies and
//!   the replica takes over (`CLUSTER FAILOVER TAKEOVER`): the stream really lost entries (fewer
//!   in history), and recovery from the last position answers `recovered: false` with a new
//!   epoch, not `true`; a live subscriber is told (v2 unsubscribe 2500).
//! * `cluster_config_forms_and_password`: the 2.x form (one element of comma-separated seeds)
//!   and the v6 `redis+cluster://` address and `cluster_address`, on a password-protected
//!   cluster.
//! * `cluster_over_tls`: three TLS-only masters (clients, bus, replication), `redis_tls`.

mod common;
mod redis_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redis_support::*;
use serde_json::{json, Value};

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    name: String,
    channel: String,
    numbers: Vec<u64>,
    /// Instants of every `recovered: false`.
    told: Vec<Instant>,
    recovered: usize,
    interruptions: usize,
}

fn number(data: &Value) -> u64 {
    data["n"].as_u64().expect("numbered message")
}

async fn connect(server: &Server, user: &str, v2: bool, stop: &AtomicBool) -> Option<Ws> {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut ws) = Ws::try_open(&server.ws_url()).await {
            let id = ws.take_id();
            let cmd = if v2 {
                json!({"id": id, "connect": {"token": conn_token(user)}})
            } else {
                json!({"id": id, "params": {"token": conn_token(user)}})
            };
            ws.send(&cmd).await;
            if let Some(Event::Value(v)) = ws.next_event_within(Duration::from_secs(2)).await {
                if v.get("error").is_none() && v["id"] == json!(id) {
                    return Some(ws);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn subscribe(
    ws: &mut Ws,
    channel: &str,
    v2: bool,
    pos: Option<&(u64, String)>,
    stop: &AtomicBool,
) -> Option<Value> {
    while !stop.load(Ordering::Relaxed) {
        let mut params = json!({"channel": channel});
        if let Some((offset, epoch)) = pos {
            params["recover"] = json!(true);
            params["offset"] = json!(offset);
            params["epoch"] = json!(epoch);
        }
        let id = ws.take_id();
        if v2 {
            ws.send(&json!({"id": id, "subscribe": params})).await;
        } else {
            ws.send(&json!({"id": id, "method": 1, "params": params}))
                .await;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ws.next_event_within(left).await {
                Some(Event::Value(v)) if v["id"] == json!(id) => {
                    if v.get("error").is_some() {
                        break;
                    }
                    let key = if v2 { "subscribe" } else { "result" };
                    return Some(v[key].clone());
                }
                Some(Event::Value(_)) => continue,
                Some(Event::Closed(..)) | None => return None,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Follows `channel` until `stop`, reconnecting and recovering like the real clients.
async fn subscriber(
    server: Arc<Server>,
    name: String,
    channel: String,
    v2: bool,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen {
        name: name.clone(),
        channel: channel.clone(),
        ..Seen::default()
    };
    let mut pos: Option<(u64, String)> = None;
    'session: while !stop.load(Ordering::Relaxed) {
        let Some(mut ws) = connect(&server, &name, v2, &stop).await else {
            break;
        };
        loop {
            let Some(res) = subscribe(&mut ws, &channel, v2, pos.as_ref(), &stop).await else {
                continue 'session;
            };
            if pos.is_some() {
                if res["recovered"] == json!(true) {
                    seen.recovered += 1;
                } else {
                    seen.told.push(Instant::now());
                }
            }
            for p in res["publications"].as_array().into_iter().flatten() {
                seen.numbers.push(number(&p["data"]));
            }
            let epoch = res["epoch"].as_str().unwrap_or_default().to_string();
            pos = Some((res["offset"].as_u64().unwrap_or(0), epoch));
            loop {
                if stop.load(Ordering::Relaxed) {
                    break 'session;
                }
                match ws.next_event_within(Duration::from_millis(100)).await {
                    None => continue,
                    Some(Event::Closed(..)) => {
                        seen.interruptions += 1;
                        continue 'session;
                    }
                    Some(Event::Value(v)) => {
                        let (publication, unsubscribed) = if v2 {
                            let push = &v["push"];
                            (push.get("pub").cloned(), push.get("unsubscribe").is_some())
                        } else {
                            let r = &v["result"];
                            let is_pub = v.get("id").is_none() && r.get("type").is_none();
                            (is_pub.then(|| r["data"].clone()), false)
                        };
                        if let Some(p) = publication {
                            seen.numbers.push(number(&p["data"]));
                            if let Some((offset, _)) = pos.as_mut() {
                                *offset = p["offset"].as_u64().unwrap_or(*offset);
                            }
                        } else if unsubscribed {
                            seen.interruptions += 1;
                            break;
                        }
                    }
                }
            }
        }
    }
    seen
}

/// A channel name (`c<i>`) whose slot lives on master `on` (or, with `on_other`, not on it).
fn channel_on(cluster: &RedisCluster, master: usize, on: bool) -> String {
    (0..500)
        .map(|i| format!("c{i}"))
        .find(|c| (cluster.index_for(&format!("centrifugo.stream.{{{c}}}")) == master) == on)
        .expect("a channel on the wanted master")
}

async fn publish_ok(client: &reqwest::Client, url: &str, channel: &str, n: u64) -> bool {
    let body = json!({"method": "publish", "params": {"channel": channel, "data": {"n": n}}});
    match client
        .post(url)
        .header("Authorization", format!("apikey {API_KEY}"))
        .timeout(Duration::from_secs(5))
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default().trim() == "{}",
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_master_killed_mid_publish_nothing_missing_silently() {
    if !redis_available() {
        return;
    }
    let mut cluster = RedisCluster::start_with_replicas();
    let pairs = cluster.pairs();
    assert_eq!(
        pairs.len(),
        3,
        "three masters with a replica each: {pairs:?}"
    );
    let (victim, replica) = pairs[0];
    let killed_ch = channel_on(&cluster, victim, true);
    let other_ch = channel_on(&cluster, victim, false);
    // The only seed every node is given is the master that will die.
    let cfg = json!({"redis_cluster_address": [cluster.nodes[victim].addr()]});
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(Arc::new(node(cfg.clone(), name).await));
    }
    for n in &nodes {
        assert_eq!(health(n).await, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for (i, server) in nodes.iter().enumerate() {
        for ch in [&killed_ch, &other_ch] {
            for v2 in [false, true] {
                let name = format!("n{i}-{}-{ch}", if v2 { "v2" } else { "v1" });
                subs.push(tokio::spawn(subscriber(
                    server.clone(),
                    name,
                    ch.clone(),
                    v2,
                    stop.clone(),
                )));
            }
        }
    }
    for ch in [&killed_ch, &other_ch] {
        wait_until(Duration::from_secs(10), "subscribers in", || async {
            let rep = api_v1(&nodes[0], "presence_stats", json!({"channel": ch})).await;
            rep[0]["result"]["num_clients"] == json!(6)
        })
        .await;
    }

    // /health of every node, polled throughout.
    let saw_503 = Arc::new([
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ]);
    let health_task = {
        let (nodes, stop, saw) = (nodes.clone(), stop.clone(), saw_503.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, n) in nodes.iter().enumerate() {
                    if health(n).await == 503 {
                        saw[i].store(true, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // The publisher: numbers 1..=COUNT on each channel, through node A; retried until acked.
    const COUNT: u64 = 200;
    let client = http();
    let url = nodes[0].http_url("/api");
    let mut acked_at: Vec<(Instant, Instant)> = Vec::new();
    let mut refused = 0u64;
    let mut killed_at = None;
    let started = Instant::now();
    for n in 1..=COUNT {
        if n == 60 {
            cluster.nodes[victim].kill();
            killed_at = Some(Instant::now());
        }
        let mut at = Vec::new();
        for ch in [&killed_ch, &other_ch] {
            while !publish_ok(&client, &url, ch, n).await {
                refused += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "publisher stuck at {n} on {ch}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            at.push(Instant::now());
        }
        acked_at.push((at[0], at[1]));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = killed_at.unwrap();
    let back_at = acked_at[59].0.max(acked_at[59].1);
    let outage = back_at - killed_at;
    cluster.wait_promoted(replica, Duration::from_secs(10));

    // Recoveries finish; every subscriber is back.
    for ch in [&killed_ch, &other_ch] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let rep = api_v1(&nodes[0], "presence_stats", json!({"channel": ch})).await;
            if rep[0]["result"]["num_clients"] == json!(6) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = health_task.await;

    let mut report = Vec::new();
    let mut silent_total = 0;
    for s in subs {
        let s = s.await.unwrap();
        let have: HashSet<u64> = s.numbers.iter().copied().collect();
        let mut signalled = 0;
        let mut silent = Vec::new();
        for n in 1..=COUNT {
            if have.contains(&n) {
                continue;
            }
            let (a, b) = acked_at[(n - 1) as usize];
            let acked = if s.channel == killed_ch { a } else { b };
            if s.told.iter().any(|t| *t >= acked) {
                signalled += 1;
            } else {
                silent.push(n);
            }
        }
        // Delivered in order (a `recovered: false` may repeat what the stream still holds).
        let mut last = 0;
        for n in &s.numbers {
            assert!(
                *n > last || !s.told.is_empty(),
                "{}: out of order: {n} after {last}",
                s.name
            );
            last = last.max(*n);
        }
        silent_total += silent.len();
        report.push(format!(
            "{}: acked {COUNT}, delivered {}, signalled {signalled}, silently missing {} {:?}; \
             told recovered:false {}x, recovered:true {}x, interruptions {}",
            s.name,
            have.len(),
            silent.len(),
            silent,
            s.told.len(),
            s.recovered,
            s.interruptions
        ));
    }
    eprintln!(
        "cluster failover: {} publications acked per channel; master killed at #60; \
         {refused} attempts refused; first ack after the kill {outage:?} later\n  {}",
        COUNT,
        report.join("\n  ")
    );
    assert_eq!(silent_total, 0, "publications silently missing");
    assert!(
        outage < Duration::from_secs(20),
        "delivery resumed {outage:?} after the kill"
    );
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            saw_503[i].load(Ordering::Relaxed),
            "node {i} /health reported the outage"
        );
        assert_eq!(health(n).await, 200, "node {i} healthy after the failover");
    }
}

/// The stream position (top offset, epoch) of `channel` as a v2 subscribe reports it.
async fn v2_subscribe(ws: &mut Ws, params: Value) -> Value {
    let id = ws.cmd_v2("subscribe", params).await;
    ws.reply(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lossy_failover_answers_recovered_false() {
    if !redis_available() {
        return;
    }
    let mut cluster = RedisCluster::start_with_replicas();
    let (victim, replica) = cluster.pairs()[0];
    let ch = channel_on(&cluster, victim, true);
    let seeds = cluster.addrs().join(",");
    let a = node(json!({"redis_cluster_addrs": [seeds]}), "node-a").await;
    assert_eq!(health(&a).await, 200);

    let (mut live, _) = a.v2_client("live").await;
    let rep = v2_subscribe(&mut live, json!({"channel": ch, "recover": true})).await;
    assert!(rep.get("error").is_none(), "{rep}");
    let before = rep["subscribe"]["epoch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!before.is_empty(), "stream epoch known: {rep}");
    for n in 1..=5 {
        assert!(publish_ok(&http(), &a.http_url("/api"), &ch, n).await);
    }
    // The replica holds those five; then it loses its master for good.
    let m = &cluster.nodes[victim];
    assert_eq!(m.cli(&["WAIT", "1", "5000"]), "1");
    let r = &cluster.nodes[replica];
    assert_eq!(r.cli(&["CONFIG", "SET", "masterauth", "wrong"]), "OK");
    r.cli(&["CLIENT", "KILL", "TYPE", "master"]);
    wait_until(Duration::from_secs(5), "replication cut", || async {
        r.cli(&["INFO", "replication"])
            .contains("master_link_status:down")
    })
    .await;
    // Three more, acknowledged but never replicated.
    for n in 6..=8 {
        assert!(publish_ok(&http(), &a.http_url("/api"), &ch, n).await);
    }
    for n in 1..=8u64 {
        let p = live.push().await;
        let p = &p["push"]["pub"];
        assert_eq!(p["data"]["n"], json!(n), "{p}");
        assert_eq!(p["offset"], json!(n), "{p}");
    }

    cluster.nodes[victim].kill();
    assert_eq!(
        cluster.nodes[replica].cli(&["CLUSTER", "FAILOVER", "TAKEOVER"]),
        "OK"
    );
    cluster.wait_promoted(replica, Duration::from_secs(15));
    wait_until(Duration::from_secs(15), "node healthy", || async {
        health(&a).await == 200
    })
    .await;

    // The promoted replica really lost entries 6..8.
    let hist = api_v1(&a, "history", json!({"channel": ch}))
        .await
        .remove(0);
    let kept = hist["result"]["publications"].as_array().unwrap().len();
    assert_eq!(kept, 5, "history after the lossy failover: {hist}");

    // Recovery from the last position a client saw: not `recovered: true`.
    let (mut late, _) = a.v2_client("late").await;
    let rep = v2_subscribe(
        &mut late,
        json!({"channel": ch, "recover": true, "offset": 8, "epoch": before}),
    )
    .await;
    let res = &rep["subscribe"];
    assert!(rep.get("error").is_none(), "{rep}");
    assert_ne!(
        res["recovered"],
        json!(true),
        "lossy failover recovered: {rep}"
    );
    assert_ne!(
        res["epoch"],
        json!(before),
        "a new epoch after the failover: {rep}"
    );
    // v1 too.
    let (mut v1, _) = a.v1_client("late-v1").await;
    let rep = v1
        .call_v1(
            1,
            json!({"channel": ch, "recover": true, "offset": 8, "epoch": before}),
        )
        .await;
    assert_ne!(rep["result"]["recovered"], json!(true), "v1: {rep}");
    // The live subscriber is told (its position cannot be trusted any more).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut told = false;
    while Instant::now() < deadline && !told {
        // A new publication carries the new epoch too.
        let _ = publish_ok(&http(), &a.http_url("/api"), &ch, 100).await;
        while let Some(p) = live.push_within(Duration::from_millis(300)).await {
            if p["push"]["unsubscribe"]["code"] == json!(2500) {
                told = true;
                break;
            }
        }
    }
    assert!(
        told,
        "the live v2 subscriber was told to resubscribe (2500)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_config_forms_and_password() {
    if !redis_available() {
        return;
    }
    let cluster = RedisCluster::start_custom(0, &["--requirepass", "s3cret"]);
    let addrs = cluster.addrs();
    // 2.x: one element with comma-separated seeds; the password from redis_password.
    let a = node(
        json!({"redis_cluster_addrs": [addrs.join(",")], "redis_password": "s3cret"}),
        "node-a",
    )
    .await;
    // v6: engine.redis.address = redis+cluster://, credentials in the URL.
    let mut cfg = channel_options();
    let url = format!(
        "redis+cluster://:s3cret@{}?addr={}&addr={}",
        addrs[0], addrs[1], addrs[2]
    );
    let obj = cfg.as_object_mut().unwrap();
    obj.insert("name".into(), json!("node-b"));
    obj.insert("health".into(), json!(true));
    obj.insert(
        "engine".into(),
        json!({"type": "redis", "redis": {"address": url}}),
    );
    let b = Server::start(cfg).await;
    // v6 cluster_address (array of comma-separated seeds per shard).
    let mut cfg = channel_options();
    let obj = cfg.as_object_mut().unwrap();
    obj.insert("name".into(), json!("node-c"));
    obj.insert("health".into(), json!(true));
    obj.insert(
        "engine".into(),
        json!({"type": "redis", "redis": {"cluster_address": [addrs.join(",")],
            "password": "s3cret"}}),
    );
    let c = Server::start(cfg).await;
    for n in [&a, &b, &c] {
        wait_until(Duration::from_secs(10), "node healthy", || async {
            health(n).await == 200
        })
        .await;
    }
    // Every node's connections authenticated: clients of each get the others' publications.
    let (mut x, _) = a.v1_client("x").await;
    let (mut y, _) = b.v1_client("y").await;
    let (mut z, _) = c.v1_client("z").await;
    for ws in [&mut x, &mut y, &mut z] {
        let rep = ws.subscribe_v1("forms").await;
        assert!(rep.get("error").is_none(), "{rep}");
    }
    for (i, from) in [&a, &b, &c].into_iter().enumerate() {
        assert_eq!(
            api_publish(from, "forms", json!({"i": i})).await,
            vec![json!({})]
        );
        for ws in [&mut x, &mut y, &mut z] {
            let p = loop {
                let p = ws.push().await;
                if p["result"].get("type").is_none() {
                    break p; // not a join/leave
                }
            };
            assert_eq!(p["result"]["data"]["data"], json!({"i": i}), "{p}");
        }
    }
    // Each node holds one data, one PUB/SUB and probe connections: all authenticated.
    let clients = cluster.nodes[0].cli(&["CLIENT", "LIST"]);
    assert!(clients.contains("name=rotor-node-b"), "{clients}");
}

/// A redis-server cluster node that only speaks TLS (clients, cluster bus, replication).
struct TlsNode {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_cli(dir: &std::path::Path, port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(dir.join("cert.pem"))
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two Rotor nodes on three TLS-only masters (`redis_tls`, `redis_tls_skip_verify`): delivery
/// between them and offsets from the cluster. Skipped without openssl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_tls() {
    use std::process::{Command, Stdio};
    if !redis_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "rotor-cluster-tls-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: openssl is not available");
        return;
    }
    let mut nodes = Vec::new();
    for i in 0..3 {
        let port = loop {
            let p = free_port();
            if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
                break p;
            }
        };
        let d = dir.join(i.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("key.pem"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("cert.pem"))
            .args([
                "--tls-auth-clients",
                "no",
                "--tls-cluster",
                "yes",
                "--tls-replication",
                "yes",
            ])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&d)
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        nodes.push(TlsNode { child, port });
    }
    wait_until(Duration::from_secs(10), "TLS nodes answer", || async {
        nodes
            .iter()
            .all(|n| tls_cli(&dir, n.port, &["PING"]) == "PONG")
    })
    .await;
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(dir.join("cert.pem"))
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_until(Duration::from_secs(15), "TLS cluster ok", || async {
        nodes
            .iter()
            .all(|n| tls_cli(&dir, n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    })
    .await;
    let cfg = json!({"redis_cluster_address": [addrs.join(",")], "redis_tls": true,
        "redis_tls_skip_verify": true});
    let a = node(cfg.clone(), "node-a").await;
    let b = node(cfg, "node-b").await;
    for n in [&a, &b] {
        wait_until(Duration::from_secs(10), "node healthy", || async {
            health(n).await == 200
        })
        .await;
    }
    let (mut y, _) = b.v1_client("y").await;
    for i in 0..6 {
        let ch = format!("tls{i}");
        assert!(y.subscribe_v1(&ch).await.get("error").is_none());
        assert_eq!(api_publish(&a, &ch, json!({"i": i})).await, vec![json!({})]);
        let p = loop {
            let p = y.push().await;
            if p["result"].get("type").is_none() {
                break p; // not a join/leave
            }
        };
        assert_eq!(p["result"]["data"]["data"], json!({"i": i}), "{p}");
        assert_eq!(p["result"]["data"]["offset"], json!(1), "{p}");
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
