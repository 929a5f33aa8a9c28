//! The Redis broker's publish options against a real `redis-server`, with two engines (two
//! "nodes") on it: tags in PUB/SUB delivery and in history, idempotent repeats answered with the
//! first result and delivered once (from either node, with and without history), the
//! idempotency window expiring, and version suppression with epoch changes.
//!
//! "Delivered once" is checked without sleeping: after the repeat, a sentinel publication goes
//! to the same channel; Redis delivers a channel's messages in order, so once the sentinel has
//! arrived a duplicate would have arrived before it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rotor_core::engine::{Broker, HistoryFilter, PublishOptions, StreamPosition};
use rotor_engine_redis::RedisEngine;
use rotor_protocol::{Publication, Tags};
use support::*;

fn keyed(mut o: PublishOptions, key: &str) -> PublishOptions {
    o.idempotency_key = Some(key.to_owned());
    o
}

fn versioned(version: u64, epoch: &str) -> PublishOptions {
    PublishOptions {
        version,
        version_epoch: epoch.to_owned(),
        ..opts(100, 60)
    }
}

async fn publish(e: &RedisEngine, channel: &str, data: &str, o: PublishOptions) -> StreamPosition {
    e.broker
        .publish(channel, Bytes::from(data.to_owned()), None, o)
        .await
        .unwrap()
}

async fn stored(e: &RedisEngine, channel: &str) -> Vec<Publication> {
    let all = HistoryFilter {
        limit: None,
        ..Default::default()
    };
    e.broker.history(channel, all).await.unwrap().publications
}

fn datas<'a>(ps: impl IntoIterator<Item = &'a Publication>) -> Vec<String> {
    ps.into_iter()
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        .collect()
}

/// What `c` received on `channel`, once the sentinel published after everything else arrived.
async fn received(e: &RedisEngine, c: &Collector, channel: &str) -> Vec<Publication> {
    publish(e, channel, "sentinel", opts(0, 0)).await;
    eventually("the sentinel", || {
        c.publications
            .lock()
            .iter()
            .any(|(ch, p)| ch == channel && p.data == "sentinel")
    })
    .await;
    let got: Vec<Publication> = c
        .publications
        .lock()
        .iter()
        .filter(|(ch, p)| ch == channel && p.data != "sentinel")
        .map(|(_, p)| p.clone())
        .collect();
    c.publications.lock().retain(|(ch, _)| ch != channel);
    got
}

fn tags(pairs: &[(&str, &str)]) -> Arc<Tags> {
    Arc::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[tokio::test]
async fn tags_travel_between_nodes_and_survive_history() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, _ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    b.broker.subscribe("t").await.unwrap();
    b.broker.subscribe("plain").await.unwrap();

    let t = tags(&[("kind", "news"), ("odd:key", "1:x-"), ("empty", "")]);
    let with_tags = PublishOptions {
        tags: Some(t.clone()),
        ..opts(10, 60)
    };
    assert_eq!(
        publish(&a, "t", "tagged", with_tags.clone()).await.offset,
        1
    );
    assert_eq!(publish(&a, "t", "untagged", opts(10, 60)).await.offset, 2);
    let delta = PublishOptions {
        delta: true,
        ..with_tags.clone()
    };
    assert_eq!(publish(&a, "t", "delta", delta).await.offset, 3);
    let no_history = PublishOptions {
        tags: Some(t.clone()),
        ..opts(0, 0)
    };
    publish(&a, "plain", "nohist", no_history).await;

    let got = received(&a, &cb, "t").await;
    assert_eq!(datas(&got), vec!["tagged", "untagged", "delta"]);
    assert_eq!(got[0].tags.as_deref(), Some(&*t));
    assert_eq!(got[1].tags, None);
    assert_eq!(got[2].tags.as_deref(), Some(&*t));
    let got = received(&a, &cb, "plain").await;
    assert_eq!(datas(&got), vec!["nohist"]);
    assert_eq!((got[0].offset, got[0].tags.as_deref()), (0, Some(&*t)));

    let history = stored(&b, "t").await;
    assert_eq!(datas(&history), vec!["tagged", "untagged", "delta"]);
    assert_eq!(history[0].tags.as_deref(), Some(&*t));
    assert_eq!(history[1].tags, None);
    assert_eq!(history[2].tags.as_deref(), Some(&*t));
}

#[tokio::test]
async fn an_idempotent_repeat_from_either_node_answers_the_first_result_once() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    for e in [&a, &b] {
        e.broker.subscribe("h").await.unwrap();
        e.broker.subscribe("n").await.unwrap();
    }

    // With history.
    let first = publish(&a, "h", "one", keyed(opts(10, 60), "k1")).await;
    assert_eq!(first.offset, 1);
    assert_eq!(
        publish(&b, "h", "two", keyed(opts(10, 60), "k1")).await,
        first
    );
    assert_eq!(
        publish(&a, "h", "three", keyed(opts(10, 60), "k2"))
            .await
            .offset,
        2
    );
    assert_eq!(
        publish(&b, "h", "again", keyed(opts(10, 60), "k1")).await,
        first
    );
    assert_eq!(datas(&stored(&b, "h").await), vec!["one", "three"]);
    for c in [&ca, &cb] {
        assert_eq!(datas(&received(&a, c, "h").await), vec!["one", "three"]);
    }

    // Without history: the default position, one delivery.
    let none = StreamPosition::default();
    assert_eq!(publish(&a, "n", "one", keyed(opts(0, 0), "k1")).await, none);
    assert_eq!(publish(&b, "n", "two", keyed(opts(0, 0), "k1")).await, none);
    for c in [&ca, &cb] {
        assert_eq!(datas(&received(&b, c, "n").await), vec!["one"]);
    }

    // The same key in another channel is another publish.
    assert_eq!(
        publish(&b, "other", "x", keyed(opts(10, 60), "k1"))
            .await
            .offset,
        1
    );

    // The result is kept for Centrifugo's 300 s, in the channel's slot.
    let ttl: u64 = cli(redis.port, &["PTTL", "centrifugo.result.{h}:k1"])
        .parse()
        .unwrap();
    assert!(ttl > 290_000 && ttl <= 300_000, "pttl {ttl}");
}

#[tokio::test]
async fn concurrent_repeats_on_two_nodes_deliver_once() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    let (b, _cb) = ready(&redis).await;
    a.broker.subscribe("race").await.unwrap();
    let mut tasks = Vec::new();
    for (n, e) in [&a, &b, &a, &b].into_iter().enumerate() {
        let broker = e.broker.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..50 {
                let o = keyed(opts(100, 60), &format!("key{i}"));
                let data = Bytes::from(format!("{n}:{i}"));
                got.push(broker.publish("race", data, None, o).await.unwrap());
            }
            got
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    // Every publisher got the same answer per key, and each key was published once.
    for r in &results[1..] {
        assert_eq!(r, &results[0]);
    }
    let got = received(&a, &ca, "race").await;
    assert_eq!(got.len(), 50);
    assert_eq!(stored(&a, "race").await.len(), 50);
}

#[tokio::test]
async fn the_idempotency_window_expires() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    a.broker.subscribe("w").await.unwrap();
    a.broker.subscribe("wn").await.unwrap();
    let short = |o: PublishOptions| PublishOptions {
        idempotent_ttl: Duration::from_millis(300),
        ..keyed(o, "k")
    };
    assert_eq!(publish(&a, "w", "one", short(opts(10, 60))).await.offset, 1);
    assert_eq!(publish(&a, "w", "dup", short(opts(10, 60))).await.offset, 1);
    publish(&a, "wn", "one", short(opts(0, 0))).await;
    publish(&a, "wn", "dup", short(opts(0, 0))).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(publish(&a, "w", "two", short(opts(10, 60))).await.offset, 2);
    publish(&a, "wn", "two", short(opts(0, 0))).await;
    assert_eq!(datas(&received(&a, &ca, "w").await), vec!["one", "two"]);
    assert_eq!(datas(&received(&a, &ca, "wn").await), vec!["one", "two"]);
}

#[tokio::test]
async fn outdated_versions_are_dropped_and_a_new_epoch_starts_over() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    let (b, _cb) = ready(&redis).await;
    a.broker.subscribe("v").await.unwrap();
    a.broker.subscribe("vn").await.unwrap();

    assert_eq!(publish(&a, "v", "v1", versioned(1, "e1")).await.offset, 1);
    assert_eq!(publish(&b, "v", "v3", versioned(3, "e1")).await.offset, 2);
    let top = publish(&a, "v", "v2", versioned(2, "e1")).await;
    assert_eq!(top.offset, 2);
    assert_eq!(
        publish(&b, "v", "v3 again", versioned(3, "e1"))
            .await
            .offset,
        2
    );
    // An empty epoch matches whatever epoch is stored (Centrifugo's rule).
    assert_eq!(
        publish(&a, "v", "v2 no epoch", versioned(2, ""))
            .await
            .offset,
        2
    );
    assert_eq!(
        publish(&a, "v", "e2 v1", versioned(1, "e2")).await.offset,
        3
    );
    assert_eq!(
        publish(&b, "v", "e2 v1 again", versioned(1, "e2"))
            .await
            .offset,
        3
    );
    assert_eq!(
        publish(&a, "v", "e2 v2", versioned(2, "e2")).await.offset,
        4
    );
    // Versions compare exactly beyond 2^53.
    let big = 9_007_199_254_740_993; // 2^53 + 1
    assert_eq!(
        publish(&a, "v", "big", versioned(big, "e2")).await.offset,
        5
    );
    assert_eq!(
        publish(&a, "v", "big-1", versioned(big - 1, "e2"))
            .await
            .offset,
        5
    );
    assert_eq!(
        publish(&a, "v", "big+1", versioned(big + 1, "e2"))
            .await
            .offset,
        6
    );
    // Version 0 is "no version".
    assert_eq!(publish(&a, "v", "plain", opts(100, 60)).await.offset, 7);

    let expected = vec!["v1", "v3", "e2 v1", "e2 v2", "big", "big+1", "plain"];
    assert_eq!(datas(&stored(&b, "v").await), expected);
    assert_eq!(datas(&received(&a, &ca, "v").await), expected);
    let position = b
        .broker
        .history("v", HistoryFilter::default())
        .await
        .unwrap()
        .position;
    assert_eq!(top.epoch, position.epoch);

    // Channels without history ignore version.
    let o = PublishOptions {
        version: 5,
        version_epoch: "e".into(),
        ..opts(0, 0)
    };
    publish(&a, "vn", "a", o.clone()).await;
    publish(&b, "vn", "b", o).await;
    assert_eq!(datas(&received(&a, &ca, "vn").await), vec!["a", "b"]);
}
