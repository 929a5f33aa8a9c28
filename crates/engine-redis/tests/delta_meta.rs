//! The Redis broker's delta base and per-call metadata TTL against a real `redis-server`, with
//! two engines (two "nodes") on it: a publish marked delta reaches the other node with the
//! exact data of the stream's previous entry as `prev_data` (and never from history); unmarked
//! publishes, channels without history, the first publication of an epoch and a publication
//! after the history expired carry none; idempotent repeats and outdated versions publish
//! nothing, delta or not. A raw PUB/SUB subscriber checks the bytes on the wire: unmarked
//! publications are the plain `p` message, marked ones with a base the `d` message. The
//! namespace's `history_meta_ttl` travels with each publish and history read: the metadata key
//! gets that TTL, and after it a new epoch starts.
//!
//! "Delivered" is checked without sleeping: after the publishes, a sentinel publication goes to
//! the same channel; Redis delivers a channel's messages in order, so once the sentinel has
//! arrived everything published before it has too.

mod support;

use std::time::Duration;

use bytes::Bytes;
use rotor_core::engine::{Broker, HistoryFilter, PublishOptions, StreamPosition};
use rotor_engine_redis::RedisEngine;
use rotor_protocol::{ClientInfo, Publication};
use support::*;

async fn publish(e: &RedisEngine, channel: &str, data: &[u8], o: PublishOptions) -> StreamPosition {
    e.broker
        .publish(channel, Bytes::copy_from_slice(data), None, o)
        .await
        .unwrap()
}

fn delta(o: PublishOptions) -> PublishOptions {
    PublishOptions { delta: true, ..o }
}

/// What `c` received on `channel` (as (data, prev_data) pairs, with offsets), once a sentinel
/// published after everything else arrived.
async fn received(e: &RedisEngine, c: &Collector, channel: &str) -> Vec<Publication> {
    publish(e, channel, b"sentinel", opts(0, 0)).await;
    eventually("the sentinel", || {
        c.publications
            .lock()
            .iter()
            .any(|(ch, p)| ch == channel && p.data == "sentinel")
    })
    .await;
    let got = c
        .publications
        .lock()
        .iter()
        .filter(|(ch, p)| ch == channel && p.data != "sentinel")
        .map(|(_, p)| p.clone())
        .collect();
    c.publications.lock().retain(|(ch, _)| ch != channel);
    got
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (data, prev_data) of each publication.
fn pairs(ps: &[Publication]) -> Vec<(String, Option<String>)> {
    ps.iter()
        .map(|p| (text(&p.data), p.prev_data.as_ref().map(text)))
        .collect()
}

fn p(data: &str, prev: Option<&str>) -> (String, Option<String>) {
    (data.to_owned(), prev.map(str::to_owned))
}

async fn history(
    e: &RedisEngine,
    channel: &str,
    meta_ttl: Option<Duration>,
) -> (Vec<Publication>, StreamPosition) {
    let all = HistoryFilter {
        limit: None,
        history_meta_ttl: meta_ttl,
        ..Default::default()
    };
    let page = e.broker.history(channel, all).await.unwrap();
    (page.publications, page.position)
}

/// A plain Redis connection subscribed to the PUB/SUB channel of `channel`, to see the bytes
/// nodes send each other (the messages arrive on the receiver while the connection lives).
async fn raw_subscriber(
    redis: &Redis,
    channel: &str,
) -> (
    redis::aio::MultiplexedConnection,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", redis.port)).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let config =
        redis::AsyncConnectionConfig::new().set_push_sender(move |push: redis::PushInfo| {
            if push.kind == redis::PushKind::Message {
                if let Some(redis::Value::BulkString(b)) = push.data.get(1) {
                    let _ = tx.send(b.clone());
                }
            }
            Ok::<(), std::convert::Infallible>(())
        });
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    conn.subscribe(format!("centrifugo.client.{{{channel}}}"))
        .await
        .unwrap();
    (conn, rx)
}

#[tokio::test]
async fn a_delta_publish_reaches_the_other_node_with_the_exact_predecessor() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    for e in [&a, &b] {
        e.broker.subscribe("d").await.unwrap();
    }
    let h = opts(10, 60);
    let publisher = std::sync::Arc::new(ClientInfo {
        user: "u:1".into(),
        client: "c-1".into(),
        conn_info: Some(Bytes::from_static(b"{\"n\":\"x:1\"}")),
        chan_info: None,
    });
    let tagged = PublishOptions {
        tags: Some(std::sync::Arc::new(
            [("k".to_string(), "v:2".to_string())].into_iter().collect(),
        )),
        ..delta(h.clone())
    };
    assert_eq!(
        publish(&a, "d", b"{\"v\":1}", delta(h.clone()))
            .await
            .offset,
        1
    );
    // The base is stored bytes with an info and tags around them: only the data is the base.
    let second = b
        .broker
        .publish(
            "d",
            Bytes::from_static(b"\x00\xff 2:x-"),
            Some(publisher),
            tagged,
        )
        .await
        .unwrap();
    assert_eq!(second.offset, 2);
    assert_eq!(
        publish(&a, "d", b"{\"v\":3}", delta(h.clone()))
            .await
            .offset,
        3
    );
    assert_eq!(publish(&b, "d", b"{\"v\":4}", h.clone()).await.offset, 4);
    assert_eq!(publish(&a, "d", b"", delta(h.clone())).await.offset, 5);
    assert_eq!(
        publish(&b, "d", b"{\"v\":6}", delta(h.clone()))
            .await
            .offset,
        6
    );

    for c in [&ca, &cb] {
        let got = received(&a, c, "d").await;
        assert_eq!(
            got.iter().map(|p| p.offset).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(got[1].prev_data.as_deref(), Some(&b"{\"v\":1}"[..]));
        assert_eq!(got[2].prev_data.as_deref(), Some(&b"\x00\xff 2:x-"[..]));
        assert_eq!(got[1].info.as_ref().unwrap().user, "u:1");
        assert_eq!(got[1].tags.as_ref().unwrap()["k"], "v:2");
        assert_eq!(got[2].info, None);
        assert_eq!(
            pairs(&got)[3..],
            [
                p("{\"v\":4}", None), // not marked
                p("", Some("{\"v\":4}")),
                p("{\"v\":6}", Some("")), // an empty predecessor is still one
            ]
        );
        assert_eq!(got[0].prev_data, None, "the first publication of an epoch");
    }
    let (stored, top) = history(&b, "d", None).await;
    assert_eq!(top.offset, 6);
    assert_eq!(stored.len(), 6);
    assert!(stored.iter().all(|p| p.prev_data.is_none()));
}

#[tokio::test]
async fn unmarked_publications_keep_the_plain_wire_message() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, _ca) = ready(&redis).await;
    let (_conn, mut raw) = raw_subscriber(&redis, "w").await;
    let h = opts(10, 60);
    let first = publish(&a, "w", b"one", delta(h.clone())).await;
    publish(&a, "w", b"two", h.clone()).await;
    publish(&a, "w", b"three", delta(h.clone())).await;
    publish(&a, "w", b"none", delta(opts(0, 0))).await;
    let mut got = Vec::new();
    while got.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(5), raw.recv())
            .await
            .expect("a message")
            .unwrap();
        got.push(String::from_utf8(m).unwrap());
    }
    let e = &first.epoch;
    assert_eq!(
        got,
        [
            // Marked, but nothing before it: the plain message.
            format!("p1:{e}:0one"),
            format!("p2:{e}:0two"),
            // The previous entry's body (header `0`, then the data) as a field, then the body.
            format!("d3:{e}:4:0two0three"),
            "p0::0none".to_string(),
        ]
    );
}

#[tokio::test]
async fn no_history_no_base_and_suppressed_publishes_publish_nothing() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, _ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    for ch in ["n", "i", "v"] {
        b.broker.subscribe(ch).await.unwrap();
    }
    // Without history: never a base.
    publish(&a, "n", b"x", delta(opts(0, 0))).await;
    publish(&a, "n", b"y", delta(opts(0, 0))).await;
    assert_eq!(
        pairs(&received(&a, &cb, "n").await),
        [p("x", None), p("y", None)]
    );

    // An idempotent repeat of a delta publish reaches nobody; the next base is the first one.
    let keyed = |key: &str| PublishOptions {
        idempotency_key: Some(key.into()),
        ..delta(opts(10, 60))
    };
    let first = publish(&a, "i", b"one", keyed("k")).await;
    assert_eq!(publish(&b, "i", b"repeat", keyed("k")).await, first);
    assert_eq!(publish(&a, "i", b"two", keyed("k2")).await.offset, 2);
    assert_eq!(publish(&b, "i", b"repeat", keyed("k")).await, first);
    assert_eq!(
        pairs(&received(&a, &cb, "i").await),
        [p("one", None), p("two", Some("one"))]
    );

    // An outdated version reaches nobody either.
    let versioned = |version| PublishOptions {
        version,
        ..delta(opts(10, 60))
    };
    publish(&a, "v", b"v2", versioned(2)).await;
    assert_eq!(publish(&b, "v", b"v1", versioned(1)).await.offset, 1);
    publish(&a, "v", b"v3", versioned(3)).await;
    assert_eq!(
        pairs(&received(&a, &cb, "v").await),
        [p("v2", None), p("v3", Some("v2"))]
    );
}

#[tokio::test]
async fn expired_history_and_a_new_epoch_give_no_base() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, _ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    b.broker.subscribe("x").await.unwrap();
    let short_history = delta(opts(10, 1));
    publish(&a, "x", b"a", short_history.clone()).await;
    publish(&a, "x", b"b", short_history.clone()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // History gone, metadata kept (engine default: forever): offset 3, no base.
    let third = publish(&a, "x", b"c", short_history.clone()).await;
    assert_eq!(third.offset, 3);
    // Removed history: no base either.
    a.broker.remove_history("x").await.unwrap();
    assert_eq!(
        publish(&a, "x", b"d", short_history.clone()).await.offset,
        4
    );
    // The stream recreated (its metadata lost): offset 1 of a new epoch, no base.
    cli(redis.port, &["DEL", "centrifugo.meta.{x}"]);
    let fresh = publish(&a, "x", b"e", short_history.clone()).await;
    assert_eq!(fresh.offset, 1);
    assert_ne!(fresh.epoch, third.epoch);
    publish(&a, "x", b"f", short_history).await;
    assert_eq!(
        pairs(&received(&a, &cb, "x").await),
        [
            p("a", None),
            p("b", Some("a")),
            p("c", None),
            p("d", None),
            p("e", None),
            p("f", Some("e")),
        ]
    );
}

fn ttl(redis: &Redis, key: &str) -> i64 {
    cli(redis.port, &["TTL", key]).parse().unwrap()
}

#[tokio::test]
async fn the_namespace_meta_ttl_travels_with_each_call() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, _ca) = ready(&redis).await;
    let with = |meta: Duration| PublishOptions {
        history_meta_ttl: Some(meta),
        ..opts(10, 1)
    };
    // The engine's own setting (redis_history_meta_ttl 0 here): no expiry.
    publish(&a, "default", b"x", opts(10, 1)).await;
    assert_eq!(ttl(&redis, "centrifugo.meta.{default}"), -1);
    // The namespace's value, per publish; never below the history lifetime; fractions round up.
    publish(&a, "ns", b"x", with(Duration::from_secs(100))).await;
    let t = ttl(&redis, "centrifugo.meta.{ns}");
    assert!((99..=100).contains(&t), "ttl {t}");
    publish(&a, "short", b"x", with(Duration::from_millis(300))).await;
    assert_eq!(ttl(&redis, "centrifugo.meta.{short}"), 1);
    // A history read that creates the stream uses the namespace's value too.
    let read = history(&a, "read", Some(Duration::from_secs(50))).await.1;
    assert_eq!(read.offset, 0);
    let t = ttl(&redis, "centrifugo.meta.{read}");
    assert!((49..=50).contains(&t), "ttl {t}");

    // Expiry: 2 s after the last publish the metadata is gone and a new epoch starts.
    let meta = Some(Duration::from_secs(2));
    let first = publish(&a, "e", b"1", with(Duration::from_secs(2))).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = publish(&a, "e", b"2", with(Duration::from_secs(2))).await;
    assert_eq!((second.offset, &second.epoch), (2, &first.epoch));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // 2.4 s after the first publish, 1.2 s after the last: still the same stream.
    assert_eq!(history(&a, "e", meta).await.1, second);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let (stored, top) = history(&a, "e", meta).await;
    assert!(stored.is_empty());
    assert_eq!(top.offset, 0);
    assert_ne!(top.epoch, first.epoch);
    // Stable from that read on, and the next publish continues it.
    let next = publish(&a, "e", b"3", with(Duration::from_secs(2))).await;
    assert_eq!((next.offset, &next.epoch), (1, &top.epoch));
}
