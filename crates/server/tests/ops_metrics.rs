//! `/metrics` speaks Prometheus with Centrifugo's metric names and labels (2.8 and 6), and the
//! values move with traffic: connections, subscriptions, messages sent and received, API calls.
//! `/health` and `/ready` answer 200 while serving.

mod common;
mod ops_support;

use common::*;
use ops_support::*;
use serde_json::json;

/// Families a Centrifugo dashboard reads, with their Prometheus types.
const CENTRIFUGO_FAMILIES: &[(&str, &str)] = &[
    ("centrifugo_node_build", "gauge"),
    ("centrifugo_node_num_clients", "gauge"),
    ("centrifugo_node_num_users", "gauge"),
    ("centrifugo_node_num_channels", "gauge"),
    ("centrifugo_node_num_subscriptions", "gauge"),
    ("centrifugo_node_num_nodes", "gauge"),
    ("centrifugo_node_messages_sent_count", "counter"),
    ("centrifugo_node_messages_received_count", "counter"),
    ("centrifugo_node_action_count", "counter"),
    ("centrifugo_node_broadcast_duration_seconds", "histogram"),
    ("centrifugo_client_command_duration_seconds", "summary"),
    (
        "centrifugo_client_command_duration_seconds_histogram",
        "histogram",
    ),
    ("centrifugo_client_num_reply_errors", "counter"),
    ("centrifugo_client_num_server_disconnects", "counter"),
    ("centrifugo_client_num_server_unsubscribes", "counter"),
    ("centrifugo_client_recover", "counter"),
    ("centrifugo_client_ping_pong_duration_seconds", "histogram"),
    ("centrifugo_client_connections_inflight", "gauge"),
    ("centrifugo_client_subscriptions_inflight", "gauge"),
    ("centrifugo_transport_messages_sent", "counter"),
    ("centrifugo_transport_messages_sent_size", "counter"),
    ("centrifugo_transport_messages_received", "counter"),
    ("centrifugo_transport_messages_received_size", "counter"),
    ("centrifugo_transport_connect_count", "counter"),
    ("centrifugo_api_command_duration_seconds", "summary"),
    (
        "centrifugo_api_command_duration_seconds_histogram",
        "histogram",
    ),
    ("centrifugo_api_command_errors_total", "counter"),
    ("rotor_client_queue_bytes", "summary"),
    ("rotor_broker_publish_duration_seconds", "histogram"),
    ("rotor_broker_healthy", "gauge"),
    ("rotor_node_draining", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

const NS: (&str, &str) = ("channel_namespace", "");
const WS: (&str, &str) = ("transport", "websocket");

fn sent(s: &Scrape, frame: &str) -> f64 {
    s.get(
        "centrifugo_transport_messages_sent",
        &[WS, ("frame_type", frame), NS],
    )
}

fn received(s: &Scrape, frame: &str) -> f64 {
    s.get(
        "centrifugo_transport_messages_received",
        &[WS, ("frame_type", frame), NS],
    )
}

#[tokio::test]
async fn metrics_use_centrifugo_names_and_move_with_traffic() {
    let server = Server::start(json!({
        "prometheus": true,
        "health": true,
        "presence": true,
        "join_leave": true,
        "history_size": 10,
        "history_lifetime": 300,
    }))
    .await;
    let before = scrape(&server).await;
    for (name, kind) in CENTRIFUGO_FAMILIES {
        assert_eq!(
            before.types.get(*name).map(String::as_str),
            Some(*kind),
            "family {name} missing or of the wrong type in:\n{}",
            before.text
        );
    }
    assert_eq!(before.get("centrifugo_node_num_clients", &[]), 0.0);
    assert_eq!(before.get("rotor_broker_healthy", &[]), 1.0);
    assert!(before.get("process_resident_memory_bytes", &[]) > 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        before.get("centrifugo_node_build", &[("version", version)]),
        1.0
    );

    // Two users, one v1 and one v2 connection, both subscribed to `news`.
    let (mut a, _) = server.v2_client("alice").await;
    let (mut b, _) = server.v1_client("bob").await;
    let rep = a.subscribe_v2("news").await;
    assert!(rep.get("error").is_none(), "{rep}");
    let rep = b.subscribe_v1("news").await;
    assert!(rep.get("error").is_none(), "{rep}");
    // An error reply: subscribing twice (105 already subscribed).
    let rep = a.call_v2("subscribe", json!({"channel": "news"})).await;
    assert_eq!(rep["error"]["code"], 105, "{rep}");
    // A publication through the API reaches both.
    api_v2(
        &server,
        "publish",
        json!({"channel": "news", "data": {"n": 1}}),
    )
    .await;
    a.push().await;
    b.push().await;
    // An API error: a namespace that does not exist (102).
    let r = api_v2_raw(&server, "publish", r#"{"channel":"nope:x","data":{}}"#).await;
    assert_eq!(r.json()["error"]["code"], 102, "{r:?}");

    let after = scrape(&server).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    // Connections, users, channels and subscriptions.
    assert_eq!(after.get("centrifugo_node_num_clients", &[]), 2.0);
    assert_eq!(after.get("centrifugo_node_num_users", &[]), 2.0);
    assert_eq!(after.get("centrifugo_node_num_channels", &[]), 1.0);
    assert_eq!(after.get("centrifugo_node_num_subscriptions", &[]), 2.0);
    let inflight = [WS, ("client_name", ""), ("client_version", "")];
    assert_eq!(
        after.get("centrifugo_client_connections_inflight", &inflight),
        2.0
    );
    assert_eq!(
        after.get(
            "centrifugo_client_subscriptions_inflight",
            &[("client_name", ""), NS]
        ),
        2.0
    );
    assert_eq!(delta("centrifugo_transport_connect_count", &[WS]), 2.0);
    let action = |a: &str| delta("centrifugo_node_action_count", &[("action", a), NS]);
    assert_eq!(action("add_client"), 2.0);
    assert_eq!(action("add_subscription"), 2.0);
    assert_eq!(action("broker_subscribe"), 1.0);
    assert_eq!(action("add_presence"), 2.0);

    // Messages: commands received, replies and pushes sent, broker messages.
    assert_eq!(received(&after, "connect"), 2.0);
    assert_eq!(received(&after, "subscribe"), 3.0);
    assert!(
        after.sum(
            "centrifugo_transport_messages_received_size",
            &[("frame_type", "connect")]
        ) > 0.0
    );
    assert_eq!(
        sent(&after, "push_publication") - sent(&before, "push_publication"),
        2.0
    );
    assert_eq!(sent(&after, "connect"), 2.0);
    assert!(sent(&after, "push_join") >= 1.0, "alice saw bob join");
    let pub_sent = delta(
        "centrifugo_node_messages_sent_count",
        &[("type", "publication"), NS],
    );
    let pub_received = delta(
        "centrifugo_node_messages_received_count",
        &[("type", "publication"), NS],
    );
    assert_eq!((pub_sent, pub_received), (1.0, 1.0));
    assert!(
        delta(
            "centrifugo_node_messages_sent_count",
            &[("type", "join"), NS]
        ) >= 2.0
    );

    // Client commands: durations and error replies.
    let cmd = |m: &str| {
        after.get(
            "centrifugo_client_command_duration_seconds_count",
            &[("method", m), NS],
        )
    };
    assert_eq!((cmd("connect"), cmd("subscribe")), (2.0, 3.0));
    let p50 = after.get(
        "centrifugo_client_command_duration_seconds",
        &[("method", "subscribe"), NS, ("quantile", "0.5")],
    );
    assert!(p50.is_finite() && p50 >= 0.0, "subscribe p50 {p50}");
    assert_eq!(
        after.get(
            "centrifugo_client_command_duration_seconds_histogram_bucket",
            &[("method", "connect"), NS, ("le", "+Inf")]
        ),
        2.0
    );
    assert_eq!(
        after.get(
            "centrifugo_client_num_reply_errors",
            &[("method", "subscribe"), ("code", "105"), NS]
        ),
        1.0
    );

    // API calls: per-method durations (summary and histogram) and errors.
    let api = [("protocol", "http"), ("method", "publish")];
    assert_eq!(
        delta("centrifugo_api_command_duration_seconds_count", &api),
        2.0
    );
    assert_eq!(
        delta(
            "centrifugo_api_command_duration_seconds_histogram_bucket",
            &[api[0], api[1], ("le", "+Inf")]
        ),
        2.0
    );
    assert!(after.samples.contains_key(&series(
        "centrifugo_api_command_duration_seconds_histogram_bucket",
        &[api[0], api[1], ("le", "0.005")]
    )));
    assert_eq!(
        after.get(
            "centrifugo_api_command_errors_total",
            &[api[0], api[1], ("error", "102")]
        ),
        1.0
    );
    assert!(delta("rotor_broker_publish_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(after.get("rotor_client_queue_bytes_count", &[]), 2.0);

    // A server disconnect is counted by code (v1 force disconnect: 3012).
    api_v2(&server, "disconnect", json!({"user": "bob"})).await;
    b.expect_close().await;
    let later = scrape(&server).await;
    assert_eq!(
        later.get(
            "centrifugo_client_num_server_disconnects",
            &[("code", "3012")]
        ),
        1.0
    );
    let (status, body) = get(&server.http_url("/health")).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let (status, _) = get(&server.http_url("/ready")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn endpoints_are_off_unless_enabled() {
    let server = Server::start(json!({})).await;
    for path in ["/metrics", "/health", "/ready", "/admin/api/info"] {
        let (status, _) = get(&server.http_url(path)).await;
        assert_eq!(status, 404, "{path} should not be served");
    }
}
