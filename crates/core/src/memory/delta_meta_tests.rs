//! Tests of the memory broker's delta base (`prev_data` on delivery, never in history) and of
//! the per-call metadata TTL (`history_meta_ttl` in publish options and history filters).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rotor_protocol::{ClientInfo, Publication};

use super::testing::ManualClock;
use super::MemoryBroker;
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

fn setup(meta_ttl: Duration) -> (MemoryBroker, Arc<ManualClock>, Arc<Collector>) {
    let clock = ManualClock::new();
    let broker = MemoryBroker::with_clock(meta_ttl, clock.clock());
    let collector = Arc::new(Collector::default());
    broker.set_handler(collector.clone());
    (broker, clock, collector)
}

fn delta(size: usize, lifetime: u64) -> PublishOptions {
    PublishOptions {
        history_size: size,
        history_lifetime: lifetime,
        delta: true,
        ..Default::default()
    }
}

async fn publish(
    broker: &MemoryBroker,
    data: &'static [u8],
    opts: PublishOptions,
) -> StreamPosition {
    broker
        .publish("c", Bytes::from_static(data), None, opts)
        .await
        .unwrap()
}

/// `prev_data` of every delivered publication, as strings.
fn bases(collector: &Collector) -> Vec<Option<String>> {
    collector
        .publications
        .lock()
        .iter()
        .map(|p| {
            p.prev_data
                .as_ref()
                .map(|d| String::from_utf8_lossy(d).into_owned())
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

async fn all(
    broker: &MemoryBroker,
    meta_ttl: Option<Duration>,
) -> (Vec<Publication>, StreamPosition) {
    let page = broker
        .history(
            "c",
            HistoryFilter {
                history_meta_ttl: meta_ttl,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (page.publications, page.position)
}

#[tokio::test]
async fn delta_publish_carries_the_exact_previous_data_and_history_never_does() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    publish(&broker, b"{\"v\":1}", delta(10, 60)).await;
    publish(&broker, b"{\"v\":2}", delta(10, 60)).await;
    // Binary-safe: the base is the stored bytes as they are.
    publish(&broker, b"\x00\xff:-", delta(10, 60)).await;
    publish(&broker, b"last", delta(10, 60)).await;
    assert_eq!(
        bases(&collector),
        vec![None, s("{\"v\":1}"), s("{\"v\":2}"), s("\u{0}\u{fffd}:-")]
    );
    assert_eq!(
        collector.publications.lock()[3].prev_data.as_deref(),
        Some(&b"\x00\xff:-"[..])
    );
    let (history, top) = all(&broker, None).await;
    assert_eq!(top.offset, 4);
    assert_eq!(history.len(), 4);
    assert!(history.iter().all(|p| p.prev_data.is_none()));
}

#[tokio::test]
async fn unmarked_publish_gets_no_base_even_after_marked_ones() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    publish(&broker, b"a", delta(10, 60)).await;
    publish(
        &broker,
        b"b",
        PublishOptions {
            delta: false,
            ..delta(10, 60)
        },
    )
    .await;
    publish(&broker, b"c", delta(10, 60)).await;
    // The third one's base is "b": the stream's predecessor, marked or not.
    assert_eq!(bases(&collector), vec![None, None, s("b")]);
}

#[tokio::test]
async fn no_history_means_no_base() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    publish(&broker, b"a", delta(0, 0)).await;
    publish(&broker, b"b", delta(0, 0)).await;
    assert_eq!(bases(&collector), vec![None, None]);
    assert_eq!(broker.num_streams(), 0);
}

#[tokio::test]
async fn the_base_survives_trimming_but_not_history_expiry_or_removal() {
    let (broker, clock, collector) = setup(Duration::ZERO);
    // A history of one: the predecessor is still retained when the next one is appended.
    publish(&broker, b"a", delta(1, 10)).await;
    publish(&broker, b"b", delta(1, 10)).await;
    clock.advance(Duration::from_secs(11));
    // History expired: offset and epoch stay, but no predecessor is held.
    assert_eq!(publish(&broker, b"c", delta(1, 10)).await.offset, 3);
    broker.remove_history("c").await.unwrap();
    assert_eq!(publish(&broker, b"d", delta(1, 10)).await.offset, 4);
    publish(&broker, b"e", delta(1, 10)).await;
    assert_eq!(bases(&collector), vec![None, s("a"), None, None, s("d")]);
}

#[tokio::test]
async fn first_publication_of_a_new_epoch_has_no_base() {
    let (broker, clock, collector) = setup(Duration::from_secs(30));
    let first = publish(&broker, b"a", delta(10, 5)).await;
    publish(&broker, b"b", delta(10, 5)).await;
    clock.advance(Duration::from_secs(31));
    let next = publish(&broker, b"c", delta(10, 5)).await;
    assert_eq!(next.offset, 1);
    assert_ne!(next.epoch, first.epoch);
    publish(&broker, b"d", delta(10, 5)).await;
    assert_eq!(bases(&collector), vec![None, s("a"), None, s("c")]);
}

#[tokio::test]
async fn suppressed_publishes_deliver_nothing() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    let keyed = PublishOptions {
        idempotency_key: Some("k".into()),
        ..delta(10, 60)
    };
    publish(&broker, b"a", keyed.clone()).await;
    publish(&broker, b"a", keyed).await;
    let v = |version| PublishOptions {
        version,
        ..delta(10, 60)
    };
    publish(&broker, b"b", v(2)).await;
    publish(&broker, b"stale", v(1)).await;
    publish(&broker, b"c", v(3)).await;
    assert_eq!(bases(&collector), vec![None, s("a"), s("b")]);
}

fn with_meta(meta_ttl: Duration) -> PublishOptions {
    PublishOptions {
        history_meta_ttl: Some(meta_ttl),
        ..delta(10, 5)
    }
}

#[tokio::test]
async fn per_call_meta_ttl_overrides_a_forever_engine_setting() {
    let (broker, clock, _) = setup(Duration::ZERO);
    let ttl = Some(Duration::from_secs(30));
    let first = publish(&broker, b"a", with_meta(Duration::from_secs(30))).await;
    clock.advance(Duration::from_secs(20));
    // A read does not extend the metadata; a publish does.
    assert_eq!(all(&broker, ttl).await.1, first);
    clock.advance(Duration::from_secs(9));
    let second = publish(&broker, b"b", with_meta(Duration::from_secs(30))).await;
    assert_eq!((second.offset, &second.epoch), (2, &first.epoch));
    clock.advance(Duration::from_secs(31));
    // Expired 30 s after the last publish: a new epoch, offset 0, stable across reads.
    let (history, top) = all(&broker, ttl).await;
    assert!(history.is_empty());
    assert_eq!(top.offset, 0);
    assert_ne!(top.epoch, first.epoch);
    assert_eq!(all(&broker, ttl).await.1, top);
    let third = publish(&broker, b"c", with_meta(Duration::from_secs(30))).await;
    assert_eq!((third.offset, &third.epoch), (1, &top.epoch));
}

#[tokio::test]
async fn per_call_meta_ttl_never_expires_before_the_history() {
    let (broker, clock, _) = setup(Duration::ZERO);
    let first = publish(&broker, b"a", with_meta(Duration::from_secs(2))).await;
    clock.advance(Duration::from_secs(4));
    assert_eq!(all(&broker, Some(Duration::from_secs(2))).await.1, first);
    clock.advance(Duration::from_secs(2));
    assert_ne!(all(&broker, Some(Duration::from_secs(2))).await.1, first);
}

#[tokio::test]
async fn engine_default_applies_without_a_per_call_value() {
    let (broker, clock, _) = setup(Duration::from_secs(10));
    let first = publish(&broker, b"a", delta(10, 5)).await;
    clock.advance(Duration::from_secs(11));
    let page = all(&broker, None).await.1;
    assert_eq!(page.offset, 0);
    assert_ne!(page.epoch, first.epoch);

    // A namespace value of "forever" on an engine whose default expires.
    let forever = Duration::ZERO;
    let kept = broker
        .publish("k", Bytes::from_static(b"x"), None, with_meta(forever))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1_000));
    let filter = HistoryFilter {
        history_meta_ttl: Some(forever),
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(broker.history("k", filter).await.unwrap().position, kept);
}

#[tokio::test]
async fn a_derived_epoch_is_never_reused_after_a_reload_to_a_finite_ttl() {
    let (broker, clock, _) = setup(Duration::ZERO);
    // Created with metadata kept forever: its epoch is derived from the channel name.
    let first = publish(&broker, b"a", delta(10, 5)).await;
    // Later calls carry a finite namespace TTL: the stream keeps its metadata anyway, since a
    // recreated stream with the same derived epoch would make old offsets look valid.
    publish(&broker, b"b", with_meta(Duration::from_secs(10))).await;
    clock.advance(Duration::from_secs(100));
    broker.cleanup_expired(clock.now());
    let top = all(&broker, Some(Duration::from_secs(10))).await.1;
    assert_eq!((top.offset, &top.epoch), (2, &first.epoch));
}
