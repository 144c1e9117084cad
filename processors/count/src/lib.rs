//! `count`: a running count and sum per record key, kept in state. For each
//! record it adds the record's number to its key's totals and emits the new
//! totals to output `default` as `{"key":"K","count":N,"sum":S}`, keeping
//! the record's key, headers and timestamp.
//!
//! # Configuration
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `field` | no | read the number from this field of a JSON object value; without it the whole value is the number |
//! | `cache_entries` | no | most keys kept in the instance's state cache between batches (default 100,000) |
//!
//! A number is decimal text (`12`, `-3.5`, `1e3`, `000120`, surrounding
//! ASCII spaces allowed); in `field` mode a JSON number or a string holding
//! one.
//!
//! # State
//!
//! One entry per record key: the key's bytes map to 16 bytes, the count as
//! a little-endian `u64` followed by the sum as a little-endian `f64`. The
//! sum is printed as an integer when it is one (and below 2^53), otherwise as
//! the shortest decimal that reads back to the same `f64`.
//!
//! # Rejections
//!
//! | reason | when |
//! | --- | --- |
//! | `record has no key` | no key to count under |
//! | `key is not UTF-8: invalid byte at offset N` | the key cannot be written as JSON text |
//! | `record has no value` | a tombstone |
//! | ``value is not a number: `abc` `` | whole-value mode |
//! | ``value is not a JSON object: ...`` | `field` mode, with the parser's message |
//! | ``value has no field `amount` `` | `field` mode |
//! | ``field `amount` is not a number: `true` `` | `field` mode |
//! | `the sum of key `K` would overflow` | the total leaves the range of `f64` |
//! | ``state for key `K` is 5 bytes, expected 16`` | state written by something else |

use std::io::Write as _;

use partita_sdk::state::{self, CacheLimits};
use partita_sdk::{Config, Emitter, Processor, Record, Reject};
use serde_json::Value;

/// Running count and sum per key.
pub struct Count {
    field: Option<String>,
    /// Output buffer, reused from record to record.
    json: Vec<u8>,
}

/// Bytes of one key's state: count then sum.
const STATE_LEN: usize = 16;

impl Processor for Count {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&["field", "cache_entries"])?;
        if let Some(max_entries) = config.parse::<usize>("cache_entries")? {
            state::set_cache_limits(CacheLimits {
                max_entries,
                ..CacheLimits::default()
            });
        }
        let field = config
            .get("field")
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty());
        Ok(Count {
            field,
            json: Vec::with_capacity(64),
        })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        let key = record.key().ok_or("record has no key")?;
        let key_text = record.key_str()?;
        let value = record.value().ok_or("record has no value")?;
        let amount = match &self.field {
            None => whole_value_number(value)?,
            Some(field) => field_number(value, field)?,
        };
        let (count, sum) = state::update(key, |slot| add(slot, amount))
            .map_err(|problem| Reject::new(problem.replace("{key}", key_text)))?;

        let json = &mut self.json;
        json.clear();
        json.extend_from_slice(b"{\"key\":");
        push_json_string(json, key_text);
        json.extend_from_slice(b",\"count\":");
        push_u64(json, count);
        json.extend_from_slice(b",\"sum\":");
        if sum.fract() == 0.0 && sum.abs() < (1u64 << 53) as f64 {
            if sum < 0.0 {
                json.push(b'-');
            }
            push_u64(json, sum.abs() as u64);
        } else {
            write!(json, "{sum}")?;
        }
        json.push(b'}');
        out.value(json);
        Ok(())
    }
}

partita_sdk::export!(Count);

/// Adds `amount` to the totals in `slot`; the error names the key as
/// `{key}`.
fn add(slot: &mut Option<Vec<u8>>, amount: f64) -> Result<(u64, f64), String> {
    let (count, sum) = match slot.as_deref() {
        None => (0, 0.0),
        Some(b) if b.len() == STATE_LEN => {
            let (c, s) = b.split_at(8);
            (
                u64::from_le_bytes(c.try_into().unwrap_or_default()),
                f64::from_le_bytes(s.try_into().unwrap_or_default()),
            )
        }
        Some(b) => {
            return Err(format!(
                "state for key `{{key}}` is {} bytes, expected {STATE_LEN}",
                b.len()
            ));
        }
    };
    let (count, sum) = (count + 1, sum + amount);
    if !sum.is_finite() {
        return Err("the sum of key `{key}` would overflow".to_string());
    }
    let bytes = slot.get_or_insert_with(|| vec![0; STATE_LEN]);
    bytes[..8].copy_from_slice(&count.to_le_bytes());
    bytes[8..].copy_from_slice(&sum.to_le_bytes());
    Ok((count, sum))
}

/// Decimal text as a finite number.
///
/// Works on bytes and drops leading zeros before parsing: fixed-width
/// legacy numbers (`000…0123`) would otherwise be validated as UTF-8 and
/// walked character by character in full, and take the float parser's slow
/// path for long inputs, about ten times slower.
fn number(text: &[u8]) -> Option<f64> {
    let t = text.trim_ascii();
    let (negative, body) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if matches!(body.first(), Some(b'+' | b'-')) {
        return None;
    }
    let zeros = leading_zeros(body);
    // Keep one zero when the zeros were the whole integer part ("000", "0.5").
    let keep_one = zeros > 0 && !body.get(zeros).is_some_and(u8::is_ascii_digit);
    let body = &body[zeros - usize::from(keep_one)..];
    let n: f64 = std::str::from_utf8(body).ok()?.parse().ok()?;
    n.is_finite().then_some(if negative { -n } else { n })
}

/// Number of `0` bytes at the start of `b`, eight at a time.
fn leading_zeros(b: &[u8]) -> usize {
    const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
    let mut n = 0;
    for chunk in b.chunks_exact(8) {
        if u64::from_le_bytes(chunk.try_into().unwrap_or_default()) != ZEROS {
            break;
        }
        n += 8;
    }
    n + b[n..]
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(b.len() - n)
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `n`.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn shown(text: &str) -> String {
    text.trim().chars().take(40).collect()
}

fn whole_value_number(value: &[u8]) -> Result<f64, Reject> {
    number(value).ok_or_else(|| match std::str::from_utf8(value) {
        Ok(text) => Reject::new(format!("value is not a number: `{}`", shown(text))),
        Err(e) => Reject::new(format!(
            "value is not a number: not UTF-8 at offset {}",
            e.valid_up_to()
        )),
    })
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
        Some(v @ Value::String(s)) => number(s.as_bytes()).ok_or_else(|| not_a_number(v)),
        Some(v) => Err(not_a_number(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Harness, Outcome, TestRecord};

    fn rec(key: &str, value: &str) -> TestRecord {
        TestRecord::new().key(key).value(value)
    }

    fn values(results: &[Outcome]) -> Vec<String> {
        results
            .iter()
            .map(|r| r.outputs()[0].value_str().to_string())
            .collect()
    }

    fn stored(h: &Harness<Count>, key: &str) -> (u64, f64) {
        let b = h.state(key).expect("state for the key");
        assert_eq!(b.len(), 16);
        (
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            f64::from_le_bytes(b[8..].try_into().unwrap()),
        )
    }

    #[test]
    fn counts_and_sums_per_key_across_batches() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let first = h.run([rec("a", "10"), rec("b", "1.5"), rec("a", " 5 \n")]);
        assert_eq!(
            values(&first),
            [
                r#"{"key":"a","count":1,"sum":10}"#,
                r#"{"key":"b","count":1,"sum":1.5}"#,
                r#"{"key":"a","count":2,"sum":15}"#
            ]
        );
        assert_eq!(
            first[0].outputs()[0].key_str(),
            "a",
            "the record key is kept"
        );
        let second = h.run([rec("a", "-20.25"), rec("b", "1e2")]);
        assert_eq!(
            values(&second),
            [
                r#"{"key":"a","count":3,"sum":-5.25}"#,
                r#"{"key":"b","count":2,"sum":101.5}"#
            ]
        );
        assert_eq!(stored(&h, "a"), (3, -5.25));
        assert_eq!(stored(&h, "b"), (2, 101.5));
    }

    #[test]
    fn one_state_read_per_key_and_one_write_per_batch() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        h.run((0..100).map(|i| rec(["x", "y"][i % 2], "1")));
        h.run((0..100).map(|i| rec(["x", "y"][i % 2], "1")));
        let calls = h.host_calls();
        assert_eq!((calls.state_gets, calls.state_write_batches), (2, 2));
        assert_eq!(stored(&h, "x"), (100, 100.0));
    }

    #[test]
    fn totals_survive_a_fresh_instance() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        h.run([rec("k", "2"), rec("k", "3")]);
        h.restart().unwrap();
        assert_eq!(
            values(&h.run([rec("k", "4")])),
            [r#"{"key":"k","count":3,"sum":9}"#]
        );
    }

    #[test]
    fn restored_state_is_continued() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let mut restored = 41u64.to_le_bytes().to_vec();
        restored.extend_from_slice(&0.5f64.to_le_bytes());
        h.set_state("k", restored);
        assert_eq!(
            values(&h.run([rec("k", "1")])),
            [r#"{"key":"k","count":42,"sum":1.5}"#]
        );
    }

    #[test]
    fn keys_are_escaped_and_sums_printed_exactly() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let results = h.run([
            rec("q\"uote", "0.1"),
            rec("q\"uote", "0.2"),
            rec("big", "1e300"),
            rec("int", "9007199254740993"),
        ]);
        assert_eq!(
            values(&results),
            [
                r#"{"key":"q\"uote","count":1,"sum":0.1}"#,
                r#"{"key":"q\"uote","count":2,"sum":0.30000000000000004}"#,
                format!(r#"{{"key":"big","count":1,"sum":{}}}"#, 1e300f64).as_str(),
                r#"{"key":"int","count":1,"sum":9007199254740992}"#,
            ]
        );
    }

    #[test]
    fn field_mode_reads_a_json_field() {
        let mut h = Harness::<Count>::new(&[("field", "amount")]).unwrap();
        let results = h.run([
            rec("c1", r#"{"amount": 12.5, "id": 1}"#),
            rec("c1", r#"{"amount": "7.5"}"#),
            rec("c1", r#"{"id": 3}"#),
            rec("c1", r#"{"amount": true}"#),
            rec("c1", r#"{"amount": "lots"}"#),
            rec("c1", "12"),
        ]);
        assert_eq!(
            results[0].outputs()[0].value_str(),
            r#"{"key":"c1","count":1,"sum":12.5}"#
        );
        assert_eq!(
            results[1].outputs()[0].value_str(),
            r#"{"key":"c1","count":2,"sum":20}"#
        );
        assert_eq!(results[2].rejection(), Some("value has no field `amount`"));
        assert_eq!(
            results[3].rejection(),
            Some("field `amount` is not a number: `true`")
        );
        assert_eq!(
            results[4].rejection(),
            Some("field `amount` is not a number: `\"lots\"`")
        );
        assert_eq!(
            results[5].rejection(),
            Some(
                "value is not a JSON object: invalid type: integer `12`, expected a map at line 1 column 2"
            )
        );
        assert_eq!(stored(&h, "c1"), (2, 20.0), "rejected records do not count");
    }

    #[test]
    fn records_that_cannot_be_counted_are_rejected_with_a_reason() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let results = h.run([
            TestRecord::new().value("1"),
            TestRecord::new().key([b'k', 0xff]).value("1"),
            TestRecord::new().key("k"),
            rec("k", "twelve"),
            rec("k", "NaN"),
            rec("k", "inf"),
            TestRecord::new().key("k").value([0xff]),
        ]);
        let reasons: Vec<_> = results.iter().map(|r| r.rejection().unwrap()).collect();
        assert_eq!(
            reasons,
            [
                "record has no key",
                "key is not UTF-8: invalid byte at offset 1",
                "record has no value",
                "value is not a number: `twelve`",
                "value is not a number: `NaN`",
                "value is not a number: `inf`",
                "value is not a number: not UTF-8 at offset 0",
            ]
        );
        assert_eq!(h.state("k"), None);
    }

    #[test]
    fn overflow_and_foreign_state_are_rejected() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let results = h.run([rec("k", "1.5e308"), rec("k", "1.5e308")]);
        assert_eq!(
            results[1].rejection(),
            Some("the sum of key `k` would overflow")
        );
        assert_eq!(
            stored(&h, "k"),
            (1, 1.5e308),
            "the rejected record left the totals alone"
        );
        h.set_state("odd", "12345");
        h.restart().unwrap();
        assert_eq!(
            h.run_one(rec("odd", "1")).rejection(),
            Some("state for key `odd` is 5 bytes, expected 16")
        );
    }

    #[test]
    fn numbers_with_leading_zeros_signs_and_exponents() {
        let padded = format!("{:0>100}", 123);
        for (text, n) in [
            (padded.as_str(), Some(123.0)),
            ("000", Some(0.0)),
            ("-007.5", Some(-7.5)),
            ("+00.25", Some(0.25)),
            (".5", Some(0.5)),
            ("0e5", Some(0.0)),
            ("12e-1", Some(1.2)),
            ("  42\n", Some(42.0)),
            ("-0", Some(-0.0)),
            ("+-5", None),
            ("--5", None),
            ("-", None),
            ("", None),
            ("00inf", None),
            ("inf", None),
            ("1e400", None),
            ("0x1A", None),
        ] {
            assert_eq!(number(text.as_bytes()), n, "`{text}`");
        }
    }

    #[test]
    fn keys_with_control_characters_are_escaped() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let r = h.run_one(rec("a\\b\n\t\u{1}é", "1"));
        let v: serde_json::Value = serde_json::from_str(r.outputs()[0].value_str()).unwrap();
        assert_eq!(v["key"], "a\\b\n\t\u{1}é");
        assert_eq!(
            r.outputs()[0].value_str(),
            r#"{"key":"a\\b\n\t\u0001é","count":1,"sum":1}"#
        );
    }

    #[test]
    fn leading_zeros_are_counted_across_chunks() {
        for n in 0..40 {
            let text = format!("{}7{}", "0".repeat(n), "0".repeat(n % 3));
            assert_eq!(leading_zeros(text.as_bytes()), n, "`{text}`");
        }
        assert_eq!(leading_zeros(b"0000000000"), 10);
        assert_eq!(leading_zeros(b""), 0);
    }

    #[test]
    fn negative_integral_sums_are_printed_as_integers() {
        let mut h = Harness::<Count>::new(&[]).unwrap();
        let results = h.run([rec("k", "-0003"), rec("k", "1")]);
        assert_eq!(
            values(&results),
            [
                r#"{"key":"k","count":1,"sum":-3}"#,
                r#"{"key":"k","count":2,"sum":-2}"#
            ]
        );
    }

    #[test]
    fn configuration() {
        assert!(Harness::<Count>::new(&[("cache_entries", "10")]).is_ok());
        assert_eq!(
            Harness::<Count>::new(&[("cache_entries", "ten")])
                .err()
                .unwrap(),
            "config key `cache_entries`: cannot parse `ten`: invalid digit found in string"
        );
        assert_eq!(
            Harness::<Count>::new(&[("fields", "a")]).err().unwrap(),
            "config key `fields`: unknown key (known keys: field, cache_entries)"
        );
    }
}
