//! A classified record as JSON, the same in `partita validate --diffs` and
//! on the `diffs` output of the shadow-compare processor: its class, its
//! business key, the record of each side (partition, offset, timestamp and
//! value: text, or `{"base64": ...}` when not UTF-8) and, for a pair, the
//! field diff.

use serde_json::{Value, json};

use crate::class::{Class, Side};
use crate::diff::Difference;
use crate::key::display_key;
use crate::waiting::Seen;

/// One side's record.
pub fn seen_json(r: &Seen) -> Value {
    let value = r
        .value
        .as_deref()
        .map(|v| match std::str::from_utf8(v) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => json!({"base64": base64_of(v)}),
        })
        .unwrap_or(Value::Null);
    json!({
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "value": value,
    })
}

fn base64_of(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// A pair: `match` when `difference` is `None`, else `mismatch`.
pub fn pair_json(left: &Seen, right: &Seen, difference: Option<&Difference>) -> Value {
    let class = match difference {
        None => Class::Match,
        Some(_) => Class::Mismatch,
    };
    json!({
        "class": class.name(),
        "key": display_key(&left.key),
        "left": seen_json(left),
        "right": seen_json(right),
        "diff": difference.map(Difference::to_json),
        "diff_text": difference.map(|d| d.to_string()),
    })
}

/// A record that ends alone, under its side's name.
pub fn single_json(class: Class, record: &Seen) -> Value {
    let side: Side = record.side;
    let mut v = json!({
        "class": class.name(),
        "key": display_key(&record.key),
        "side": side.name(),
    });
    v[side.name()] = seen_json(record);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(side: Side, value: &[u8]) -> Seen {
        Seen {
            side,
            partition: 1,
            offset: 7,
            timestamp: 1000,
            key: b"\x01\"42\"".to_vec(),
            value: Some(value.to_vec()),
        }
    }

    #[test]
    fn text_values_stay_text_and_others_are_base64() {
        let v = single_json(Class::OnlyRight, &seen(Side::Right, &[0xff, 0]));
        assert_eq!(
            v,
            json!({"class": "only_right", "key": "\"42\"", "side": "right",
                   "right": {"partition": 1, "offset": 7, "timestamp": 1000,
                             "value": {"base64": "/wA="}}})
        );
        let v = pair_json(&seen(Side::Left, b"a"), &seen(Side::Right, b"a"), None);
        assert_eq!(v["class"], "match");
        assert_eq!(v["left"]["value"], "a");
        assert_eq!(v["diff"], Value::Null);
    }
}
