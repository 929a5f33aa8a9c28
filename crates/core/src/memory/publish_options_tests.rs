//! Tests of the memory broker's publish options through the [`Broker`] trait: tags in delivery
//! and history, idempotent repeats (with and without history, expiry, the bound) and version
//! suppression with epoch changes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rotor_protocol::{ClientInfo, Publication, Tags};

use super::testing::ManualClock;
use super::{MemoryBroker, MAX_IDEMPOTENCY_RESULTS};
use crate::engine::{Broker, BrokerEventHandler, HistoryFilter, PublishOptions, StreamPosition};

#[derive(Default)]
struct Collector {
    publications: Mutex<Vec<Publication>>,
}

impl BrokerEventHandler for Collector {
    fn handle_publication(&self, _channel: &str, publication: Publication) {
        self.publications.lock().push(publication);
    }
    fn handle_join(&self, _channel: &str, _info: ClientInfo) {}
    fn handle_leave(&self, _channel: &str, _info: ClientInfo) {}
}

fn setup() -> (MemoryBroker, Arc<ManualClock>, Arc<Collector>) {
    let clock = ManualClock::new();
    let broker = MemoryBroker::with_clock(Duration::ZERO, clock.clock());
    let collector = Arc::new(Collector::default());
    broker.set_handler(collector.clone());
    (broker, clock, collector)
}

fn history(size: usize) -> PublishOptions {
    PublishOptions {
        history_size: size,
        history_lifetime: 60,
        ..Default::default()
    }
}

fn keyed(mut opts: PublishOptions, key: &str) -> PublishOptions {
    opts.idempotency_key = Some(key.to_owned());
    opts
}

fn versioned(version: u64, epoch: &str) -> PublishOptions {
    PublishOptions {
        version,
        version_epoch: epoch.to_owned(),
        ..history(10)
    }
}

async fn publish(
    broker: &MemoryBroker,
    channel: &str,
    data: &str,
    opts: PublishOptions,
) -> StreamPosition {
    broker
        .publish(channel, Bytes::from(data.to_owned()), None, opts)
        .await
        .unwrap()
}

async fn all(broker: &MemoryBroker, channel: &str) -> Vec<Publication> {
    broker
        .history(
            channel,
            HistoryFilter {
                limit: None,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .publications
}

fn datas(publications: &[Publication]) -> Vec<String> {
    publications
        .iter()
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        .collect()
}

#[tokio::test]
async fn tags_reach_the_handler_and_history() {
    let (broker, _clock, collector) = setup();
    let tags: Arc<Tags> = Arc::new(
        [
            ("kind".to_owned(), "news".to_owned()),
            ("lang".to_owned(), "en".to_owned()),
        ]
        .into_iter()
        .collect(),
    );
    let with_tags = PublishOptions {
        tags: Some(tags.clone()),
        ..history(10)
    };
    publish(&broker, "c", "a", with_tags.clone()).await;
    publish(&broker, "c", "b", history(10)).await;
    publish(
        &broker,
        "nohist",
        "c",
        PublishOptions {
            tags: Some(tags.clone()),
            ..Default::default()
        },
    )
    .await;

    let delivered = collector.publications.lock().clone();
    assert_eq!(delivered.len(), 3);
    assert_eq!(delivered[0].tags.as_deref(), Some(&*tags));
    assert_eq!(delivered[1].tags, None);
    assert_eq!(delivered[2].tags.as_deref(), Some(&*tags));
    let stored = all(&broker, "c").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].tags.as_deref(), Some(&*tags));
    assert_eq!(stored[1].tags, None);
}

#[tokio::test]
async fn an_idempotent_repeat_answers_the_first_result_and_is_not_delivered() {
    let (broker, _clock, collector) = setup();
    let first = publish(&broker, "c", "one", keyed(history(10), "k1")).await;
    assert_eq!(first.offset, 1);
    let repeat = publish(&broker, "c", "two", keyed(history(10), "k1")).await;
    assert_eq!(repeat, first);
    // Another publish moves the stream on; the repeat still answers the first result.
    let other = publish(&broker, "c", "three", keyed(history(10), "k2")).await;
    assert_eq!(other.offset, 2);
    assert_eq!(
        publish(&broker, "c", "again", keyed(history(10), "k1")).await,
        first
    );
    // The same key in another channel is another publish.
    assert_eq!(
        publish(&broker, "d", "x", keyed(history(10), "k1"))
            .await
            .offset,
        1
    );

    assert_eq!(datas(&all(&broker, "c").await), vec!["one", "three"]);
    let delivered = datas(&collector.publications.lock());
    assert_eq!(delivered, vec!["one", "three", "x"]);
}

#[tokio::test]
async fn idempotency_without_history_delivers_once() {
    let (broker, _clock, collector) = setup();
    let opts = keyed(PublishOptions::default(), "k");
    assert_eq!(
        publish(&broker, "c", "one", opts.clone()).await,
        StreamPosition::default()
    );
    assert_eq!(
        publish(&broker, "c", "two", opts).await,
        StreamPosition::default()
    );
    assert_eq!(datas(&collector.publications.lock()), vec!["one"]);
    assert_eq!(broker.num_streams(), 0);
}

#[tokio::test]
async fn idempotency_expires_after_its_ttl_and_cleanup_reclaims_it() {
    let (broker, clock, collector) = setup();
    let opts = PublishOptions {
        idempotent_ttl: Duration::from_secs(2),
        ..keyed(history(10), "k")
    };
    publish(&broker, "c", "one", opts.clone()).await;
    clock.advance(Duration::from_millis(1900));
    assert_eq!(publish(&broker, "c", "dup", opts.clone()).await.offset, 1);
    clock.advance(Duration::from_millis(100));
    assert_eq!(publish(&broker, "c", "two", opts.clone()).await.offset, 2);
    assert_eq!(datas(&collector.publications.lock()), vec!["one", "two"]);

    // The default window is Centrifugo's 300 s.
    let default_window = keyed(history(10), "long");
    publish(&broker, "c", "three", default_window.clone()).await;
    clock.advance(Duration::from_secs(299));
    assert_eq!(
        publish(&broker, "c", "dup", default_window.clone())
            .await
            .offset,
        3
    );
    assert_eq!(broker.num_idempotency_results(), 2);
    clock.advance(Duration::from_secs(1));
    broker.cleanup_expired(clock.now());
    assert_eq!(broker.num_idempotency_results(), 0);
    assert_eq!(
        publish(&broker, "c", "four", default_window).await.offset,
        4
    );
}

#[tokio::test]
async fn many_keys_stay_within_the_bound() {
    let (broker, _clock, collector) = setup();
    let extra = 1000;
    for i in 0..MAX_IDEMPOTENCY_RESULTS + extra {
        let key = format!("k{i}");
        publish(
            &broker,
            &format!("ch{}", i % 97),
            "x",
            keyed(PublishOptions::default(), &key),
        )
        .await;
    }
    assert!(broker.num_idempotency_results() <= MAX_IDEMPOTENCY_RESULTS);
    assert!(broker.num_idempotency_results() > MAX_IDEMPOTENCY_RESULTS - 2 * extra);
    assert_eq!(
        collector.publications.lock().len(),
        MAX_IDEMPOTENCY_RESULTS + extra
    );
    // The newest key is remembered.
    let last = format!("k{}", MAX_IDEMPOTENCY_RESULTS + extra - 1);
    let channel = format!("ch{}", (MAX_IDEMPOTENCY_RESULTS + extra - 1) % 97);
    publish(
        &broker,
        &channel,
        "dup",
        keyed(PublishOptions::default(), &last),
    )
    .await;
    assert_eq!(
        collector.publications.lock().len(),
        MAX_IDEMPOTENCY_RESULTS + extra
    );
}

#[tokio::test]
async fn an_outdated_version_is_dropped_and_answers_the_top() {
    let (broker, _clock, collector) = setup();
    assert_eq!(
        publish(&broker, "c", "v1", versioned(1, "e1")).await.offset,
        1
    );
    assert_eq!(
        publish(&broker, "c", "v3", versioned(3, "e1")).await.offset,
        2
    );
    let top = publish(&broker, "c", "v2", versioned(2, "e1")).await;
    assert_eq!(top.offset, 2);
    assert_eq!(
        publish(&broker, "c", "v3 again", versioned(3, "e1"))
            .await
            .offset,
        2
    );
    // An empty epoch matches whatever epoch is stored (Centrifugo's rule).
    assert_eq!(
        publish(&broker, "c", "v2 no epoch", versioned(2, ""))
            .await
            .offset,
        2
    );
    // Another epoch starts over: a lower version publishes and becomes the stored pair.
    assert_eq!(
        publish(&broker, "c", "e2 v1", versioned(1, "e2"))
            .await
            .offset,
        3
    );
    assert_eq!(
        publish(&broker, "c", "e2 v1 again", versioned(1, "e2"))
            .await
            .offset,
        3
    );
    assert_eq!(
        publish(&broker, "c", "e2 v2", versioned(2, "e2"))
            .await
            .offset,
        4
    );
    // Version 0 is "no version": always published, and the stored pair stays.
    assert_eq!(publish(&broker, "c", "plain", history(10)).await.offset, 5);
    assert_eq!(
        publish(&broker, "c", "e2 v2 again", versioned(2, "e2"))
            .await
            .offset,
        5
    );

    let expected = vec!["v1", "v3", "e2 v1", "e2 v2", "plain"];
    assert_eq!(datas(&all(&broker, "c").await), expected);
    assert_eq!(datas(&collector.publications.lock()), expected);
    assert_eq!(
        top.epoch,
        broker
            .history("c", HistoryFilter::default())
            .await
            .unwrap()
            .position
            .epoch
    );
}

#[tokio::test]
async fn channels_without_history_ignore_version() {
    let (broker, _clock, collector) = setup();
    let opts = PublishOptions {
        version: 5,
        version_epoch: "e".into(),
        ..Default::default()
    };
    publish(&broker, "c", "a", opts.clone()).await;
    publish(&broker, "c", "b", opts).await;
    assert_eq!(datas(&collector.publications.lock()), vec!["a", "b"]);
}

#[tokio::test]
async fn delta_publishes_normally() {
    let (broker, _clock, collector) = setup();
    let opts = PublishOptions {
        delta: true,
        ..history(10)
    };
    assert_eq!(publish(&broker, "c", "a", opts.clone()).await.offset, 1);
    assert_eq!(publish(&broker, "c", "b", opts).await.offset, 2);
    assert_eq!(datas(&collector.publications.lock()), vec!["a", "b"]);
}
