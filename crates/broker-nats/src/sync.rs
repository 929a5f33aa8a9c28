//! [`Syncer`]: proof that NATS has processed everything this connection sent so far.
//!
//! async-nats's `publish` only queues the message, and its `flush` only confirms that the
//! bytes left the socket, so neither proves a publication reached the server, nor that a SUB
//! is active there. A NATS server handles one connection's commands in order, so a message
//! this node publishes on its own private subject and gets back proves that every PUB and SUB
//! sent before it was handled. Concurrent callers share one round trip: each waits for the
//! next token sent after it asked (a coalesced flush), so the cost is one round trip per
//! batch, not per publish.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use parking_lot::Mutex;
use rotor_core::engine::EngineError;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

type Waiter = oneshot::Sender<Result<(), EngineError>>;

/// Shares round trips among concurrent callers (see the module docs).
pub struct Syncer {
    waiters: Mutex<Vec<Waiter>>,
    notify: Notify,
    timeout: Duration,
}

impl Syncer {
    /// Starts the task that owns `sub` (already subscribed to `subject`); it runs until
    /// `cancel`.
    pub fn start(
        client: Client,
        subject: String,
        sub: Subscriber,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> Arc<Syncer> {
        let syncer = Arc::new(Syncer {
            waiters: Mutex::new(Vec::new()),
            notify: Notify::new(),
            timeout,
        });
        let s = syncer.clone();
        tokio::spawn(async move {
            let mut sub = sub;
            let mut token: u64 = 0;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = s.notify.notified() => {}
                }
                let batch = std::mem::take(&mut *s.waiters.lock());
                if batch.is_empty() {
                    continue;
                }
                token += 1;
                let result = round_trip(&client, &subject, &mut sub, token, s.timeout).await;
                for w in batch {
                    let _ = w.send(result.clone());
                }
            }
        });
        syncer
    }

    /// Returns once NATS handled everything sent before this call, or fails after the timeout.
    pub async fn sync(&self) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().push(tx);
        self.notify.notify_one();
        // A batch already in flight when we asked takes up to one timeout, ours another.
        match tokio::time::timeout(self.timeout * 2 + Duration::from_millis(50), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EngineError::Unavailable("NATS broker stopped".into())),
            Err(_) => Err(timed_out(self.timeout)),
        }
    }
}

fn timed_out(t: Duration) -> EngineError {
    EngineError::Unavailable(format!("NATS did not confirm within {t:?}"))
}

async fn round_trip(
    client: &Client,
    subject: &str,
    sub: &mut Subscriber,
    token: u64,
    timeout: Duration,
) -> Result<(), EngineError> {
    let want = token.to_be_bytes();
    let work = async {
        client
            .publish(subject.to_string(), bytes::Bytes::copy_from_slice(&want))
            .await
            .map_err(|e| EngineError::Unavailable(format!("NATS publish: {e}")))?;
        while let Some(msg) = sub.next().await {
            // Older tokens are echoes of round trips that timed out.
            if msg.payload.as_ref() == want {
                return Ok(());
            }
        }
        Err(EngineError::Unavailable("NATS connection closed".into()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout)))
}
