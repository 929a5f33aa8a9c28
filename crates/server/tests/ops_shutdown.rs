//! Graceful shutdown on SIGTERM: readiness turns 503 while draining, every connected client is
//! told to reconnect (3001 "shutdown") with the closes spread over `shutdown_spread`, new
//! WebSocket connections are refused, and the process exits 0 within `shutdown_timeout`.

mod common;
mod ops_support;

use std::time::{Duration, Instant};

use common::*;
use ops_support::*;
use serde_json::json;

const CLIENTS: usize = 200;
const SPREAD: Duration = Duration::from_secs(2);
const TIMEOUT_SECS: u64 = 10;

#[tokio::test]
async fn sigterm_tells_every_client_to_reconnect_spread_over_the_window() {
    let server = Server::start(json!({
        "health": true,
        "shutdown_spread": "2s",
        "shutdown_timeout": TIMEOUT_SECS,
    }))
    .await;
    // Half protocol v1, half v2, connected in parallel batches.
    let mut clients = Vec::with_capacity(CLIENTS);
    for batch in 0..CLIENTS / 50 {
        let connecting = (0..50).map(|i| {
            let server = &server;
            async move {
                let user = format!("u{}", batch * 50 + i);
                if i % 2 == 0 {
                    (1u8, server.v1_client(&user).await.0)
                } else {
                    (2u8, server.v2_client(&user).await.0)
                }
            }
        });
        clients.extend(futures_util::future::join_all(connecting).await);
    }
    assert_eq!(clients.len(), CLIENTS);

    let signalled = Instant::now();
    server.terminate();
    // Each client waits for its close frame and notes when it came.
    let waits: Vec<_> = clients
        .into_iter()
        .map(|(generation, mut ws)| {
            tokio::spawn(async move {
                let (code, reason) = ws.close_within(Duration::from_secs(TIMEOUT_SECS)).await;
                (generation, code, reason, signalled.elapsed())
            })
        })
        .collect();

    // While draining: readiness fails and new connections are refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(&server.http_url("/health")).await;
    assert_eq!(status, 503, "/health while draining: {body}");
    let (status, _) = get(&server.http_url("/ready")).await;
    assert_eq!(status, 503, "/ready while draining");
    let refused = Ws::try_open(&server.ws_url()).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted while draining"
    );

    let mut times = Vec::with_capacity(CLIENTS);
    for w in waits {
        let (generation, code, reason, at) = w.await.unwrap();
        assert_eq!(
            code, 3001,
            "client (v{generation}) closed with {code} {reason:?}"
        );
        if generation == 1 {
            assert_eq!(reason, V1_SHUTDOWN);
        } else {
            assert_eq!(reason, "shutdown");
        }
        times.push(at);
    }
    let status = wait_exit(&server, Duration::from_secs(TIMEOUT_SECS)).await;
    let total = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(total < Duration::from_secs(TIMEOUT_SECS), "took {total:?}");

    // Spread: not all at once, and over most of the window.
    times.sort();
    let (first, last) = (times[0], times[CLIENTS - 1]);
    assert!(
        last - first >= SPREAD.mul_f64(0.7),
        "closes came between {first:?} and {last:?}: not spread over {SPREAD:?}"
    );
    assert!(
        last <= SPREAD + Duration::from_secs(2),
        "last close at {last:?}"
    );
    let early = times.iter().filter(|t| **t < first + SPREAD / 4).count();
    assert!(
        early < CLIENTS / 2,
        "{early} of {CLIENTS} closes in the first quarter of the window"
    );
}

#[tokio::test]
async fn without_spread_all_close_at_once_and_exit_is_quick() {
    let server = Server::start(json!({"health": true, "shutdown_timeout": 5})).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(server.v2_client(&format!("u{i}")).await.0);
    }
    let signalled = Instant::now();
    server.terminate();
    for ws in &mut clients {
        let (code, _) = ws.close_within(Duration::from_secs(5)).await;
        assert_eq!(code, 3001);
    }
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "{:?}",
        signalled.elapsed()
    );
    let status = wait_exit(&server, Duration::from_secs(5)).await;
    assert!(status.success(), "exit status {status}");
}
