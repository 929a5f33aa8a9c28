//! The layers together, with an injected clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

const S: u64 = 1_000_000_000;

fn per(rate: u32, secs: u64) -> Option<Vec<Bucket>> {
    Some(vec![Bucket {
        interval: Duration::from_secs(secs),
        rate,
    }])
}

fn publish(rate: u32) -> LayerConfig {
    LayerConfig {
        commands: vec![(
            Command::Publish,
            CommandRule {
                buckets: per(rate, 1),
                ..Default::default()
            },
        )],
        ..Default::default()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn nothing_configured_is_no_limiter() {
    assert!(RateLimits::new(&RateLimitConfig::default(), None)
        .unwrap()
        .is_none());
}

#[test]
fn per_user_spans_connections_and_skips_anonymous() {
    let cfg = RateLimitConfig {
        user_command: Some(publish(2)),
        ..Default::default()
    };
    let rl = RateLimits::new(&cfg, None).unwrap().unwrap();
    let (mut a, mut b) = (ConnLimiter::default(), ConnLimiter::default());
    block_on(async {
        assert!(
            rl.check_at(&mut a, "u", Command::Publish, None, "", 0)
                .await
        );
        assert!(
            rl.check_at(&mut b, "u", Command::Publish, None, "", 0)
                .await
        );
        assert!(
            !rl.check_at(&mut a, "u", Command::Publish, None, "", 0)
                .await
        );
        assert!(
            !rl.check_at(&mut b, "u", Command::Publish, None, "", 0)
                .await
        );
        assert!(
            rl.check_at(&mut a, "v", Command::Publish, None, "", 0)
                .await
        );
        for _ in 0..10 {
            assert!(rl.check_at(&mut a, "", Command::Publish, None, "", 0).await);
        }
        assert!(
            rl.check_at(&mut b, "u", Command::Publish, None, "", S)
                .await
        );
    });
}

#[test]
fn idle_users_are_evicted() {
    let cfg = RateLimitConfig {
        user_command: Some(publish(1)),
        ..Default::default()
    };
    let rl = RateLimits::new(&cfg, None).unwrap().unwrap();
    let mut c = ConnLimiter::default();
    block_on(async {
        for i in 0..1000 {
            let user = format!("user{i}");
            rl.check_at(&mut c, &user, Command::Publish, None, "", S / 2)
                .await;
        }
        assert_eq!(rl.tracked_users(), 1000);
        // Two intervals later every shard that is touched sweeps.
        for i in 0..200 {
            let user = format!("other{i}");
            rl.check_at(&mut c, &user, Command::Publish, None, "", 3 * S)
                .await;
        }
        assert_eq!(rl.tracked_users(), 200);
    });
}

#[test]
fn dry_run_never_refuses_but_counts() {
    let mut l = publish(1);
    l.dry_run = true;
    let cfg = RateLimitConfig {
        client_command: Some(l),
        ..Default::default()
    };
    let rl = RateLimits::new(&cfg, None).unwrap().unwrap();
    let before = count("client_command", "publish", true);
    let mut c = ConnLimiter::default();
    block_on(async {
        for _ in 0..5 {
            assert!(rl.check_at(&mut c, "", Command::Publish, None, "", 0).await);
        }
    });
    assert_eq!(count("client_command", "publish", true) - before, 4);
}

fn count(layer: &str, command: &str, dry_run: bool) -> u64 {
    over_limit_counts()
        .into_iter()
        .find(|o| o.layer == layer && o.command == command && o.dry_run == dry_run)
        .map_or(0, |o| o.count)
}

#[test]
fn error_budget_is_spent_by_errors_but_internal() {
    let cfg = RateLimitConfig {
        client_error: Some(ErrorBudget {
            dry_run: false,
            buckets: per(3, 5).unwrap(),
        }),
        ..Default::default()
    };
    let rl = RateLimits::new(&cfg, None).unwrap().unwrap();
    let mut c = ConnLimiter::default();
    for _ in 0..10 {
        assert!(!rl.count_error_at(&mut c, 100, 0));
    }
    assert!(!rl.count_error_at(&mut c, 103, 0));
    assert!(!rl.count_error_at(&mut c, 111, 0));
    assert!(!rl.count_error_at(&mut c, 107, 0));
    assert!(rl.count_error_at(&mut c, 107, 0));
    // 5 s / 3: one error back after 1.67 s.
    assert!(!rl.count_error_at(&mut c, 107, 2 * S));
}

struct Counting {
    calls: AtomicUsize,
    allow: bool,
}

#[async_trait]
impl SharedLimiter for Counting {
    async fn take(&self, user: &str, name: &str, buckets: &[Bucket]) -> Result<bool, String> {
        assert_eq!((user, name, buckets.len()), ("u", "publish", 1));
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(self.allow)
    }
}

#[test]
fn shared_layer_runs_last_once_per_command_and_not_for_unsubscribe() {
    let shared = Arc::new(Counting {
        calls: AtomicUsize::new(0),
        allow: false,
    });
    let mut l = publish(5);
    l.commands.push((
        Command::Unsubscribe,
        CommandRule {
            buckets: per(1, 1),
            ..Default::default()
        },
    ));
    let cfg = RateLimitConfig {
        client_command: Some(publish(1)),
        redis_user_command: Some(l),
        ..Default::default()
    };
    assert!(matches!(
        RateLimits::new(&cfg, None),
        Err(RateLimitError::NoSharedStore)
    ));
    let rl = RateLimits::new(&cfg, Some(shared.clone()))
        .unwrap()
        .unwrap();
    let mut c = ConnLimiter::default();
    block_on(async {
        assert!(
            !rl.check_at(&mut c, "u", Command::Publish, None, "", 0)
                .await
        );
        assert_eq!(shared.calls.load(Ordering::Relaxed), 1);
        // Refused by the connection layer first: Redis is not asked.
        assert!(
            !rl.check_at(&mut c, "u", Command::Publish, None, "", 0)
                .await
        );
        assert_eq!(shared.calls.load(Ordering::Relaxed), 1);
        assert!(
            rl.check_at(&mut c, "u", Command::Unsubscribe, None, "", 0)
                .await
        );
        assert!(
            rl.check_at(&mut c, "", Command::Publish, None, "", 5 * S)
                .await
        );
        assert_eq!(shared.calls.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn connect_is_only_limited_per_user() {
    let all = LayerConfig {
        default: per(1, 1),
        ..Default::default()
    };
    let cfg = RateLimitConfig {
        client_command: Some(all.clone()),
        user_command: Some(all),
        ..Default::default()
    };
    let rl = RateLimits::new(&cfg, None).unwrap().unwrap();
    block_on(async {
        let mut c = ConnLimiter::default();
        assert!(
            rl.check_at(&mut c, "u", Command::Connect, None, "", 0)
                .await
        );
        let mut c = ConnLimiter::default();
        assert!(
            !rl.check_at(&mut c, "u", Command::Connect, None, "", 0)
                .await
        );
        let mut c = ConnLimiter::default();
        assert!(rl.check_at(&mut c, "", Command::Connect, None, "", 0).await);
        assert!(rl.check_at(&mut c, "", Command::Connect, None, "", 0).await);
    });
}
