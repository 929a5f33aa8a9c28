//! Sharded PUB/SUB with partitions on a real three-master Redis Cluster (issue 17, item 2;
//! BROKERS.md §3.2/§3.3): with `redis_sharded_pub_sub_partitions` every channel of a partition
//! lives in the slot of `{p}`, each Rotor node keeps one PUB/SUB connection per master
//! carrying every partition that master owns, and SSUBSCRIBE goes to the owner. Then slots
//! move under the nodes: a busy channel's slot migrated mid-publish (delivery resumes, every
//! subscriber ends with every acknowledged message, nothing silently missing), and the first
//! subscribe in a slot that moved while no node listened there follows the MOVED (it failed
//! with error 100 before) and its history moved with it.

mod common;
mod redis_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redis_support::*;
use rotor_engine_redis::{shard_of, slot};
use serde_json::{json, Value};

const PARTITIONS: usize = 16;

/// The partition's hash tag of `ch`, `{p}`.
fn tag(ch: &str) -> String {
    format!("{{{}}}", shard_of(ch, PARTITIONS))
}

fn slot_of(ch: &str) -> u16 {
    slot(tag(ch).as_bytes())
}

fn shard_name(ch: &str) -> String {
    format!("centrifugo.client.{}.{ch}", tag(ch))
}

fn sharded_cfg(cluster: &RedisCluster) -> Value {
    json!({
        "redis_cluster_address": [cluster.addrs().join(",")],
        "redis_sharded_pub_sub_partitions": PARTITIONS,
    })
}

/// The next publication on `ws` (v1 or v2), skipping joins and leaves: (channel, data, offset).
async fn next_pub(ws: &mut Ws, v2: bool) -> (String, Value, u64) {
    loop {
        let p = ws.push().await;
        let (channel, publication) = if v2 {
            match p["push"].get("pub") {
                Some(publication) => (p["push"]["channel"].clone(), publication.clone()),
                None => continue,
            }
        } else {
            if p["result"].get("type").is_some() {
                continue;
            }
            (p["result"]["channel"].clone(), p["result"]["data"].clone())
        };
        return (
            channel.as_str().unwrap_or_default().to_string(),
            publication["data"].clone(),
            publication["offset"].as_u64().unwrap_or(0),
        );
    }
}

/// Publishes `data` on `ch` through `from`; every `(ws, v2)` gets it with `offset`.
async fn deliver(
    from: &Server,
    ch: &str,
    data: Value,
    offset: u64,
    clients: &mut [(&mut Ws, bool)],
) {
    assert_eq!(api_publish(from, ch, data.clone()).await, vec![json!({})]);
    for (ws, v2) in clients.iter_mut() {
        let got = next_pub(ws, *v2).await;
        assert_eq!(got, (ch.to_string(), data.clone(), offset), "v2 {v2}");
    }
}

/// Every name on node `port` listed by `PUBSUB <what>` that belongs to Rotor's channels.
fn client_names(node: &RedisProcess, what: &str) -> Vec<String> {
    node.cli(&["PUBSUB", what])
        .lines()
        .filter(|l| l.starts_with("centrifugo.client."))
        .map(str::to_string)
        .collect()
}

/// How many connections named `name` node `node` has.
fn connections_named(node: &RedisProcess, name: &str) -> usize {
    let want = format!("name={name}");
    node.cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.split(' ').any(|f| f == want))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_partitions_on_three_masters_and_the_first_subscribe_after_a_slot_move() {
    if !redis_available() {
        return;
    }
    let cluster = RedisCluster::start();
    let cfg = sharded_cfg(&cluster);
    let a = node(cfg.clone(), "node-a").await;
    let b = node(cfg.clone(), "node-b").await;
    let c = node(cfg, "node-c").await;
    for n in [&a, &b, &c] {
        assert_eq!(health(n).await, 200);
    }

    // Two channels per master, by the owner of their partition's slot.
    let mut channels: Vec<String> = Vec::new();
    let mut per_master = std::collections::HashMap::<u16, usize>::new();
    for i in 0.. {
        let ch = format!("room{i}");
        let owner = cluster.owner_of_slot(slot_of(&ch)).port;
        let n = per_master.entry(owner).or_default();
        if *n < 2 {
            *n += 1;
            channels.push(ch);
        }
        if per_master.len() == 3 && per_master.values().all(|n| *n == 2) {
            break;
        }
    }

    let (mut x, _) = a.v1_client("x").await;
    let (mut y, _) = b.v2_client("y").await;
    for ch in &channels {
        let rep = x.subscribe_v1(ch).await;
        assert!(rep.get("error").is_none(), "{rep}");
        let rep = y.subscribe_v2(ch).await;
        assert!(rep.get("error").is_none(), "{rep}");
    }
    // Delivery across nodes in both generations, published through a node without subscribers
    // and through a subscriber's node.
    for (i, ch) in channels.iter().enumerate() {
        deliver(
            &c,
            ch,
            json!({"i": i}),
            1,
            &mut [(&mut x, false), (&mut y, true)],
        )
        .await;
        deliver(
            &a,
            ch,
            json!({"j": i}),
            2,
            &mut [(&mut x, false), (&mut y, true)],
        )
        .await;
    }

    // The partitioned names are shard channels on their owner, nowhere else; nothing is a
    // classic channel.
    for ch in &channels {
        let owner = cluster.owner_of_slot(slot_of(ch));
        for n in &cluster.nodes {
            let names = client_names(n, "SHARDCHANNELS");
            assert_eq!(
                names.contains(&shard_name(ch)),
                n.port == owner.port,
                "{ch} on {}: {names:?}",
                n.port
            );
            assert!(client_names(n, "CHANNELS").is_empty());
        }
    }
    // Node-grouped: one PUB/SUB connection per Rotor node and master, whatever the number of
    // partitions it carries; node C (no subscribers) still holds one per master.
    for n in &cluster.nodes {
        for name in [
            "rotor-node-a-pubsub",
            "rotor-node-b-pubsub",
            "rotor-node-c-pubsub",
        ] {
            assert_eq!(connections_named(n, name), 1, "{name} on {}", n.port);
        }
    }
    // History, presence and recovery work on every node.
    for ch in &channels {
        for n in [&a, &b, &c] {
            let h = api_v1(n, "history", json!({"channel": ch})).await;
            let pubs = h[0]["result"]["publications"].as_array().unwrap();
            assert_eq!(pubs.len(), 2, "{h:?}");
            let s = api_v1(n, "presence_stats", json!({"channel": ch})).await;
            assert_eq!(s[0]["result"], json!({"num_clients": 2, "num_users": 2}));
        }
    }
    let ch = &channels[0];
    let h = api_v2(&c, "history", json!({"channel": ch, "limit": 0})).await;
    let epoch = h["result"]["epoch"].as_str().unwrap().to_string();
    assert!(!epoch.is_empty(), "{h}");
    let (mut z, _) = c.v2_client("z").await;
    let rep = z
        .call_v2(
            "subscribe",
            json!({"channel": ch, "recover": true, "offset": 1, "epoch": epoch, "flag": 1}),
        )
        .await;
    assert_eq!(rep["subscribe"]["recovered"], json!(true), "{rep}");
    let pubs = rep["subscribe"]["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 1, "{rep}");
    assert_eq!(pubs[0]["data"], json!({"j": 0}));

    // The MOVED bug: a channel whose slot no node subscribes in, with history, moves to
    // another master while nobody listens there. The first subscribe on each node follows the
    // redirect; the history moved with the slot.
    let busy: HashSet<u16> = channels
        .iter()
        .map(|c| slot_of(c))
        .chain([slot(b"centrifugo.control")])
        .collect();
    let fresh = (0..)
        .map(|i| format!("fresh{i}"))
        .find(|ch| !busy.contains(&slot_of(ch)))
        .unwrap();
    assert_eq!(
        api_publish(&a, &fresh, json!({"before": "move"})).await,
        vec![json!({})]
    );
    let s = slot_of(&fresh);
    let from = cluster.owner_of_slot(s).port;
    let to = cluster.nodes.iter().position(|n| n.port != from).unwrap();
    cluster.migrate_slot(s, to);
    assert_eq!(cluster.owner_of_slot(s).port, cluster.nodes[to].port);
    let rep = y.subscribe_v2(&fresh).await;
    assert!(
        rep.get("error").is_none(),
        "first subscribe after the move: {rep}"
    );
    let rep = x.subscribe_v1(&fresh).await;
    assert!(
        rep.get("error").is_none(),
        "first subscribe after the move: {rep}"
    );
    assert!(client_names(&cluster.nodes[to], "SHARDCHANNELS").contains(&shard_name(&fresh)));
    for n in [&a, &b] {
        let out = n.output();
        assert!(
            out.contains("redis slot moved; resubscribing on its new owner"),
            "{out}"
        );
    }
    deliver(
        &c,
        &fresh,
        json!({"after": "move"}),
        2,
        &mut [(&mut x, false), (&mut y, true)],
    )
    .await;
    for n in [&a, &b, &c] {
        let h = api_v1(n, "history", json!({"channel": fresh})).await;
        let data: Vec<Value> = h[0]["result"]["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["data"].clone())
            .collect();
        assert_eq!(data, [json!({"before": "move"}), json!({"after": "move"})]);
    }
    // Control messages still cross nodes.
    assert_eq!(
        api_v1(&b, "disconnect", json!({"user": "x"})).await,
        vec![json!({})]
    );
    let (code, _) = x.close_within(Duration::from_secs(5)).await;
    assert_eq!(code, 3012);
}

/// `SSUBSCRIBE` commands node `node` ran since its last `CONFIG RESETSTAT`.
fn ssubscribe_calls(node: &RedisProcess) -> u64 {
    node.cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_ssubscribe:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// After its PUB/SUB connections are cut, a node resubscribes per partition batch: many
/// channels of one partition share one SSUBSCRIBE (at most two commands per partition slot:
/// the first channel alone, then the rest), and every channel is back on its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_after_a_cut_batches_channels_per_partition() {
    if !redis_available() {
        return;
    }
    let cluster = RedisCluster::start();
    let a = node(sharded_cfg(&cluster), "node-a").await;
    let channels: Vec<String> = (0..64).map(|i| format!("batch{i}")).collect();
    let (mut x, _) = a.v1_client("x").await;
    for ch in &channels {
        let rep = x.subscribe_v1(ch).await;
        assert!(rep.get("error").is_none(), "{rep}");
    }
    for n in &cluster.nodes {
        assert_eq!(n.cli(&["CONFIG", "RESETSTAT"]), "OK");
    }
    // Cut one master's connection: that ends the session (the node closes the others itself),
    // and the node reconnects and resubscribes everything once.
    let n = &cluster.nodes[0];
    let list = n.cli(&["CLIENT", "LIST"]);
    let line = list
        .lines()
        .find(|l| l.split(' ').any(|f| f == "name=rotor-node-a-pubsub"))
        .expect("node A's PUB/SUB connection on master 0");
    let id = line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap();
    n.cli(&["CLIENT", "KILL", "ID", id]);
    a.wait_output("redis reconnected and resubscribed").await;
    wait_until(Duration::from_secs(10), "node healthy again", || async {
        health(&a).await == 200
    })
    .await;
    let slots: HashSet<u16> = channels.iter().map(|c| slot_of(c)).collect();
    let calls: u64 = cluster.nodes.iter().map(ssubscribe_calls).sum();
    // + 1: the control channel.
    assert!(
        calls <= 2 * slots.len() as u64 + 1 && calls < channels.len() as u64,
        "{calls} SSUBSCRIBE commands for {} channels in {} partition slots",
        channels.len(),
        slots.len()
    );
    for ch in &channels {
        let owner = cluster.owner_of_slot(slot_of(ch));
        let numsub = owner.cli(&["PUBSUB", "SHARDNUMSUB", &shard_name(ch)]);
        assert_eq!(numsub.lines().nth(1), Some("1"), "{ch}: {numsub}");
    }
    // Nothing was published meanwhile: the positioned subscriptions stay, and receive.
    for (i, ch) in channels.iter().enumerate() {
        deliver(&a, ch, json!({"i": i}), 1, &mut [(&mut x, false)]).await;
    }
    eprintln!(
        "resubscribe: {calls} SSUBSCRIBE commands for {} channels in {} partition slots",
        channels.len(),
        slots.len()
    );
}

/// Partitions on a standalone Redis are refused at start with a clear message (sharded
/// PUB/SUB needs a cluster; the SPUBLISH check at connect refuses a pre-7 cluster likewise).
#[test]
fn partitions_without_a_cluster_are_refused_at_start() {
    let cfg = json!({
        "engine": "redis",
        "redis_address": "127.0.0.1:1",
        "redis_sharded_pub_sub_partitions": 8,
    });
    let (status, out) = run_rotor_with_config_text(&cfg.to_string(), Duration::from_secs(10));
    let status = status.expect("rotor exits by itself");
    assert!(!status.success(), "{out}");
    assert!(out.contains("needs a Redis Cluster"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// A busy channel's slot migrated mid-publish
// ---------------------------------------------------------------------------------------------

const CHANNEL: &str = "ticks";
const COUNT: u64 = 400;

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    name: String,
    numbers: Vec<u64>,
    /// `recovered: false` answers (each is a signalled gap).
    told: usize,
    recovered: usize,
    /// 3010 closes and 2500 unsubscribes that sent it back to resubscribe.
    interruptions: usize,
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
    v2: bool,
    pos: Option<&(u64, String)>,
    stop: &AtomicBool,
) -> Option<Value> {
    while !stop.load(Ordering::Relaxed) {
        let mut params = json!({"channel": CHANNEL});
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

/// Follows the channel like the real clients: a v1 client closed with 3010 reconnects and
/// recovers, a v2 client told to unsubscribe (2500) resubscribes with recovery.
async fn subscriber(server: Arc<Server>, name: String, v2: bool, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen {
        name: name.clone(),
        ..Seen::default()
    };
    let mut pos: Option<(u64, String)> = None;
    'session: while !stop.load(Ordering::Relaxed) {
        let Some(mut ws) = connect(&server, &name, v2, &stop).await else {
            break;
        };
        loop {
            let Some(res) = subscribe(&mut ws, v2, pos.as_ref(), &stop).await else {
                continue 'session;
            };
            if pos.is_some() {
                if res["recovered"] == json!(true) {
                    seen.recovered += 1;
                } else {
                    seen.told += 1;
                }
            }
            for p in res["publications"].as_array().into_iter().flatten() {
                seen.numbers.push(p["data"]["n"].as_u64().unwrap());
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
                            seen.numbers.push(p["data"]["n"].as_u64().unwrap());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_channel_slot_migrated_mid_publish_loses_nothing_silently() {
    if !redis_available() {
        return;
    }
    let cluster = Arc::new(RedisCluster::start());
    let cfg = sharded_cfg(&cluster);
    let a = Arc::new(node(cfg.clone(), "node-a").await);
    let b = Arc::new(node(cfg, "node-b").await);
    let s = slot_of(CHANNEL);
    let from = cluster.owner_of_slot(s).port;
    let to = cluster.nodes.iter().position(|n| n.port != from).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for (i, server) in [&a, &b].into_iter().enumerate() {
        for v2 in [false, true] {
            let name = format!("n{i}-{}", if v2 { "v2" } else { "v1" });
            subs.push(tokio::spawn(subscriber(
                server.clone(),
                name,
                v2,
                stop.clone(),
            )));
        }
    }
    wait_until(Duration::from_secs(10), "subscribers in", || async {
        let rep = api_v1(&a, "presence_stats", json!({"channel": CHANNEL})).await;
        rep[0]["result"]["num_clients"] == json!(4)
    })
    .await;
    assert!(client_names(cluster.owner_of_slot(s), "SHARDCHANNELS").contains(&shard_name(CHANNEL)));

    // The publisher: numbered messages through node A, each retried until acknowledged.
    let client = http();
    let url = a.http_url("/api");
    let mut refused = 0u64;
    let mut mover = None;
    let started = Instant::now();
    for n in 1..=COUNT {
        if n == 150 {
            let cluster = cluster.clone();
            mover = Some(std::thread::spawn(move || cluster.migrate_slot(s, to)));
        }
        loop {
            let body =
                json!({"method": "publish", "params": {"channel": CHANNEL, "data": {"n": n}}});
            let ok = match client
                .post(&url)
                .header("Authorization", format!("apikey {API_KEY}"))
                .body(body.to_string())
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default().trim() == "{}",
                _ => false,
            };
            if ok {
                break;
            }
            refused += 1;
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "publisher stuck at {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mover.unwrap().join().unwrap();
    assert_eq!(cluster.owner_of_slot(s).port, cluster.nodes[to].port);
    // Position checks run a second apart; give recoveries time to finish.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);

    // Both nodes resubscribed on the new owner; the old one has nothing left.
    let names = client_names(&cluster.nodes[to], "SHARDCHANNELS");
    assert!(names.contains(&shard_name(CHANNEL)), "{names:?}");
    let old = cluster.nodes.iter().find(|n| n.port == from).unwrap();
    assert!(!client_names(old, "SHARDCHANNELS").contains(&shard_name(CHANNEL)));
    assert_eq!(
        old.cli(&["PUBSUB", "SHARDNUMSUB", &shard_name(CHANNEL)])
            .lines()
            .nth(1),
        Some("0")
    );

    // The slot move was followed on the sharded link (only that channel resubscribed, with a
    // gap for it), not by ending the session (which gaps every channel).
    for n in [&a, &b] {
        let out = n.output();
        assert!(
            out.contains("redis dropped subscriptions (slot moved)"),
            "{out}"
        );
        assert!(!out.contains("redis reconnected and resubscribed"), "{out}");
    }

    let mut report = Vec::new();
    for sub in subs {
        let seen = sub.await.unwrap();
        for w in seen.numbers.windows(2) {
            assert!(
                w[0] < w[1],
                "{}: out of order: {} then {}",
                seen.name,
                w[0],
                w[1]
            );
        }
        let have: HashSet<u64> = seen.numbers.iter().copied().collect();
        let missing: Vec<u64> = (1..=COUNT).filter(|n| !have.contains(n)).collect();
        report.push(format!(
            "{}: acknowledged {COUNT}, delivered {}, signalled {} (recovered:false {}, \
             recovered:true {}), silently missing {}",
            seen.name,
            have.len(),
            seen.interruptions + seen.told,
            seen.told,
            seen.recovered,
            missing.len()
        ));
        assert!(missing.is_empty(), "{}: missing {missing:?}", seen.name);
    }
    eprintln!(
        "slot migration of {CHANNEL} (slot {s}, {from} -> {}): {refused} publishes refused\n  {}",
        cluster.nodes[to].port,
        report.join("\n  ")
    );
}
