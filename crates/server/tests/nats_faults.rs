//! NATS fails under load (issue 17): `nats-server` is SIGKILLed and restarted on the same port
//! while a publisher sends numbered messages through node A's API to a v1 and a v2 subscriber
//! on each of three nodes (A and C configured with 2.x keys, B with the v6 `broker` section,
//! one prefix). NATS keeps no history, so nothing can be recovered: what a correct server owes
//! is that no subscriber misses an acknowledged message *silently*. Every subscriber that may
//! have missed something is told (v1: disconnect 3010, the client reconnects; v2: unsubscribe
//! 2500, the client resubscribes), and the API refuses publishes while NATS is down (the
//! publisher retries each number until it is acknowledged).
//!
//! Accounting per subscriber: acknowledged, delivered, signalled, missing; every missing
//! number must have been published (its acknowledged request sent) before a resubscription
//! that followed a signal ("covered"); silently missing (published after the subscriber's
//! last resubscription was confirmed, and never delivered) must be 0. The request's start, not
//! the arrival of its answer, is the publication's time: the server can fan a publication out
//! before the test has read the HTTP answer, so a publication dropped just before a
//! resubscription can have its answer read just after it.

mod common;
mod nats_support;
mod redis_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nats_support::*;
use redis_support::{health, wait_until};
use serde_json::{json, Value};

const CHANNEL: &str = "ticks";
const MESSAGES: u64 = 600;
const INTERVAL: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
struct Seen {
    name: String,
    numbers: Vec<u64>,
    /// Signals: disconnects with 3010 (v1) and unsubscribe pushes with 2500 (v2).
    signals: Vec<u64>,
    /// When each resubscription after a signal succeeded.
    resubscribed: Vec<Instant>,
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

/// Subscribes, retrying on errors; `false` when the connection closed or the test stops.
async fn subscribe(ws: &mut Ws, v2: bool, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        let id = ws.take_id();
        let params = json!({"channel": CHANNEL});
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
                    return true;
                }
                Some(Event::Value(_)) => continue,
                Some(Event::Closed(..)) | None => return false,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Follows the channel like the real clients: reconnects after 3010, resubscribes after 2500.
async fn subscriber(
    server: Arc<Server>,
    name: String,
    v2: bool,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicUsize>,
) -> Seen {
    let mut first = true;
    let mut seen = Seen {
        name: name.clone(),
        ..Seen::default()
    };
    let mut signalled = false;
    'session: while !stop.load(Ordering::Relaxed) {
        let Some(mut ws) = connect(&server, &name, v2, &stop).await else {
            break;
        };
        loop {
            if !subscribe(&mut ws, v2, &stop).await {
                continue 'session;
            }
            if std::mem::take(&mut first) {
                ready.fetch_add(1, Ordering::SeqCst);
            }
            if std::mem::take(&mut signalled) {
                seen.resubscribed.push(Instant::now());
            }
            loop {
                if stop.load(Ordering::Relaxed) {
                    break 'session;
                }
                match ws.next_event_within(Duration::from_millis(100)).await {
                    None => continue,
                    Some(Event::Closed(code, _)) => {
                        seen.signals.push(u64::from(code));
                        signalled = true;
                        continue 'session;
                    }
                    Some(Event::Value(v)) => {
                        if v2 {
                            let push = &v["push"];
                            if let Some(p) = push.get("pub") {
                                seen.numbers.push(number(&p["data"]));
                            } else if let Some(u) = push.get("unsubscribe") {
                                seen.signals.push(u["code"].as_u64().unwrap_or(0));
                                signalled = true;
                                break;
                            }
                        } else {
                            let r = &v["result"];
                            if v.get("id").is_none() && r.get("type").is_none() {
                                seen.numbers.push(number(&r["data"]["data"]));
                            }
                        }
                    }
                }
            }
        }
    }
    seen
}

async fn v6_node(nats: &NatsProcess, name: &str) -> Server {
    let mut cfg = channel_options();
    cfg["name"] = json!(name);
    cfg["broker"] = json!({"enabled": true, "type": "nats", "nats": {"url": nats.url()}});
    Server::start(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_restart_during_publications_loses_nothing_silently() {
    if !nats_available() {
        return;
    }
    let started = Instant::now();
    let mut nats = NatsProcess::start();
    let a = Arc::new(node_v2x(&nats, "node-a", json!({})).await);
    let b = Arc::new(v6_node(&nats, "node-b").await);
    let c = Arc::new(node_v2x(&nats, "node-c", json!({})).await);
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut subs = Vec::new();
    for (server, tag) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        for v2 in [false, true] {
            let name = format!("{tag}-{}", if v2 { "v2" } else { "v1" });
            subs.push(tokio::spawn(subscriber(
                server.clone(),
                name,
                v2,
                stop.clone(),
                ready.clone(),
            )));
        }
    }
    wait_until(Duration::from_secs(10), "six subscribers in", || async {
        ready.load(Ordering::SeqCst) == 6
    })
    .await;

    let saw_503 = Arc::new([
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ]);
    let health_task = {
        let (a, b, c, stop, saw) = (
            a.clone(),
            b.clone(),
            c.clone(),
            stop.clone(),
            saw_503.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, n) in [&a, &b, &c].into_iter().enumerate() {
                    if health(n).await == 503 {
                        saw[i].store(true, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let client = http();
    let url = a.http_url("/api");
    let mut acked_at: Vec<Instant> = Vec::with_capacity(MESSAGES as usize);
    let mut refused = 0u64;
    let mut refused_while_down = 0u64;
    let (mut killed_at, mut restarted_at) = (None, None);
    let publish_start = Instant::now();
    for n in 1..=MESSAGES {
        if n == 200 && killed_at.is_none() {
            nats.kill();
            killed_at = Some(Instant::now());
        }
        loop {
            if killed_at.is_some_and(|t: Instant| t.elapsed() > Duration::from_millis(1500))
                && restarted_at.is_none()
            {
                nats.restart();
                restarted_at = Some(Instant::now());
            }
            let body =
                json!({"method": "publish", "params": {"channel": CHANNEL, "data": {"n": n}}});
            let sent = Instant::now();
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
                // Nothing may be acknowledged while NATS is down.
                assert!(
                    !(killed_at.is_some() && restarted_at.is_none()),
                    "publish {n} acknowledged while NATS was down"
                );
                // When the acknowledged attempt was sent: the publication may reach the
                // server's fan-out before this test reads the HTTP answer, so the request's
                // start (not the answer's arrival) tells whether it could precede a
                // resubscription.
                acked_at.push(sent);
                break;
            }
            refused += 1;
            if killed_at.is_some() && restarted_at.is_none() {
                refused_while_down += 1;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "publisher stuck at {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    let publish_time = publish_start.elapsed();
    let (killed_at, restarted_at) = (killed_at.unwrap(), restarted_at.unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = health_task.await;

    let mut report = Vec::new();
    let mut silently_missing_total = 0;
    for s in subs {
        let s = s.await.unwrap();
        // In order. A refused publish may still have reached NATS (it was refused because
        // its confirmation did not come in time); the publisher then sends that number again,
        // so a repeat of the number just delivered is possible, nothing else.
        for w in s.numbers.windows(2) {
            assert!(
                w[0] <= w[1],
                "{}: out of order: {} then {}",
                s.name,
                w[0],
                w[1]
            );
        }
        let repeats = s.numbers.windows(2).filter(|w| w[0] == w[1]).count();
        let have: std::collections::HashSet<u64> = s.numbers.iter().copied().collect();
        let missing: Vec<u64> = (1..=MESSAGES).filter(|n| !have.contains(n)).collect();
        let silently: Vec<u64> = missing
            .iter()
            .copied()
            .filter(|n| {
                let acked = acked_at[(*n - 1) as usize];
                !s.resubscribed.iter().any(|at| *at >= acked)
            })
            .collect();
        silently_missing_total += silently.len();
        let want_signal = if s.name.ends_with("v1") { 3010 } else { 2500 };
        assert!(
            !s.signals.is_empty() && s.signals.iter().all(|c| *c == want_signal),
            "{}: signals {:?}, expected {want_signal}",
            s.name,
            s.signals
        );
        report.push(format!(
            "{}: acknowledged {MESSAGES}, delivered {}, signalled {} ({:?}), missing {} (covered by a signal), silently missing {}, repeats {repeats}",
            s.name,
            s.numbers.len() - repeats,
            s.signals.len(),
            s.signals,
            missing.len() - silently.len(),
            silently.len(),
        ));
        assert!(
            silently.is_empty(),
            "{}: silently missing {silently:?}",
            s.name
        );
    }
    eprintln!(
        "nats restart test: published {MESSAGES} in {publish_time:?}; nats down {:?}; {refused} \
         publish attempts refused ({refused_while_down} while down)\n  {}",
        restarted_at - killed_at,
        report.join("\n  ")
    );
    assert_eq!(silently_missing_total, 0);
    assert!(
        refused_while_down > 0,
        "the API refused publishes while NATS was down"
    );
    for (i, name) in ["A", "B", "C"].iter().enumerate() {
        assert!(
            saw_503[i].load(Ordering::Relaxed),
            "node {name} /health reported the outage"
        );
    }
    for n in [&a, &b, &c] {
        assert_eq!(health(n).await, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "bounded: {:?}",
        started.elapsed()
    );
}
