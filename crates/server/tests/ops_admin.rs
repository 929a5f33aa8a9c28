//! The admin UI's HTTP side (the browser test is tests/clients/js/admin.test.mjs): embedded
//! assets without login, every data endpoint behind a login, a delay on a wrong password, the
//! cookie and `Authorization: token` both accepted, and the data endpoints' shapes.

mod common;
mod ops_support;

use std::time::{Duration, Instant};

use common::*;
use ops_support::*;
use serde_json::{json, Value};

async fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = http().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_login_guards_the_data_endpoints() {
    let server = Server::start(json!({
        "admin": true,
        "admin_password": "pass",
        "admin_secret": "admin-secret",
        "presence": true,
        "history_size": 10,
        "history_lifetime": 300,
    }))
    .await;
    // The page and its assets need no login and come from the binary.
    let (status, page) = get(&server.http_url("/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Rotor admin</title>") && page.contains("/admin/app.js"));
    for asset in ["/admin/app.js", "/admin/style.css"] {
        let (status, body) = get(&server.http_url(asset)).await;
        assert_eq!(status, 200, "{asset}");
        assert!(!body.is_empty());
    }
    // Data needs a login.
    for path in [
        "/admin/api/info",
        "/admin/api/connections",
        "/admin/api/channels",
        "/admin/api/presence?channel=news",
        "/admin/api/history?channel=news",
    ] {
        let (status, _) = get(&server.http_url(path)).await;
        assert_eq!(status, 401, "{path} without login");
    }
    let r = post(
        &server.http_url("/admin/api/publish"),
        &[],
        r#"{"channel":"news","data":{}}"#,
    )
    .await;
    assert_eq!(r.status, 401);
    let (status, _) = get_with(
        &server.http_url("/admin/api/info"),
        &[("Authorization", "token forged.token.value")],
    )
    .await;
    assert_eq!(status, 401);

    // A wrong password is refused after a delay.
    let started = Instant::now();
    let r = post(
        &server.http_url("/admin/auth"),
        &[],
        r#"{"password":"nope"}"#,
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // The right one gives a token (body) and a cookie.
    let resp = http()
        .post(server.http_url("/admin/auth"))
        .body(r#"{"password":"pass"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie_pair = cookie.split(';').next().unwrap().to_string();
    let auth = format!("token {token}");

    let (mut ws, client) = server.v2_client("alice").await;
    ws.subscribe_v2("news").await;
    let (status, info) = get_with(
        &server.http_url("/admin/api/info"),
        &[("Cookie", &cookie_pair)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info["nodes"][0]["num_clients"], 1, "{info}");
    // The build the node runs.
    let build = &info["build"];
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"), "{info}");
    assert!(
        build["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{info}"
    );
    assert!(
        matches!(build["profile"].as_str(), Some("debug" | "release")),
        "{info}"
    );
    assert!(
        build["target"].as_str().is_some_and(|t| t.contains('-')),
        "{info}"
    );
    let (_, conns) = get_with(
        &server.http_url("/admin/api/connections"),
        &[("Authorization", &auth)],
    )
    .await;
    let c = &conns["connections"][0];
    assert_eq!(
        (c["user"].as_str(), c["client"].as_str()),
        (Some("alice"), Some(client.as_str()))
    );
    assert_eq!(c["channels"], json!(["news"]));
    let (_, chans) = get_with(
        &server.http_url("/admin/api/channels"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(
        chans["channels"],
        json!([{"channel": "news", "num_clients": 1}])
    );

    // Publish from the admin API reaches the client; presence and history show it.
    let r = post(
        &server.http_url("/admin/api/publish"),
        &[("Authorization", &auth)],
        r#"{"channel":"news","data":{"from":"admin"}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["result"]["offset"], 1, "{r:?}");
    let push = ws.push().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"from": "admin"}));
    let (_, presence) = get_with(
        &server.http_url("/admin/api/presence?channel=news"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(
        presence["result"]["presence"][0]["user"], "alice",
        "{presence}"
    );
    let (_, history) = get_with(
        &server.http_url("/admin/api/history?channel=news"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(
        history["result"]["publications"][0]["data"],
        json!({"from": "admin"}),
        "{history}"
    );
    let (_, err) = get_with(
        &server.http_url("/admin/api/history?channel=nope:x"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(err["error"]["code"], 102, "{err}");
}

#[tokio::test]
async fn admin_insecure_needs_no_login() {
    let server = Server::start(json!({"admin": true, "admin_insecure": true})).await;
    let (status, _) = get(&server.http_url("/admin/api/info")).await;
    assert_eq!(status, 200);
}
