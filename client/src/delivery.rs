//! Delivery results, shared by all records of a batch.
//!
//! A batch is acknowledged (or fails) as a whole, so its records share one [`Outcome`]:
//! one allocation per batch instead of a channel per record. The batch holds the
//! [`Completion`]; each record's [`DeliveryFuture`] holds the outcome and its index in the
//! batch, from which its offset follows.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition it was written to.
    pub partition: u32,
    /// -1 when the broker was not asked to acknowledge (acks none), or when an idempotent
    /// batch's own answer was lost and a later batch's acknowledgement proves it written
    /// (see the producer's module docs).
    pub offset: i64,
    /// The record's timestamp: its own (create time), or the broker's append time for a
    /// topic with `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
}

struct Outcome {
    /// The batch's base offset and log-append time (-1 when the topic uses create time).
    result: OnceLock<Result<(i64, i64)>>,
    /// Futures waiting for `result`; emptied when it is set.
    waiters: Mutex<Vec<Waker>>,
}

/// The batch's side of its records' futures. Dropping it without [`Completion::complete`]
/// (the producer went away) fails them with [`Error::Closed`].
pub(crate) struct Completion(Arc<Outcome>);

impl Completion {
    pub(crate) fn new() -> Completion {
        Completion(Arc::new(Outcome {
            result: OnceLock::new(),
            waiters: Mutex::new(Vec::new()),
        }))
    }

    /// The future of the batch's `index`-th record.
    pub(crate) fn future(&self, index: u32, partition: u32, timestamp: i64) -> DeliveryFuture {
        DeliveryFuture {
            outcome: self.0.clone(),
            index,
            partition,
            timestamp,
            slot: None,
        }
    }

    pub(crate) fn complete(self, result: Result<(i64, i64)>) {
        self.finish(result);
    }

    fn finish(&self, result: Result<(i64, i64)>) {
        if self.0.result.set(result).is_ok() {
            // Set before the waiters are taken, and a future checks the result under the
            // same lock before registering: no wake-up is lost.
            let waiters = std::mem::take(&mut *crate::sync::lock(&self.0.waiters));
            for w in waiters {
                w.wake();
            }
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(Err(Error::Closed));
    }
}

/// Resolves when the broker acknowledges the record (or it finally fails).
pub struct DeliveryFuture {
    outcome: Arc<Outcome>,
    index: u32,
    partition: u32,
    timestamp: i64,
    /// This future's place among the waiters and the waker it left there, so polling
    /// again replaces its waker instead of adding one (or does nothing if it is the same).
    slot: Option<(usize, Waker)>,
}

impl DeliveryFuture {
    fn resolve(&self, result: &Result<(i64, i64)>) -> Result<RecordMetadata> {
        let &(base_offset, log_append_time) = result.as_ref().map_err(Clone::clone)?;
        Ok(RecordMetadata {
            partition: self.partition,
            offset: if base_offset < 0 {
                -1
            } else {
                base_offset + i64::from(self.index)
            },
            timestamp: if log_append_time >= 0 {
                log_append_time
            } else {
                self.timestamp
            },
        })
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(r) = this.outcome.result.get() {
            return Poll::Ready(this.resolve(r));
        }
        // Polled again by the same task (a sender checking its acknowledgements): nothing
        // to register, no lock.
        if let Some((_, w)) = &this.slot {
            if w.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        let mut waiters = crate::sync::lock(&this.outcome.waiters);
        if let Some(r) = this.outcome.result.get() {
            drop(waiters);
            return Poll::Ready(this.resolve(r));
        }
        let waker = cx.waker().clone();
        match &mut this.slot {
            Some((i, w)) => {
                waiters[*i] = waker.clone();
                *w = waker;
            }
            None => {
                this.slot = Some((waiters.len(), waker.clone()));
                waiters.push(waker);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn records_of_a_batch_get_consecutive_offsets_and_wake() {
        let c = Completion::new();
        let futures: Vec<DeliveryFuture> = (0..3).map(|i| c.future(i, 2, 100 + i64::from(i))).collect();
        let mut waiting: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        // Polling many times with a no-op waker registers one waiter, not one per poll.
        let mut f = c.future(3, 2, 103);
        for _ in 0..100 {
            assert!((&mut f).now_or_never().is_none());
        }
        assert_eq!(c.0.waiters.lock().unwrap().len(), 1);
        tokio::task::yield_now().await;
        c.complete(Ok((40, -1)));
        for (i, h) in waiting.drain(..).enumerate() {
            let m = h.await.unwrap().unwrap();
            assert_eq!((m.partition, m.offset, m.timestamp), (2, 40 + i as i64, 100 + i as i64));
        }
        assert_eq!(f.await.unwrap().offset, 43);
    }

    #[tokio::test]
    async fn log_append_time_and_errors_reach_every_record() {
        let c = Completion::new();
        let f = c.future(1, 0, 5);
        c.complete(Ok((7, 9_999)));
        assert_eq!(
            f.await.unwrap(),
            RecordMetadata {
                partition: 0,
                offset: 8,
                timestamp: 9_999
            }
        );

        let c = Completion::new();
        let (a, b) = (c.future(0, 0, 1), c.future(1, 0, 1));
        c.complete(Err(Error::BufferFull(std::time::Duration::from_secs(1))));
        assert!(matches!(a.await, Err(Error::BufferFull(_))));
        assert!(matches!(b.await, Err(Error::BufferFull(_))));
    }

    #[tokio::test]
    async fn a_dropped_batch_fails_its_records_with_closed() {
        let c = Completion::new();
        let f = tokio::spawn(c.future(0, 0, 1));
        tokio::task::yield_now().await;
        drop(c);
        assert!(matches!(f.await.unwrap(), Err(Error::Closed)));
    }
}
