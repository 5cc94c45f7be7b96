//! The per-connection apply order: requests run as concurrent tasks, yet take effect in
//! the order they arrived on their connection, as Kafka serves a connection's requests
//! one at a time. Which requests join the chain, and how long each holds its turn, is
//! the protocol's choice (`Protocol::keeps_order`); the service layer takes the turn
//! around the change it makes.

use tokio::sync::oneshot;

/// Keeps a connection's produce requests, offset commits and group requests taking
/// effect in the order they arrived, although each runs as its own task: a request
/// appends (or commits) only after its predecessor in the chain has (or failed) —
/// `after` resolves when that one signals or drops its `done`. Kafka handles a
/// connection's requests one at a time, and clients rely on it: they pipeline produce
/// requests per partition, and of pipelined commits the last one sent must win.
pub(crate) struct ApplyOrder {
    after: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl ApplyOrder {
    /// The turn after the one that signals `after` (`None`: the first).
    pub fn new(after: Option<oneshot::Receiver<()>>, done: oneshot::Sender<()>) -> ApplyOrder {
        ApplyOrder {
            after,
            done: Some(done),
        }
    }

    /// Waits for the predecessor's appends or commit.
    pub async fn wait_turn(&mut self) {
        if let Some(prev) = self.after.take() {
            let _ = prev.await;
        }
    }

    /// This request's appends or commit are done (not necessarily durable): the next may
    /// go. Dropping the turn does the same, so a request that fails or is cancelled never
    /// holds up the connection.
    pub fn applied(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

impl Drop for ApplyOrder {
    /// A turn given up before it was waited for (the request failed early): its
    /// successor must still come after its predecessor, so the signal is passed on once
    /// the predecessor's arrives.
    fn drop(&mut self) {
        if let (Some(after), Some(done)) = (self.after.take(), self.done.take()) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = after.await;
                    let _ = done.send(());
                });
            }
        }
    }
}

/// Waits for the predecessor in the chain and returns the turn, which the caller holds
/// while it reads (dropping it lets the successor go): for a request that only reads
/// what earlier ones changed (an OffsetFetch after commits).
pub(crate) async fn after_predecessor(order: Option<ApplyOrder>) -> Option<ApplyOrder> {
    let mut order = order;
    if let Some(o) = order.as_mut() {
        o.wait_turn().await;
    }
    order
}

/// Runs `apply` (a call that takes effect at once, such as a coordinator's) in the
/// connection's request order: after its predecessor in the chain, letting its successor
/// go right after (whatever `apply` returns to wait on is not part of the turn).
pub(crate) async fn in_turn<T>(order: Option<ApplyOrder>, apply: impl FnOnce() -> T) -> T {
    let order = after_predecessor(order).await;
    let out = apply();
    if let Some(o) = order {
        o.applied();
    }
    out
}
