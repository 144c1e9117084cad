//! `window-sum`: tumbling-window sums per record key. Each record adds its
//! number to the window of its key that holds its timestamp; when stream
//! time passes a window's end plus the grace period, the window is emitted
//! once to output `default` and forgotten:
//!
//! ```json
//! {"key":"c1","window_start":1700000000000,"window_end":1700000060000,"sum":42.5,"count":3}
//! ```
//!
//! The output's key is the record key and its timestamp the window end.
//!
//! # Configuration
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `window_ms` | yes | window length in milliseconds; windows start at multiples of it (since the Unix epoch) |
//! | `grace_ms` | no | how long after a window's end its records are still accepted (default 0) |
//! | `field` | no | read the number from this field of a JSON object value; without it the whole value is the number |
//!
//! A number is decimal text (`12`, `-3.5`, `1e3`); in `field` mode a JSON
//! number or a string holding one.
//!
//! # Time
//!
//! A record belongs to window `[start, start + window_ms)` with `start` the
//! record timestamp rounded down to a multiple of `window_ms`. Stream time
//! is the largest record timestamp seen: the host passes it to `on-timer`
//! (after every batch, and every `timer_interval_ms` when idle), and the
//! processor also keeps the largest timestamp it has processed in state, so
//! that it survives restarts. A window closes when stream time reaches
//! `window_end + grace_ms`: the next timer call emits it and deletes it. A
//! record whose window has closed by then (`window_end + grace_ms <=`
//! stream time) is **late**: it is rejected, so the host sends it to the
//! dead-letter topic with the reason, and no window is emitted twice.
//! Records out of order but within the grace period are added to their
//! window as usual.
//!
//! # State
//!
//! - `s`: the largest record timestamp processed, `i64` little-endian.
//! - `w` + window end (8 bytes, big-endian, sign bit flipped so that byte
//!   order is time order) + record key: the open window's sum (`f64`),
//!   count (`u64`) and start (`i64`), little-endian, 24 bytes. Since the
//!   state scan returns keys in byte order, the windows to close are one
//!   scan from `w` to the closing time.
//!
//! # Rejections
//!
//! | reason | when |
//! | --- | --- |
//! | `record has no key` | no key to sum under |
//! | `key is not UTF-8: invalid byte at offset N` | the key cannot be written as JSON text |
//! | `record has no value` | a tombstone |
//! | ``value is not a number: `abc` `` | whole-value mode |
//! | ``value is not a JSON object: ...`` | `field` mode, with the parser's message |
//! | ``value has no field `amount` `` | `field` mode |
//! | ``field `amount` is not a number: `true` `` | `field` mode |
//! | `late: window [S, E) closed at stream time T (grace G ms)` | the record's window was already emitted |
//! | `the sum of window [S, E) would overflow` | the total leaves the range of `f64` |
//! | ``state for window [S, E) is 5 bytes, expected 24`` | state written by something else |

use partita_sdk::{Config, ConfigError, Emitter, Output, Processor, Record, Reject, state};
use serde_json::Value;

/// State key of the largest record timestamp processed.
const STREAM_TIME: &[u8] = b"s";
/// Prefix of the open windows.
const WINDOW: u8 = b'w';
/// Bytes of one window's state: sum, count, start.
const WINDOW_LEN: usize = 24;
/// Windows closed per state scan.
const SCAN_CHUNK: u32 = 1024;

/// Tumbling-window sums per key.
pub struct WindowSum {
    window_ms: i64,
    grace_ms: i64,
    field: Option<String>,
    /// The largest record timestamp processed (`i64::MIN`: none yet).
    stream_time: i64,
    /// Output buffer, reused.
    json: Vec<u8>,
}

impl Processor for WindowSum {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&["window_ms", "grace_ms", "field"])?;
        let window_ms: i64 = config
            .parse("window_ms")?
            .ok_or_else(|| ConfigError::new("window_ms", "missing: the window length in ms"))?;
        if window_ms <= 0 {
            return Err(ConfigError::new("window_ms", "must be at least 1").into());
        }
        let grace_ms: i64 = config.parse_or("grace_ms", 0)?;
        if grace_ms < 0 {
            return Err(ConfigError::new("grace_ms", "must not be negative").into());
        }
        let field = config
            .get("field")
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty());
        let stream_time = state::with(STREAM_TIME, |v| {
            v.and_then(|b| b.try_into().ok())
                .map_or(i64::MIN, i64::from_le_bytes)
        });
        Ok(WindowSum {
            window_ms,
            grace_ms,
            field,
            stream_time,
            json: Vec::with_capacity(128),
        })
    }

    fn process(&mut self, record: &Record<'_>, _out: &mut Emitter<'_>) -> Result<(), Reject> {
        let key = record.key().ok_or("record has no key")?;
        record.key_str()?;
        let value = record.value().ok_or("record has no value")?;
        let amount = match &self.field {
            None => whole_value_number(value)?,
            Some(field) => field_number(value, field)?,
        };
        let ts = record.timestamp();
        let start = ts - ts.rem_euclid(self.window_ms);
        let end = start.saturating_add(self.window_ms);
        if end.saturating_add(self.grace_ms) <= self.stream_time {
            return Err(Reject::new(format!(
                "late: window [{start}, {end}) closed at stream time {} (grace {} ms)",
                self.stream_time, self.grace_ms
            )));
        }
        let slot_key = window_key(end, key);
        state::update(&slot_key, |slot| add(slot, amount, start)).map_err(|problem| {
            Reject::new(problem.replace("{window}", &format!("[{start}, {end})")))
        })?;
        if ts > self.stream_time {
            self.stream_time = ts;
            state::put(STREAM_TIME, &ts.to_le_bytes());
        }
        Ok(())
    }

    fn on_timer(&mut self, stream_time: i64, _wall_time: i64, out: &mut Emitter<'_>) {
        let now = stream_time.max(self.stream_time);
        // Windows with end + grace <= now close: end < now - grace + 1.
        let Some(limit) = now
            .checked_sub(self.grace_ms)
            .and_then(|t| t.checked_add(1))
        else {
            return;
        };
        let from = [WINDOW];
        let to = window_key(limit, &[]);
        loop {
            let closing = state::scan(&from, Some(&to), SCAN_CHUNK);
            for (k, v) in &closing {
                self.emit(k, v, out);
                state::delete(k);
            }
            if closing.len() < SCAN_CHUNK as usize {
                break;
            }
        }
    }
}

partita_sdk::export!(WindowSum);

impl WindowSum {
    /// Emits one closed window from its state entry.
    fn emit(&mut self, k: &[u8], v: &[u8], out: &mut Emitter<'_>) {
        let Some((end, key)) = parse_window_key(k) else {
            return;
        };
        let Ok(v) = <[u8; WINDOW_LEN]>::try_from(v) else {
            return;
        };
        let sum = f64::from_le_bytes(v[..8].try_into().unwrap_or_default());
        let count = u64::from_le_bytes(v[8..16].try_into().unwrap_or_default());
        let start = i64::from_le_bytes(v[16..].try_into().unwrap_or_default());
        let key_text = String::from_utf8_lossy(key);
        let json = &mut self.json;
        json.clear();
        json.extend_from_slice(b"{\"key\":");
        json.extend_from_slice(Value::from(key_text.as_ref()).to_string().as_bytes());
        json.extend_from_slice(
            format!(",\"window_start\":{start},\"window_end\":{end},\"sum\":").as_bytes(),
        );
        json.extend_from_slice(number_text(sum).as_bytes());
        json.extend_from_slice(format!(",\"count\":{count}}}").as_bytes());
        out.to(Output::DEFAULT)
            .key(key)
            .value(json)
            .timestamp(end)
            .send();
    }
}

/// The state key of the window of `key` that ends at `end`.
fn window_key(end: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.push(WINDOW);
    k.extend_from_slice(&((end as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The window end and record key of a window's state key.
fn parse_window_key(k: &[u8]) -> Option<(i64, &[u8])> {
    let rest = k.strip_prefix(&[WINDOW])?;
    let (end, key) = rest.split_at_checked(8)?;
    let end = u64::from_be_bytes(end.try_into().ok()?) ^ (1 << 63);
    Some((end as i64, key))
}

/// Adds `amount` to the window in `slot`; the error names the window as
/// `{window}`.
fn add(slot: &mut Option<Vec<u8>>, amount: f64, start: i64) -> Result<(), String> {
    let (sum, count) = match slot.as_deref() {
        None => (0.0, 0),
        Some(b) if b.len() == WINDOW_LEN => (
            f64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
            u64::from_le_bytes(b[8..16].try_into().unwrap_or_default()),
        ),
        Some(b) => {
            return Err(format!(
                "state for window {{window}} is {} bytes, expected {WINDOW_LEN}",
                b.len()
            ));
        }
    };
    let sum = sum + amount;
    if !sum.is_finite() {
        return Err("the sum of window {window} would overflow".to_string());
    }
    let bytes = slot.get_or_insert_with(|| vec![0; WINDOW_LEN]);
    bytes[..8].copy_from_slice(&sum.to_le_bytes());
    bytes[8..16].copy_from_slice(&(count + 1).to_le_bytes());
    bytes[16..].copy_from_slice(&start.to_le_bytes());
    Ok(())
}

/// An integer when the sum is one (below 2^53), else the shortest decimal.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < (1u64 << 53) as f64 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn shown(text: &str) -> String {
    text.trim().chars().take(40).collect()
}

fn parse_number(text: &str) -> Option<f64> {
    let n: f64 = text.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

fn whole_value_number(value: &[u8]) -> Result<f64, Reject> {
    let text = std::str::from_utf8(value).map_err(|e| {
        Reject::new(format!(
            "value is not a number: not UTF-8 at offset {}",
            e.valid_up_to()
        ))
    })?;
    parse_number(text)
        .ok_or_else(|| Reject::new(format!("value is not a number: `{}`", shown(text))))
}

fn field_number(value: &[u8], field: &str) -> Result<f64, Reject> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(value)
        .map_err(|e| Reject::new(format!("value is not a JSON object: {e}")))?;
    let not_a_number = |v: &Value| {
        Reject::new(format!(
            "field `{field}` is not a number: `{}`",
            shown(&v.to_string())
        ))
    };
    match object.get(field) {
        None => Err(Reject::new(format!("value has no field `{field}`"))),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| not_a_number(&Value::Number(n.clone()))),
        Some(v @ Value::String(s)) => parse_number(s).ok_or_else(|| not_a_number(v)),
        Some(v) => Err(not_a_number(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Emitted, Harness, TestRecord};

    fn rec(key: &str, ts: i64, value: &str) -> TestRecord {
        TestRecord::new().key(key).value(value).timestamp(ts)
    }

    fn json(e: &Emitted) -> Value {
        serde_json::from_str(e.value_str()).unwrap()
    }

    /// The expected output, with the sum written as the processor does.
    fn window(key: &str, start: i64, end: i64, sum: f64, count: u64) -> Value {
        let sum: Value = serde_json::from_str(&number_text(sum)).unwrap();
        serde_json::json!({"key": key, "window_start": start, "window_end": end, "sum": sum, "count": count})
    }

    fn harness(config: &[(&str, &str)]) -> Harness<WindowSum> {
        Harness::new(config).unwrap()
    }

    #[test]
    fn a_window_is_emitted_once_when_stream_time_passes_its_end_plus_grace() {
        let mut h = harness(&[("window_ms", "1000"), ("grace_ms", "500")]);
        let results = h.run([rec("a", 100, "1"), rec("b", 200, "2"), rec("a", 999, "3.5")]);
        assert!(results.iter().all(|r| r.outputs().is_empty()));
        assert!(h.timer(1_000, 0).is_empty(), "end reached, grace not over");
        assert!(h.timer(1_499, 0).is_empty());
        let closed = h.timer(1_500, 0);
        let values: Vec<Value> = closed.iter().map(json).collect();
        assert_eq!(
            values,
            [window("a", 0, 1000, 4.5, 2), window("b", 0, 1000, 2.0, 1)]
        );
        assert_eq!(
            closed[1].value_str(),
            r#"{"key":"b","window_start":0,"window_end":1000,"sum":2,"count":1}"#
        );
        assert_eq!(closed[0].key_str(), "a");
        assert_eq!(closed[0].timestamp, 1000);
        assert!(h.timer(5_000, 0).is_empty(), "emitted once");
        assert_eq!(h.state_entries().len(), 1, "only the stream time is left");
    }

    #[test]
    fn late_records_within_grace_count_and_later_ones_are_rejected() {
        let mut h = harness(&[("window_ms", "1000"), ("grace_ms", "500")]);
        h.run([rec("a", 100, "1"), rec("a", 1_200, "10")]);
        // Stream time 1200 < 1000 + 500: window [0, 1000) still open.
        assert!(h.run_one(rec("a", 900, "2")).outputs().is_empty());
        // Stream time 1500 closes [0, 1000): the same record is now late.
        h.run([rec("a", 1_500, "100")]);
        let late = h.run_one(rec("a", 950, "7"));
        assert_eq!(
            late.rejection(),
            Some("late: window [0, 1000) closed at stream time 1500 (grace 500 ms)")
        );
        let closed: Vec<Value> = h.timer(1_500, 0).iter().map(json).collect();
        assert_eq!(closed, [window("a", 0, 1000, 3.0, 2)]);
        let closed: Vec<Value> = h.timer(2_500, 0).iter().map(json).collect();
        assert_eq!(closed, [window("a", 1000, 2000, 110.0, 2)]);
    }

    #[test]
    fn windows_close_in_end_order_across_many_keys_and_chunks() {
        let mut h = harness(&[("window_ms", "10")]);
        let n = SCAN_CHUNK as usize + 100;
        h.run((0..n).map(|i| rec(&format!("k{i:05}"), 5, "1")));
        h.run([rec("z", 15, "1")]);
        let closed = h.timer(10, 0);
        assert_eq!(closed.len(), n, "every key's window [0, 10)");
        assert!(closed.iter().all(|e| json(e)["window_end"] == 10));
        let rest: Vec<Value> = h.timer(20, 0).iter().map(json).collect();
        assert_eq!(rest, [window("z", 10, 20, 1.0, 1)]);
    }

    #[test]
    fn stream_time_survives_a_restart_so_late_records_stay_late() {
        let mut h = harness(&[("window_ms", "1000")]);
        h.run([rec("a", 100, "1"), rec("a", 2_000, "1")]);
        h.restart().unwrap();
        // The host's stream time restarts unknown (-1); the processor's own
        // closes [0, 1000).
        let closed: Vec<Value> = h.timer(-1, 0).iter().map(json).collect();
        assert_eq!(closed, [window("a", 0, 1000, 1.0, 1)]);
        assert_eq!(
            h.run_one(rec("a", 10, "1")).rejection(),
            Some("late: window [0, 1000) closed at stream time 2000 (grace 0 ms)")
        );
    }

    #[test]
    fn negative_timestamps_and_field_mode() {
        let mut h = harness(&[("window_ms", "1000"), ("field", "amount")]);
        let results = h.run([
            rec("a", -1, r#"{"amount": 2.5}"#),
            rec("a", -1000, r#"{"amount": "1"}"#),
            rec("a", 0, r#"{"amount": 4}"#),
        ]);
        assert!(results.iter().all(|r| r.rejection().is_none()));
        let closed: Vec<Value> = h.timer(1000, 0).iter().map(json).collect();
        assert_eq!(
            closed,
            [window("a", -1000, 0, 3.5, 2), window("a", 0, 1000, 4.0, 1)]
        );
    }

    #[test]
    fn records_that_cannot_be_summed_are_rejected_with_a_reason() {
        let mut h = harness(&[("window_ms", "1000")]);
        let results = h.run([
            TestRecord::new().value("1"),
            TestRecord::new().key([b'k', 0xff]).value("1"),
            TestRecord::new().key("k"),
            rec("k", 0, "twelve"),
            rec("k", 0, "inf"),
            TestRecord::new().key("k").value([0xff]),
            rec("k", 0, "1.5e308"),
            rec("k", 0, "1.5e308"),
        ]);
        let reasons: Vec<Option<&str>> = results.iter().map(|r| r.rejection()).collect();
        assert_eq!(
            reasons,
            [
                Some("record has no key"),
                Some("key is not UTF-8: invalid byte at offset 1"),
                Some("record has no value"),
                Some("value is not a number: `twelve`"),
                Some("value is not a number: `inf`"),
                Some("value is not a number: not UTF-8 at offset 0"),
                None,
                Some("the sum of window [0, 1000) would overflow"),
            ]
        );
        let mut f = harness(&[("window_ms", "1000"), ("field", "amount")]);
        let reasons: Vec<String> = f
            .run([
                rec("k", 0, "12"),
                rec("k", 0, r#"{"id": 1}"#),
                rec("k", 0, r#"{"amount": true}"#),
            ])
            .iter()
            .map(|r| r.rejection().unwrap().to_string())
            .collect();
        assert_eq!(
            reasons,
            [
                "value is not a JSON object: invalid type: integer `12`, expected a map at line 1 column 2",
                "value has no field `amount`",
                "field `amount` is not a number: `true`",
            ]
        );
    }

    #[test]
    fn foreign_state_is_rejected() {
        let mut h = harness(&[("window_ms", "1000")]);
        h.set_state(window_key(1000, b"k"), "12345");
        h.restart().unwrap();
        assert_eq!(
            h.run_one(rec("k", 5, "1")).rejection(),
            Some("state for window [0, 1000) is 5 bytes, expected 24")
        );
    }

    #[test]
    fn configuration_is_checked() {
        let err = |c: &[(&str, &str)]| Harness::<WindowSum>::new(c).err().unwrap();
        assert_eq!(
            err(&[]),
            "config key `window_ms`: missing: the window length in ms"
        );
        assert_eq!(
            err(&[("window_ms", "0")]),
            "config key `window_ms`: must be at least 1"
        );
        assert_eq!(
            err(&[("window_ms", "ten")]),
            "config key `window_ms`: cannot parse `ten`: invalid digit found in string"
        );
        assert_eq!(
            err(&[("window_ms", "10"), ("grace_ms", "-1")]),
            "config key `grace_ms`: must not be negative"
        );
        assert_eq!(
            err(&[("window_ms", "10"), ("size", "1")]),
            "config key `size`: unknown key (known keys: window_ms, grace_ms, field)"
        );
    }

    #[test]
    fn window_keys_sort_by_end_then_key() {
        let mut keys = [
            window_key(5, b"b"),
            window_key(-5, b"a"),
            window_key(5, b"a"),
            window_key(i64::MAX, b""),
            window_key(i64::MIN, b"z"),
        ];
        keys.sort();
        let parsed: Vec<(i64, &[u8])> = keys.iter().map(|k| parse_window_key(k).unwrap()).collect();
        assert_eq!(
            parsed,
            [
                (i64::MIN, &b"z"[..]),
                (-5, b"a"),
                (5, b"a"),
                (5, b"b"),
                (i64::MAX, b""),
            ]
        );
        assert_eq!(parse_window_key(b"w123"), None);
        assert_eq!(parse_window_key(b"s"), None);
    }
}
