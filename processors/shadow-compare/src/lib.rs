//! `shadow-compare`: the comparison of `partita validate` as a pipeline
//! stage that runs for as long as the legacy system does. Its two inputs are
//! the legacy output (`left`) and the new output (`right`), co-partitioned
//! by the business key; each record pairs with the other side's record of
//! the same key within the window, and every record ends in exactly one
//! class: `match`, `mismatch`, `only_left`, `only_right`, `duplicate` or
//! `late`, as `partita validate` defines them (the keys, the field diff, the
//! classes and the JSON come from the same crate, `partita-compare`).
//!
//! Every record that is not a match goes to output `diffs` as the JSON line
//! that `partita validate --diffs` writes (class, key, each side's
//! partition, offset, timestamp and value, and the field diff), keyed by
//! the business key. The counts go to the host's metrics:
//! `partita_processor_counter_total{name="compare_records",label=CLASS}`
//! per record and `{name="compare_field_mismatches",label=POINTER}` per
//! mismatched pair and field.
//!
//! # Configuration
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `left` | yes | the input topic of the legacy output |
//! | `right` | yes | the input topic of the new output |
//! | `key` | no | `record` (the Kafka key, the default) or JSON pointers, comma-separated (`/id` or `/customer,/id`) |
//! | `window_ms` | no | how far apart in time two records of a key may be and still pair (default 2000) |
//! | `grace_ms` | no | how long after its window a record waits for a partner before it is declared (default 1000) |
//! | `idle_ms` | no | how long a side may send nothing before the other side's time alone decides (default 30000) |
//! | `ignore` | no | JSON pointers not to compare, comma-separated (`/processed_at`) |
//! | `tolerance` | no | numeric tolerances, comma-separated: `0.01` for every number, `/amount=0.5%` for one field |
//!
//! # Time
//!
//! Each side has its own stream time, the largest timestamp it has sent. A
//! record that finds no partner is declared (`only_left`, `only_right`, or
//! `duplicate` when its side had another record of its key within the
//! window) once the slower side's stream time passes its timestamp +
//! window + grace: the two inputs are not merged in timestamp order by the
//! host (they interleave as they arrive), so a side that is behind, for
//! example after a restart, holds declarations back instead of causing
//! false `only_*`; so does a side that has sent nothing yet. A side that
//! has sent nothing for `idle_ms` of wall time (since it last did, or
//! since the instance started) stops holding them back; when both are idle, time moves on with the
//! wall clock, so every waiting record is declared in the end. A record
//! arriving after records of its time have been declared is `late`.
//! Declarations happen in `on-timer`, after each batch and every
//! `timer_interval_ms` when idle.
//!
//! # State
//!
//! Everything lives in the partition's state, so it survives restarts,
//! rebalances and hot swaps (the wall-clock idle times start again):
//!
//! - `t` + side (`L`/`R`): the side's stream time; `d`: the time up to which
//!   records have been declared; `n`: the next sequence number.
//! - `p` side key ts seq: a waiting record (`partita_compare::waiting`).
//! - `e` ts seq: side and key of every record within window + grace of the
//!   declared time, in time order, so that declaring is one scan.
//! - `l` side key: the timestamp of the side's latest record of the key,
//!   for duplicates.
//!
//! # Rejections
//!
//! | reason | when |
//! | --- | --- |
//! | ``topic `x` is neither left (`a`) nor right (`b`)`` | the stage reads a third topic |

use partita_compare::class::{Class, Side};
use partita_compare::diff::{Difference, Parsed, Rules, compare};
use partita_compare::json::{pair_json, single_json};
use partita_compare::key::{KeySpec, display_key};
use partita_compare::waiting::{
    Seen, decode_waiting, encode_waiting, pending_key, side_key, ts_bytes, ts_from,
};
use partita_sdk::{
    Config, ConfigError, Emitter, Output, Processor, Record, Reject, metrics, state,
};

/// State key of the time up to which records have been declared.
const DECLARED: &[u8] = b"d";
/// State key of the next sequence number.
const SEQ: &[u8] = b"n";
/// Prefix of the expiry index.
const EXPIRY: u8 = b'e';
/// Prefix of each side's latest timestamp per key.
const LAST: u8 = b'l';
/// Prefix of the waiting records.
const WAITING: u8 = b'p';
/// Expiry entries declared per state scan.
const SCAN_CHUNK: u32 = 512;
/// The counter of records per class.
const RECORDS: &str = "compare_records";
/// The counter of mismatches per field.
const FIELDS: &str = "compare_field_mismatches";

/// One side's clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The largest timestamp the side has sent (`i64::MIN`: none).
    stream_time: i64,
    /// Whether it moved since the last timer call.
    advanced: bool,
    /// The wall time of the timer call that last saw it move (or of the
    /// first timer call).
    moved_at: Option<i64>,
}

/// The continuous comparison; see the module docs.
pub struct ShadowCompare {
    topics: [String; 2],
    key: KeySpec,
    rules: Rules,
    window: i64,
    grace: i64,
    idle: i64,
    clocks: [Clock; 2],
    declared: i64,
    seq: u64,
}

fn read_i64(key: &[u8]) -> i64 {
    state::with(key, |v| {
        v.and_then(|b| b.get(..8)).map_or(i64::MIN, ts_from)
    })
}

fn clock_key(side: Side) -> [u8; 2] {
    [b't', side.byte()]
}

fn non_negative(config: &Config, key: &str, default: i64) -> Result<i64, ConfigError> {
    let v: i64 = config.parse_or(key, default)?;
    if v < 0 {
        return Err(ConfigError::new(key, "must not be negative"));
    }
    Ok(v)
}

impl Processor for ShadowCompare {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&[
            "left",
            "right",
            "key",
            "window_ms",
            "grace_ms",
            "idle_ms",
            "ignore",
            "tolerance",
        ])?;
        let left = config.require("left")?.trim().to_string();
        let right = config.require("right")?.trim().to_string();
        if left == right {
            return Err(
                ConfigError::new("right", format!("is `{left}` too: compare two topics")).into(),
            );
        }
        let key: KeySpec = config
            .get("key")
            .unwrap_or("record")
            .parse()
            .map_err(|e: String| ConfigError::new("key", e))?;
        let mut rules = Rules::default();
        for pointer in config.list("ignore").unwrap_or_default() {
            rules
                .add_ignore(pointer)
                .map_err(|e| ConfigError::new("ignore", e))?;
        }
        for tolerance in config.list("tolerance").unwrap_or_default() {
            rules
                .add_tolerance(tolerance)
                .map_err(|e| ConfigError::new("tolerance", e))?;
        }
        let clock = |side| Clock {
            stream_time: read_i64(&clock_key(side)),
            advanced: false,
            moved_at: None,
        };
        Ok(ShadowCompare {
            topics: [left, right],
            key,
            rules,
            window: non_negative(config, "window_ms", 2000)?,
            grace: non_negative(config, "grace_ms", 1000)?,
            idle: non_negative(config, "idle_ms", 30_000)?,
            clocks: [clock(Side::Left), clock(Side::Right)],
            declared: read_i64(DECLARED),
            seq: state::get_as::<u64>(SEQ).ok().flatten().unwrap_or(0),
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec!["diffs".to_string()]
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        let side = match record.topic() {
            t if t == self.topics[0] => Side::Left,
            t if t == self.topics[1] => Side::Right,
            t => {
                return Err(Reject::new(format!(
                    "topic `{t}` is neither left (`{}`) nor right (`{}`)",
                    self.topics[0], self.topics[1]
                )));
            }
        };
        let parsed = match &self.key {
            KeySpec::Record => Parsed::Null,
            KeySpec::Fields(_) => Parsed::new(record.value()),
        };
        let key = self.key.key_of(record.key(), &parsed);
        if !key.complete {
            count("compare_incomplete_keys", side.name(), 1);
        }
        let seen = Seen {
            side,
            partition: record.partition(),
            offset: record.offset(),
            timestamp: record.timestamp(),
            key: key.bytes,
            value: record.value().map(<[u8]>::to_vec),
        };
        let horizon = self.window.saturating_add(self.grace);
        if self.declared != i64::MIN && seen.timestamp.saturating_add(horizon) < self.declared {
            emit_single(Class::Late, &seen, out.to(Output::DEFAULT));
            return Ok(());
        }
        let clock = &mut self.clocks[side.index()];
        if seen.timestamp > clock.stream_time {
            clock.stream_time = seen.timestamp;
            clock.advanced = true;
            state::put(&clock_key(side), &ts_bytes(seen.timestamp));
        }
        match self.partner(&seen) {
            Some((partner_key, partner)) => {
                state::delete(&partner_key);
                let (left, right) = match side {
                    Side::Left => (&seen, &partner),
                    Side::Right => (&partner, &seen),
                };
                let difference = compare(
                    &Parsed::new(left.value.as_deref()),
                    &Parsed::new(right.value.as_deref()),
                    &self.rules,
                );
                emit_pair(left, right, difference.as_ref(), out.to(Output::DEFAULT));
            }
            None => {
                let last = state::with(&side_key(LAST, side, &seen.key), |v| {
                    v.and_then(|b| b.get(..8)).map(ts_from)
                });
                let duplicate = last.is_some_and(|t| (seen.timestamp - t).abs() <= self.window);
                state::put(
                    &pending_key(side, &seen.key, seen.timestamp, self.seq),
                    &encode_waiting(&seen, duplicate),
                );
            }
        }
        let mut entry = Vec::with_capacity(seen.key.len() + 1);
        entry.push(side.byte());
        entry.extend_from_slice(&seen.key);
        state::put(&expiry_key(seen.timestamp, self.seq), &entry);
        state::put(&side_key(LAST, side, &seen.key), &ts_bytes(seen.timestamp));
        self.seq += 1;
        state::put_as(SEQ, &self.seq);
        Ok(())
    }

    fn on_timer(&mut self, _stream_time: i64, wall_time: i64, out: &mut Emitter<'_>) {
        for clock in &mut self.clocks {
            if clock.advanced || clock.moved_at.is_none() {
                clock.moved_at = Some(wall_time);
                clock.advanced = false;
            }
        }
        let until = self.decision_time(wall_time);
        if until <= self.declared {
            return;
        }
        let limit = until.saturating_sub(self.window.saturating_add(self.grace));
        self.declare_before(limit, out);
        self.declared = until;
        state::put(DECLARED, &ts_bytes(until));
    }
}

partita_sdk::export!(ShadowCompare);

impl ShadowCompare {
    /// The earliest waiting record of the other side with `seen`'s key
    /// within the window, with its state key.
    fn partner(&self, seen: &Seen) -> Option<(Vec<u8>, Seen)> {
        let other = seen.side.other();
        let prefix = side_key(WAITING, other, &seen.key);
        let mut lo = prefix.clone();
        lo.extend_from_slice(&ts_bytes(seen.timestamp.saturating_sub(self.window)));
        let mut hi = prefix.clone();
        hi.extend_from_slice(&ts_bytes(seen.timestamp.saturating_add(self.window)));
        hi.extend_from_slice(&[0xff; 9]);
        let (k, v) = state::scan(&lo, Some(&hi), 1).pop()?;
        let ts = ts_from(&k[prefix.len()..]);
        let (partner, _) = decode_waiting(other, &seen.key, ts, &v).ok()?;
        Some((k, partner))
    }

    /// The time up to which records may be declared: the slower side's
    /// stream time while both are active (nothing while one has sent
    /// nothing yet), the active side's when the other
    /// is idle, and, when both are idle, the later one's moved on by the
    /// wall time since it last moved.
    fn decision_time(&self, wall_time: i64) -> i64 {
        // A side that has sent nothing yet is active too (its time is
        // `i64::MIN`), until it has been idle that long since the start.
        let active = |c: &Clock| {
            c.moved_at
                .is_some_and(|at| wall_time.saturating_sub(at) <= self.idle)
        };
        let [l, r] = &self.clocks;
        match (active(l), active(r)) {
            (true, true) => l.stream_time.min(r.stream_time),
            (true, false) => l.stream_time,
            (false, true) => r.stream_time,
            (false, false) => {
                let latest = if l.stream_time >= r.stream_time { l } else { r };
                if latest.stream_time == i64::MIN {
                    return i64::MIN;
                }
                let since = wall_time.saturating_sub(latest.moved_at.unwrap_or(wall_time));
                latest.stream_time.saturating_add(since.max(0))
            }
        }
    }

    /// Declares every record with a timestamp below `limit` that is still
    /// waiting, in time order, and forgets their expiry entries.
    fn declare_before(&mut self, limit: i64, out: &mut Emitter<'_>) {
        let end = expiry_key(limit, 0);
        loop {
            let entries = state::scan(&[EXPIRY], Some(&end), SCAN_CHUNK);
            if entries.is_empty() {
                return;
            }
            for (k, v) in entries {
                state::delete(&k);
                let Some((&side_byte, key)) = v.split_first() else {
                    continue;
                };
                let side = if side_byte == Side::Left.byte() {
                    Side::Left
                } else {
                    Side::Right
                };
                let ts = ts_from(&k[1..]);
                let seq = u64::from_be_bytes(k[9..17].try_into().unwrap_or_default());
                let waiting = pending_key(side, key, ts, seq);
                if let Some(v) = state::get(&waiting) {
                    state::delete(&waiting);
                    if let Ok((record, duplicate)) = decode_waiting(side, key, ts, &v) {
                        let class = if duplicate {
                            Class::Duplicate
                        } else {
                            Class::only(side)
                        };
                        emit_single(class, &record, out.to(Output::DEFAULT));
                    }
                }
                let last = side_key(LAST, side, key);
                if state::with(&last, |v| v.and_then(|b| b.get(..8)).map(ts_from)) == Some(ts) {
                    state::delete(&last);
                }
            }
        }
    }
}

/// `e` ts seq.
fn expiry_key(ts: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(EXPIRY);
    k.extend_from_slice(&ts_bytes(ts));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn count(name: &str, label: &str, delta: u64) {
    // Names and labels here are valid; a partition past the host's
    // counter limit is logged by the SDK.
    let _ = metrics::add(name, label, delta);
}

/// Counts a pair (two records) and sends a mismatch to `diffs`.
fn emit_pair(
    left: &Seen,
    right: &Seen,
    difference: Option<&Difference>,
    to: partita_sdk::Emit<'_, '_, '_>,
) {
    let Some(difference) = difference else {
        count(RECORDS, Class::Match.name(), 2);
        return;
    };
    count(RECORDS, Class::Mismatch.name(), 2);
    for field in difference.fields() {
        count(FIELDS, field, 1);
    }
    let json = pair_json(left, right, Some(difference)).to_string();
    let key = display_key(&left.key);
    to.key(key.as_bytes())
        .value(json.as_bytes())
        .timestamp(left.timestamp.max(right.timestamp))
        .send();
}

/// Counts a record that ends alone and sends it to `diffs`.
fn emit_single(class: Class, record: &Seen, to: partita_sdk::Emit<'_, '_, '_>) {
    count(RECORDS, class.name(), 1);
    let json = single_json(class, record).to_string();
    let key = display_key(&record.key);
    to.key(key.as_bytes())
        .value(json.as_bytes())
        .timestamp(record.timestamp)
        .send();
}

#[cfg(test)]
mod tests;
