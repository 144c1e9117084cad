//! The business key two records are matched by: the Kafka record key, or
//! one or more fields of a JSON value (JSON pointers), so the two topics
//! may differ in partitioning, keys and partition counts.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::diff::{Parsed, check_pointer};

/// Where a record's business key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// The Kafka record key, as bytes (a null key is a key of its own).
    Record,
    /// Fields of the JSON value, by pointer; a missing field counts as
    /// `null`.
    Fields(Vec<String>),
}

impl FromStr for KeySpec {
    type Err = String;

    /// `record`, or comma-separated JSON pointers (`/customer,/id`).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "record" {
            return Ok(KeySpec::Record);
        }
        let pointers: Vec<String> = s.split(',').map(|p| p.trim().to_string()).collect();
        for p in &pointers {
            if p.is_empty() {
                return Err(format!("`{s}` has an empty pointer"));
            }
            check_pointer(p)?;
        }
        Ok(KeySpec::Fields(pointers))
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Record => f.write_str("record"),
            KeySpec::Fields(p) => f.write_str(&p.join(",")),
        }
    }
}

/// A record's business key: its bytes (what records are matched by) and
/// whether it was found as asked (`false`: a null Kafka key, a value that
/// is not JSON, or a missing field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessKey {
    /// The key, as compared: the record key's bytes (`None` encoded apart
    /// from an empty key), or the canonical JSON of the fields.
    pub bytes: Vec<u8>,
    /// False when some part of it is null because it was missing.
    pub complete: bool,
}

impl BusinessKey {
    /// The key as text for reports.
    pub fn display(&self) -> String {
        display_key(&self.bytes)
    }
}

/// The key as text: the record key (lossy UTF-8) or the fields' JSON;
/// `(null key)` for a null Kafka key.
pub fn display_key(bytes: &[u8]) -> String {
    match bytes.split_first() {
        Some((0, _)) | None => "(null key)".to_string(),
        Some((_, rest)) => String::from_utf8_lossy(rest).into_owned(),
    }
}

impl KeySpec {
    /// The business key of a record with Kafka key `key` and value
    /// `value` (parsed once by the caller).
    pub fn key_of(&self, key: Option<&[u8]>, value: &Parsed) -> BusinessKey {
        match self {
            KeySpec::Record => match key {
                None => BusinessKey {
                    bytes: vec![0],
                    complete: false,
                },
                Some(k) => {
                    let mut bytes = Vec::with_capacity(k.len() + 1);
                    bytes.push(1);
                    bytes.extend_from_slice(k);
                    BusinessKey {
                        bytes,
                        complete: true,
                    }
                }
            },
            KeySpec::Fields(pointers) => {
                let json = match value {
                    Parsed::Json(v) => Some(v),
                    _ => None,
                };
                let mut complete = true;
                let parts: Vec<&Value> = pointers
                    .iter()
                    .map(|p| match json.and_then(|v| v.pointer(p)) {
                        Some(v) => v,
                        None => {
                            complete = false;
                            &Value::Null
                        }
                    })
                    .collect();
                let text = if parts.len() == 1 {
                    canonical(parts[0])
                } else {
                    let items: Vec<String> = parts.iter().map(|v| canonical(v)).collect();
                    format!("[{}]", items.join(","))
                };
                let mut bytes = Vec::with_capacity(text.len() + 1);
                bytes.push(1);
                bytes.extend_from_slice(text.as_bytes());
                BusinessKey { bytes, complete }
            }
        }
    }
}

/// JSON text that is the same for equal values: strings bare (so
/// `"c0001"` and a record key `c0001` read alike in reports), numbers as
/// numbers (`1.0` = `1`), objects with sorted keys.
fn canonical(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            Some(f) => format!("{f}"),
            None => n.to_string(),
        },
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_unstable();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&o[*k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(v: &str) -> Parsed {
        Parsed::new(Some(v.as_bytes()))
    }

    #[test]
    fn record_keys_keep_null_apart_from_empty() {
        let k = KeySpec::Record;
        let null = k.key_of(None, &Parsed::Null);
        let empty = k.key_of(Some(b""), &Parsed::Null);
        assert_ne!(null.bytes, empty.bytes);
        assert!(!null.complete && empty.complete);
        assert_eq!(null.display(), "(null key)");
        assert_eq!(k.key_of(Some(b"c1"), &Parsed::Null).display(), "c1");
    }

    #[test]
    fn field_keys_are_canonical_whatever_the_format() {
        let k: KeySpec = "/id".parse().unwrap();
        let a = k.key_of(Some(b"x"), &parsed(r#"{"id": 7, "v": 1}"#));
        let b = k.key_of(None, &parsed(r#"{"v": 2, "id": 7.0}"#));
        assert_eq!(a, b, "1.0 = 1, Kafka key ignored");
        assert_eq!(a.display(), "7");
        let s = k.key_of(None, &parsed(r#"{"id": "o-7"}"#));
        assert_eq!(s.display(), "o-7");

        let two: KeySpec = "/customer, /day".parse().unwrap();
        let c = two.key_of(None, &parsed(r#"{"day": 3, "customer": "c1"}"#));
        assert_eq!(c.display(), "[c1,3]");
        let missing = two.key_of(None, &parsed(r#"{"customer": "c1"}"#));
        assert_eq!(missing.display(), "[c1,null]");
        assert!(!missing.complete);
        let not_json = k.key_of(Some(b"x"), &parsed("1,c1,10"));
        assert_eq!(not_json.display(), "null");
    }

    #[test]
    fn bad_key_specs_say_why() {
        assert_eq!("record".parse(), Ok(KeySpec::Record));
        assert_eq!(
            "id".parse::<KeySpec>(),
            Err("`id` is not a JSON pointer: it must start with /".into())
        );
        assert_eq!(
            "/a,".parse::<KeySpec>(),
            Err("`/a,` has an empty pointer".into())
        );
    }
}
