//! Redis fails under load (issue 5): Redis is killed and restarted (empty: no persistence)
//! while a publisher sends 1,000 numbered messages at a steady rate through node A's API to
//! subscribers on nodes A and B, in both protocol generations. The subscribers behave like the
//! real clients: a v1 client closed with 3010 reconnects and resubscribes with recovery, a v2
//! client told to unsubscribe with 2500 resubscribes with recovery.
//!
//! At the end every subscriber must hold every acknowledged message, in order, with nothing
//! silently missing: a gap is only acceptable where the subscriber was told `recovered: false`,
//! and no message acknowledged after Redis came back may be missing at all. `/health` must have
//! reported the outage on both nodes, and the API must have refused publishes while Redis was
//! down (the publisher retries each number until it is acknowledged).

mod common;
mod redis_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redis_support::*;
use serde_json::{json, Value};

const CHANNEL: &str = "ticks";
const MESSAGES: u64 = 1000;
const INTERVAL: Duration = Duration::from_millis(6);

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    name: String,
    /// Message numbers in the order the subscriber got them (live or recovered).
    numbers: Vec<u64>,
    /// (index into `numbers` at the time, instant) of every `recovered: false`.
    told: Vec<(usize, Instant)>,
    /// Successful recoveries (`recovered: true`).
    recovered: usize,
    /// Closes and 2500 unsubscribes that sent it back to resubscribe.
    interruptions: usize,
}

fn number(data: &Value) -> u64 {
    data["n"].as_u64().expect("numbered message")
}

/// Opens and connects a client of generation `v2` to `server`, retrying until it works.
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

/// Subscribes (with recovery from `pos` when given); retries on errors. Returns the result
/// object, or `None` when the connection closed or the test is stopping.
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
                        break; // engine unavailable: try again shortly
                    }
                    let key = if v2 { "subscribe" } else { "result" };
                    return Some(v[key].clone());
                }
                // Pushes before the reply belong to an earlier subscription: none exists.
                Some(Event::Value(_)) => continue,
                Some(Event::Closed(..)) | None => return None,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One subscriber: follows the channel until `stop`, reconnecting and recovering like the
/// real clients do.
async fn subscriber(server: Arc<Server>, name: String, v2: bool, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen {
        name: name.clone(),
        ..Seen::default()
    };
    // (offset, epoch) of the last publication seen.
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
                    seen.told.push((seen.numbers.len(), Instant::now()));
                }
            }
            for p in res["publications"].as_array().into_iter().flatten() {
                seen.numbers.push(number(&p["data"]));
            }
            let epoch = res["epoch"].as_str().unwrap_or_default().to_string();
            pos = Some((res["offset"].as_u64().unwrap_or(0), epoch));
            // Follow live publications until something sends us back.
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
                            break; // resubscribe with recovery on the same connection
                        }
                    }
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_during_1000_publications_loses_nothing_silently() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisProcess::start();
    let cfg = json!({"redis_address": redis.addr()});
    let a = Arc::new(node(cfg.clone(), "node-a").await);
    let b = Arc::new(node(cfg, "node-b").await);
    let stop = Arc::new(AtomicBool::new(false));

    let mut subs = Vec::new();
    for (server, tag) in [(&a, "a"), (&b, "b")] {
        for v2 in [false, true] {
            let name = format!("{tag}-{}", if v2 { "v2" } else { "v1" });
            subs.push(tokio::spawn(subscriber(
                server.clone(),
                name,
                v2,
                stop.clone(),
            )));
        }
    }
    // Wait until all four are subscribed (presence shows them).
    wait_until(Duration::from_secs(10), "four subscribers", || async {
        let rep = api_v1(&a, "presence_stats", json!({"channel": CHANNEL})).await;
        rep[0]["result"]["num_clients"] == json!(4)
    })
    .await;

    // Health is polled on both nodes throughout.
    let saw_503 = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let health_task = {
        let (a, b, stop, saw) = (a.clone(), b.clone(), stop.clone(), saw_503.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, n) in [&a, &b].into_iter().enumerate() {
                    if health(n).await == 503 {
                        saw[i].store(true, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // The publisher: numbers 1..=1000 at a steady rate; a refused publish is retried.
    let client = http();
    let url = a.http_url("/api");
    let mut acked_at: Vec<Instant> = Vec::with_capacity(MESSAGES as usize);
    let mut refused = 0u64;
    let mut restarted_at = None;
    let mut killed_at = None;
    let started = Instant::now();
    for n in 1..=MESSAGES {
        if n == 300 && killed_at.is_none() {
            redis.kill();
            killed_at = Some(Instant::now());
        }
        if killed_at.is_some_and(|t| t.elapsed() > Duration::from_millis(1500))
            && restarted_at.is_none()
        {
            redis.restart();
            restarted_at = Some(Instant::now());
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
                Ok(r) if r.status() == 200 => {
                    let text = r.text().await.unwrap_or_default();
                    text.trim() == "{}"
                }
                _ => false,
            };
            if ok {
                acked_at.push(Instant::now());
                break;
            }
            refused += 1;
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "publisher stuck at {n}"
            );
            if killed_at.is_some_and(|t| t.elapsed() > Duration::from_millis(1500))
                && restarted_at.is_none()
            {
                redis.restart();
                restarted_at = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    let publish_time = started.elapsed();
    let restarted_at = restarted_at.expect("redis was restarted");
    let killed_at = killed_at.unwrap();
    // First acknowledgement after the restart.
    let back_at = acked_at
        .iter()
        .copied()
        .find(|t| *t > restarted_at)
        .expect("publishes acknowledged after the restart");

    // Let recoveries finish: every subscriber ends with the last message.
    let last = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rep = api_v1(&a, "presence_stats", json!({"channel": CHANNEL})).await;
        if rep[0]["result"]["num_clients"] == json!(4) || tokio::time::Instant::now() > last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = health_task.await;
    let mut all = Vec::new();
    for s in subs {
        all.push(s.await.unwrap());
    }

    let mut report = Vec::new();
    let mut lost_after_return = 0usize;
    for s in &all {
        // In order, no duplicates.
        for w in s.numbers.windows(2) {
            assert!(
                w[0] < w[1],
                "{}: out of order or duplicate: {} then {}",
                s.name,
                w[0],
                w[1]
            );
        }
        let have: std::collections::HashSet<u64> = s.numbers.iter().copied().collect();
        let missing: Vec<u64> = (1..=MESSAGES).filter(|n| !have.contains(n)).collect();
        for n in &missing {
            let acked = acked_at[(*n - 1) as usize];
            if acked >= back_at {
                lost_after_return += 1;
            }
            // Anything missing must be explained by a `recovered: false` the subscriber got
            // after the message was acknowledged.
            assert!(
                s.told.iter().any(|(_, at)| *at >= acked),
                "{}: message {n} silently missing (told: {:?})",
                s.name,
                s.told.len()
            );
        }
        report.push(format!(
            "{}: received {}, missing {}, told recovered:false {}x, recovered:true {}x, interruptions {}",
            s.name,
            s.numbers.len(),
            missing.len(),
            s.told.len(),
            s.recovered,
            s.interruptions
        ));
    }
    eprintln!(
        "redis restart test: published {MESSAGES} in {publish_time:?}; redis down {:?}; \
         {refused} publish attempts refused while down; first ack {:?} after restart\n  {}",
        restarted_at - killed_at,
        back_at - restarted_at,
        report.join("\n  ")
    );
    assert_eq!(
        lost_after_return, 0,
        "acknowledged after Redis returned but never delivered"
    );
    assert!(
        refused > 0,
        "the API refused publishes while Redis was down"
    );
    assert!(
        saw_503[0].load(Ordering::Relaxed),
        "node A /health reported the outage"
    );
    assert!(
        saw_503[1].load(Ordering::Relaxed),
        "node B /health reported the outage"
    );
    assert_eq!(health(&a).await, 200);
    assert_eq!(health(&b).await, 200);
}

/// Starts a v1 and a v2 subscriber on each of `nodes`; returns their tasks once all are in.
async fn start_subscribers(
    nodes: &[&Arc<Server>],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    let mut subs = Vec::new();
    for (i, server) in nodes.iter().enumerate() {
        for v2 in [false, true] {
            let name = format!("n{i}-{}", if v2 { "v2" } else { "v1" });
            subs.push(tokio::spawn(subscriber(
                (*server).clone(),
                name,
                v2,
                stop.clone(),
            )));
        }
    }
    let want = json!(subs.len());
    wait_until(Duration::from_secs(10), "subscribers in", || async {
        let rep = api_v1(nodes[0], "presence_stats", json!({"channel": CHANNEL})).await;
        rep[0]["result"]["num_clients"] == want
    })
    .await;
    subs
}

/// Publishes `n` through `server`'s API, retrying a refused publish; `before(n)` runs before
/// each number. Returns how many attempts were refused.
async fn publish_numbers(server: &Server, count: u64, mut before: impl FnMut(u64)) -> u64 {
    let client = http();
    let url = server.http_url("/api");
    let mut refused = 0;
    let started = Instant::now();
    for n in 1..=count {
        before(n);
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
        tokio::time::sleep(INTERVAL).await;
    }
    refused
}

/// Kills node `name`'s PUB/SUB connections every 20 ms for `for_` (each reconnect is cut
/// again), from a thread.
fn keep_killing_pubsub(port: u16, name: &str, for_: Duration) -> std::thread::JoinHandle<usize> {
    let wanted = format!("name=rotor-{name}-pubsub");
    std::thread::spawn(move || {
        let until = Instant::now() + for_;
        let mut kills = 0;
        while Instant::now() < until {
            for line in cli(port, &["CLIENT", "LIST", "TYPE", "pubsub"]).lines() {
                if line.split(' ').any(|f| f == wanted) {
                    let id = line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap();
                    cli(port, &["CLIENT", "KILL", "ID", id]);
                    kills += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kills
    })
}

/// Only node B's PUB/SUB connection drops, again and again, while Redis and its data stay and
/// node A keeps acknowledging publishes: B misses some of them live. After each resubscribe
/// B's subscribers check their position, find what they missed and recover it
/// (`recovered: true`): nothing is missing and nobody is told `recovered: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_connection_cut_subscribers_recover_everything() {
    if !redis_available() {
        return;
    }
    let redis = RedisProcess::start();
    let cfg = json!({"redis_address": redis.addr()});
    let a = Arc::new(node(cfg.clone(), "node-a").await);
    let b = Arc::new(node(cfg, "node-b").await);
    let stop = Arc::new(AtomicBool::new(false));
    let subs = start_subscribers(&[&a, &b], &stop).await;
    const COUNT: u64 = 300;
    let mut killer = None;
    let refused = publish_numbers(&a, COUNT, |n| {
        if n == 100 {
            killer = Some(keep_killing_pubsub(
                redis.port,
                "node-b",
                Duration::from_millis(600),
            ));
        }
    })
    .await;
    let kills = killer.unwrap().join().unwrap();
    assert!(kills > 0, "node B's PUB/SUB connection was cut");
    // Position checks run a second apart; give recoveries time to finish.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut report = Vec::new();
    for s in subs {
        let s = s.await.unwrap();
        for w in s.numbers.windows(2) {
            assert!(
                w[0] < w[1],
                "{}: out of order: {} then {}",
                s.name,
                w[0],
                w[1]
            );
        }
        let missing: Vec<u64> = (1..=COUNT).filter(|n| !s.numbers.contains(n)).collect();
        report.push(format!(
            "{}: missing {}, told {}, recovered {}, interruptions {}",
            s.name,
            missing.len(),
            s.told.len(),
            s.recovered,
            s.interruptions
        ));
        assert!(missing.is_empty(), "{}: missing {missing:?}", s.name);
        assert!(s.told.is_empty(), "{}: told recovered:false", s.name);
    }
    eprintln!(
        "pubsub cut test: node B cut {kills}x; {refused} publishes refused\n  {}",
        report.join("\n  ")
    );
}
