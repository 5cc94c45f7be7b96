//! A log's part in replication: its role (leader or follower, and the leader epoch), the
//! high watermark, and the appends that wait for it.
//!
//! - **Leader**: appends client batches, stamping its epoch into each (the first batch of
//!   a new epoch records the epoch in the history first). While it is the only in-sync
//!   replica its high watermark *is* its end offset; once the ISR holds others the
//!   replication layer moves the high watermark (the lowest log end among the ISR) and
//!   acks=all appends wait for it to pass them.
//! - **Follower**: refuses client appends; takes the leader's batches as they are
//!   (`append_as_follower`: offsets, timestamps and epochs kept) and the leader's high
//!   watermark, capped by its own end.
//!
//! A log opens as the leader in epoch 0 (a broker alone); the high watermark survives a
//! restart through the `high-watermark` checkpoint the replication layer writes.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use super::*;

pub(crate) const HW_FILE: &str = "high-watermark";

/// A log's role, as the replication layer set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader { epoch: i32 },
    Follower { epoch: i32 },
}

pub(super) struct RoleState {
    leading: AtomicBool,
    epoch: AtomicI32,
    /// The high watermark while `tracked`; otherwise it follows the end offset.
    hw: AtomicU64,
    tracked: AtomicBool,
    isr_size: AtomicU32,
    /// The last high watermark written to the checkpoint.
    hw_written: AtomicU64,
    /// acks=all appends waiting for the high watermark, by end offset.
    waiters: Mutex<Vec<Waiter>>,
}

impl RoleState {
    pub(super) fn open(dir: &Path, end: u64) -> RoleState {
        let hw = recovery::read_offset_file(dir, HW_FILE).unwrap_or(0).min(end);
        RoleState {
            leading: AtomicBool::new(true),
            epoch: AtomicI32::new(INITIAL_LEADER_EPOCH),
            hw: AtomicU64::new(hw),
            tracked: AtomicBool::new(false),
            isr_size: AtomicU32::new(1),
            hw_written: AtomicU64::new(hw),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// The epoch to stamp into a client append; refused on a follower.
    pub(super) fn leader_epoch_for_append(&self, dir: &Path) -> Result<i32> {
        if !self.leading.load(Ordering::Acquire) {
            return Err(Error::NotLeader(format!(
                "{} is a follower's copy: only the partition's leader appends",
                dir.display()
            )));
        }
        Ok(self.epoch.load(Ordering::Acquire))
    }

    pub(super) fn check_min_isr(&self, cfg: &LogConfig) -> Result<()> {
        let isr = self.isr_size.load(Ordering::Acquire);
        if self.leading.load(Ordering::Acquire) && isr < cfg.min_insync_replicas {
            return Err(Error::NotEnoughReplicas {
                isr: isr as usize,
                min: cfg.min_insync_replicas as usize,
            });
        }
        Ok(())
    }
}

impl PartitionLog {
    pub fn role(&self) -> Role {
        let epoch = self.role.epoch.load(Ordering::Acquire);
        if self.role.leading.load(Ordering::Acquire) {
            Role::Leader { epoch }
        } else {
            Role::Follower { epoch }
        }
    }

    /// The offset below which every record is held by every in-sync replica: what
    /// consumers may read.
    pub fn high_watermark(&self) -> u64 {
        let end = self.end_offset();
        if self.role.tracked.load(Ordering::Acquire) {
            self.role.hw.load(Ordering::Acquire).min(end)
        } else {
            end
        }
    }

    /// The newest leader epoch the log holds batches of (-1: none).
    pub fn latest_epoch(&self) -> i32 {
        lock(&self.writer).epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch on this log: the largest epoch at or below `epoch` it holds
    /// and where that epoch ends here (see `EpochHistory::end_offset_for`).
    pub fn epoch_end_offset(&self, epoch: i32) -> Option<(i32, u64)> {
        let w = lock(&self.writer);
        w.epochs.end_offset_for(epoch, self.end_offset())
    }

    /// Makes this log the partition's leader in `epoch` with `isr_size` in-sync
    /// replicas. Its high watermark stays where it was (it moves as followers fetch).
    pub fn become_leader(&self, epoch: i32, isr_size: usize) {
        let _w = lock(&self.writer);
        self.role.epoch.store(epoch, Ordering::Release);
        self.role.leading.store(true, Ordering::Release);
        self.set_isr_size(isr_size, false);
    }

    /// Makes this log a follower in `epoch`: client appends are refused from now on,
    /// and acks=all appends still waiting fail with NOT_LEADER_OR_FOLLOWER (they may or
    /// may not be kept by the new leader; an idempotent retry finds out).
    pub fn become_follower(&self, epoch: i32) {
        let _w = lock(&self.writer);
        let mut waiters = lock(&self.role.waiters);
        let hw = self.high_watermark();
        self.role.hw.store(hw, Ordering::Release);
        self.role.tracked.store(true, Ordering::Release);
        self.role.leading.store(false, Ordering::Release);
        self.role.epoch.store(epoch, Ordering::Release);
        for w in waiters.drain(..) {
            let _ = w.tx.send(Err(Error::NotLeader(format!(
                "{} stopped leading before the append was replicated",
                self.dir.display()
            ))));
        }
    }

    /// The leader's ISR has `n` members (what `min.insync.replicas` counts). Alone, its
    /// high watermark follows its end offset (and waiting appends complete) — unless
    /// `counted` says followers must count anyway (an ISR expansion being decided or
    /// in flight: Kafka's maximal ISR); otherwise it is tracked from here, starting at
    /// the end offset.
    pub fn set_isr_size(&self, n: usize, counted: bool) {
        let mut waiters = lock(&self.role.waiters);
        self.role.isr_size.store(n as u32, Ordering::Release);
        if !self.role.leading.load(Ordering::Acquire) {
            return;
        }
        if n <= 1 && !counted {
            if self.role.tracked.swap(false, Ordering::AcqRel) {
                tracing::info!(
                    log = %self.dir.display(), hw = self.role.hw.load(Ordering::Acquire), end = self.end_offset(),
                    "alone in the ISR: acknowledging at the log end"
                );
            }
            self.complete_replicated(&mut waiters, u64::MAX);
        } else if !self.role.tracked.load(Ordering::Acquire) {
            self.role.hw.store(self.end_offset(), Ordering::Release);
            self.role.tracked.store(true, Ordering::Release);
        }
    }

    /// The leader's high watermark moves to `hw` (never back, never past the end).
    pub fn advance_high_watermark(&self, hw: u64) {
        let mut waiters = lock(&self.role.waiters);
        if !self.role.tracked.load(Ordering::Acquire) {
            return;
        }
        let hw = hw.min(self.end_offset());
        if hw <= self.role.hw.load(Ordering::Acquire) {
            return;
        }
        self.role.hw.store(hw, Ordering::Release);
        self.complete_replicated(&mut waiters, hw);
        drop(waiters);
        self.appended.notify_waiters();
    }

    /// A follower takes its leader's high watermark, capped by its own end.
    pub fn set_follower_high_watermark(&self, hw: u64) {
        let hw = hw.min(self.end_offset());
        if self.role.hw.swap(hw, Ordering::AcqRel) != hw {
            self.appended.notify_waiters();
        }
    }

    /// Writes the high-watermark checkpoint if it moved since the last one.
    pub fn checkpoint_high_watermark(&self) -> Result<()> {
        let hw = self.high_watermark();
        if self.role.hw_written.swap(hw, Ordering::AcqRel) != hw {
            recovery::write_offset_file(&self.dir, HW_FILE, hw)?;
        }
        Ok(())
    }

    /// A receiver that resolves once the high watermark reaches `end`; `None` if it has.
    pub(super) fn wait_replicated(&self, end: u64) -> Option<oneshot::Receiver<Result<()>>> {
        if !self.role.tracked.load(Ordering::Acquire) {
            return None;
        }
        let mut waiters = lock(&self.role.waiters);
        if !self.role.tracked.load(Ordering::Acquire) || self.role.hw.load(Ordering::Acquire) >= end {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        if !self.role.leading.load(Ordering::Acquire) {
            let _ = tx.send(Err(Error::NotLeader(format!(
                "{} is not the leader",
                self.dir.display()
            ))));
        } else {
            waiters.push(Waiter { end_offset: end, tx });
        }
        Some(rx)
    }

    /// Answers the waiters at or below `hw`: acknowledged, unless the ISR fell below
    /// `min.insync.replicas` meanwhile (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    fn complete_replicated(&self, waiters: &mut Vec<Waiter>, hw: u64) {
        if waiters.is_empty() {
            return;
        }
        let isr = self.role.isr_size.load(Ordering::Acquire);
        let min = self.config.load().min_insync_replicas;
        let (done, kept): (Vec<Waiter>, Vec<Waiter>) = waiters.drain(..).partition(|w| w.end_offset <= hw);
        *waiters = kept;
        for w in done {
            let r = if isr < min {
                Err(Error::NotEnoughReplicasAfterAppend {
                    isr: isr as usize,
                    min: min as usize,
                })
            } else {
                Ok(())
            };
            let _ = w.tx.send(r);
        }
    }

    /// Appends a leader's batches on a follower as they are: each is checked (framing,
    /// CRC-32C, dense offsets) and must continue this log exactly; offsets, timestamps
    /// and leader epochs are kept, and a batch of a new epoch records it in the history
    /// first. No size limit: the leader accepted them.
    pub fn append_as_follower(self: &Arc<Self>, batches: &mut [u8], leader_epoch: i32) -> Result<AppendInfo> {
        let mut cfg = LogConfig::clone(&self.config.load());
        cfg.max_message_bytes = u64::MAX;
        let (_, max_timestamp) = validate_all(batches, &cfg, None)?;
        let mut w = lock(&self.writer);
        self.check_open()?;
        if self.role.leading.load(Ordering::Acquire) {
            return Err(Error::NotLeader(format!(
                "{} leads the partition: it takes no follower appends",
                self.dir.display()
            )));
        }
        // Checked under the writer lock, which a role change takes too: a fetch answered
        // by the previous leader and processed after this replica moved to the next one
        // (and cut its log to that leader's) must not land after the cut.
        let following = self.role.epoch.load(Ordering::Acquire);
        if following != leader_epoch {
            return Err(Error::NotLeader(format!(
                "{} follows leader epoch {following}; these batches came from the leader of epoch {leader_epoch}",
                self.dir.display()
            )));
        }
        let base = self.end_offset.load(Ordering::Relaxed);
        let mut next = base;
        for h in headers(batches) {
            if h.base_offset as u64 != next {
                return Err(Error::OffsetOutOfRange {
                    offset: h.base_offset as u64,
                    start: self.start_offset(),
                    end: next,
                });
            }
            if h.partition_leader_epoch > w.epochs.latest_epoch() {
                w.epochs.assign(&self.dir, h.partition_leader_epoch, next)?;
            }
            next = h.next_offset() as u64;
        }
        self.write_stamped(w, &cfg, batches, base, next, max_timestamp)?;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_append_time_ms: None,
        })
    }
}
