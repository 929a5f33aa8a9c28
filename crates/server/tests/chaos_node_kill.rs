//! Chaos (issue 18): a node SIGKILLed under load. Three Rotor nodes share one Redis; numbered
//! messages are published through node B's API at a steady rate to subscribers of both
//! protocol generations on node A and on node C. At message 150 node A is killed with SIGKILL.
//! Its subscribers notice the dead connection, reconnect to another node (C) and resubscribe
//! with recovery from the last position they saw, as the real clients do.
//!
//! Accounting per subscriber: every acknowledged number is held exactly once and in order
//! (recovery gives back what the dead node never delivered), nothing is silently missing, the
//! moved subscribers were told `recovered: true`, and the subscribers of node C were never
//! interrupted and kept receiving while A was down (nobody else stalled).

mod common;
mod redis_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redis_support::*;
use serde_json::{json, Value};

const CHANNEL: &str = "chaos";
const MESSAGES: u64 = 450;
const KILL_AT: u64 = 150;
const INTERVAL: Duration = Duration::from_millis(8);

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    name: String,
    /// Numbers in the order received (live or recovered), with when they arrived.
    numbers: Vec<(u64, Instant)>,
    /// Recoveries answered `recovered: true` / `false`.
    recovered: usize,
    not_recovered: usize,
    /// Times the connection closed or the subscription was ended by the server.
    interruptions: usize,
    /// Nodes it was connected to, in order.
    nodes: Vec<String>,
}

fn number(data: &Value) -> u64 {
    data["n"].as_u64().expect("numbered message")
}

async fn connect(
    servers: &[Arc<Server>],
    user: &str,
    v2: bool,
    stop: &AtomicBool,
) -> Option<(Ws, usize)> {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let idx = i % servers.len();
        i += 1;
        let server = &servers[idx];
        if server.exit_status().is_some() {
            continue;
        }
        if let Ok(mut ws) = Ws::try_open(&server.ws_url()).await {
            ws.auto_pong = true; // as the real v2 clients
            let id = ws.take_id();
            let cmd = if v2 {
                json!({"id": id, "connect": {"token": conn_token(user)}})
            } else {
                json!({"id": id, "params": {"token": conn_token(user)}})
            };
            ws.send(&cmd).await;
            if let Some(Event::Value(v)) = ws.next_event_within(Duration::from_secs(2)).await {
                if v.get("error").is_none() && v["id"] == json!(id) {
                    return Some((ws, idx));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn subscribe(ws: &mut Ws, v2: bool, pos: Option<&(u64, String)>) -> Option<Value> {
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
                    return None;
                }
                return Some(v[if v2 { "subscribe" } else { "result" }].clone());
            }
            Some(Event::Value(_)) => continue,
            Some(Event::Closed(..)) | None => return None,
        }
    }
}

/// Follows the channel on `servers[first]` (then on any live node), reconnecting and
/// recovering like the real clients.
async fn subscriber(
    servers: Vec<Arc<Server>>,
    first: usize,
    name: String,
    v2: bool,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen {
        name: name.clone(),
        ..Seen::default()
    };
    let mut order: Vec<Arc<Server>> = servers[first..].to_vec();
    order.extend_from_slice(&servers[..first]);
    let mut pos: Option<(u64, String)> = None;
    'session: while !stop.load(Ordering::Relaxed) {
        let Some((mut ws, idx)) = connect(&order, &name, v2, &stop).await else {
            break;
        };
        seen.nodes.push(order[idx].port.to_string());
        let Some(res) = subscribe(&mut ws, v2, pos.as_ref()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue 'session;
        };
        if pos.is_some() {
            if res["recovered"] == json!(true) {
                seen.recovered += 1;
            } else {
                seen.not_recovered += 1;
            }
        }
        for p in res["publications"].as_array().into_iter().flatten() {
            seen.numbers.push((number(&p["data"]), Instant::now()));
        }
        let epoch = res["epoch"].as_str().unwrap_or_default().to_string();
        let top = res["offset"].as_u64().unwrap_or(0);
        pos = Some((top, epoch));
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
                        seen.numbers.push((number(&p["data"]), Instant::now()));
                        if let Some((offset, _)) = pos.as_mut() {
                            *offset = p["offset"].as_u64().unwrap_or(*offset);
                        }
                    } else if unsubscribed {
                        seen.interruptions += 1;
                        continue 'session;
                    }
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_its_clients_move_and_recover_everything() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let cfg = json!({"redis_address": redis.addr()});
    let a = Arc::new(node(cfg.clone(), "node-a").await);
    let b = Arc::new(node(cfg.clone(), "node-b").await);
    let c = Arc::new(node(cfg, "node-c").await);
    // Subscribers move from A to C (B publishes; it would do as well).
    let servers = vec![a.clone(), c.clone()];
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for (first, tag) in [(0usize, "a"), (1, "c")] {
        for i in 0..3 {
            for v2 in [false, true] {
                let name = format!("{tag}{i}-{}", if v2 { "v2" } else { "v1" });
                subs.push(tokio::spawn(subscriber(
                    servers.clone(),
                    first,
                    name,
                    v2,
                    stop.clone(),
                )));
            }
        }
    }
    let want = json!(subs.len());
    wait_until(Duration::from_secs(15), "every subscriber in", || async {
        let rep = api_v1(&b, "presence_stats", json!({"channel": CHANNEL})).await;
        rep[0]["result"]["num_clients"] == want
    })
    .await;

    let http = http();
    let url = b.http_url("/api");
    let mut killed_at = None;
    let started = Instant::now();
    for n in 1..=MESSAGES {
        if n == KILL_AT {
            a.kill();
            killed_at = Some(Instant::now());
        }
        loop {
            let body =
                json!({"method": "publish", "params": {"channel": CHANNEL, "data": {"n": n}}});
            let ok = match http
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
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "publisher stuck at {n}: node B refused while only node A was down"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    let killed_at = killed_at.expect("node A was killed");
    let publish_end = Instant::now();

    // Every subscriber ends holding the last number (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rep = api_v1(&b, "presence_stats", json!({"channel": CHANNEL})).await;
        if rep[0]["result"]["num_clients"] == want || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for s in subs {
        all.push(s.await.expect("subscriber task"));
    }

    let mut report = Vec::new();
    for s in &all {
        let got: Vec<u64> = s.numbers.iter().map(|(n, _)| *n).collect();
        let want: Vec<u64> = (1..=MESSAGES).collect();
        let missing = want.iter().filter(|n| !got.contains(n)).count();
        let mut sorted = got.clone();
        sorted.dedup();
        let duplicates = got.len() - sorted.len();
        report.push(format!(
            "{}: acknowledged {MESSAGES}, delivered {}, missing {missing}, duplicates {duplicates}, \
             recovered {} / not {}, interruptions {}, nodes {:?}",
            s.name,
            got.len(),
            s.recovered,
            s.not_recovered,
            s.interruptions,
            s.nodes
        ));
        assert_eq!(
            got,
            want,
            "{}: every number once, in order\n{}",
            s.name,
            report.join("\n")
        );
        if s.name.starts_with('a') {
            assert!(s.interruptions >= 1, "{}: saw node A die", s.name);
            assert_eq!(s.not_recovered, 0, "{}: recovery answered true", s.name);
            assert!(s.recovered >= 1, "{}: recovered on another node", s.name);
        } else {
            assert_eq!(
                s.interruptions, 0,
                "{}: node C's subscribers uninterrupted",
                s.name
            );
            // Kept receiving while A was down: something arrived within 1 s after the kill.
            assert!(
                s.numbers
                    .iter()
                    .any(|(_, t)| *t > killed_at && *t < killed_at + Duration::from_secs(1)),
                "{}: received during A's death",
                s.name
            );
        }
    }
    eprintln!(
        "node kill accounting (publishing {:.1} s):\n{}",
        (publish_end - started).as_secs_f64(),
        report.join("\n")
    );
}
