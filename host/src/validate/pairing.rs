//! Windowed pairing of the left and right records by business key.
//!
//! Records come in event-time order (each side's partitions merged by
//! timestamp, then the two sides merged the same way, left first on a
//! tie). Stream time is the largest timestamp seen. A record pairs with the
//! earliest unpaired record of the other side with the same key whose
//! timestamp is within `window` of its own; a pair is a `match` when the
//! values are equal under the rules, else a `mismatch`. A record that
//! finds no partner waits; once stream time passes its timestamp +
//! `window` + `grace` it is declared: `duplicate` when its side had
//! another record with the same key within `window` (more records for the
//! key on one side than on the other), else `only_left` / `only_right`. A
//! record whose own timestamp is already that far behind stream time when
//! it arrives is `late`: any partner it could have had was declared
//! before it came. [`Pairing::finish`] declares everything still waiting.
//!
//! Waiting records, with their values, live in a [`StateStore`] (the
//! durable store of `partita run`, so memory stays bounded however many
//! records wait), under `p side key ts seq`.
//!
//! In memory, a small entry per record within window + grace of stream time
//! (never more, however long the input): when each record expires (its
//! side and key, in timestamp order), and per side and key the timestamp of
//! its latest record (for duplicates).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;

use super::diff::{Difference, Parsed, Rules, compare};
use crate::state::{ChangeSet, StateStore};
pub use partita_compare::class::{Class, Side};
pub use partita_compare::waiting::Seen;
use partita_compare::waiting::{
    decode_waiting, encode_waiting, pending_key, side_key, ts_bytes, ts_from,
};

/// A decision about one record, or about a pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A left and a right record paired.
    Pair {
        /// The left record.
        left: Seen,
        /// The right record.
        right: Seen,
        /// `None` for a match.
        difference: Option<Difference>,
    },
    /// A record that ends alone.
    Single {
        /// `OnlyLeft`, `OnlyRight`, `Duplicate` or `Late`.
        class: Class,
        /// The record.
        record: Seen,
    },
}

impl Outcome {
    /// Its class.
    pub fn class(&self) -> Class {
        match self {
            Outcome::Pair {
                difference: None, ..
            } => Class::Match,
            Outcome::Pair { .. } => Class::Mismatch,
            Outcome::Single { class, .. } => *class,
        }
    }
}

/// The windowed pairing; see the module docs.
pub struct Pairing<S: StateStore> {
    store: S,
    window: i64,
    grace: i64,
    rules: Rules,
    stream_time: Option<i64>,
    seq: u64,
    waiting: u64,
    /// When each record seen within window + grace of stream time expires:
    /// (timestamp, sequence) → its side and key. In memory: one small
    /// entry per recent record, however long the input.
    expiry: BTreeMap<(i64, u64), (Side, Vec<u8>)>,
    /// Per side and key, the timestamp of its latest record, while that
    /// record is within window + grace of stream time (for duplicates).
    /// Indexed by [`Side::index`].
    last_seen: [HashMap<Vec<u8>, i64>; 2],
}

impl<S: StateStore> Pairing<S> {
    /// A pairing of records within `window_ms`, declared `grace_ms` after
    /// their window closes, compared under `rules`, waiting in `store`
    /// (which must be empty).
    pub fn new(store: S, window_ms: i64, grace_ms: i64, rules: Rules) -> Self {
        Pairing {
            store,
            window: window_ms.max(0),
            grace: grace_ms.max(0),
            rules,
            stream_time: None,
            seq: 0,
            waiting: 0,
            expiry: BTreeMap::new(),
            last_seen: [HashMap::new(), HashMap::new()],
        }
    }

    /// Records waiting for a partner.
    pub fn waiting(&self) -> u64 {
        self.waiting
    }

    /// The largest timestamp seen.
    pub fn stream_time(&self) -> Option<i64> {
        self.stream_time
    }

    /// Takes one record (in event-time order) and reports every decision
    /// it brings to `out`: its own pairing or lateness, and the records
    /// that stream time has now passed.
    pub fn push(&mut self, r: Seen, out: &mut impl FnMut(Outcome)) -> anyhow::Result<()> {
        let horizon = self.window + self.grace;
        if let Some(st) = self.stream_time
            && r.timestamp.saturating_add(horizon) < st
        {
            out(Outcome::Single {
                class: Class::Late,
                record: r,
            });
            return Ok(());
        }
        let mut changes = ChangeSet::new();
        let other = r.side.other();
        // The earliest waiting record of the other side within the window.
        let mut lo = side_key(b'p', other, &r.key);
        let mut hi = lo.clone();
        lo.extend_from_slice(&ts_bytes(r.timestamp.saturating_sub(self.window)));
        hi.extend_from_slice(&ts_bytes(r.timestamp.saturating_add(self.window)));
        hi.extend_from_slice(&[0xff; 9]);
        let partner = self
            .store
            .scan(&lo, Some(&hi), 1)
            .context("reading the waiting records")?
            .pop();
        match partner {
            Some((pk, pv)) => {
                let prefix = side_key(b'p', other, &r.key).len();
                let ts = ts_from(&pk[prefix..]);
                let (found, _) =
                    decode_waiting(other, &r.key, ts, &pv).map_err(anyhow::Error::msg)?;
                // Its expiry entry stays: at expiry it only clears the
                // side's last-seen timestamp.
                changes.delete(&pk);
                self.waiting -= 1;
                let (left, right) = match r.side {
                    Side::Left => (r.clone(), found),
                    Side::Right => (found, r.clone()),
                };
                let difference = compare(
                    &Parsed::new(left.value.as_deref()),
                    &Parsed::new(right.value.as_deref()),
                    &self.rules,
                );
                out(Outcome::Pair {
                    left,
                    right,
                    difference,
                });
            }
            None => {
                let last = self.last_seen[r.side.index()].get(&r.key).copied();
                let duplicate = last.is_some_and(|t| (r.timestamp - t).abs() <= self.window);
                changes.put(
                    &pending_key(r.side, &r.key, r.timestamp, self.seq),
                    &encode_waiting(&r, duplicate),
                );
                self.waiting += 1;
            }
        }
        // Every record has an expiry entry: a waiting one is declared
        // then, and the side's last-seen timestamp of the key is cleared
        // if it is still this record's.
        self.expiry
            .insert((r.timestamp, self.seq), (r.side, r.key.clone()));
        self.last_seen[r.side.index()].insert(r.key, r.timestamp);
        self.seq += 1;
        self.store
            .commit(&changes)
            .context("writing the waiting records")?;
        if self.stream_time.is_none_or(|st| r.timestamp > st) {
            self.stream_time = Some(r.timestamp);
        }
        self.expire(out)
    }

    /// Moves stream time to `to` (if later) and declares what it passes:
    /// for a side that stays idle while the wall clock runs.
    pub fn advance(&mut self, to: i64, out: &mut impl FnMut(Outcome)) -> anyhow::Result<()> {
        if self.stream_time.is_none_or(|st| to > st) {
            self.stream_time = Some(to);
        }
        self.expire(out)
    }

    /// Declares every record still waiting (the input ended).
    pub fn finish(&mut self, out: &mut impl FnMut(Outcome)) -> anyhow::Result<()> {
        self.declare_until(None, out)
    }

    fn expire(&mut self, out: &mut impl FnMut(Outcome)) -> anyhow::Result<()> {
        let Some(st) = self.stream_time else {
            return Ok(());
        };
        // Expired: ts + window + grace < stream time.
        let limit = st.saturating_sub(self.window + self.grace);
        self.declare_until(Some(limit), out)
    }

    /// Declares the records with a timestamp below `limit` (all when
    /// `None`), in expiry order.
    fn declare_until(
        &mut self,
        limit: Option<i64>,
        out: &mut impl FnMut(Outcome),
    ) -> anyhow::Result<()> {
        let mut changes = ChangeSet::new();
        while let Some(entry) = self.expiry.first_entry() {
            let (ts, seq) = *entry.key();
            if limit.is_some_and(|l| ts >= l) {
                break;
            }
            let (side, key) = entry.remove();
            let pk = pending_key(side, &key, ts, seq);
            if let Some(pv) = self.store.get(&pk).context("reading the waiting records")? {
                let (record, duplicate) =
                    decode_waiting(side, &key, ts, &pv).map_err(anyhow::Error::msg)?;
                changes.delete(&pk);
                self.waiting -= 1;
                out(Outcome::Single {
                    class: if duplicate {
                        Class::Duplicate
                    } else {
                        Class::only(side)
                    },
                    record,
                });
            }
            if let std::collections::hash_map::Entry::Occupied(last) =
                self.last_seen[side.index()].entry(key)
                && *last.get() == ts
            {
                last.remove();
            }
            // Later entries may read what this one changed.
            if !changes.is_empty() {
                self.store
                    .commit(&changes)
                    .context("writing the waiting records")?;
                changes.clear();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
