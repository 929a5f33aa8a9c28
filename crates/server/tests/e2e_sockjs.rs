//! SockJS end to end (TRANSPORTS.md §1, traps 1–6 and 11): raw HTTP requests and WebSockets
//! against the real binary, checking what sockjs-client and centrifuge-js 2.x see on the wire:
//! `/info`, OPTIONS, the iframe page, xhr polling and streaming, eventsource with its `%`
//! escaping, htmlfile and jsonp callbacks, the one-receiver rule, xhr_send errors, close frames
//! with the v1 advice, the WebSocket sub-transport and `allowed_origins`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PREFIX: &str = "/connection/sockjs";

/// The SockJS messages of an `a[...]` frame, each split into its JSON lines.
fn messages(frame: &str) -> Vec<Vec<Value>> {
    let rest = frame
        .strip_prefix('a')
        .unwrap_or_else(|| panic!("not an a-frame: {frame:?}"));
    let list: Vec<String> =
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("bad a-frame {frame:?}: {e}"));
    list.iter()
        .map(|m| {
            m.split('\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
                .collect()
        })
        .collect()
}

/// One SockJS message of an `a[...]` frame, raw.
fn raw_messages(frame: &str) -> Vec<String> {
    serde_json::from_str(frame.strip_prefix('a').expect("a-frame")).expect("a-frame JSON")
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = http().request(method, url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

fn url(s: &Server, path: &str) -> String {
    s.http_url(&format!("{PREFIX}{path}"))
}

async fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(reqwest::Method::GET, &url(s, path), headers, "").await
}

async fn post_to(s: &Server, path: &str, body: &str) -> Reply {
    request(reqwest::Method::POST, &url(s, path), &[], body).await
}

/// One xhr poll: the frame without its `\n`.
async fn poll(s: &Server, session: &str) -> String {
    let r = post_to(s, &format!("/000/{session}/xhr"), "").await;
    assert_eq!(r.status, 200, "xhr poll: {}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    r.body
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("frame without \\n: {:?}", r.body))
        .to_string()
}

/// Polls until a frame other than `h` arrives.
async fn poll_data(s: &Server, session: &str) -> String {
    for _ in 0..5 {
        let f = poll(s, session).await;
        if f != "h" {
            return f;
        }
    }
    panic!("only heartbeats");
}

fn v1_connect(user: &str) -> String {
    json!({"id": 1, "params": {"token": conn_token(user)}}).to_string()
}

fn v1_subscribe(id: u64, channel: &str) -> String {
    json!({"id": id, "method": 1, "params": {"channel": channel}}).to_string()
}

/// Sends client messages with xhr_send; asserts 204.
async fn xhr_send(s: &Server, session: &str, msgs: &[String]) {
    let r = post_to(
        s,
        &format!("/000/{session}/xhr_send"),
        &serde_json::to_string(msgs).unwrap(),
    )
    .await;
    assert_eq!(r.status, 204, "xhr_send: {}", r.body);
}

/// A polling session connected as `user` and subscribed to `channel`.
async fn polling_client(s: &Server, session: &str, user: &str, channel: &str) -> Value {
    assert_eq!(poll(s, session).await, "o");
    // One SockJS message holding two commands, as centrifuge-js 2.x batches them.
    let batch = format!("{}\n{}", v1_connect(user), v1_subscribe(2, channel));
    xhr_send(s, session, &[batch]).await;
    let frame = poll_data(s, session).await;
    let msgs = messages(&frame);
    assert_eq!(
        msgs.len(),
        1,
        "replies of one frame come as one message: {frame}"
    );
    let replies = &msgs[0];
    assert_eq!(replies[0]["id"], 1, "{frame}");
    assert!(is_uuid_v4(replies[0]["result"]["client"].as_str().unwrap()));
    assert_eq!(replies[1]["id"], 2, "{frame}");
    assert!(replies[1].get("error").is_none(), "{frame}");
    replies[0]["result"].clone()
}

#[tokio::test]
async fn info_options_iframe_and_errors() {
    let s = Server::start(json!({"sockjs_url": "http://cdn.test/sockjs-1.6.1.min.js"})).await;
    let welcome = get(&s, "/", &[]).await;
    assert_eq!(
        (welcome.status, welcome.body.as_str()),
        (200, "Welcome to SockJS!\n")
    );

    let origin = "http://app.example:8080";
    let info = get(&s, "/info", &[("Origin", origin)]).await;
    assert_eq!(info.status, 200);
    assert_eq!(
        info.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(info.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        info.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(info.header("cache-control").unwrap().contains("no-store"));
    assert!(info.body.ends_with('\n'));
    let v: Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(v["websocket"], true);
    assert_eq!(v["cookie_needed"], false);
    assert_eq!(v["origins"], json!(["*:*"]));
    let e1 = v["entropy"].as_i64().expect("entropy integer");
    let again: Value = serde_json::from_str(&get(&s, "/info", &[]).await.body).unwrap();
    assert_ne!(
        again["entropy"].as_i64(),
        Some(e1),
        "entropy differs per call"
    );

    let opt = request(
        reqwest::Method::OPTIONS,
        &url(&s, "/info"),
        &[
            ("Origin", origin),
            ("Access-Control-Request-Headers", "x-foo"),
        ],
        "",
    )
    .await;
    assert_eq!(opt.status, 204);
    assert_eq!(
        opt.header("access-control-allow-methods"),
        Some("OPTIONS, GET")
    );
    assert_eq!(opt.header("access-control-allow-origin"), Some(origin));
    assert_eq!(opt.header("access-control-allow-headers"), Some("x-foo"));
    assert_eq!(opt.header("access-control-max-age"), Some("31536000"));
    assert_eq!(
        opt.header("cache-control"),
        Some("public, max-age=31536000")
    );
    assert!(opt.header("expires").is_some_and(|e| e.ends_with(" GMT")));
    let opt = request(reqwest::Method::OPTIONS, &url(&s, "/000/abc/xhr"), &[], "").await;
    assert_eq!(opt.status, 204);
    assert_eq!(
        opt.header("access-control-allow-methods"),
        Some("OPTIONS, POST")
    );

    let page = get(&s, "/iframe.html", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert!(page
        .body
        .contains("src=\"http://cdn.test/sockjs-1.6.1.min.js\""));
    assert!(page.body.contains("SockJS.bootstrap_iframe()"));
    let etag = page.header("etag").expect("etag").to_string();
    let cached = get(&s, "/iframe-1.6.1.html?t=1", &[("If-None-Match", &etag)]).await;
    assert_eq!((cached.status, cached.body.as_str()), (304, ""));
    assert_eq!(
        get(&s, "/iframe-x.html", &[("If-None-Match", "\"other\"")])
            .await
            .status,
        200
    );

    let wrong = post_to(&s, "/info", "").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("OPTIONS, GET"));
    let wrong = get(&s, "/000/abc/xhr", &[]).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("OPTIONS, POST"));
    for path in [
        "/websocket",
        "/000/abc/nope",
        "/000/a.b/xhr",
        "/000//xhr",
        "/x/y/z/xhr",
    ] {
        assert_eq!(post_to(&s, path, "").await.status, 404, "{path}");
    }
    let bad = post_to(&s, "/000/abc/xhr?cf_protocol_version=v9", "").await;
    assert_eq!(bad.status, 400);
    s.assert_alive();
}

#[tokio::test]
async fn xhr_polling_session_flow() {
    let s = Server::start(json!({"sockjs_heartbeat_delay": 1})).await;
    let result = polling_client(&s, "polly", "alice", "news").await;
    assert!(result["client"].is_string());

    // A concurrent second receiver gets 2010 while the first waits.
    let first = {
        let url = url(&s, "/000/polly/xhr");
        tokio::spawn(async move { request(reqwest::Method::POST, &url, &[], "").await.body })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = poll(&s, "polly").await;
    assert_eq!(second, r#"c[2010,"Another connection still open"]"#);
    api_publish(&s, "news", json!({"text": "hello"})).await;
    let got = first.await.unwrap();
    let frame = got.trim_end_matches('\n');
    let msgs = messages(frame);
    assert_eq!(msgs[0][0]["result"]["channel"], "news", "{frame}");
    assert_eq!(
        msgs[0][0]["result"]["data"]["data"],
        json!({"text": "hello"})
    );
    // v1 replies keep their trailing newline inside the SockJS message.
    assert!(raw_messages(frame)[0].ends_with('\n'));

    // Published while no receiver is attached: delivered as one a-frame on the next poll.
    api_publish(&s, "news", json!({"n": 1})).await;
    api_publish(&s, "news", json!({"n": 2})).await;
    let frame = poll_data(&s, "polly").await;
    let all: Vec<Value> = messages(&frame).into_iter().flatten().collect();
    let ns: Vec<&Value> = all
        .iter()
        .map(|v| &v["result"]["data"]["data"]["n"])
        .collect();
    assert_eq!(ns, [&json!(1), &json!(2)], "{frame}");

    // An idle poll ends with a heartbeat.
    assert_eq!(poll(&s, "polly").await, "h");

    // xhr_send errors.
    let r = post_to(&s, "/000/nobody/xhr_send", r#"["{}"]"#).await;
    assert_eq!(r.status, 404);
    let r = post_to(&s, "/000/polly/xhr_send", "").await;
    assert_eq!((r.status, r.body.as_str()), (400, "Payload expected."));
    let r = post_to(&s, "/000/polly/xhr_send", r#"["{\"id\":3"#).await;
    assert_eq!((r.status, r.body.as_str()), (400, "Broken JSON encoding."));
    xhr_send(&s, "polly", &[]).await;

    // Disconnect by the API: the close frame carries the v1 advice, and is replayed.
    api_v1(&s, "disconnect", json!({"user": "alice"})).await;
    let expected = format!(
        "c[3012,{}]",
        serde_json::to_string(V1_FORCE_DISCONNECT).unwrap()
    );
    assert_eq!(poll(&s, "polly").await, expected);
    assert_eq!(
        poll(&s, "polly").await,
        expected,
        "closed sessions replay their c frame"
    );
    let r = post_to(&s, "/000/polly/xhr_send", r#"["{}"]"#).await;
    assert_eq!(r.status, 404, "no sends into a closed session");

    // An empty SockJS message is a bad request (3003).
    assert_eq!(poll(&s, "empty").await, "o");
    xhr_send(&s, "empty", &[v1_connect("bob")]).await;
    poll_data(&s, "empty").await;
    xhr_send(&s, "empty", &[String::new()]).await;
    let close = format!("c[3003,{}]", serde_json::to_string(V1_BAD_REQUEST).unwrap());
    assert_eq!(poll_data(&s, "empty").await, close);
    s.assert_alive();
}

#[tokio::test]
async fn protocol_v2_by_query_drops_the_trailing_newline() {
    let s = Server::start(json!({})).await;
    let q = "?cf_protocol_version=v2";
    let r = post_to(&s, &format!("/000/v2s/xhr{q}"), "").await;
    assert_eq!(r.body, "o\n");
    let connect = json!({"id": 1, "connect": {"token": conn_token("carol")}}).to_string();
    let body = serde_json::to_string(&[connect]).unwrap();
    let r = post_to(&s, &format!("/000/v2s/xhr_send{q}"), &body).await;
    assert_eq!(r.status, 204);
    let frame = poll_data(&s, "v2s").await;
    let raw = raw_messages(&frame);
    assert!(!raw[0].ends_with('\n'), "{frame}");
    let reply: Value = serde_json::from_str(&raw[0]).unwrap();
    assert!(reply["connect"]["client"].is_string(), "{frame}");
}

/// Reads a streaming response until `pred` holds for what arrived (5 s at most).
async fn read_until(resp: &mut reqwest::Response, buf: &mut String, pred: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pred(buf) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {buf:?}"))
            .expect("stream error")
            .unwrap_or_else(|| panic!("stream ended; got {buf:?}"));
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

async fn open_stream(s: &Server, method: reqwest::Method, path: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().build().unwrap();
    let resp = client.request(method, url(s, path)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

#[tokio::test]
async fn xhr_streaming_prelude_frames_and_heartbeats() {
    let s = Server::start(json!({"sockjs_heartbeat_delay": 1})).await;
    let mut resp = open_stream(&s, reqwest::Method::POST, "/000/strm/xhr_streaming").await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/javascript; charset=UTF-8"
    );
    let mut buf = String::new();
    let prelude = format!("{}\n", "h".repeat(2048));
    read_until(&mut resp, &mut buf, |b| b.len() >= 2049 + 2).await;
    assert!(buf.starts_with(&prelude));
    assert_eq!(&buf[2049..], "o\n");
    buf.clear();
    let batch = format!("{}\n{}", v1_connect("dave"), v1_subscribe(2, "live"));
    xhr_send(&s, "strm", &[batch]).await;
    read_until(&mut resp, &mut buf, |b| b.contains("\\\"id\\\":2")).await;
    api_publish(&s, "live", json!({"x": 1})).await;
    read_until(&mut resp, &mut buf, |b| b.contains("{\\\"x\\\":1}")).await;
    read_until(&mut resp, &mut buf, |b| b.ends_with("\nh\n")).await;
    // A second receiver while streaming.
    assert_eq!(
        poll(&s, "strm").await,
        r#"c[2010,"Another connection still open"]"#
    );
    for line in buf.lines() {
        assert!(line == "h" || line.starts_with("a["), "{line:?}");
    }
}

#[tokio::test]
async fn eventsource_escapes_percent_and_line_ends() {
    let s = Server::start(json!({})).await;
    let mut resp = open_stream(&s, reqwest::Method::GET, "/000/evs/eventsource").await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=UTF-8"
    );
    let mut buf = String::new();
    read_until(&mut resp, &mut buf, |b| b.len() >= 13).await;
    assert_eq!(buf, "\r\ndata: o\r\n\r\n");
    buf.clear();
    let batch = format!("{}\n{}", v1_connect("erin"), v1_subscribe(2, "pct"));
    xhr_send(&s, "evs", &[batch]).await;
    read_until(&mut resp, &mut buf, |b| b.contains("\r\n\r\n")).await;
    buf.clear();
    api_publish(&s, "pct", json!({"text": "100% sure\r\n"})).await;
    read_until(&mut resp, &mut buf, |b| b.contains("\r\n\r\n")).await;
    let data = buf
        .strip_prefix("data: ")
        .and_then(|b| b.strip_suffix("\r\n\r\n"))
        .unwrap_or_else(|| panic!("{buf:?}"));
    assert!(data.contains("100%25 sure"), "{data}");
    assert!(!data.contains('\r') && !data.contains('\n'));
    // What sockjs-client's decodeURI gives back is the frame.
    let decoded = data
        .replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%25", "%");
    let msgs = messages(&decoded);
    assert_eq!(
        msgs[0][0]["result"]["data"]["data"]["text"],
        "100% sure\r\n"
    );
}

#[tokio::test]
async fn htmlfile_and_jsonp_callbacks() {
    let s = Server::start(json!({})).await;
    let r = get(&s, "/000/h1/htmlfile", &[]).await;
    assert_eq!(r.status, 400);
    let r = get(&s, "/000/h1/htmlfile?c=alert(1)", &[]).await;
    assert_eq!(r.status, 400);
    let mut resp = open_stream(&s, reqwest::Method::GET, "/000/h1/htmlfile?c=_jp.abc123").await;
    assert_eq!(resp.headers()["content-type"], "text/html; charset=UTF-8");
    let mut buf = String::new();
    read_until(&mut resp, &mut buf, |b| b.contains("p(\"o\");")).await;
    let head_end = buf.find("\r\n\r\n").expect("padded head");
    assert!(head_end > 1024);
    assert!(buf[..head_end].contains("parent._jp.abc123"));
    assert!(buf[head_end..].contains("<script>\np(\"o\");\n</script>\r\n"));

    assert_eq!(get(&s, "/000/j1/jsonp", &[]).await.status, 500);
    assert_eq!(get(&s, "/000/j1/jsonp?c=a%3Bb", &[]).await.status, 400);
    let r = get(&s, "/000/j1/jsonp?c=_jp.cb1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "_jp.cb1(\"o\");\r\n");
    let form = format!(
        "d={}",
        form_encode(&serde_json::to_string(&[v1_connect("frank")]).unwrap())
    );
    let r = request(
        reqwest::Method::POST,
        &url(&s, "/000/j1/jsonp_send"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let r = get(&s, "/000/j1/jsonp?c=_jp.cb1", &[]).await;
    let quoted = r
        .body
        .strip_prefix("_jp.cb1(")
        .and_then(|b| b.strip_suffix(");\r\n"))
        .unwrap_or_else(|| panic!("{:?}", r.body));
    let frame: String = serde_json::from_str(quoted).unwrap();
    assert_eq!(messages(&frame)[0][0]["id"], 1);
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_text(ws: &mut Socket) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("ws timeout")
        {
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return None,
        }
    }
}

async fn ws_open(s: &Server, path: &str) -> Socket {
    let u = format!("ws://127.0.0.1:{}{PREFIX}{path}", s.port);
    let (ws, _) = tokio_tungstenite::connect_async(u)
        .await
        .expect("ws connect");
    ws
}

#[tokio::test]
async fn websocket_subtransport() {
    let s = Server::start(json!({})).await;
    let mut ws = ws_open(&s, "/000/w1/websocket").await;
    assert_eq!(ws_text(&mut ws).await.as_deref(), Some("o"));
    let batch = format!("{}\n{}", v1_connect("gina"), v1_subscribe(2, "wsc"));
    let msg = serde_json::to_string(&[batch]).unwrap();
    ws.send(Message::text(msg)).await.unwrap();
    let frame = ws_text(&mut ws).await.unwrap();
    assert_eq!(messages(&frame)[0][1]["id"], 2, "{frame}");
    // The same id on another connection is a fresh session.
    let mut ws2 = ws_open(&s, "/000/w1/websocket").await;
    assert_eq!(ws_text(&mut ws2).await.as_deref(), Some("o"));
    // A message that is not a JSON array ends the connection without more data.
    ws2.send(Message::text("[\"a")).await.unwrap();
    while let Some(t) = ws_text(&mut ws2).await {
        assert!(
            t.is_empty() || t == "h",
            "no data after a malformed message: {t:?}"
        );
    }
    // Closed by the API: the c frame as text, then the connection ends.
    api_v1(&s, "disconnect", json!({"user": "gina"})).await;
    let expected = format!(
        "c[3012,{}]",
        serde_json::to_string(V1_FORCE_DISCONNECT).unwrap()
    );
    assert_eq!(ws_text(&mut ws).await, Some(expected));
    assert_eq!(ws_text(&mut ws).await, None);
    s.assert_alive();
}

#[tokio::test]
async fn allowed_origins_refusal() {
    let s = Server::start(json!({"allowed_origins": ["http://good.example"]})).await;
    let info = get(&s, "/info", &[("Origin", "http://evil.example")]).await;
    assert_eq!(info.status, 200, "the request is still served");
    assert_eq!(info.header("access-control-allow-origin"), None);
    assert_eq!(info.header("access-control-allow-credentials"), None);
    let info = get(&s, "/info", &[("Origin", "http://good.example")]).await;
    assert_eq!(
        info.header("access-control-allow-origin"),
        Some("http://good.example")
    );
    let r = request(
        reqwest::Method::POST,
        &url(&s, "/000/o1/xhr"),
        &[("Origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "o\n"));
    assert_eq!(r.header("access-control-allow-origin"), None);

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let u = format!("ws://127.0.0.1:{}{PREFIX}/000/o2/websocket", s.port);
    let mut req = u.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "the upgrade is refused"
    );
    let mut req = u.into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "http://good.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("allowed");
    assert_eq!(ws_text(&mut ws).await.as_deref(), Some("o"));
}

#[tokio::test]
async fn jsessionid_and_disconnect_delay() {
    let s = Server::start(json!({"sockjs_jsessionid": true, "sockjs_disconnect_delay": 1})).await;
    let info: Value = serde_json::from_str(&get(&s, "/info", &[]).await.body).unwrap();
    assert_eq!(info["cookie_needed"], true);
    let r = post_to(&s, "/000/js1/xhr", "").await;
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=dummy; Path=/"));
    let r = request(
        reqwest::Method::POST,
        &url(&s, "/000/js1/xhr_send"),
        &[("Cookie", "a=b; JSESSIONID=abc123")],
        &serde_json::to_string(&[v1_connect("hank")]).unwrap(),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("set-cookie"), Some("JSESSIONID=abc123; Path=/"));
    let frame = poll_data(&s, "js1").await;
    assert_eq!(messages(&frame)[0][0]["id"], 1);
    // No receiver for longer than the disconnect delay: the session is gone, the id opens a
    // new one.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(poll(&s, "js1").await, "o");
    let r = post_to(&s, "/000/nobody/xhr_send", "[]").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn shutdown_closes_with_3001() {
    let s = Server::start(json!({})).await;
    let mut resp = open_stream(&s, reqwest::Method::POST, "/000/sd1/xhr_streaming").await;
    let mut buf = String::new();
    read_until(&mut resp, &mut buf, |b| b.ends_with("o\n")).await;
    xhr_send(&s, "sd1", &[v1_connect("ivan")]).await;
    read_until(&mut resp, &mut buf, |b| b.ends_with("\"]\n")).await;
    buf.clear();
    s.terminate();
    read_until(&mut resp, &mut buf, |b| b.ends_with("]\n")).await;
    let expected = format!("c[3001,{}]\n", serde_json::to_string(V1_SHUTDOWN).unwrap());
    assert_eq!(buf, expected);
}

// ---------------------------------------------------------------------------------------------
// Side by side with the reference server (skipped when its binary is not built)
// ---------------------------------------------------------------------------------------------

/// The reference server (`../shared/peers`, built into `target/peers/bin/centrifuge-ref` or
/// `REF_BIN`), killed on drop.
struct RefServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_ref() -> Option<RefServer> {
    let bin = std::env::var("REF_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/peers/bin/centrifuge-ref")
        });
    if !bin.exists() {
        // scripts/test.sh builds it and sets ROTOR_REQUIRE_REFERENCE: there a missing binary fails.
        assert!(
            std::env::var_os("ROTOR_REQUIRE_REFERENCE").is_none(),
            "ROTOR_REQUIRE_REFERENCE is set but there is no reference server at {}",
            bin.display()
        );
        eprintln!("skipped: no reference server at {}", bin.display());
        return None;
    }
    let port = free_port();
    let child = std::process::Command::new(bin)
        .args([
            "-addr",
            &format!("127.0.0.1:{port}"),
            "-secret",
            SECRET,
            "-api_key",
            API_KEY,
        ])
        .args([
            "-api_disconnect",
            "-presence=false",
            "-join_leave=false",
            "-recover=false",
        ])
        .args(["-log_level", "none", "-sockjs_heartbeat_delay", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the reference server");
    let r = RefServer { child, port };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "reference server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some(r)
}

/// A frame with what legitimately differs between servers removed (client ids, versions,
/// publication offsets).
fn normalized(frame: &str) -> Value {
    if !frame.starts_with('a') {
        return json!(frame);
    }
    let mut msgs = messages(frame);
    for m in msgs.iter_mut().flatten() {
        if let Some(r) = m.get_mut("result").and_then(Value::as_object_mut) {
            r.remove("client");
            r.remove("version");
            // The reference numbers publications even without history; not a SockJS matter.
            if let Some(d) = r.get_mut("data").and_then(Value::as_object_mut) {
                d.remove("offset");
            }
        }
    }
    json!(msgs)
}

/// One scenario on a server at `base` (`http://host:port`): every answer as the client sees it.
async fn transcript(base: &str) -> Vec<Value> {
    let u = |p: &str| format!("{base}{PREFIX}{p}");
    let go = |m: reqwest::Method, p: String, body: &'static str| async move {
        request(m, &p, &[("Origin", "http://o.test")], body).await
    };
    let mut out = Vec::new();
    let info = go(reqwest::Method::GET, u("/info"), "").await;
    let mut v: Value = serde_json::from_str(&info.body).unwrap();
    v["entropy"] = json!(v["entropy"].is_i64());
    out.push(
        json!({"info": v, "acao": info.header("access-control-allow-origin"),
        "acac": info.header("access-control-allow-credentials")}),
    );
    let poll = |id: &'static str| {
        let p = u(&format!("/000/{id}/xhr"));
        async move {
            let r = request(reqwest::Method::POST, &p, &[], "").await;
            (r.status, r.body.trim_end_matches('\n').to_string())
        }
    };
    out.push(json!(poll("cmp").await));
    let first = tokio::spawn(poll("cmp"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    out.push(json!(poll("cmp").await));
    let batch = format!("{}\n{}", v1_connect("cmp-user"), v1_subscribe(2, "cmpch"));
    let send_url = u("/000/cmp/xhr_send");
    let body = serde_json::to_string(&[batch]).unwrap();
    let r = request(reqwest::Method::POST, &send_url, &[], &body).await;
    out.push(json!(r.status));
    let (status, frame) = first.await.unwrap();
    // The two replies may come in one frame or, when the server writes each reply as its
    // command finishes (the reference does), split over this poll and the next: how they are
    // batched is timing, not protocol. What is compared is the replies in order.
    let replies = |frame: &str| -> Vec<Value> {
        if frame == "h" {
            return Vec::new();
        }
        match normalized(frame) {
            Value::Array(msgs) => msgs
                .into_iter()
                .flat_map(|m| m.as_array().cloned().unwrap_or_default())
                .collect(),
            other => panic!("expected replies, got {other}"),
        }
    };
    let mut got = replies(&frame);
    for _ in 0..3 {
        if got.len() >= 2 {
            break;
        }
        let (more_status, more) = poll("cmp").await;
        assert_eq!(more_status, 200, "{more}");
        got.extend(replies(&more));
    }
    out.push(json!([status, got]));
    let api = format!("{base}/api");
    let auth = format!("apikey {API_KEY}");
    let publish = json!({"method": "publish", "params": {"channel": "cmpch",
        "data": {"t": "100% <&> \u{2028}"}}})
    .to_string();
    post(&api, &[("Authorization", auth.as_str())], publish).await;
    let (status, frame) = poll("cmp").await;
    out.push(json!([status, normalized(&frame)]));
    out.push(json!(poll("cmp").await)); // a heartbeat ends the idle poll
                                        // (Valid JSON that is not an array of strings differs: sockjs-go ignores it with 204,
                                        // Rotor answers 400 `Broken JSON encoding.`.)
    for body in ["", "[\"x"] {
        let r = request(reqwest::Method::POST, &send_url, &[], body).await;
        out.push(json!([r.status, r.body.trim_end()]));
    }
    let r = request(
        reqwest::Method::POST,
        &u("/000/none/xhr_send"),
        &[],
        "[\"x\"]",
    )
    .await;
    out.push(json!(r.status));
    let disconnect = json!({"method": "disconnect", "params": {"user": "cmp-user"}}).to_string();
    post(&api, &[("Authorization", auth.as_str())], disconnect).await;
    out.push(json!(poll("cmp").await));
    let mut es = reqwest::Client::new()
        .get(u("/000/cmp-es/eventsource"))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    read_until(&mut es, &mut buf, |b| b.ends_with("o\r\n\r\n")).await;
    out.push(json!(buf));
    let r = request(reqwest::Method::GET, &u("/000/cmp-j/jsonp?c=cb"), &[], "").await;
    out.push(json!([r.status, r.body]));
    let r = request(reqwest::Method::GET, &u("/000/cmp-j/jsonp"), &[], "").await;
    out.push(json!(r.status));
    let r = request(reqwest::Method::GET, &u("/000/cmp-j/xhr"), &[], "").await;
    out.push(json!([
        r.status,
        r.header("allow").map(|a| {
            let mut m: Vec<&str> = a.split(", ").collect();
            m.sort();
            m.join(",")
        })
    ]));
    out
}

#[tokio::test]
async fn frames_match_the_reference_server() {
    let Some(reference) = start_ref().await else {
        return;
    };
    let s = Server::start(json!({"sockjs_heartbeat_delay": 1})).await;
    let ours = transcript(&format!("http://127.0.0.1:{}", s.port)).await;
    let theirs = transcript(&format!("http://127.0.0.1:{}", reference.port)).await;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "step {i} differs (rotor left, reference right)");
    }
    assert_eq!(ours.len(), theirs.len());
}

#[tokio::test]
async fn bounded_buffer_and_interrupted_receiver() {
    let s = Server::start(json!({"client_queue_max_size": 20000})).await;
    polling_client(&s, "slowpoke", "jack", "flood").await;
    // Nobody polls: what the session holds is bounded, past it the client is closed as slow.
    for i in 0..5 {
        api_publish(&s, "flood", json!({"i": i, "pad": "x".repeat(6000)})).await;
    }
    let slow = format!("c[3008,{}]", serde_json::to_string(V1_SLOW).unwrap());
    let mut frames = Vec::new();
    for _ in 0..3 {
        let f = poll(&s, "slowpoke").await;
        let done = f.starts_with('c');
        frames.push(f);
        if done {
            break;
        }
    }
    assert_eq!(frames.last(), Some(&slow), "{frames:?}");

    // A streaming receiver that goes away mid-answer closes its session at once.
    let resp = open_stream(&s, reqwest::Method::POST, "/000/gone/xhr_streaming").await;
    drop(resp);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        poll(&s, "gone").await,
        r#"c[1002,"Connection interrupted"]"#
    );
    s.assert_alive();
}
