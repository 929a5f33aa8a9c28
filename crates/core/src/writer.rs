//! Per-connection outbound queue: bounded by bytes, never by waiting.
//!
//! Producers (command replies, the hub's fan-out, timers) push already-encoded messages and never
//! block; when a connection's queued bytes would pass its budget, the queue is dropped and the
//! connection is closed as slow, so one stuck reader cannot hold back anyone else. The
//! transport's writer task takes everything queued at once and writes it as one frame, which is
//! where replies and pushes get merged.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The close frame a connection ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

/// What the writer task should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterStep {
    /// Write these messages (merged into as few frames as the transport allows).
    Data,
    /// Send a transport-level ping (v1 WebSocket control ping).
    Ping,
    /// Write what was drained (if anything), then close with this frame (`None`: drop the
    /// transport without a close frame).
    Close(Option<CloseFrame>),
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Bytes>,
    bytes: usize,
    ping: bool,
    close: Option<Option<CloseFrame>>,
}

/// A connection's outbound queue.
pub struct WriterQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    max_bytes: usize,
}

/// The queue passed its byte budget; the connection is being closed as slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl WriterQueue {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Queues one encoded message. On overflow everything queued is dropped and `slow` becomes
    /// the close frame; messages after a close are ignored.
    pub fn push(&self, msg: Bytes, slow: impl FnOnce() -> CloseFrame) -> Result<(), Overflow> {
        let mut g = self.inner.lock();
        if g.close.is_some() {
            return Ok(());
        }
        if g.bytes + msg.len() > self.max_bytes {
            g.items.clear();
            g.bytes = 0;
            g.close = Some(Some(slow()));
            drop(g);
            self.notify.notify_one();
            return Err(Overflow);
        }
        let was_empty = g.items.is_empty();
        g.bytes += msg.len();
        g.items.push_back(msg);
        drop(g);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Asks the writer for a transport ping.
    pub fn ping(&self) {
        self.inner.lock().ping = true;
        self.notify.notify_one();
    }

    /// Closes after what is already queued has been written. The first close wins (returns
    /// true for it).
    pub fn close(&self, frame: Option<CloseFrame>) -> bool {
        let mut g = self.inner.lock();
        let first = g.close.is_none();
        if first {
            g.close = Some(frame);
        }
        drop(g);
        self.notify.notify_one();
        first
    }

    /// Whether a close has been requested.
    pub fn is_closing(&self) -> bool {
        self.inner.lock().close.is_some()
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Moves whatever is queued into `out` without waiting (after a yield, more may have
    /// arrived: merging it saves a write).
    pub fn take_more(&self, out: &mut Vec<Bytes>) {
        let mut g = self.inner.lock();
        if g.close.is_none() && !g.items.is_empty() {
            out.extend(g.items.drain(..));
            g.bytes = 0;
        }
    }

    /// Waits for work and moves all queued messages into `out`.
    pub async fn next(&self, out: &mut Vec<Bytes>) -> WriterStep {
        loop {
            let notified = self.notify.notified();
            {
                let mut g = self.inner.lock();
                if !g.items.is_empty() {
                    out.extend(g.items.drain(..));
                    g.bytes = 0;
                }
                if let Some(close) = g.close.take() {
                    // Keep the close recorded so later producers see it.
                    g.close = Some(close.clone());
                    return WriterStep::Close(close);
                }
                if !out.is_empty() {
                    return WriterStep::Data;
                }
                if std::mem::take(&mut g.ping) {
                    return WriterStep::Ping;
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow() -> CloseFrame {
        CloseFrame {
            code: 3008,
            reason: "slow".into(),
        }
    }

    #[tokio::test]
    async fn drains_everything_at_once() {
        let q = WriterQueue::new(100);
        q.push(Bytes::from_static(b"a\n"), slow).unwrap();
        q.push(Bytes::from_static(b"b\n"), slow).unwrap();
        let mut out = Vec::new();
        assert_eq!(q.next(&mut out).await, WriterStep::Data);
        assert_eq!(out.len(), 2);
        assert_eq!(q.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_drops_queue_and_closes_slow() {
        let q = WriterQueue::new(4);
        q.push(Bytes::from_static(b"abc"), slow).unwrap();
        assert_eq!(q.push(Bytes::from_static(b"de"), slow), Err(Overflow));
        let mut out = Vec::new();
        assert_eq!(q.next(&mut out).await, WriterStep::Close(Some(slow())));
        assert!(out.is_empty());
        // Later pushes are ignored.
        q.push(Bytes::from_static(b"x"), slow).unwrap();
        assert_eq!(q.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn close_after_data_keeps_data() {
        let q = WriterQueue::new(100);
        q.push(Bytes::from_static(b"a\n"), slow).unwrap();
        q.close(None);
        let mut out = Vec::new();
        assert_eq!(q.next(&mut out).await, WriterStep::Close(None));
        assert_eq!(out.len(), 1);
    }
}
