//! The Redis engine against a real `redis-server` (started here on a free port, killed at the
//! end): the broker and presence contracts the memory engine's tests pin down, delivery between
//! two engines (two "nodes"), batching of subscriptions, and the fault path: Redis killed and
//! restarted means unhealthy, failing operations, then resubscription before healthy again and a
//! reconnect notice.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rotor_core::engine::{
    Broker, BrokerEventHandler, EngineError, HistoryFilter, PresenceManager, PresenceStats,
    StreamPosition,
};
use rotor_protocol::{ClientInfo, Publication};
use support::*;

#[tokio::test]
async fn history_offsets_trimming_filters_and_epochs() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (engine, _c) = ready(&redis).await;
    let b = &engine.broker;

    // The epoch is fixed from the first read on.
    let first = b.history("c", HistoryFilter::default()).await.unwrap();
    assert_eq!(first.position.offset, 0);
    assert_eq!(first.position.epoch.len(), 8);
    let again = b.history("c", HistoryFilter::default()).await.unwrap();
    assert_eq!(first.position, again.position);

    for i in 1..=10u64 {
        let pos = b
            .publish(
                "c",
                Bytes::from(format!("{{\"i\":{i}}}")),
                None,
                opts(6, 60),
            )
            .await
            .unwrap();
        assert_eq!(
            pos,
            StreamPosition {
                offset: i,
                epoch: first.position.epoch.clone()
            }
        );
    }
    let e = first.position.epoch.as_str();
    let f = |since: Option<(u64, &str)>, limit: Option<usize>, reverse: bool| HistoryFilter {
        since: since.map(|(offset, epoch)| StreamPosition {
            offset,
            epoch: epoch.into(),
        }),
        limit,
        reverse,
        history_meta_ttl: None,
    };
    let cases: Vec<(HistoryFilter, Vec<u64>)> = vec![
        (f(None, None, false), vec![5, 6, 7, 8, 9, 10]),
        (f(None, Some(0), false), vec![]),
        (f(None, Some(2), false), vec![5, 6]),
        (f(None, None, true), vec![10, 9, 8, 7, 6, 5]),
        (f(None, Some(2), true), vec![10, 9]),
        (f(Some((7, e)), None, false), vec![8, 9, 10]),
        (f(Some((7, e)), Some(2), false), vec![8, 9]),
        (f(Some((10, e)), None, false), vec![]),
        (f(Some((2, e)), None, false), vec![5, 6, 7, 8, 9, 10]),
        (f(Some((0, "")), None, false), vec![5, 6, 7, 8, 9, 10]),
        // An empty epoch is "unknown": the offset still selects.
        (f(Some((8, "")), None, false), vec![9, 10]),
        // Another epoch's offset means nothing here: everything retained.
        (
            f(Some((8, "otherep")), None, false),
            vec![5, 6, 7, 8, 9, 10],
        ),
        (f(Some((8, e)), None, true), vec![7, 6, 5]),
        (f(Some((8, e)), Some(2), true), vec![7, 6]),
        (f(Some((5, e)), None, true), vec![]),
        (f(Some((100, e)), Some(3), true), vec![10, 9, 8]),
    ];
    for (filter, want) in cases {
        let page = b.history("c", filter.clone()).await.unwrap();
        assert_eq!(offsets(&page.publications), want, "{filter:?}");
        assert_eq!(page.position.offset, 10);
    }
    let page = b.history("c", HistoryFilter::default()).await.unwrap();
    assert_eq!(page.publications[0].data, Bytes::from_static(b"{\"i\":5}"));

    // Publisher info survives the round trip.
    let who = Arc::new(info("u1", "c1"));
    b.publish(
        "c",
        Bytes::from_static(b"[]"),
        Some(who.clone()),
        opts(6, 60),
    )
    .await
    .unwrap();
    let page = b
        .history(
            "c",
            HistoryFilter {
                since: None,
                limit: Some(1),
                reverse: true,
                history_meta_ttl: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.publications[0].info.as_deref(), Some(&*who));
    assert_eq!(page.publications[0].offset, 11);

    // Removing history keeps the position; offsets go on.
    b.remove_history("c").await.unwrap();
    let page = b.history("c", HistoryFilter::default()).await.unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(page.position.offset, 11);
    let pos = b
        .publish("c", Bytes::new(), None, opts(6, 60))
        .await
        .unwrap();
    assert_eq!(pos.offset, 12);

    // Without history: offset 0, nothing stored.
    let pos = b
        .publish("nohist", Bytes::new(), None, opts(0, 60))
        .await
        .unwrap();
    assert_eq!(pos, StreamPosition::default());
    assert_eq!(
        cli(redis.port, &["EXISTS", "centrifugo.stream.{nohist}"]),
        "0"
    );

    // Lifetime expires the whole stream; the position stays.
    b.publish("short", Bytes::new(), None, opts(10, 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let page = b.history("short", HistoryFilter::default()).await.unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(page.position.offset, 1);
}

#[tokio::test]
async fn delivery_between_two_nodes_in_order() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;

    // Only a node subscribed to a channel receives it.
    b.broker.subscribe("chat").await.unwrap();
    a.broker
        .publish("chat", Bytes::from_static(b"1"), None, opts(100, 60))
        .await
        .unwrap();
    a.broker
        .publish("other", Bytes::from_static(b"x"), None, opts(100, 60))
        .await
        .unwrap();
    eventually("b receives", || cb.publications.lock().len() == 1).await;
    assert!(ca.publications.lock().is_empty());
    assert_eq!(cb.publications.lock()[0].0, "chat");

    // Concurrent publishers on both nodes: every publication arrives, in offset order.
    a.broker.subscribe("chat").await.unwrap();
    let mut tasks = Vec::new();
    for (n, engine) in [&a, &b].into_iter().enumerate() {
        let broker = engine.broker.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                broker
                    .publish(
                        "chat",
                        Bytes::from(format!("{n}:{i}")),
                        None,
                        opts(1000, 60),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for c in [&ca, &cb] {
        eventually("all 400", || c.publications.lock().len() >= 400).await;
        let got: Vec<u64> = c
            .publications
            .lock()
            .iter()
            .filter(|(ch, _)| ch == "chat")
            .map(|(_, p)| p.offset)
            .collect();
        let tail: Vec<u64> = got[got.len() - 400..].to_vec();
        assert_eq!(tail, (2..=401).collect::<Vec<u64>>());
    }

    // Joins, leaves and control messages.
    a.broker
        .publish_join("chat", info("u", "c1"))
        .await
        .unwrap();
    a.broker
        .publish_leave("chat", info("u", "c1"))
        .await
        .unwrap();
    a.broker
        .publish_control(Bytes::from_static(b"hello"))
        .await
        .unwrap();
    for c in [&ca, &cb] {
        eventually("join/leave/control", || {
            !c.joins.lock().is_empty()
                && !c.leaves.lock().is_empty()
                && !c.controls.lock().is_empty()
        })
        .await;
        assert_eq!(c.joins.lock()[0], ("chat".to_string(), info("u", "c1")));
        assert_eq!(c.controls.lock()[0], b"hello");
    }

    // Unsubscribing the last interest stops delivery; subscribe/unsubscribe calls pair up.
    b.broker.subscribe("chat").await.unwrap();
    b.broker.unsubscribe("chat").await.unwrap();
    let before = cb.publications.lock().len();
    a.broker
        .publish("chat", Bytes::from_static(b"still"), None, opts(0, 0))
        .await
        .unwrap();
    eventually("b still subscribed", || {
        cb.publications.lock().len() == before + 1
    })
    .await;
    b.broker.unsubscribe("chat").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.broker
        .publish("chat", Bytes::from_static(b"gone"), None, opts(0, 0))
        .await
        .unwrap();
    eventually("a gets it", || {
        ca.publications
            .lock()
            .last()
            .is_some_and(|(_, p)| p.data == "gone")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(cb.publications.lock().len(), before + 1);
}

#[tokio::test]
async fn many_subscriptions_at_once_are_batched() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (a, _) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let broker = b.broker.clone();
        tasks.push(tokio::spawn(async move {
            broker.subscribe(&format!("ch{i}")).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let took = started.elapsed();
    let numsub = cli(
        redis.port,
        &["PUBSUB", "NUMSUB", "centrifugo.client.{ch1999}"],
    );
    assert!(numsub.ends_with('1'), "{numsub}");
    for i in [0, 999, 1999] {
        a.broker
            .publish(
                &format!("ch{i}"),
                Bytes::from_static(b"1"),
                None,
                opts(0, 0),
            )
            .await
            .unwrap();
    }
    eventually("3 deliveries", || cb.publications.lock().len() == 3).await;
    assert!(
        took < Duration::from_secs(5),
        "2000 subscriptions took {took:?}"
    );
}

#[tokio::test]
async fn presence_with_expiry_and_stats() {
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let (e, _) = ready(&redis).await;
    let p = &e.presence;
    p.add_presence("room", info("u1", "c1"), 60).await.unwrap();
    p.add_presence("room", info("u1", "c2"), 60).await.unwrap();
    p.add_presence("room", info("u2", "c3"), 1).await.unwrap();
    let mut list = p.presence("room").await.unwrap();
    list.sort_by(|a, b| a.client.cmp(&b.client));
    assert_eq!(
        list,
        vec![info("u1", "c1"), info("u1", "c2"), info("u2", "c3")]
    );
    assert_eq!(
        p.presence_stats("room").await.unwrap(),
        PresenceStats {
            num_clients: 3,
            num_users: 2
        }
    );
    // c3 expires; refreshing c1 replaces its info.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut changed = info("u1", "c1");
    changed.chan_info = Some(Bytes::from_static(b"{\"r\":2}"));
    p.add_presence("room", changed.clone(), 60).await.unwrap();
    assert_eq!(
        p.presence_stats("room").await.unwrap(),
        PresenceStats {
            num_clients: 2,
            num_users: 1
        }
    );
    p.remove_presence("room", "c2").await.unwrap();
    assert_eq!(p.presence("room").await.unwrap(), vec![changed]);
    p.remove_presence("room", "c1").await.unwrap();
    assert!(p.presence("room").await.unwrap().is_empty());
    assert_eq!(
        cli(redis.port, &["EXISTS", "centrifugo.presence.data.{room}"]),
        "0"
    );
    // Keys expire with their newest entry: a dead node leaves nothing.
    p.add_presence("ghost", info("u", "c"), 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        cli(
            redis.port,
            &["EXISTS", "centrifugo.presence.expire.{ghost}"]
        ),
        "0"
    );
}

#[tokio::test]
async fn redis_restart_unhealthy_then_resubscribed_before_healthy() {
    if !redis_available() {
        return;
    }
    let mut redis = Redis::start();
    let (a, ca) = ready(&redis).await;
    let (b, cb) = ready(&redis).await;
    b.broker.subscribe("live").await.unwrap();
    assert!(a.broker.is_healthy() && b.broker.is_healthy());

    redis.kill();
    for e in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(3);
        while e.broker.is_healthy() {
            assert!(Instant::now() < deadline, "unhealthy after the kill");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let err = a
        .broker
        .publish("live", Bytes::from_static(b"lost"), None, opts(10, 60))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err:?}");
    assert!(b.broker.subscribe("other").await.is_err());
    assert!(a.presence.presence("live").await.is_err());

    redis.spawn();
    for e in [&a, &b] {
        assert!(e.wait_ready(Duration::from_secs(5)).await, "ready again");
    }
    eventually("reconnect notices", || {
        *ca.reconnects.lock() == 1 && *cb.reconnects.lock() == 1
    })
    .await;
    // Healthy means resubscribed: the first publish after it reaches b.
    assert_eq!(
        cli(
            redis.port,
            &["PUBSUB", "NUMSUB", "centrifugo.client.{live}"]
        )
        .lines()
        .last(),
        Some("1")
    );
    a.broker
        .publish("live", Bytes::from_static(b"back"), None, opts(10, 60))
        .await
        .unwrap();
    eventually("delivery after restart", || {
        cb.publications.lock().iter().any(|(_, p)| p.data == "back")
    })
    .await;
}

/// A handler that holds every delivery until `open`, like a node whose fan-out is stuck.
#[derive(Default)]
struct Stalled {
    open: std::sync::atomic::AtomicBool,
    delivered: std::sync::atomic::AtomicUsize,
    reconnects: std::sync::atomic::AtomicUsize,
}

impl BrokerEventHandler for Stalled {
    fn handle_publication(&self, _: &str, _: Publication) {
        // block_in_place: the runtime moves this worker's queued tasks to another thread first,
        // so only the dispatcher worker that called us is stuck, as with a stuck fan-out.
        tokio::task::block_in_place(|| {
            while !self.open.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        self.delivered
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
    fn handle_join(&self, _: &str, _: ClientInfo) {}
    fn handle_leave(&self, _: &str, _: ClientInfo) {}
    fn handle_control(&self, _: &[u8]) {}
    fn handle_reconnect(&self) {
        self.reconnects
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// More PUB/SUB messages than the node can hold while its handler is stuck: the excess is
/// dropped and every subscription is told to check its position (clients then recover from
/// history), instead of piling up in memory; once unstuck, delivery resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_the_node_cannot_take_is_dropped_with_a_position_check() {
    use std::sync::atomic::Ordering::Acquire;
    if !redis_available() {
        return;
    }
    let redis = Redis::start();
    let engine = redis.engine();
    assert!(engine.wait_ready(Duration::from_secs(5)).await);
    let h = Arc::new(Stalled::default());
    engine.broker.set_handler(h.clone());
    engine.broker.subscribe("flood").await.unwrap();
    // A real publication first: it blocks the one dispatcher worker this channel maps to.
    engine
        .broker
        .publish("flood", Bytes::from_static(b"first"), None, opts(10, 60))
        .await
        .unwrap();
    // Then raw messages on the channel's PUB/SUB name, more than a worker's queue (65,536).
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let body = rotor_engine_redis::wire::body(None, None, b"\"x\"");
    let message = rotor_engine_redis::wire::publication_message(0, "", &body);
    for _ in 0..8 {
        let mut pipe = redis::pipe();
        for _ in 0..10_000 {
            pipe.cmd("PUBLISH")
                .arg("centrifugo.client.{flood}")
                .arg(&message)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.reconnects.load(Acquire) == 0 {
        assert!(
            Instant::now() < deadline,
            "no position check after overflowing the dispatcher"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.delivered.load(Acquire),
        0,
        "the handler was stuck throughout"
    );
    h.open.store(true, std::sync::atomic::Ordering::Release);
    // What was queued drains, and new publications flow again.
    engine
        .broker
        .publish("flood", Bytes::from_static(b"after"), None, opts(10, 60))
        .await
        .unwrap();
    // Every message is accounted for: delivered, or dropped with a position check.
    let sent = 1 + 80_000 + 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.delivered.load(Acquire) + h.reconnects.load(Acquire) < sent {
        assert!(
            Instant::now() < deadline,
            "delivered {} + dropped {} of {sent}",
            h.delivered.load(Acquire),
            h.reconnects.load(Acquire)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (delivered, dropped) = (h.delivered.load(Acquire), h.reconnects.load(Acquire));
    assert_eq!(
        delivered + dropped,
        sent,
        "nothing lost silently, nothing twice"
    );
    assert!(
        dropped > 0 && delivered > 2,
        "{delivered} delivered, {dropped} dropped"
    );
    assert!(
        engine.broker.subscribe("other").await.is_ok(),
        "the engine still serves"
    );
}
