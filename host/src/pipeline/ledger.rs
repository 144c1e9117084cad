//! Offset bookkeeping of one worker: the batches whose outputs are in
//! flight, in order, and the offsets that may be committed.
//!
//! A batch's offsets become committable only when every record it produced
//! (outputs and dead letters) is acknowledged, and every batch before it
//! too, so a commit never passes an unacknowledged output even when later
//! batches finish first.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::kafka::produce::Acks;

/// Where an `on_error = "stop"` record was met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopAt {
    /// Input topic of the record.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset (committed as the next one to read).
    pub offset: i64,
    /// Why it failed.
    pub reason: String,
}

/// One processed batch whose records are being produced.
pub(crate) struct Sent {
    /// Delivery state of the batch's records.
    pub acks: Arc<Acks>,
    /// Per input: the offset after the last record handled (-1: none).
    pub next: Vec<i64>,
    /// Output records produced.
    pub outputs: u64,
    /// Dead-letter records produced.
    pub dlq: u64,
    /// Set when the batch ended at an `on_error = "stop"` record.
    pub stop: Option<StopAt>,
}

/// What the batches finished by one [`Ledger::settle`] add up to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Batches finished.
    pub batches: usize,
    /// Their output records.
    pub outputs: u64,
    /// Their dead-letter records.
    pub dlq: u64,
    /// The stop record, if a finished batch ended at one.
    pub stop: Option<StopAt>,
}

/// The batches in flight and the committable offsets of one worker.
pub(crate) struct Ledger {
    in_flight: VecDeque<Sent>,
    /// Per input: the committable offset (-1: nothing yet).
    done: Vec<i64>,
    /// The highest changelog offset acknowledged by the settled batches
    /// (each batch's [`Acks`] tracks its changelog records): the state
    /// store's checkpoint.
    changelog: Option<i64>,
}

impl Ledger {
    /// An empty ledger over `inputs` input topics.
    pub(crate) fn new(inputs: usize) -> Self {
        Ledger {
            in_flight: VecDeque::new(),
            done: vec![-1; inputs],
            changelog: None,
        }
    }

    /// Adds a batch behind the others.
    pub(crate) fn push(&mut self, sent: Sent) {
        self.in_flight.push_back(sent);
    }

    /// Batches in flight.
    pub(crate) fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// True when nothing is in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Records of the batches in flight not yet acknowledged.
    pub(crate) fn pending_records(&self) -> usize {
        self.in_flight.iter().map(|s| s.acks.pending()).sum()
    }

    /// The batches in flight, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.in_flight.iter()
    }

    /// Removes the finished batches at the front, in order, and advances
    /// the committable offsets past them.
    pub(crate) fn settle(&mut self) -> Settled {
        let mut s = Settled::default();
        while let Some(front) = self.in_flight.front() {
            if !front.acks.is_done() {
                break;
            }
            let Some(sent) = self.in_flight.pop_front() else {
                break;
            };
            for (done, next) in self.done.iter_mut().zip(&sent.next) {
                if *next >= 0 {
                    *done = (*done).max(*next);
                }
            }
            let changelog = sent.acks.tracked_offset();
            if changelog >= 0 {
                self.changelog = self.changelog.max(Some(changelog));
            }
            s.batches += 1;
            s.outputs += sent.outputs;
            s.dlq += sent.dlq;
            if sent.stop.is_some() {
                s.stop = sent.stop;
            }
        }
        s
    }

    /// Per input, the offset to commit (-1: nothing to commit).
    pub(crate) fn committable(&self) -> &[i64] {
        &self.done
    }

    /// The highest changelog offset acknowledged by the batches settled so
    /// far, in batch order (a batch in flight holds back the later ones).
    pub(crate) fn changelog_acknowledged(&self) -> Option<i64> {
        self.changelog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(next: &[i64], outputs: u64) -> (Sent, Arc<Acks>) {
        let acks = Acks::new(std::thread::current());
        let s = Sent {
            acks: acks.clone(),
            next: next.to_vec(),
            outputs,
            dlq: 1,
            stop: None,
        };
        (s, acks)
    }

    #[test]
    fn offsets_advance_only_over_a_finished_prefix() {
        let mut l = Ledger::new(2);
        let (s1, a1) = sent(&[10, -1], 3);
        let (s2, a2) = sent(&[20, 5], 4);
        let (s3, a3) = sent(&[30, -1], 5);
        l.push(s1);
        l.push(s2);
        l.push(s3);
        assert_eq!(l.len(), 3);
        // Later batches finish first: nothing is committable yet.
        a2.close();
        a3.close();
        assert_eq!(l.settle(), Settled::default());
        assert_eq!(l.committable(), [-1, -1]);
        // The first finishes: all three settle, in order.
        a1.close();
        let s = l.settle();
        assert_eq!((s.batches, s.outputs, s.dlq), (3, 12, 3));
        assert_eq!(
            l.committable(),
            [30, 5],
            "an input absent from later batches keeps its offset"
        );
        assert!(l.is_empty());
    }

    #[test]
    fn a_batch_with_records_in_flight_holds_back_the_commit() {
        let mut l = Ledger::new(1);
        let (s1, a1) = sent(&[10], 1);
        l.push(s1);
        a1.close();
        let (s2, a2) = sent(&[20], 1);
        l.push(s2);
        // A record of the second batch is sent and not yet acknowledged.
        a2.track();
        a2.close();
        assert_eq!(l.settle().batches, 1);
        assert_eq!(l.committable(), [10]);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_changelog_offset_advances_only_over_a_finished_prefix() {
        let changelog: Arc<str> = "g.s.changelog".into();
        let mut l = Ledger::new(1);
        let (s1, a1) = sent(&[10], 1);
        let (s2, a2) = sent(&[20], 1);
        let (s3, a3) = sent(&[30], 1);
        for (s, a) in [(s1, &a1), (s2, &a2), (s3, &a3)] {
            a.track_offsets_of(&changelog);
            l.push(s);
        }
        // The second batch's changelog records are acknowledged first.
        a2.delivered("g.s.changelog", 5);
        a2.delivered("out", 99);
        a2.close();
        l.settle();
        assert_eq!(l.changelog_acknowledged(), None, "held back by the first");
        a1.delivered("g.s.changelog", 2);
        a1.close();
        l.settle();
        assert_eq!(l.changelog_acknowledged(), Some(5), "only its changelog");
        // A batch without changelog records leaves the offset as it was.
        a3.close();
        l.settle();
        assert_eq!(l.changelog_acknowledged(), Some(5));
        assert!(l.is_empty());
    }

    #[test]
    fn the_stop_record_is_reported_when_its_batch_settles() {
        let mut l = Ledger::new(1);
        let acks = Acks::new(std::thread::current());
        let stop = StopAt {
            topic: "in".into(),
            partition: 2,
            offset: 7,
            reason: "bad".into(),
        };
        l.push(Sent {
            acks: acks.clone(),
            next: vec![7],
            outputs: 2,
            dlq: 0,
            stop: Some(stop.clone()),
        });
        assert_eq!(l.settle().stop, None);
        acks.close();
        let s = l.settle();
        assert_eq!(s.stop, Some(stop));
        assert_eq!(l.committable(), [7], "the stop record is the next to read");
    }
}
