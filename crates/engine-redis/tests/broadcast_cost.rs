//! What a publication without history costs Redis: exactly one PUBLISH, no script run, with
//! concurrent publishers still answered one by one, delivered in each publisher's order, and
//! a failure still reported once Redis is gone.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rotor_core::engine::{Broker, PublishOptions};
use support::*;

/// `calls` of `cmdstat_<name>` in `INFO commandstats` (0 when absent).
fn calls(port: u16, name: &str) -> u64 {
    let stats = cli(port, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{name}:calls=");
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publication_without_history_is_one_publish_and_no_script() {
    if !redis_available() {
        return;
    }
    let mut redis = Redis::start();
    let (a, _ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    b.broker.subscribe("news").await.unwrap();
    assert_eq!(cli(redis.port, &["CONFIG", "RESETSTAT"]), "OK");

    const PUBLISHERS: usize = 32;
    const EACH: usize = 20;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let broker = a.broker.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let pos = broker
                    .publish(
                        "news",
                        Bytes::from(format!("{p}:{i}")),
                        None,
                        PublishOptions::default(),
                    )
                    .await
                    .expect("publish answered");
                assert_eq!((pos.offset, pos.epoch.as_str()), (0, ""));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = PUBLISHERS * EACH;
    eventually("every publication delivered", || {
        cb.publications.lock().len() >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = cb.publications.lock().clone();
    assert_eq!(got.len(), total, "nothing lost or duplicated");
    // Each publisher's publications arrive in the order it published them.
    let mut next: HashMap<usize, usize> = HashMap::new();
    for (channel, publication) in &got {
        assert_eq!(channel, "news");
        let text = String::from_utf8(publication.data.to_vec()).unwrap();
        let (p, i) = text.split_once(':').unwrap();
        let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
        let want = next.entry(p).or_insert(0);
        assert_eq!(i, *want, "publisher {p} out of order");
        *want += 1;
    }

    assert_eq!(
        calls(redis.port, "publish"),
        total as u64,
        "one PUBLISH each"
    );
    assert_eq!(calls(redis.port, "evalsha"), 0, "no script run");
    assert_eq!(calls(redis.port, "eval"), 0, "no script run");

    // Redis gone: a publication without history fails instead of vanishing.
    redis.kill();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        a.broker.publish(
            "news",
            Bytes::from_static(b"late"),
            None,
            PublishOptions::default(),
        ),
    )
    .await
    .expect("answered in time");
    assert!(r.is_err(), "publish to a dead Redis must fail, got {r:?}");
}
