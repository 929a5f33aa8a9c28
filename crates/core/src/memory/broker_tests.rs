//! Tests of [`super::MemoryBroker`]'s stream semantics: offsets, epochs, history size and
//! lifetime, metadata expiry, filters, cleanup and delivery order.

use super::*;
use crate::memory::testing::ManualClock;

#[derive(Default)]
struct Collector {
    publications: Mutex<Vec<(String, Publication)>>,
    joins: Mutex<Vec<(String, ClientInfo)>>,
    leaves: Mutex<Vec<(String, ClientInfo)>>,
}

impl BrokerEventHandler for Collector {
    fn handle_publication(&self, channel: &str, publication: Publication) {
        self.publications
            .lock()
            .push((channel.to_owned(), publication));
    }
    fn handle_join(&self, channel: &str, info: ClientInfo) {
        self.joins.lock().push((channel.to_owned(), info));
    }
    fn handle_leave(&self, channel: &str, info: ClientInfo) {
        self.leaves.lock().push((channel.to_owned(), info));
    }
}

fn opts(size: usize, lifetime: u64) -> PublishOptions {
    PublishOptions {
        history_size: size,
        history_lifetime: lifetime,
        ..Default::default()
    }
}

fn setup(meta_ttl: Duration) -> (MemoryBroker, Arc<ManualClock>, Arc<Collector>) {
    let clock = ManualClock::new();
    let broker = MemoryBroker::with_clock(meta_ttl, clock.clock());
    let collector = Arc::new(Collector::default());
    broker.set_handler(collector.clone());
    (broker, clock, collector)
}

async fn publish_n(broker: &MemoryBroker, channel: &str, n: usize, o: PublishOptions) {
    for i in 0..n {
        broker
            .publish(channel, Bytes::from(format!("{i}")), None, o.clone())
            .await
            .unwrap();
    }
}

fn offsets(page: &HistoryPage) -> Vec<u64> {
    page.publications.iter().map(|p| p.offset).collect()
}

async fn read(broker: &MemoryBroker, channel: &str, filter: HistoryFilter) -> HistoryPage {
    broker.history(channel, filter).await.unwrap()
}

fn since(offset: u64, epoch: &str) -> Option<StreamPosition> {
    Some(StreamPosition {
        offset,
        epoch: epoch.to_owned(),
    })
}

#[tokio::test]
async fn offsets_increment_from_one_without_gaps() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    let mut epoch = None;
    for expected in 1..=5u64 {
        let pos = broker
            .publish("c", Bytes::from_static(b"{}"), None, opts(10, 60))
            .await
            .unwrap();
        assert_eq!(pos.offset, expected);
        assert_eq!(pos.epoch.len(), EPOCH_LEN);
        assert_eq!(*epoch.get_or_insert_with(|| pos.epoch.clone()), pos.epoch);
    }
    let delivered: Vec<u64> = collector
        .publications
        .lock()
        .iter()
        .map(|(_, p)| p.offset)
        .collect();
    assert_eq!(delivered, vec![1, 2, 3, 4, 5]);
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![1, 2, 3, 4, 5]);
    assert_eq!(page.position.offset, 5);
    assert_eq!(Some(page.position.epoch), epoch);
    // Another channel has its own stream.
    let other = broker
        .publish("d", Bytes::new(), None, opts(10, 60))
        .await
        .unwrap();
    assert_eq!(other.offset, 1);
}

#[tokio::test]
async fn publish_without_history_delivers_offset_zero_and_creates_no_stream() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    let info = Arc::new(ClientInfo {
        user: "u".into(),
        client: "c1".into(),
        ..Default::default()
    });
    for o in [opts(0, 60), opts(10, 0)] {
        let pos = broker
            .publish("c", Bytes::from_static(b"1"), Some(info.clone()), o)
            .await
            .unwrap();
        assert_eq!(pos, StreamPosition::default());
    }
    assert_eq!(broker.num_streams(), 0);
    let got = collector.publications.lock().clone();
    assert_eq!(got.len(), 2);
    for (channel, publication) in got {
        assert_eq!(channel, "c");
        assert_eq!(publication.offset, 0);
        assert_eq!(publication.data, Bytes::from_static(b"1"));
        assert_eq!(publication.info.as_deref(), Some(&*info));
    }
}

#[tokio::test]
async fn history_trims_to_size() {
    let (broker, _clock, _) = setup(Duration::ZERO);
    publish_n(&broker, "c", 7, opts(3, 60)).await;
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![5, 6, 7]);
    assert_eq!(page.position.offset, 7);
    // A smaller size on a later publish trims further.
    publish_n(&broker, "c", 1, opts(1, 60)).await;
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![8]);
}

#[tokio::test]
async fn history_lifetime_counts_from_last_publish_and_keeps_position() {
    let (broker, clock, _) = setup(Duration::ZERO);
    publish_n(&broker, "c", 2, opts(10, 10)).await;
    clock.advance(Duration::from_secs(8));
    publish_n(&broker, "c", 1, opts(10, 10)).await;
    // 16s after the first publish, but only 8s after the last: all still there.
    clock.advance(Duration::from_secs(8));
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![1, 2, 3]);
    let epoch = page.position.epoch.clone();

    clock.advance(Duration::from_secs(2));
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert!(page.publications.is_empty());
    assert_eq!(
        page.position,
        StreamPosition {
            offset: 3,
            epoch: epoch.clone()
        }
    );
    // Offsets continue after the history expired.
    let pos = broker
        .publish("c", Bytes::new(), None, opts(10, 10))
        .await
        .unwrap();
    assert_eq!(pos, StreamPosition { offset: 4, epoch });
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![4]);
}

#[tokio::test]
async fn epoch_is_stable_across_reads_before_first_publish() {
    let (broker, _clock, _) = setup(Duration::ZERO);
    let first = read(&broker, "fresh", HistoryFilter::default()).await;
    assert_eq!(first.position.offset, 0);
    assert_eq!(first.position.epoch.len(), EPOCH_LEN);
    assert!(first.publications.is_empty());
    let second = read(&broker, "fresh", HistoryFilter::default()).await;
    assert_eq!(first.position, second.position);
    let pos = broker
        .publish("fresh", Bytes::new(), None, opts(1, 1))
        .await
        .unwrap();
    assert_eq!(
        pos,
        StreamPosition {
            offset: 1,
            epoch: first.position.epoch
        }
    );
}

#[tokio::test]
async fn reads_store_nothing_with_zero_meta_ttl() {
    let (broker, _clock, _) = setup(Duration::ZERO);
    let mut epochs = std::collections::HashSet::new();
    for i in 0..1000 {
        let ch = format!("$private-{i}");
        let page = read(&broker, &ch, HistoryFilter::default()).await;
        assert_eq!(page.position.offset, 0);
        assert_eq!(page.position.epoch.len(), EPOCH_LEN);
        assert!(page
            .position
            .epoch
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        epochs.insert(page.position.epoch);
    }
    assert_eq!(
        broker.num_streams(),
        0,
        "reads must not keep per-channel state"
    );
    assert!(
        epochs.len() > 990,
        "epochs differ between channels: {}",
        epochs.len()
    );
    broker.remove_history("$private-1").await.unwrap();
    assert_eq!(broker.num_streams(), 0);
}

#[tokio::test]
async fn derived_epoch_changes_with_the_process() {
    // A restarted node has lost its history: its epochs must not match the old ones.
    let a = MemoryBroker::new(Duration::ZERO);
    let b = MemoryBroker::new(Duration::ZERO);
    let ea = read(&a, "c", HistoryFilter::default()).await.position.epoch;
    let eb = read(&b, "c", HistoryFilter::default()).await.position.epoch;
    assert_ne!(ea, eb);
    assert_eq!(
        ea,
        read(&a, "c", HistoryFilter::default()).await.position.epoch
    );
}

#[tokio::test]
async fn reads_create_the_stream_with_a_meta_ttl() {
    let (broker, _clock, _) = setup(Duration::from_secs(30));
    let first = read(&broker, "c", HistoryFilter::default()).await.position;
    assert_eq!(broker.num_streams(), 1);
    let pos = broker
        .publish("c", Bytes::new(), None, opts(10, 10))
        .await
        .unwrap();
    assert_eq!(pos.epoch, first.epoch);
}

#[tokio::test]
async fn epoch_changes_after_meta_expiry() {
    let (broker, clock, _) = setup(Duration::from_secs(30));
    publish_n(&broker, "c", 3, opts(10, 10)).await;
    let before = read(&broker, "c", HistoryFilter::default()).await.position;
    assert_eq!(before.offset, 3);

    // History gone, metadata alive.
    clock.advance(Duration::from_secs(20));
    let mid = read(&broker, "c", HistoryFilter::default()).await;
    assert!(mid.publications.is_empty());
    assert_eq!(mid.position, before);

    // Metadata gone: a new stream with a new epoch, starting from offset 0.
    clock.advance(Duration::from_secs(10));
    let after = read(&broker, "c", HistoryFilter::default()).await.position;
    assert_eq!(after.offset, 0);
    assert_ne!(after.epoch, before.epoch);
    let pos = broker
        .publish("c", Bytes::new(), None, opts(10, 10))
        .await
        .unwrap();
    assert_eq!(
        pos,
        StreamPosition {
            offset: 1,
            epoch: after.epoch
        }
    );
}

#[tokio::test]
async fn meta_outlives_history_even_with_short_meta_ttl() {
    let (broker, clock, _) = setup(Duration::from_secs(5));
    publish_n(&broker, "c", 2, opts(10, 60)).await;
    let epoch = read(&broker, "c", HistoryFilter::default())
        .await
        .position
        .epoch;
    clock.advance(Duration::from_secs(59));
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![1, 2]);
    assert_eq!(page.position.epoch, epoch);
}

#[tokio::test]
async fn meta_ttl_zero_keeps_position_forever() {
    let (broker, clock, _) = setup(Duration::ZERO);
    publish_n(&broker, "c", 2, opts(10, 1)).await;
    let before = read(&broker, "c", HistoryFilter::default()).await.position;
    clock.advance(Duration::from_secs(1_000_000));
    broker.cleanup_expired(clock.now());
    assert_eq!(broker.num_streams(), 1);
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert!(page.publications.is_empty());
    assert_eq!(page.position, before);
}

#[tokio::test]
async fn since_limit_reverse_combinations() {
    let (broker, _clock, _) = setup(Duration::ZERO);
    publish_n(&broker, "c", 10, opts(6, 60)).await; // retains 5..=10
    let epoch = read(&broker, "c", HistoryFilter::default())
        .await
        .position
        .epoch;
    let f =
        |since_offset: Option<(u64, &str)>, limit: Option<usize>, reverse: bool| HistoryFilter {
            since: since_offset.and_then(|(offset, epoch)| since(offset, epoch)),
            limit,
            reverse,
            history_meta_ttl: None,
        };
    let e = epoch.as_str();
    let cases: Vec<(HistoryFilter, Vec<u64>)> = vec![
        (f(None, None, false), vec![5, 6, 7, 8, 9, 10]),
        (f(None, Some(0), false), vec![]),
        (f(None, Some(2), false), vec![5, 6]),
        (f(None, None, true), vec![10, 9, 8, 7, 6, 5]),
        (f(None, Some(2), true), vec![10, 9]),
        (f(None, Some(0), true), vec![]),
        (f(Some((7, e)), None, false), vec![8, 9, 10]),
        (f(Some((7, e)), Some(2), false), vec![8, 9]),
        (f(Some((7, e)), Some(0), false), vec![]),
        (f(Some((10, e)), None, false), vec![]),
        // Older than what is retained: everything retained.
        (f(Some((2, e)), None, false), vec![5, 6, 7, 8, 9, 10]),
        (f(Some((0, "")), None, false), vec![5, 6, 7, 8, 9, 10]),
        // A different epoch does not change what is selected.
        (f(Some((8, "otherep")), None, false), vec![9, 10]),
        (f(Some((8, e)), None, true), vec![7, 6, 5]),
        (f(Some((8, e)), Some(2), true), vec![7, 6]),
        (f(Some((5, e)), None, true), vec![]),
        (f(Some((100, e)), Some(3), true), vec![10, 9, 8]),
    ];
    for (filter, expected) in cases {
        let page = read(&broker, "c", filter.clone()).await;
        assert_eq!(offsets(&page), expected, "filter {filter:?}");
        assert_eq!(
            page.position,
            StreamPosition {
                offset: 10,
                epoch: epoch.clone()
            },
            "filter {filter:?}"
        );
    }
}

#[tokio::test]
async fn remove_history_keeps_position() {
    let (broker, _clock, _) = setup(Duration::ZERO);
    publish_n(&broker, "c", 4, opts(10, 60)).await;
    let before = read(&broker, "c", HistoryFilter::default()).await.position;
    broker.remove_history("c").await.unwrap();
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert!(page.publications.is_empty());
    assert_eq!(page.position, before);
    let pos = broker
        .publish("c", Bytes::new(), None, opts(10, 60))
        .await
        .unwrap();
    assert_eq!(pos.offset, 5);
    assert_eq!(pos.epoch, before.epoch);
    // Removing history of an unknown channel creates nothing.
    broker.remove_history("unknown").await.unwrap();
    assert_eq!(broker.num_streams(), 1);
}

#[tokio::test]
async fn cleanup_drops_expired_history_and_meta() {
    let (broker, clock, _) = setup(Duration::from_secs(100));
    publish_n(&broker, "a", 3, opts(10, 10)).await;
    publish_n(&broker, "b", 3, opts(10, 1000)).await;
    read(&broker, "read-only", HistoryFilter::default()).await;
    assert_eq!(broker.num_streams(), 3);

    clock.advance(Duration::from_secs(50));
    broker.cleanup_expired(clock.now());
    assert_eq!(broker.num_streams(), 3, "no metadata has expired yet");
    {
        let shard = broker.shard("a").lock();
        let a = shard.streams.get("a").unwrap();
        assert!(a.items.is_empty());
        assert_eq!(a.top_offset, 3);
    }
    clock.advance(Duration::from_secs(60));
    broker.cleanup_expired(clock.now());
    assert_eq!(
        broker.num_streams(),
        1,
        "a and the read-only stream expired; b's history keeps its metadata alive"
    );
    let page = read(&broker, "b", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![1, 2, 3]);
}

#[tokio::test]
async fn join_and_leave_go_straight_to_handler() {
    let (broker, _clock, collector) = setup(Duration::ZERO);
    let info = ClientInfo {
        user: "u".into(),
        client: "c1".into(),
        ..Default::default()
    };
    broker.publish_join("c", info.clone()).await.unwrap();
    broker.publish_leave("c", info.clone()).await.unwrap();
    broker.subscribe("c").await.unwrap();
    broker.unsubscribe("c").await.unwrap();
    assert_eq!(
        *collector.joins.lock(),
        vec![("c".to_owned(), info.clone())]
    );
    assert_eq!(*collector.leaves.lock(), vec![("c".to_owned(), info)]);
    assert_eq!(broker.num_streams(), 0);
}

#[tokio::test]
async fn publish_without_handler_still_stores() {
    let broker = MemoryBroker::new(Duration::ZERO);
    publish_n(&broker, "c", 2, opts(10, 60)).await;
    let page = read(&broker, "c", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_are_delivered_in_offset_order() {
    const TASKS: usize = 4;
    const PER_TASK: usize = 500;
    let broker = Arc::new(MemoryBroker::new(Duration::ZERO));
    let collector = Arc::new(Collector::default());
    broker.set_handler(collector.clone());

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move {
            let mut returned = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let pos = broker
                    .publish(
                        "race",
                        Bytes::from(format!("{t}:{i}")),
                        None,
                        opts(10_000, 60),
                    )
                    .await
                    .unwrap();
                returned.push(pos.offset);
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            returned
        }));
    }
    let mut all_returned = Vec::new();
    for task in tasks {
        let returned = task.await.unwrap();
        assert!(returned.windows(2).all(|w| w[0] < w[1]));
        all_returned.extend(returned);
    }
    all_returned.sort_unstable();
    let total = (TASKS * PER_TASK) as u64;
    assert_eq!(all_returned, (1..=total).collect::<Vec<_>>());

    let delivered: Vec<u64> = collector
        .publications
        .lock()
        .iter()
        .map(|(_, p)| p.offset)
        .collect();
    assert_eq!(delivered, (1..=total).collect::<Vec<_>>());

    let page = read(&broker, "race", HistoryFilter::default()).await;
    assert_eq!(offsets(&page), (1..=total).collect::<Vec<_>>());
    // Each publication in history is the one delivered with that offset.
    let delivered = collector.publications.lock();
    for (stored, (_, sent)) in page.publications.iter().zip(delivered.iter()) {
        assert_eq!(stored, sent);
    }
}
