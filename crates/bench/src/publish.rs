//! Publishing through the server HTTP API (`POST /api`, `Authorization: apikey KEY`) over one
//! keep-alive HTTP/1.1 connection per publisher (hyper's connection-level client: no pool, no
//! per-request connection logic).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use memchr::memmem;

use crate::ws::{dial, Target};

pub struct ApiClient {
    target: Target,
    auth: HeaderValue,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl ApiClient {
    pub fn new(target: Target, api_key: &str) -> Result<Self, String> {
        Ok(Self {
            auth: HeaderValue::from_str(&format!("apikey {api_key}"))
                .map_err(|e| format!("api key: {e}"))?,
            host: HeaderValue::from_str(&target.host).map_err(|e| format!("host: {e}"))?,
            target,
            sender: None,
        })
    }

    /// Opens the connection now (otherwise the first request does).
    pub async fn connect(&mut self) -> Result<(), String> {
        let tcp = dial(self.target.addr, None)
            .await
            .map_err(|e| format!("api dial: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("api handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Posts one body (one or more newline-separated commands); fails on a non-200 status or
    /// an `"error"` in any reply.
    pub async fn post(&mut self, body: Bytes) -> Result<(), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected above");
        if let Err(e) = sender.ready().await {
            self.sender = None;
            return Err(format!("api connection: {e}"));
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.target.path.as_str())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| format!("api request: {e}"))?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(format!("api send: {e}"));
            }
        };
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("api body: {e}"))?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        if memmem::find(&body, b"\"error\"").is_some() {
            return Err(format!(
                "API error: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
            ));
        }
        Ok(())
    }
}
