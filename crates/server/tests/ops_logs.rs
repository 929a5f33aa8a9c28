//! `log_format: "json"` (or `ROTOR_LOG_FORMAT=json`): every line on stderr is one JSON object
//! with a timestamp, a level and a message.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn run_and_collect_stderr(config: &Value, env: &[(&str, &str)]) -> String {
    let dir =
        std::env::temp_dir().join(format!("rotor-logs-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
    cmd.arg("-c")
        .arg(&path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let port = config["port"].as_u64().unwrap() as u16;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "rotor did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Something to log at debug level: a client that sends garbage.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = Ws::open(&format!("ws://127.0.0.1:{port}/connection/websocket")).await;
        ws.send_text("not json").await;
        ws.expect_close().await;
    });
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}; stderr:\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
    err
}

fn assert_json_lines(stderr: &str) -> Vec<Value> {
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"))
        })
        .collect();
    assert!(lines.len() >= 3, "too few log lines:\n{stderr}");
    for v in &lines {
        assert!(v.is_object(), "{v}");
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        assert!(v["message"].is_string(), "{v}");
    }
    lines
}

#[test]
fn json_logs_are_json_lines() {
    let port = free_port();
    let config = json!({
        "address": "127.0.0.1", "port": port, "token_hmac_secret_key": SECRET,
        "log_level": "debug", "log_format": "json", "unknown_key_for_a_warning": 1,
    });
    let lines = assert_json_lines(&run_and_collect_stderr(&config, &[]));
    assert!(
        lines.iter().any(|v| v["level"] == "WARN"
            && v["message"]
                .as_str()
                .unwrap()
                .contains("unknown_key_for_a_warning")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|v| v["message"] == "shutting down"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|v| v["level"] == "DEBUG"), "{lines:?}");
}

#[test]
fn json_logs_from_the_environment() {
    let port = free_port();
    let config = json!({"address": "127.0.0.1", "port": port, "token_hmac_secret_key": SECRET,
        "log_level": "debug"});
    assert_json_lines(&run_and_collect_stderr(
        &config,
        &[("ROTOR_LOG_FORMAT", "json")],
    ));
}

/// Text logs to a pipe (a file, a collector) carry no colour codes; the lines still name the
/// level and the message.
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let port = free_port();
    let config = json!({"address": "127.0.0.1", "port": port, "token_hmac_secret_key": SECRET,
        "log_level": "debug", "unknown_key_for_a_warning": 1});
    let err = run_and_collect_stderr(&config, &[]);
    assert!(!err.contains('\u{1b}'), "escape codes in:\n{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(" WARN ") && l.contains("unknown_key_for_a_warning")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.contains("DEBUG")), "{err}");
}
