//! End-to-end tests of every channel feature on the real `rotor` binary, in both client-protocol
//! generations: namespaces and their options (PROTOCOL.md §6), user-limited and personal
//! channels (§6.2), presence, join/leave, history and recovery (§2.5, §7, §10.8 #8–10),
//! server-side subscriptions and the server API that acts on them (§2.5, §8), and the limits
//! (§1.4, §4.4, §5.3). Each test starts its own server(s); where §10.8 and the sections above
//! differ, §10.8 wins.

mod channels_support;
mod common;

use std::time::{Duration, Instant};

use channels_support::*;
use common::*;
use serde_json::{json, Value};

/// Copies the keys of `b` over `a` (both objects).
fn merged(a: &Value, b: &Value) -> Value {
    let mut out = a.clone();
    if let (Some(o), Some(x)) = (out.as_object_mut(), b.as_object()) {
        for (k, v) in x {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Two servers for one channel option. Server 0: `base`+`opts` at top level, only `base` in
/// namespace `off`, `base`+`opts` in namespace `on`. Server 1: only `base` at top level,
/// `base`+`opts` in namespace `on`. `global` holds non-channel keys for both.
async fn option_servers(global: Value, base: Value, opts: Value) -> [Server; 2] {
    let on = merged(&base, &opts);
    let a = merged(
        &merged(&global, &on),
        &json!({"namespaces": [
            merged(&json!({"name": "off"}), &base),
            merged(&json!({"name": "on"}), &on),
        ]}),
    );
    let b = merged(
        &merged(&global, &base),
        &json!({"namespaces": [merged(&json!({"name": "on"}), &on)]}),
    );
    [Server::start(a).await, Server::start(b).await]
}

/// (server index, namespace prefix, option expected to be on for that channel).
const CASES: [(usize, &str, bool); 5] = [
    (0, "", true),
    (0, "off:", false),
    (0, "on:", true),
    (1, "", false),
    (1, "on:", true),
];

/// A channel name unique per case and generation.
fn chan(prefix: &str, g: G, name: &str) -> String {
    format!("{prefix}{name}-{}", if g == G::V1 { "v1" } else { "v2" })
}

fn data_n(p: &Value) -> u64 {
    p["data"]["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("publication without data.n: {p}"))
}

// =============================================================================================
// 1. Namespaces: every option of §6.3, top level and per namespace, no inheritance
// =============================================================================================

#[tokio::test]
async fn ns_option_publish() {
    let servers = option_servers(json!({}), json!({}), json!({"publish": true})).await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let ch = chan(prefix, g, "pub");
            let mut c = connect_user(&servers[i], g, "alice").await;
            let r = c.publish(&ch, json!({"n": 1})).await;
            if on {
                assert_eq!(r, Ok(json!({})), "{g:?} server {i} {ch}");
            } else {
                assert_eq!(r, Err(perm_denied()), "{g:?} server {i} {ch}");
            }
        }
    }
}

#[tokio::test]
async fn ns_option_subscribe_to_publish() {
    let servers = option_servers(
        json!({}),
        json!({"publish": true}),
        json!({"subscribe_to_publish": true}),
    )
    .await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let ch = chan(prefix, g, "stp");
            let mut c = connect_user(&servers[i], g, "alice").await;
            let r = c.publish(&ch, json!({"n": 1})).await;
            if on {
                assert_eq!(
                    r,
                    Err(perm_denied()),
                    "not subscribed: {g:?} server {i} {ch}"
                );
            } else {
                assert_eq!(r, Ok(json!({})), "{g:?} server {i} {ch}");
            }
            c.sub_ok(&ch).await;
            assert_eq!(
                c.publish(&ch, json!({"n": 2})).await,
                Ok(json!({})),
                "subscribed: {g:?} server {i} {ch}"
            );
            let p = c.pub_in(&ch).await;
            assert_eq!(p["data"], json!({"n": 2}), "{g:?} {ch}");
            assert_eq!(
                p["info"]["user"], "alice",
                "client publications carry info: {p}"
            );
        }
    }
}

#[tokio::test]
async fn ns_option_anonymous() {
    let servers = option_servers(
        json!({"client_anonymous": true}),
        json!({}),
        json!({"anonymous": true}),
    )
    .await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let ch = chan(prefix, g, "anon");
            let mut anon = connect_anon(&servers[i], g).await;
            let r = anon.sub(&ch).await;
            if on {
                assert!(r.is_ok(), "{g:?} server {i} {ch}: {r:?}");
            } else {
                assert_eq!(r, Err(perm_denied()), "{g:?} server {i} {ch}");
            }
            // A user with an ID may subscribe either way.
            let mut user = connect_user(&servers[i], g, "alice").await;
            assert!(user.sub(&ch).await.is_ok(), "{g:?} server {i} {ch}");
        }
    }
}

#[tokio::test]
async fn ns_option_presence_for_client_and_api() {
    let servers = option_servers(json!({}), json!({}), json!({"presence": true})).await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let s = &servers[i];
            let ch = chan(prefix, g, "pres");
            let mut c = connect_user(s, g, "alice").await;
            c.sub_ok(&ch).await;
            let p = c.call("presence", json!({"channel": ch})).await;
            let ps = c.call("presence_stats", json!({"channel": ch})).await;
            let api = api1(s, "presence", json!({"channel": ch})).await;
            if on {
                let p = p.unwrap_or_else(|e| panic!("{g:?} {i} {ch}: {e:?}"));
                assert_eq!(
                    p["presence"][&c.id],
                    json!({"user": "alice", "client": c.id}),
                    "{g:?} server {i} {ch}: {p}"
                );
                assert_eq!(ps, Ok(json!({"num_clients": 1, "num_users": 1})));
                assert_eq!(
                    api["result"]["presence"][&c.id]["user"], "alice",
                    "{g:?} server {i} {ch}: {api}"
                );
            } else {
                assert_eq!(p, Err(not_available()), "{g:?} server {i} {ch}");
                assert_eq!(ps, Err(not_available()), "{g:?} server {i} {ch}");
                assert_eq!(
                    api,
                    json!({"error": {"code": 108, "message": "not available"}}),
                    "{g:?} server {i} {ch}"
                );
            }
        }
    }
}

#[tokio::test]
async fn ns_option_presence_disable_for_client() {
    let servers = option_servers(
        json!({}),
        json!({"presence": true}),
        json!({"presence_disable_for_client": true}),
    )
    .await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let s = &servers[i];
            let ch = chan(prefix, g, "pdfc");
            let mut c = connect_user(s, g, "alice").await;
            c.sub_ok(&ch).await;
            let p = c.call("presence", json!({"channel": ch})).await;
            let ps = c.call("presence_stats", json!({"channel": ch})).await;
            if on {
                assert_eq!(p, Err(not_available()), "{g:?} server {i} {ch}");
                assert_eq!(ps, Err(not_available()), "{g:?} server {i} {ch}");
            } else {
                assert!(p.is_ok(), "{g:?} server {i} {ch}: {p:?}");
                assert_eq!(ps, Ok(json!({"num_clients": 1, "num_users": 1})));
            }
            // The server API always answers: presence is still maintained.
            let api = api1(s, "presence", json!({"channel": ch})).await;
            assert_eq!(
                api["result"]["presence"][&c.id]["client"],
                json!(c.id),
                "{g:?} server {i} {ch}: {api}"
            );
            let api = api_v2(s, "presence_stats", json!({"channel": ch})).await;
            assert_eq!(api, json!({"result": {"num_clients": 1, "num_users": 1}}));
        }
    }
}

#[tokio::test]
async fn ns_option_join_leave() {
    let servers = option_servers(json!({}), json!({}), json!({"join_leave": true})).await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let s = &servers[i];
            let ch = chan(prefix, g, "jl");
            let mut a = connect_user(s, g, "alice").await;
            a.sub_join_leave(&ch).await.unwrap();
            let own = a.drain(Duration::from_millis(200)).await;
            if on && g == G::V1 {
                assert_eq!(
                    own,
                    vec![P::Join(
                        ch.clone(),
                        json!({"user": "alice", "client": a.id})
                    )],
                    "v1 subscriber gets its own join: server {i} {ch}"
                );
            }
            let mut b = connect_user(s, g, "bob").await;
            b.sub_join_leave(&ch).await.unwrap();
            if on {
                assert_eq!(
                    a.push().await,
                    P::Join(ch.clone(), json!({"user": "bob", "client": b.id})),
                    "{g:?} server {i} {ch}"
                );
                b.ws.close().await;
                assert_eq!(
                    a.push().await,
                    P::Leave(ch.clone(), json!({"user": "bob", "client": b.id})),
                    "{g:?} server {i} {ch}"
                );
            } else {
                assert!(own.is_empty(), "{g:?} server {i} {ch}: {own:?}");
                a.ws.assert_no_push(Duration::from_millis(300)).await;
            }
        }
    }
}

#[tokio::test]
async fn ns_option_history_size_and_lifetime() {
    let servers = option_servers(
        json!({}),
        json!({}),
        json!({"history_size": 2, "history_lifetime": 60}),
    )
    .await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let s = &servers[i];
            let ch = chan(prefix, g, "hist");
            let mut c = connect_user(s, g, "alice").await;
            c.sub_ok(&ch).await;
            for n in 1..=3 {
                api_publish(s, &ch, json!({"n": n})).await;
            }
            let h = c.call("history", json!({"channel": ch, "limit": -1})).await;
            let api = api1(s, "history", json!({"channel": ch})).await;
            if on {
                let h = h.unwrap_or_else(|e| panic!("{g:?} {i} {ch}: {e:?}"));
                let ns: Vec<u64> = h["publications"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(data_n)
                    .collect();
                assert_eq!(ns, vec![2, 3], "{g:?} server {i} {ch}: {h}");
                assert_eq!(
                    api["result"]["publications"],
                    json!([{"data": {"n": 2}}, {"data": {"n": 3}}]),
                    "{g:?} server {i} {ch}"
                );
            } else {
                assert_eq!(h, Err(not_available()), "{g:?} server {i} {ch}");
                assert_eq!(
                    api,
                    json!({"error": {"code": 108, "message": "not available"}}),
                    "{g:?} server {i} {ch}"
                );
            }
        }
    }
}

#[tokio::test]
async fn history_needs_both_size_and_lifetime() {
    let server = Server::start(json!({
        "history_size": 5,
        "namespaces": [
            {"name": "sizeonly", "history_size": 5},
            {"name": "lifeonly", "history_lifetime": 60},
        ],
    }))
    .await;
    for g in GENS {
        for prefix in ["", "sizeonly:", "lifeonly:"] {
            let ch = chan(prefix, g, "half");
            let mut c = connect_user(&server, g, "alice").await;
            c.sub_ok(&ch).await;
            api_publish(&server, &ch, json!({"n": 1})).await;
            let p = c.pub_in(&ch).await;
            assert!(
                p.get("offset").is_none() && p.get("seq").is_none(),
                "no history → no position: {p}"
            );
            assert_eq!(
                c.call("history", json!({"channel": ch, "limit": -1})).await,
                Err(not_available()),
                "{g:?} {ch}"
            );
        }
    }
}

#[tokio::test]
async fn ns_option_history_recover() {
    let servers = option_servers(
        json!({}),
        json!({"history_size": 10, "history_lifetime": 60}),
        json!({"history_recover": true}),
    )
    .await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let ch = chan(prefix, g, "rec");
            let mut c = connect_user(&servers[i], g, "alice").await;
            let r = c.sub_ok(&ch).await;
            if on {
                assert_eq!(r["recoverable"], true, "{g:?} server {i} {ch}: {r}");
                assert!(
                    r["epoch"].as_str().is_some_and(|e| !e.is_empty()),
                    "{g:?} server {i} {ch}: {r}"
                );
            } else {
                assert!(r.get("recoverable").is_none(), "{g:?} server {i} {ch}: {r}");
            }
        }
    }
}

#[tokio::test]
async fn ns_option_history_disable_for_client_keeps_api_and_recovery() {
    let servers = option_servers(
        json!({}),
        json!({"history_size": 10, "history_lifetime": 60, "history_recover": true}),
        json!({"history_disable_for_client": true}),
    )
    .await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let s = &servers[i];
            let ch = chan(prefix, g, "hdfc");
            let mut c = connect_user(s, g, "alice").await;
            let first = c.sub_ok(&ch).await;
            let epoch = first["epoch"].as_str().unwrap().to_string();
            for n in 1..=3 {
                api_publish(s, &ch, json!({"n": n})).await;
            }
            let h = c.call("history", json!({"channel": ch, "limit": -1})).await;
            if on {
                assert_eq!(h, Err(not_available()), "{g:?} server {i} {ch}");
            } else {
                assert!(h.is_ok(), "{g:?} server {i} {ch}: {h:?}");
            }
            let api = api_v2(s, "history", json!({"channel": ch, "limit": -1})).await;
            assert_eq!(
                api["result"]["publications"].as_array().map(Vec::len),
                Some(3),
                "API history always answers: {api}"
            );
            // Recovery still works.
            let mode = if g == G::V1 { Mode::V1Seq } else { Mode::V2 };
            let mut again = connect_user(s, g, "alice").await;
            let r = again
                .call("subscribe", mode.recover_params(&ch, 1, &epoch))
                .await
                .unwrap();
            assert_eq!(r["recovered"], true, "{g:?} server {i} {ch}: {r}");
            assert_eq!(r["publications"].as_array().map(Vec::len), Some(2), "{r}");
        }
    }
}

#[tokio::test]
async fn ns_option_server_side() {
    let servers = option_servers(json!({}), json!({}), json!({"server_side": true})).await;
    for g in GENS {
        for (i, prefix, on) in CASES {
            let s = &servers[i];
            let ch = chan(prefix, g, "ss");
            let mut c = connect_user(s, g, "alice").await;
            let r = c.sub(&ch).await;
            if on {
                assert_eq!(r, Err(perm_denied()), "{g:?} server {i} {ch}");
            } else {
                assert!(r.is_ok(), "{g:?} server {i} {ch}: {r:?}");
            }
            // The server may always subscribe a connection (token `channels`).
            let mut ss = connect(s, g, json!({"sub": "bob", "channels": [ch]})).await;
            assert!(
                ss.connect["subs"].get(&ch).is_some(),
                "{g:?} server {i} {ch}: {}",
                ss.connect
            );
            api_publish(s, &ch, json!({"n": 7})).await;
            assert_eq!(ss.pub_in(&ch).await["data"], json!({"n": 7}));
        }
    }
}

#[tokio::test]
async fn unknown_namespace_gets_102_for_every_channel_command_and_the_api() {
    let server = Server::start(json!({
        "publish": true, "presence": true, "history_size": 5, "history_lifetime": 60,
        "namespaces": [{"name": "known", "publish": true}],
    }))
    .await;
    for g in GENS {
        let mut c = connect_user(&server, g, "alice").await;
        for ch in ["nope:x", "$nope:x", "nope:#alice"] {
            let token_params = json!({"channel": ch, "token": c.sub_token(ch, None)});
            let params = json!({"channel": ch});
            assert_eq!(
                c.call("subscribe", token_params).await,
                Err(unknown_channel()),
                "{g:?} subscribe {ch}"
            );
            assert_eq!(
                c.publish(ch, json!({"n": 1})).await,
                Err(unknown_channel()),
                "{g:?} publish {ch}"
            );
            for cmd in ["presence", "presence_stats", "history"] {
                assert_eq!(
                    c.call(cmd, params.clone()).await,
                    Err(unknown_channel()),
                    "{g:?} {cmd} {ch}"
                );
            }
        }
        // The connection survives all of that.
        assert!(c.sub("known:x").await.is_ok());
        // A connection token listing a channel of an unknown namespace.
        let (_ws, rep) = raw_connect(
            &server,
            g,
            json!({"token": jwt(&json!({"sub": "bob", "channels": ["nope:y"]}))}),
        )
        .await;
        assert_eq!(
            rep["error"],
            json!({"code": 102, "message": "unknown channel"}),
            "{g:?}: {rep}"
        );
    }
    for method in [
        "publish",
        "presence",
        "presence_stats",
        "history",
        "history_remove",
    ] {
        let params = json!({"channel": "nope:x", "data": {}});
        assert_eq!(
            api1(&server, method, params.clone()).await,
            json!({"error": {"code": 102, "message": "namespace not found"}}),
            "/api {method}"
        );
        assert_eq!(
            api_v2(&server, method, params).await,
            json!({"error": {"code": 102, "message": "unknown channel"}}),
            "/api/{method}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// start-up configuration errors (§6.1, §6.3)
// ---------------------------------------------------------------------------------------------

fn cfg_with_namespaces(top: Value, namespaces: Value) -> Value {
    let mut c = merged(&base_config(free_port()), &top);
    c["namespaces"] = namespaces;
    c
}

fn assert_start_fails(config: &Value, needle: &str) {
    let (status, stderr) = run_expect_exit(config);
    assert!(
        !status.success(),
        "non-zero exit expected for {config}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "stderr names {needle:?} for {config}; stderr:\n{stderr}"
    );
}

#[test]
fn history_recover_without_size_or_lifetime_stops_start_up_naming_the_namespace() {
    for opts in [
        json!({"history_recover": true}),
        json!({"history_recover": true, "history_size": 10}),
        json!({"history_recover": true, "history_lifetime": 60}),
    ] {
        let ns = merged(&json!({"name": "chatroom"}), &opts);
        let cfg = cfg_with_namespaces(json!({}), json!([{"name": "other"}, ns]));
        assert_start_fails(&cfg, "\"chatroom\"");
    }
    // At top level too (the message names no namespace, but start-up still fails).
    let (status, stderr) = run_expect_exit(&cfg_with_namespaces(
        json!({"history_recover": true, "history_size": 10}),
        json!([]),
    ));
    assert!(!status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("history_recover"), "stderr:\n{stderr}");
}

#[test]
fn bad_namespace_names_stop_start_up() {
    for name in ["a b", "x", "bad:ns", "", "ns/1", "ns$"] {
        let cfg = cfg_with_namespaces(json!({}), json!([{"name": name}]));
        // The message quotes the name at fault.
        assert_start_fails(&cfg, &format!("{name:?}"));
    }
}

#[tokio::test]
async fn namespace_names_with_dash_underscore_and_dot_are_accepted() {
    let server =
        Server::start(json!({"namespaces": [{"name": "my-ns_1.x", "publish": true}]})).await;
    for g in GENS {
        let mut c = connect_user(&server, g, "alice").await;
        let ch = chan("my-ns_1.x:", g, "room");
        c.sub_ok(&ch).await;
        assert_eq!(c.publish(&ch, json!({"n": 1})).await, Ok(json!({})));
    }
}

#[test]
fn duplicate_namespace_stops_start_up_naming_it() {
    let cfg = cfg_with_namespaces(
        json!({}),
        json!([{"name": "twice"}, {"name": "once"}, {"name": "twice", "publish": true}]),
    );
    assert_start_fails(&cfg, "\"twice\"");
}

// =============================================================================================
// 2. User-limited and personal channels (§6.2)
// =============================================================================================

#[tokio::test]
async fn user_limited_channels_admit_listed_users_without_token() {
    let server = Server::start(json!({
        "client_anonymous": true,
        "anonymous": true,
        "namespaces": [{"name": "ns", "anonymous": true}],
    }))
    .await;
    for g in GENS {
        for (ch, allowed, refused) in [
            ("dialog#42,43", vec!["42", "43"], vec!["44", "4", "42,43"]),
            ("ns:#42", vec!["42"], vec!["43"]),
            ("ns:dm#7,8", vec!["7", "8"], vec!["9"]),
        ] {
            for u in allowed {
                let mut c = connect_user(&server, g, u).await;
                let r = c.sub(ch).await;
                assert!(r.is_ok(), "{g:?} user {u} in {ch}: {r:?}");
            }
            for u in refused {
                let mut c = connect_user(&server, g, u).await;
                assert_eq!(
                    c.sub(ch).await,
                    Err(perm_denied()),
                    "{g:?} user {u} in {ch}"
                );
            }
            let mut anon = connect_anon(&server, g).await;
            assert_eq!(
                anon.sub(ch).await,
                Err(perm_denied()),
                "{g:?} anonymous in {ch}"
            );
        }
        // Private and user-limited together: the user check comes first, the token is still
        // needed.
        let mut other = connect_user(&server, g, "43").await;
        let r = other
            .call(
                "subscribe",
                json!({"channel": "$dm#42", "token": other.sub_token("$dm#42", None)}),
            )
            .await;
        assert_eq!(r, Err(perm_denied()), "{g:?} $dm#42 for user 43");
        let mut me = connect_user(&server, g, "42").await;
        assert_eq!(me.sub("$dm#42").await, Err(perm_denied()), "{g:?} no token");
        let r = me
            .call(
                "subscribe",
                json!({"channel": "$dm#42", "token": me.sub_token("$dm#42", None)}),
            )
            .await;
        assert!(r.is_ok(), "{g:?} $dm#42 with token: {r:?}");
    }
}

#[tokio::test]
async fn personal_channel_is_subscribed_server_side_on_connect() {
    let plain = Server::start(
        json!({"user_subscribe_to_personal": true, "client_anonymous": true, "anonymous": true}),
    )
    .await;
    let namespaced = Server::start(json!({
        "user_subscribe_to_personal": true,
        "user_personal_channel_namespace": "personal",
        "namespaces": [{"name": "personal"}],
    }))
    .await;
    for g in GENS {
        for (server, ch) in [(&plain, "#42"), (&namespaced, "personal:#42")] {
            let mut c = connect_user(server, g, "42").await;
            let subs = &c.connect["subs"];
            assert_eq!(keys(subs), vec![ch.to_string()], "{g:?}: {}", c.connect);
            assert_eq!(subs[ch], json!({}), "{g:?}: {}", c.connect);
            api_publish(server, ch, json!({"to": "you"})).await;
            assert_eq!(
                c.pub_in(ch).await,
                json!({"data": {"to": "you"}}),
                "{g:?} {ch}"
            );
            // Nobody else gets it; a second connection of the same user does.
            let mut other = connect_user(server, g, "43").await;
            let mut twin = connect_user(server, g, "42").await;
            api_publish(server, ch, json!({"to": "both"})).await;
            assert_eq!(c.pub_in(ch).await["data"], json!({"to": "both"}));
            assert_eq!(twin.pub_in(ch).await["data"], json!({"to": "both"}));
            other.ws.assert_no_push(Duration::from_millis(200)).await;
            // Subscribing again is 105, as for any channel already subscribed.
            assert_eq!(
                c.sub(ch).await,
                Err((105, "already subscribed".into())),
                "{g:?} {ch}"
            );
        }
        // An anonymous connection has no personal channel.
        let anon = connect_anon(&plain, g).await;
        assert!(
            anon.connect.get("subs").is_none(),
            "{g:?} anonymous: {}",
            anon.connect
        );
    }
}

// =============================================================================================
// 3. Presence and presence_stats (§2.5, §8), with conn_info and chan_info
// =============================================================================================

#[tokio::test]
async fn presence_and_stats_carry_conn_info_and_chan_info_for_clients_and_api() {
    let server = Server::start(json!({"presence": true})).await;
    let room = "$room";
    let mut a = connect(
        &server,
        G::V1,
        json!({"sub": "alice", "info": {"name": "Alice"}}),
    )
    .await;
    let mut b = connect(
        &server,
        G::V2,
        json!({"sub": "bob", "info": {"name": "Bob"}}),
    )
    .await;
    let mut a2 = connect_user(&server, G::V2, "alice").await;
    a.sub_token_info(room, Some(json!({"role": "host"})), false)
        .await
        .unwrap();
    b.sub_token_info(room, Some(json!({"role": "guest", "seat": 3})), false)
        .await
        .unwrap();
    a2.sub_token_info(room, None, false).await.unwrap();
    let expected = json!({
        a.id.clone(): {"user": "alice", "client": a.id, "conn_info": {"name": "Alice"}, "chan_info": {"role": "host"}},
        b.id.clone(): {"user": "bob", "client": b.id, "conn_info": {"name": "Bob"}, "chan_info": {"role": "guest", "seat": 3}},
        a2.id.clone(): {"user": "alice", "client": a2.id},
    });
    let stats = json!({"num_clients": 3, "num_users": 2});
    for c in [&mut a, &mut b, &mut a2] {
        assert_eq!(
            c.call("presence", json!({"channel": room})).await,
            Ok(json!({"presence": expected})),
            "{:?} presence",
            c.g
        );
        assert_eq!(
            c.call("presence_stats", json!({"channel": room})).await,
            Ok(stats.clone()),
            "{:?} presence_stats",
            c.g
        );
    }
    assert_eq!(
        api1(&server, "presence", json!({"channel": room})).await,
        json!({"result": {"presence": expected}})
    );
    assert_eq!(
        api1(&server, "presence_stats", json!({"channel": room})).await,
        json!({"result": stats})
    );
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": room})).await,
        json!({"result": {"presence": expected}})
    );
    assert_eq!(
        api_v2(&server, "presence_stats", json!({"channel": room})).await,
        json!({"result": stats})
    );
    // A channel nobody is in: empty presence, the key is still there.
    assert_eq!(
        api_v2(&server, "presence", json!({"channel": "empty"})).await,
        json!({"result": {"presence": {}}})
    );
    assert_eq!(
        api1(&server, "presence_stats", json!({"channel": "empty"})).await,
        json!({"result": {"num_clients": 0, "num_users": 0}})
    );
}

#[tokio::test]
async fn client_presence_needs_a_subscription() {
    let server =
        Server::start(json!({"presence": true, "history_size": 5, "history_lifetime": 60})).await;
    for g in GENS {
        let mut c = connect_user(&server, g, "alice").await;
        for cmd in ["presence", "presence_stats", "history"] {
            assert_eq!(
                c.call(cmd, json!({"channel": "room"})).await,
                Err(perm_denied()),
                "{g:?} {cmd}"
            );
        }
    }
}

async fn api_presence_ids(server: &Server, channel: &str) -> Vec<String> {
    let r = api_v2(server, "presence", json!({"channel": channel})).await;
    keys(&r["result"]["presence"])
}

#[tokio::test]
async fn presence_entry_is_removed_on_unsubscribe_and_on_disconnect() {
    let server = Server::start(json!({"presence": true})).await;
    for g in GENS {
        let ch = chan("", g, "room");
        let mut c1 = connect_user(&server, g, "u1").await;
        let mut c2 = connect_user(&server, g, "u2").await;
        c1.sub_ok(&ch).await;
        c2.sub_ok(&ch).await;
        let mut both = vec![c1.id.clone(), c2.id.clone()];
        both.sort();
        assert_eq!(api_presence_ids(&server, &ch).await, both, "{g:?}");
        assert_eq!(
            c1.call("unsubscribe", json!({"channel": ch})).await,
            Ok(json!({}))
        );
        assert_eq!(
            api_presence_ids(&server, &ch).await,
            vec![c2.id.clone()],
            "{g:?}: removed as soon as the unsubscribe is answered"
        );
        c2.ws.close().await;
        eventually(
            Duration::from_secs(5),
            "presence entry removed on disconnect",
            || async {
                api_presence_ids(&server, &ch)
                    .await
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
        assert_eq!(
            api1(&server, "presence_stats", json!({"channel": ch})).await,
            json!({"result": {"num_clients": 0, "num_users": 0}})
        );
    }
}

#[tokio::test]
async fn presence_is_kept_fresh_by_the_tick_past_the_expire_interval() {
    let server = Server::start(json!({
        "presence": true,
        "client_presence_ping_interval": 1,
        "client_presence_expire_interval": 2,
    }))
    .await;
    let mut v1 = connect_user(&server, G::V1, "alice").await;
    let mut v2 = connect_user(&server, G::V2, "bob").await;
    v2.ws.auto_pong = true;
    v1.sub_ok("room").await;
    v2.sub_ok("room").await;
    let mut both = vec![v1.id.clone(), v2.id.clone()];
    both.sort();
    let start = Instant::now();
    // Check every half second for 3.5 s: the entries must never lapse.
    while start.elapsed() < Duration::from_millis(3500) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            api_presence_ids(&server, "room").await,
            both,
            "entries present after {:?}",
            start.elapsed()
        );
    }
    assert_eq!(
        v1.call("presence_stats", json!({"channel": "room"})).await,
        Ok(json!({"num_clients": 2, "num_users": 2}))
    );
    assert_eq!(
        v2.call("presence_stats", json!({"channel": "room"})).await,
        Ok(json!({"num_clients": 2, "num_users": 2}))
    );
}

// =============================================================================================
// 4. Join / leave (§2.3, §10.8 #10)
// =============================================================================================

#[tokio::test]
async fn v1_join_and_leave_carry_client_info_to_every_subscriber_including_the_joiner() {
    let server = Server::start(json!({"join_leave": true})).await;
    let room = "$room";
    let mut a = connect(
        &server,
        G::V1,
        json!({"sub": "alice", "info": {"name": "Alice"}}),
    )
    .await;
    a.sub_token_info(room, Some(json!({"role": "host"})), false)
        .await
        .unwrap();
    let a_info = json!({"user": "alice", "client": a.id, "conn_info": {"name": "Alice"}, "chan_info": {"role": "host"}});
    assert_eq!(a.push().await, P::Join(room.into(), a_info), "own join");

    let mut b = connect(
        &server,
        G::V1,
        json!({"sub": "bob", "info": {"name": "Bob"}}),
    )
    .await;
    b.sub_token_info(room, Some(json!({"role": "guest"})), false)
        .await
        .unwrap();
    let b_info = json!({"user": "bob", "client": b.id, "conn_info": {"name": "Bob"}, "chan_info": {"role": "guest"}});
    assert_eq!(a.push().await, P::Join(room.into(), b_info.clone()));
    assert_eq!(
        b.push().await,
        P::Join(room.into(), b_info.clone()),
        "own join"
    );
    // The exact v1 frame.
    assert_eq!(
        b.call("unsubscribe", json!({"channel": room})).await,
        Ok(json!({}))
    );
    let leave = a.ws.push().await;
    assert_eq!(
        leave,
        json!({"result": {"type": 2, "channel": room, "data": {"info": b_info}}})
    );
    b.sub_token_info(room, Some(json!({"role": "guest"})), false)
        .await
        .unwrap();
    assert_eq!(a.push().await, P::Join(room.into(), b_info.clone()));
    // A v2 subscriber that asked for join/leave is announced to the v1 subscribers too.
    let mut c = connect(&server, G::V2, json!({"sub": "carol"})).await;
    c.sub_token_info(room, Some(json!({"role": "v2"})), true)
        .await
        .unwrap();
    let c_info = json!({"user": "carol", "client": c.id, "chan_info": {"role": "v2"}});
    assert_eq!(a.push().await, P::Join(room.into(), c_info.clone()));
    // Disconnecting is a leave, with the same info.
    b.ws.close().await;
    assert_eq!(a.push().await, P::Leave(room.into(), b_info.clone()));
    let mut seen_by_c = c.drain(Duration::from_millis(300)).await;
    seen_by_c.retain(|p| matches!(p, P::Leave(..)));
    assert_eq!(seen_by_c, vec![P::Leave(room.into(), b_info)]);
    c.ws.close().await;
    assert_eq!(a.push().await, P::Leave(room.into(), c_info));
}

#[tokio::test]
async fn v2_join_and_leave_only_reach_subscribers_that_asked_and_carry_client_info() {
    let server = Server::start(json!({"join_leave": true})).await;
    let room = "$room";
    let mut a = connect(
        &server,
        G::V2,
        json!({"sub": "alice", "info": {"name": "Alice"}}),
    )
    .await;
    a.sub_token_info(room, Some(json!({"role": "host"})), true)
        .await
        .unwrap();
    a.drain(Duration::from_millis(200)).await; // its own join, if any
    let mut quiet = connect(&server, G::V2, json!({"sub": "carol"})).await;
    quiet
        .sub_token_info(room, Some(json!({"role": "lurker"})), false)
        .await
        .unwrap();
    let q_info = json!({"user": "carol", "client": quiet.id, "chan_info": {"role": "lurker"}});
    assert_eq!(
        a.ws.push().await,
        json!({"push": {"channel": room, "join": {"info": q_info}}}),
        "a subscriber that did not ask for join/leave is still announced"
    );
    let mut b = connect(
        &server,
        G::V2,
        json!({"sub": "bob", "info": {"name": "Bob"}}),
    )
    .await;
    b.sub_token_info(room, Some(json!({"role": "guest"})), true)
        .await
        .unwrap();
    let b_info = json!({"user": "bob", "client": b.id, "conn_info": {"name": "Bob"}, "chan_info": {"role": "guest"}});
    assert_eq!(a.push().await, P::Join(room.into(), b_info.clone()));
    b.ws.close().await;
    assert_eq!(
        a.ws.push().await,
        json!({"push": {"channel": room, "leave": {"info": b_info}}})
    );
    assert_eq!(
        quiet.call("unsubscribe", json!({"channel": room})).await,
        Ok(json!({}))
    );
    assert_eq!(a.push().await, P::Leave(room.into(), q_info));
    quiet.ws.assert_no_push(Duration::from_millis(300)).await;
}

// =============================================================================================
// 5. History (§2.5, §7, §8, §10.8 #8)
// =============================================================================================

fn offsets_of(list: &Value) -> Vec<u64> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["offset"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn history_is_trimmed_to_history_size_in_every_form() {
    for mode in MODES {
        let server = Server::start(json!({
            "history_size": 3, "history_lifetime": 60, "v3_use_offset": mode.use_offset(),
        }))
        .await;
        let g = mode.g();
        let mut c = connect_user(&server, g, "alice").await;
        c.sub_ok("feed").await;
        for n in 1..=5 {
            api_publish(&server, "feed", json!({"n": n})).await;
        }
        for n in 1..=5 {
            let p = c.pub_in("feed").await;
            assert_eq!((mode.position_of(&p), data_n(&p)), (n, n), "{mode:?}");
        }
        let params = match g {
            // 2.x history has no paging: a limit is ignored (§2.5, §10.8 #8).
            G::V1 => json!({"channel": "feed", "limit": 1}),
            G::V2 => json!({"channel": "feed", "limit": -1}),
        };
        let h = c.call("history", params).await.unwrap();
        let pubs = h["publications"].as_array().unwrap();
        let got: Vec<(u64, u64)> = pubs
            .iter()
            .map(|p| (mode.position_of(p), data_n(p)))
            .collect();
        assert_eq!(
            got,
            vec![(3, 3), (4, 4), (5, 5)],
            "{mode:?} oldest first: {h}"
        );
        match g {
            G::V1 => assert_eq!(keys(&h), vec!["publications"], "{mode:?}: {h}"),
            G::V2 => {
                assert_eq!(h["offset"], 5, "{h}");
                assert!(h["epoch"].as_str().is_some_and(|e| !e.is_empty()), "{h}");
            }
        }
        // The API: 2.x shape without positions, current shape with them.
        assert_eq!(
            api1(&server, "history", json!({"channel": "feed"})).await,
            json!({"result": {"publications": [{"data": {"n": 3}}, {"data": {"n": 4}}, {"data": {"n": 5}}]}})
        );
        let r = api_v2(&server, "history", json!({"channel": "feed", "limit": -1})).await;
        assert_eq!(
            offsets_of(&r["result"]["publications"]),
            vec![3, 4, 5],
            "{r}"
        );
        assert_eq!(r["result"]["offset"], 5, "{r}");
    }
}

#[tokio::test]
async fn history_lifetime_expires_the_whole_stream_after_the_last_publication() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 2})).await;
    let mut v1 = connect_user(&server, G::V1, "alice").await;
    let mut v2 = connect_user(&server, G::V2, "bob").await;
    v1.sub_ok("feed").await;
    v2.sub_ok("feed").await;
    let v2_history = |r: Value| {
        (
            offsets_of(&r["publications"]),
            r["offset"].clone(),
            r["epoch"].clone(),
        )
    };

    api_publish(&server, "feed", json!({"n": 1})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_second = Instant::now();
    api_publish(&server, "feed", json!({"n": 2})).await;
    let second = Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // 2.4 s after the first publication, 1.2 s after the second: the first is still there,
    // because the lifetime counts from the last publication for the whole stream.
    assert!(
        before_second.elapsed() < Duration::from_millis(1900),
        "test too slow"
    );
    let h = v2
        .call("history", json!({"channel": "feed", "limit": -1}))
        .await
        .unwrap();
    let (offsets, top, epoch) = v2_history(h.clone());
    assert_eq!((offsets, top), (vec![1, 2], json!(2)), "{h}");
    let h1 = v1
        .call("history", json!({"channel": "feed"}))
        .await
        .unwrap();
    let ns: Vec<u64> = h1["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(data_n)
        .collect();
    assert_eq!(ns, vec![1, 2], "{h1}");

    // 2 s after the last publication everything is gone; the position stays.
    let expiry = second + Duration::from_millis(2600);
    tokio::time::sleep(expiry.saturating_duration_since(Instant::now())).await;
    let h = v2
        .call("history", json!({"channel": "feed", "limit": -1}))
        .await
        .unwrap();
    assert_eq!(
        v2_history(h.clone()),
        (vec![], json!(2), epoch.clone()),
        "{h}"
    );
    assert_eq!(
        v1.call("history", json!({"channel": "feed"})).await,
        Ok(json!({"publications": []}))
    );
    assert_eq!(
        api1(&server, "history", json!({"channel": "feed"})).await,
        json!({"result": {"publications": []}})
    );
    let r = api_v2(
        &server,
        "publish",
        json!({"channel": "feed", "data": {"n": 3}}),
    )
    .await;
    assert_eq!(r, json!({"result": {"offset": 3, "epoch": epoch}}));
}

#[tokio::test]
async fn v2_history_limit_since_and_reverse_for_client_and_api() {
    let server = Server::start(json!({"history_size": 10, "history_lifetime": 60})).await;
    let mut c = connect_user(&server, G::V2, "alice").await;
    c.sub_ok("feed").await;
    for n in 1..=5 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let top = c.call("history", json!({"channel": "feed"})).await.unwrap();
    let epoch = top["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("{top}"))
        .to_string();
    assert_eq!(top["offset"], 5, "{top}");
    assert!(
        top.get("publications").is_none() || top["publications"] == json!([]),
        "limit absent → no publications: {top}"
    );
    let since = |o: u64| json!({"offset": o, "epoch": epoch});
    let cases = [
        (json!({"limit": 0}), vec![]),
        (json!({"limit": -1}), vec![1, 2, 3, 4, 5]),
        (json!({"limit": 2}), vec![1, 2]),
        (json!({"limit": -1, "since": since(1)}), vec![2, 3, 4, 5]),
        (json!({"limit": 2, "since": since(1)}), vec![2, 3]),
        (json!({"limit": -1, "since": since(5)}), vec![]),
        (
            json!({"limit": -1, "since": since(4), "reverse": true}),
            vec![3, 2, 1],
        ),
        (
            json!({"limit": 2, "since": since(4), "reverse": true}),
            vec![3, 2],
        ),
        (json!({"limit": 2, "reverse": true}), vec![5, 4]),
    ];
    for (opts, want) in cases {
        let params = merged(&json!({"channel": "feed"}), &opts);
        let h = c.call("history", params.clone()).await.unwrap();
        assert_eq!(offsets_of(&h["publications"]), want, "client {params}: {h}");
        assert_eq!(
            (h["offset"].clone(), h["epoch"].clone()),
            (json!(5), json!(epoch)),
            "{h}"
        );
        let r = api_v2(&server, "history", params.clone()).await;
        assert_eq!(
            offsets_of(&r["result"]["publications"]),
            want,
            "API {params}: {r}"
        );
        assert_eq!(r["result"]["offset"], 5, "{r}");
    }
}

#[tokio::test]
async fn api_history_remove_empties_history_but_keeps_the_position() {
    let server = Server::start(json!({
        "history_size": 10, "history_lifetime": 60, "history_recover": true,
    }))
    .await;
    let mut c = connect_user(&server, G::V2, "alice").await;
    c.sub_ok("feed").await;
    for n in 1..=3 {
        api_publish(&server, "feed", json!({"n": n})).await;
    }
    let epoch = c.call("history", json!({"channel": "feed"})).await.unwrap()["epoch"].clone();
    assert_eq!(
        api1(&server, "history_remove", json!({"channel": "feed"})).await,
        json!({})
    );
    assert_eq!(
        api1(&server, "history", json!({"channel": "feed"})).await,
        json!({"result": {"publications": []}})
    );
    assert_eq!(
        api_v2(&server, "history", json!({"channel": "feed", "limit": -1})).await,
        json!({"result": {"publications": [], "offset": 3, "epoch": epoch}})
    );
    let h = c
        .call("history", json!({"channel": "feed", "limit": -1}))
        .await
        .unwrap();
    assert_eq!(
        (
            offsets_of(&h["publications"]),
            h["offset"].clone(),
            h["epoch"].clone()
        ),
        (vec![], json!(3), epoch.clone())
    );
    let mut v1 = connect_user(&server, G::V1, "bob").await;
    v1.sub_ok("feed").await;
    assert_eq!(
        v1.call("history", json!({"channel": "feed"})).await,
        Ok(json!({"publications": []}))
    );
    // The current endpoint, then the next publication continues the stream.
    assert_eq!(
        api_v2(&server, "history_remove", json!({"channel": "feed"})).await,
        json!({"result": {}})
    );
    assert_eq!(
        api_v2(
            &server,
            "publish",
            json!({"channel": "feed", "data": {"n": 4}})
        )
        .await,
        json!({"result": {"offset": 4, "epoch": epoch}})
    );
    let mut late = connect_user(&server, G::V2, "carol").await;
    let r = late.sub_ok("feed").await;
    assert_eq!(
        (r["offset"].clone(), r["epoch"].clone()),
        (json!(4), epoch),
        "{r}"
    );
    assert_eq!(
        api_v2(&server, "history_remove", json!({"channel": "nohistory:x"})).await["error"]["code"],
        102
    );
}

// =============================================================================================
// 6. Recovery (§7.2, §10.8 #9)
// =============================================================================================

fn recovery_config(mode: Mode, extra: Value) -> Value {
    merged(
        &json!({
            "history_size": 10, "history_lifetime": 60, "history_recover": true,
            "v3_use_offset": mode.use_offset(),
        }),
        &extra,
    )
}

/// The wire order of recovered positions `from..=to` in this mode (seq/gen: newest first).
fn wire_order(mode: Mode, from: u64, to: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (from..=to).collect();
    if mode == Mode::V1Seq {
        v.reverse();
    }
    v
}

/// Subscribes a fresh client of `mode` to `channel` and returns its (position, epoch).
async fn position_now(server: &Server, mode: Mode, channel: &str) -> (u64, String) {
    let mut c = connect_user(server, mode.g(), "observer").await;
    let r = c.sub_ok(channel).await;
    let epoch = r["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    (mode.position_of(&r), epoch)
}

#[tokio::test]
async fn every_subscribe_to_a_recoverable_channel_reports_recoverable_position_and_epoch() {
    for mode in MODES {
        let server = Server::start(recovery_config(mode, json!({}))).await;
        let mut c = connect_user(&server, mode.g(), "alice").await;
        let r = c.sub_ok("feed").await;
        // Empty stream: position 0, which JSON may omit like every zero field (omitempty).
        let mut k = keys(&r);
        k.retain(|k| !((k == "offset" || k == "seq") && r[k.as_str()] == json!(0)));
        // Centrifugo 6 marks every recoverable subscription positioned too.
        let positioned = mode == Mode::V2;
        let want: &[&str] = if positioned {
            &["epoch", "positioned", "recoverable"]
        } else {
            &["epoch", "recoverable"]
        };
        assert_eq!(k, want, "{mode:?}: {r}");
        assert_eq!(mode.position_of(&r), 0, "{mode:?}: {r}");
        let epoch = r["epoch"].clone();
        api_publish(&server, "feed", json!({"n": 1})).await;
        let mut d = connect_user(&server, mode.g(), "bob").await;
        let r = d.sub_ok("feed").await;
        let want = match mode {
            Mode::V1Seq => vec!["epoch", "recoverable", "seq"],
            Mode::V2 => vec!["epoch", "offset", "positioned", "recoverable"],
            _ => vec!["epoch", "offset", "recoverable"],
        };
        assert_eq!(keys(&r), want, "{mode:?}: {r}");
        assert_eq!(
            (r["recoverable"].clone(), r["epoch"].clone()),
            (json!(true), epoch),
            "{mode:?}"
        );
        assert_eq!(mode.position_of(&r), 1, "{mode:?}: {r}");
    }
}

#[tokio::test]
async fn recovery_of_contiguous_missed_publications_is_recovered_in_every_position_form() {
    for mode in MODES {
        let server = Server::start(recovery_config(mode, json!({}))).await;
        let g = mode.g();
        let mut a = connect_user(&server, g, "alice").await;
        let r = a.sub_ok("feed").await;
        let epoch = r["epoch"].as_str().unwrap().to_string();
        for n in 1..=2 {
            api_publish(&server, "feed", json!({"n": n})).await;
        }
        for n in 1..=2 {
            let p = a.pub_in("feed").await;
            assert_eq!((mode.position_of(&p), data_n(&p)), (n, n), "{mode:?}");
        }
        a.ws.close().await;
        for n in 3..=5 {
            api_publish(&server, "feed", json!({"n": n})).await;
        }
        let mut b = connect_user(&server, g, "alice").await;
        let r = b
            .call("subscribe", mode.recover_params("feed", 2, &epoch))
            .await
            .unwrap();
        assert_eq!(r["recoverable"], true, "{mode:?}: {r}");
        assert_eq!(r["recovered"], true, "{mode:?}: {r}");
        assert_eq!(r["epoch"], json!(epoch), "{mode:?}: {r}");
        assert_eq!(mode.position_of(&r), 5, "{mode:?}: {r}");
        let pubs = r["publications"].as_array().unwrap();
        let got: Vec<(u64, u64)> = pubs
            .iter()
            .map(|p| (mode.position_of(p), data_n(p)))
            .collect();
        let want: Vec<(u64, u64)> = wire_order(mode, 3, 5).into_iter().map(|n| (n, n)).collect();
        assert_eq!(got, want, "{mode:?} wire order: {r}");
        match mode {
            Mode::V2 => assert_eq!(r["was_recovering"], true, "{r}"),
            _ => assert!(
                r.get("was_recovering").is_none(),
                "v1 has no was_recovering: {r}"
            ),
        }
        // Live publications continue right after, no gap and no duplicate.
        api_publish(&server, "feed", json!({"n": 6})).await;
        let p = b.pub_in("feed").await;
        assert_eq!((mode.position_of(&p), data_n(&p)), (6, 6), "{mode:?}");
        b.ws.assert_no_push(Duration::from_millis(200)).await;

        // Nothing missed: recovered, no publications.
        let mut c = connect_user(&server, g, "alice").await;
        let r = c
            .call("subscribe", mode.recover_params("feed", 6, &epoch))
            .await
            .unwrap();
        assert_eq!(r["recovered"], true, "{mode:?} nothing missed: {r}");
        assert!(
            r.get("publications").is_none() || r["publications"] == json!([]),
            "{mode:?}: {r}"
        );
        assert_eq!(mode.position_of(&r), 6, "{mode:?}: {r}");
    }
}

#[tokio::test]
async fn recovery_with_another_epoch_is_not_recovered() {
    for mode in MODES {
        let server = Server::start(recovery_config(mode, json!({}))).await;
        let (_, epoch) = position_now(&server, mode, "feed").await;
        for n in 1..=3 {
            api_publish(&server, "feed", json!({"n": n})).await;
        }
        let mut c = connect_user(&server, mode.g(), "alice").await;
        let r = c
            .call("subscribe", mode.recover_params("feed", 1, "not-the-epoch"))
            .await
            .unwrap();
        assert_ne!(r.get("recovered"), Some(&json!(true)), "{mode:?}: {r}");
        assert_eq!(r["recoverable"], true, "{mode:?}: {r}");
        assert_eq!(r["epoch"], json!(epoch), "{mode:?}: the real epoch: {r}");
        assert_eq!(mode.position_of(&r), 3, "{mode:?}: {r}");
        // The stream goes on normally for it.
        api_publish(&server, "feed", json!({"n": 4})).await;
        assert_eq!(mode.position_of(&c.pub_in("feed").await), 4, "{mode:?}");
    }
}

#[tokio::test]
async fn recovery_beyond_trimmed_or_removed_history_is_not_recovered() {
    for mode in MODES {
        let server = Server::start(recovery_config(mode, json!({"history_size": 3}))).await;
        let (_, epoch) = position_now(&server, mode, "feed").await;
        for n in 1..=8 {
            api_publish(&server, "feed", json!({"n": n})).await;
        }
        let g = mode.g();
        // History keeps 6, 7, 8: a client at 1 missed 2..8 and cannot get 2..5.
        let mut c = connect_user(&server, g, "alice").await;
        let r = c
            .call("subscribe", mode.recover_params("feed", 1, &epoch))
            .await
            .unwrap();
        assert_ne!(
            r.get("recovered"),
            Some(&json!(true)),
            "{mode:?} trimmed: {r}"
        );
        assert_eq!(mode.position_of(&r), 8, "{mode:?}: {r}");
        // A client at 5 missed exactly what is kept.
        let mut d = connect_user(&server, g, "alice").await;
        let r = d
            .call("subscribe", mode.recover_params("feed", 5, &epoch))
            .await
            .unwrap();
        assert_eq!(r["recovered"], true, "{mode:?} at the edge: {r}");
        assert_eq!(
            mode.publication_positions(&r),
            wire_order(mode, 6, 8),
            "{mode:?}: {r}"
        );
        // After history_remove a client at 7 cannot get 8; a client at 8 missed nothing.
        assert_eq!(
            api1(&server, "history_remove", json!({"channel": "feed"})).await,
            json!({})
        );
        let mut e = connect_user(&server, g, "alice").await;
        let r = e
            .call("subscribe", mode.recover_params("feed", 7, &epoch))
            .await
            .unwrap();
        assert_ne!(
            r.get("recovered"),
            Some(&json!(true)),
            "{mode:?} removed: {r}"
        );
        let mut f = connect_user(&server, g, "alice").await;
        let r = f
            .call("subscribe", mode.recover_params("feed", 8, &epoch))
            .await
            .unwrap();
        assert_eq!(r["recovered"], true, "{mode:?} nothing missed: {r}");
    }
}

// =============================================================================================
// 7. Server-side subscriptions and the server API acting on subscriptions (§2.5, §8)
// =============================================================================================

#[tokio::test]
async fn token_channels_claim_lists_subs_with_positions_and_delivers() {
    for mode in MODES {
        let server = Server::start(json!({
            "v3_use_offset": mode.use_offset(),
            "namespaces": [{"name": "feed", "history_size": 10, "history_lifetime": 60, "history_recover": true}],
        }))
        .await;
        for n in 1..=2 {
            api_publish(&server, "feed:x", json!({"n": n})).await;
        }
        let (_, epoch) = position_now(&server, mode, "feed:x").await;
        let mut c = connect(
            &server,
            mode.g(),
            json!({"sub": "alice", "channels": ["news", "feed:x"]}),
        )
        .await;
        let subs = &c.connect["subs"];
        assert_eq!(
            keys(subs),
            vec!["feed:x", "news"],
            "{mode:?}: {}",
            c.connect
        );
        assert_eq!(subs["news"], json!({}), "{mode:?}: {}", c.connect);
        let f = &subs["feed:x"];
        assert_eq!(
            (f["recoverable"].clone(), f["epoch"].clone()),
            (json!(true), json!(epoch)),
            "{mode:?}: {f}"
        );
        assert_eq!(mode.position_of(f), 2, "{mode:?}: {f}");
        api_publish(&server, "news", json!({"n": 10})).await;
        assert_eq!(
            c.pub_in("news").await,
            json!({"data": {"n": 10}}),
            "{mode:?}"
        );
        api_publish(&server, "feed:x", json!({"n": 3})).await;
        let p = c.pub_in("feed:x").await;
        assert_eq!((mode.position_of(&p), data_n(&p)), (3, 3), "{mode:?}");
        // Client commands treat them like any subscription.
        assert_eq!(
            c.call("unsubscribe", json!({"channel": "news"})).await,
            Ok(json!({}))
        );
        api_publish(&server, "news", json!({"n": 11})).await;
        c.ws.assert_no_push(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn server_side_subscription_recovers_through_connect_subs() {
    for mode in MODES {
        let server = Server::start(recovery_config(mode, json!({}))).await;
        let g = mode.g();
        let token = jwt(&json!({"sub": "alice", "channels": ["feed"]}));
        let mut a = connect_with(&server, g, json!({"token": token})).await;
        let first = a.connect["subs"]["feed"].clone();
        let epoch = first["epoch"]
            .as_str()
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        api_publish(&server, "feed", json!({"n": 1})).await;
        assert_eq!(mode.position_of(&a.pub_in("feed").await), 1, "{mode:?}");
        a.ws.close().await;
        for n in 2..=4 {
            api_publish(&server, "feed", json!({"n": n})).await;
        }
        // The client names its position per channel in the connect command.
        let mut pos = mode.recover_params("feed", 1, &epoch);
        pos.as_object_mut().unwrap().remove("channel");
        let mut b = connect_with(&server, g, json!({"token": token, "subs": {"feed": pos}})).await;
        let r = &b.connect["subs"]["feed"];
        assert_eq!(r["recovered"], true, "{mode:?}: {}", b.connect);
        assert_eq!(mode.position_of(r), 4, "{mode:?}: {r}");
        let got: Vec<(u64, u64)> = r["publications"]
            .as_array()
            .unwrap_or_else(|| panic!("{mode:?}: {r}"))
            .iter()
            .map(|p| (mode.position_of(p), data_n(p)))
            .collect();
        let want: Vec<(u64, u64)> = wire_order(mode, 2, 4).into_iter().map(|n| (n, n)).collect();
        assert_eq!(got, want, "{mode:?}: {r}");
        api_publish(&server, "feed", json!({"n": 5})).await;
        assert_eq!(mode.position_of(&b.pub_in("feed").await), 5, "{mode:?}");
        // With another epoch it is not recovered.
        let mut pos = mode.recover_params("feed", 4, "other-epoch");
        pos.as_object_mut().unwrap().remove("channel");
        let c = connect_with(&server, g, json!({"token": token, "subs": {"feed": pos}})).await;
        let r = &c.connect["subs"]["feed"];
        assert_ne!(r.get("recovered"), Some(&json!(true)), "{mode:?}: {r}");
        assert_eq!(
            (r["epoch"].clone(), mode.position_of(r)),
            (json!(epoch), 5),
            "{mode:?}: {r}"
        );
    }
}

#[tokio::test]
async fn api_unsubscribe_pushes_unsubscribe_and_stops_delivery() {
    let server = Server::start(json!({})).await;
    for g in GENS {
        let user = chan("", g, "u");
        let token = jwt(&json!({"sub": user, "channels": ["side"]}));
        let mut c = connect_with(&server, g, json!({"token": token})).await;
        c.sub_ok("room").await;
        let mut other = connect_user(&server, g, "someone-else").await;
        other.sub_ok("room").await;
        // 2.x endpoint: client subscription.
        assert_eq!(
            api1(
                &server,
                "unsubscribe",
                json!({"user": user, "channel": "room"})
            )
            .await,
            json!({})
        );
        let want = match g {
            G::V1 => json!({"result": {"type": 3, "channel": "room", "data": {}}}),
            G::V2 => {
                json!({"push": {"channel": "room", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}})
            }
        };
        assert_eq!(c.ws.push().await, want, "{g:?}");
        api_publish(&server, "room", json!({"n": 1})).await;
        assert_eq!(other.pub_in("room").await["data"], json!({"n": 1}));
        c.ws.assert_no_push(Duration::from_millis(200)).await;
        // Current endpoint: a server-side subscription.
        assert_eq!(
            api_v2(
                &server,
                "unsubscribe",
                json!({"user": user, "channel": "side"})
            )
            .await,
            json!({"result": {}})
        );
        match c.push().await {
            P::Unsub(ch, body) => {
                assert_eq!(ch, "side");
                if g == G::V2 {
                    assert_eq!(body["code"], 2000, "{body}");
                }
            }
            other => panic!("{g:?}: expected an unsubscribe push, got {other:?}"),
        }
        api_publish(&server, "side", json!({"n": 2})).await;
        c.ws.assert_no_push(Duration::from_millis(200)).await;
        // The connection is still fine and may subscribe again.
        c.sub_ok("room").await;
    }
}

#[tokio::test]
async fn api_disconnect_closes_every_connection_of_the_user_in_both_generations() {
    let server = Server::start(json!({})).await;
    for (round, legacy) in [(0, true), (1, false)] {
        let mut mine = Vec::new();
        for g in [G::V1, G::V1, G::V2, G::V2] {
            let mut c = connect_user(&server, g, "target").await;
            c.sub_ok("room").await;
            mine.push(c);
        }
        let mut others = Vec::new();
        for g in GENS {
            let mut c = connect_user(&server, g, "bystander").await;
            c.sub_ok("room").await;
            others.push(c);
        }
        if legacy {
            assert_eq!(
                api1(&server, "disconnect", json!({"user": "target"})).await,
                json!({})
            );
        } else {
            assert_eq!(
                api_v2(&server, "disconnect", json!({"user": "target"})).await,
                json!({"result": {}})
            );
        }
        for c in &mut mine {
            let (code, reason) = c.ws.expect_close().await;
            match c.g {
                G::V1 => assert_eq!(
                    (code, reason.as_str()),
                    (3012, V1_FORCE_DISCONNECT),
                    "round {round}"
                ),
                G::V2 => assert_eq!(
                    (code, reason.as_str()),
                    (3503, "force disconnect"),
                    "round {round}"
                ),
            }
        }
        api_publish(&server, "room", json!({"round": round})).await;
        for c in &mut others {
            assert_eq!(
                c.pub_in("room").await["data"],
                json!({"round": round}),
                "{:?}",
                c.g
            );
        }
    }
}

#[tokio::test]
async fn api_subscribe_adds_a_subscription_at_runtime_with_a_subscribe_push() {
    // Issue 3 item 7: "the `sub` push when the server API `subscribe` (current generation)
    // adds one at runtime".
    let server = Server::start(recovery_config(Mode::V2, json!({}))).await;
    let mut c = connect_user(&server, G::V2, "alice").await;
    let r = api_v2(
        &server,
        "subscribe",
        json!({"user": "alice", "channel": "feed"}),
    )
    .await;
    assert_eq!(r, json!({"result": {}}), "/api/subscribe");
    match c.push().await {
        P::Sub(ch, body) => {
            assert_eq!(ch, "feed");
            assert_eq!(body["recoverable"], true, "{body}");
            assert!(
                body["epoch"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
        }
        other => panic!("expected a subscribe push, got {other:?}"),
    }
    api_publish(&server, "feed", json!({"n": 1})).await;
    assert_eq!(c.pub_in("feed").await["data"], json!({"n": 1}));
}

// =============================================================================================
// 8. Limits (§1.4, §4.4, §5.3)
// =============================================================================================

#[tokio::test]
async fn channel_max_length_gets_106_v1_and_107_v2() {
    let server =
        Server::start(json!({"channel_max_length": 10, "namespaces": [{"name": "ns"}]})).await;
    for g in GENS {
        // 2.x answers a too long name as a limit (106), Centrifugo 6 as a bad name (107).
        let too_long = match g {
            G::V1 => limit_exceeded(),
            G::V2 => (107, "bad request".into()),
        };
        let mut c = connect_user(&server, g, "alice").await;
        for (ch, ok) in [
            ("abcdefghij", true),
            ("abcdefghijk", false),
            ("ns:abcdefg", true),
            ("ns:abcdefgh", false),
        ] {
            let r = c.sub(ch).await;
            if ok {
                assert!(r.is_ok(), "{g:?} {ch}: {r:?}");
            } else {
                assert_eq!(r, Err(too_long.clone()), "{g:?} {ch}");
            }
        }
        // The private prefix counts; the length is checked before the token.
        let r = c
            .call(
                "subscribe",
                json!({"channel": "$abcdefghi", "token": c.sub_token("$abcdefghi", None)}),
            )
            .await;
        assert!(r.is_ok(), "{g:?}: {r:?}");
        let r = c
            .call(
                "subscribe",
                json!({"channel": "$abcdefghij", "token": "not-even-a-token"}),
            )
            .await;
        assert_eq!(r, Err(too_long.clone()), "{g:?}");
    }
}

#[tokio::test]
async fn client_channel_limit_gets_106_and_unsubscribe_frees_a_slot() {
    let server = Server::start(json!({"client_channel_limit": 2})).await;
    for g in GENS {
        let mut c = connect_user(&server, g, "alice").await;
        c.sub_ok("a").await;
        c.sub_ok("b").await;
        assert_eq!(c.sub("c").await, Err(limit_exceeded()), "{g:?}");
        assert_eq!(
            c.call("unsubscribe", json!({"channel": "a"})).await,
            Ok(json!({}))
        );
        c.sub_ok("c").await;
        assert_eq!(c.sub("d").await, Err(limit_exceeded()), "{g:?}");
        // Another connection has its own count.
        let mut d = connect_user(&server, g, "alice").await;
        d.sub_ok("a").await;
        d.sub_ok("d").await;
    }
}

/// Connects `user` and returns the close it gets, or `None` if the connect succeeded.
async fn connect_or_close(server: &Server, g: G, user: &str) -> Result<C, (u16, String)> {
    let mut ws = Ws::open(&server.ws_url()).await;
    let token = conn_token(user);
    let cmd = match g {
        G::V1 => json!({"id": 1, "params": {"token": token}}),
        G::V2 => json!({"id": 1, "connect": {"token": token}}),
    };
    ws.send(&cmd).await;
    match ws.next_event_within(WAIT).await {
        Some(Event::Value(rep)) => {
            assert!(rep.get("error").is_none(), "{g:?} connect: {rep}");
            let res = if g == G::V1 {
                rep["result"].clone()
            } else {
                rep["connect"].clone()
            };
            let id = res["client"].as_str().unwrap_or_default().to_string();
            Ok(C {
                ws,
                g,
                id,
                user: user.into(),
                connect: res,
            })
        }
        Some(Event::Closed(c, r)) => Err((c, r)),
        None => panic!("{g:?}: neither a reply nor a close to the connect"),
    }
}

#[tokio::test]
async fn client_user_connection_limit_closes_the_extra_connection() {
    let server = Server::start(json!({"client_user_connection_limit": 2})).await;
    let first = connect_user(&server, G::V1, "u").await;
    let _second = connect_user(&server, G::V2, "u").await;
    assert_eq!(
        connect_or_close(&server, G::V1, "u").await.err(),
        Some((3013, V1_CONNECTION_LIMIT.to_string())),
        "v1 third connection"
    );
    assert_eq!(
        connect_or_close(&server, G::V2, "u").await.err(),
        Some((3504, "connection limit".to_string())),
        "v2 third connection"
    );
    // Other users are not limited by u's connections.
    for g in [G::V1, G::V2, G::V1] {
        let _ = connect_user(&server, g, "other").await;
    }
    // Once one of u's connections is gone, u may connect again.
    first.ws.close().await;
    eventually(
        Duration::from_secs(5),
        "a free slot after a disconnect",
        || async { connect_or_close(&server, G::V1, "u").await.ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_is_dropped_once_a_write_waits_past_the_write_timeout() {
    // The queue is far larger than what is sent, so only `websocket_write_timeout` (1 s) can
    // end the silent connection: its socket fills, a write waits, and the writer gives up.
    let server = Server::start(json!({
        "client_queue_max_size": 256 << 20,
        "websocket_write_timeout": 1,
    }))
    .await;
    let _silent = TinyWs::subscriber(&server, G::V1, "silent", "stall", 4096).await;
    let mut reader = connect_user(&server, G::V2, "reader").await;
    reader.ws.auto_pong = true;
    reader.sub_ok("stall").await;
    let wmem_max: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|n| n.parse().ok()))
        .unwrap_or(4 << 20);
    let pad = "x".repeat(16_000);
    let total = (wmem_max + (2 << 20)) / 16_000;
    let publisher = Publisher::new(&server);
    for n in 0..total {
        publisher
            .publish("stall", json!({"n": n, "pad": pad}))
            .await;
        assert_eq!(data_n(&reader.pub_in("stall").await), n);
    }
    eventually(
        Duration::from_secs(10),
        "the stalled subscriber dropped",
        || async {
            let r = api_v2(&server, "channels", json!({})).await;
            (r["result"]["channels"]["stall"]["num_clients"] == json!(1)).then_some(())
        },
    )
    .await;
    assert!(reader.ws.closed().is_none(), "the reader stays connected");
    api_publish(&server, "stall", json!({"n": total, "pad": "after"})).await;
    assert_eq!(data_n(&reader.pub_in("stall").await), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_closed_3008_while_another_subscriber_gets_everything() {
    // A 2000-byte queue per connection. Two subscribers (v1, v2) stop reading, on sockets with
    // a small receive buffer so the server's writes to them block after a few kilobytes; two
    // others (v1, v2) read each publication (~1.1 KB) before the next is sent, so their queues
    // never hold more than one. `websocket_write_timeout` is raised so that the writer blocked
    // on a full socket is still there to send the close frame once the client reads again.
    let server = Server::start(json!({
        "client_queue_max_size": 2000,
        "websocket_write_timeout": 60,
    }))
    .await;
    let mut slow1 = TinyWs::subscriber(&server, G::V1, "slow1", "firehose", 4096).await;
    let mut slow2 = TinyWs::subscriber(&server, G::V2, "slow2", "firehose", 4096).await;
    let mut fast1 = connect_user(&server, G::V1, "fast1").await;
    let mut fast2 = connect_user(&server, G::V2, "fast2").await;
    fast2.ws.auto_pong = true;
    for c in [&mut fast1, &mut fast2] {
        c.sub_ok("firehose").await;
    }
    // Each publication is ~1.9 KB on the wire (the queue holds one). The kernel may buffer up to
    // tcp_wmem's maximum for the silent sockets before the server's writes block: send more.
    let pad = "x".repeat(1800);
    let wmem_max: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|n| n.parse().ok()))
        .unwrap_or(4 << 20);
    let total = (wmem_max + (1 << 20)) / 1800;
    let start = Instant::now();
    let publisher = Publisher::new(&server);
    for n in 0..total {
        publisher
            .publish("firehose", json!({"n": n, "pad": pad}))
            .await;
        for c in [&mut fast1, &mut fast2] {
            let p = c.pub_in("firehose").await;
            assert_eq!(
                data_n(&p),
                n,
                "{:?} reader gets every publication in order",
                c.g
            );
        }
    }
    for c in [&mut fast1, &mut fast2] {
        assert!(c.ws.closed().is_none(), "{:?} reader still connected", c.g);
    }
    eprintln!("{total} publications in {:?}", start.elapsed());
    // The silent ones get an in-order prefix, then the close.
    for (c, want) in [(&mut slow1, (3008, V1_SLOW)), (&mut slow2, (3008, "slow"))] {
        let mut next = 0u64;
        loop {
            match c.next(Duration::from_secs(10)).await {
                Some(TinyEvent::Value(v)) if v == json!({}) => {}
                Some(TinyEvent::Value(v)) => match parse_push(c.g, &v) {
                    P::Pub(_, p) => {
                        assert_eq!(data_n(&p), next, "{:?} in order", c.g);
                        next += 1;
                    }
                    other => panic!("{:?}: unexpected {other:?}", c.g),
                },
                Some(TinyEvent::Closed(code, reason)) => {
                    assert_eq!(
                        (code, reason.as_str()),
                        want,
                        "{:?} after {next} publications",
                        c.g
                    );
                    break;
                }
                None => panic!("{:?}: no close after {next} publications", c.g),
            }
        }
        eprintln!(
            "{:?} silent subscriber got {next} of {total} before 3008",
            c.g
        );
        assert!(next < total, "{:?} was cut off ({next} of {total})", c.g);
    }
    // The server dropped them and keeps serving the others.
    eventually(
        Duration::from_secs(10),
        "the silent subscribers dropped",
        || async {
            let r = api_v2(&server, "channels", json!({})).await;
            (r["result"]["channels"]["firehose"]["num_clients"] == json!(2)).then_some(())
        },
    )
    .await;
    api_publish(&server, "firehose", json!({"n": total, "pad": "after"})).await;
    for c in [&mut fast1, &mut fast2] {
        assert_eq!(data_n(&c.pub_in("firehose").await), total);
    }
    server.assert_serves_fresh_client().await;
}
