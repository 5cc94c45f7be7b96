//! Idempotent sequencing: each partition's batches numbered by record sequence when
//! first sent, kept across retries, and renumbered under the next epoch when a batch
//! fails for good (see the producer's module docs).

use super::*;

/// An idempotent batch's numbers in its partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sequenced {
    pub(super) epoch: i16,
    pub(super) base_sequence: i32,
    /// Send order within the partition (sequences wrap; this does not).
    pub(super) ordinal: u64,
}

/// An idempotent producer's numbering of one partition.
#[derive(Default)]
pub(super) struct Sequences {
    /// Epochs moved past the producer's own (each failure that leaves a gap moves one).
    pub(super) bumps: i16,
    pub(super) next_sequence: i32,
    pub(super) next_ordinal: u64,
    /// Ordinals of batches numbered and not yet completed.
    pub(super) unacked: BTreeSet<u64>,
    /// Moved to a new epoch: send nothing until the batches in flight are back, then
    /// renumber the waiting ones in order.
    pub(super) renumbering: bool,
    /// The latest-sent batch acknowledged so far: its epoch and ordinal.
    pub(super) last_acked: Option<(i16, u64)>,
}

impl Sequences {
    /// A batch of this partition was acknowledged.
    pub(super) fn acked(&mut self, s: Sequenced) {
        if self.last_acked.is_none_or(|(e, o)| (s.epoch, s.ordinal) > (e, o)) {
            self.last_acked = Some((s.epoch, s.ordinal));
        }
    }

    /// Whether a batch sent after `s` under the same epoch was acknowledged: the broker
    /// takes a sequence only after the one before it, so `s` is in the log even if its
    /// own answer was lost (a timeout during a failover) and a retry now finds it too
    /// old to be recognised as a duplicate.
    pub(super) fn written(&self, s: Sequenced) -> bool {
        self.last_acked.is_some_and(|(e, o)| e == s.epoch && o > s.ordinal)
    }
}

/// The sequence `n` records after `seq` (sequences wrap from `i32::MAX` to 0).
pub(super) fn add_sequence(seq: i32, n: u32) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

/// The id and epoch InitProducerId gave an idempotent producer.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProducerId {
    pub(super) id: i64,
    pub(super) epoch: i16,
}

/// Moves the partition to the next epoch if `epoch` (a failed batch's) is still its
/// current one. At `i16::MAX` there is no next epoch: the partition's batches then fail
/// out of order until their delivery timeout (after 32,767 such failures on one
/// partition; a new producer starts again at 0).
pub(super) fn next_epoch(pid: ProducerId, seq: &mut Sequences, epoch: i16) {
    if pid.epoch.checked_add(seq.bumps) == Some(epoch) && epoch < i16::MAX {
        seq.bumps += 1;
        seq.next_sequence = 0;
        seq.renumbering = true;
    }
}

/// Gives a batch about to be sent its numbers: the next ones of its partition if it is
/// fresh, or if it is a retry numbered under an older epoch (its header is rewritten).
pub(super) fn number(pid: ProducerId, seq: &mut Sequences, item: &mut Queued) {
    let epoch = pid.epoch.saturating_add(seq.bumps);
    let records = match item {
        Queued::Fresh(open) => open.records,
        Queued::Retry(b) if b.seq.is_some_and(|s| s.epoch != epoch) => b.records,
        Queued::Retry(_) => return,
    };
    let base_sequence = seq.next_sequence;
    seq.next_sequence = add_sequence(base_sequence, records);
    match item {
        Queued::Fresh(open) => {
            let ordinal = seq.next_ordinal;
            seq.next_ordinal += 1;
            seq.unacked.insert(ordinal);
            open.builder.set_producer_state(pid.id, epoch, base_sequence);
            open.seq = Some(Sequenced {
                epoch,
                base_sequence,
                ordinal,
            });
        }
        Queued::Retry(b) => {
            let mut bytes = BytesMut::from(&b.bytes[..]);
            runnel_protocol::batch::set_producer_state(&mut bytes, pid.id, epoch, base_sequence);
            b.bytes = bytes.freeze();
            let s = b.seq.as_mut().expect("checked above");
            (s.epoch, s.base_sequence) = (epoch, base_sequence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, ordinal: u64) -> Sequenced {
        Sequenced {
            epoch,
            base_sequence: ordinal as i32 * 10,
            ordinal,
        }
    }

    #[test]
    fn a_batch_is_known_written_only_when_a_later_one_of_its_epoch_was_acknowledged() {
        let mut s = Sequences::default();
        assert!(!s.written(batch(0, 1)), "nothing acknowledged yet");
        s.acked(batch(0, 3));
        assert!(s.written(batch(0, 1)));
        assert!(s.written(batch(0, 2)));
        assert!(!s.written(batch(0, 3)), "its own acknowledgement is not a later one");
        assert!(!s.written(batch(0, 4)));
        // An older acknowledgement arriving late does not move the mark back.
        s.acked(batch(0, 2));
        assert!(s.written(batch(0, 2)));
        // A later epoch's acknowledgement says nothing about an earlier epoch's batches,
        // which the broker may have refused for good.
        s.acked(batch(1, 5));
        assert!(!s.written(batch(0, 4)));
        assert!(s.written(batch(1, 4)));
    }
}
