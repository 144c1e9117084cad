//! The JSON Lines record format of `partita test`: one record per line in,
//! one output per line out. docs/RECORDS.md is its reference.
//!
//! Keys, values and header values are bytes. In JSON they are written as
//! UTF-8 text (`"key": "abc"`) or, for any bytes, as base64 (`"key_b64":
//! "AAE="`, and `{"b64": "..."}` for a header value); `null` or a missing
//! field means absent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

/// Topic of records that name none.
pub const DEFAULT_TOPIC: &str = "input";

/// Fields a record line may have.
const FIELDS: [&str; 9] = [
    "key",
    "key_b64",
    "value",
    "value_b64",
    "headers",
    "timestamp",
    "topic",
    "partition",
    "offset",
];
/// Fields that `partita test` writes on its output lines, accepted and
/// ignored on input so that one stage's output can feed the next.
const IGNORED: [&str; 3] = ["output", "line", "timer"];

/// One record read from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRecord {
    /// Topic; [`DEFAULT_TOPIC`] when absent.
    pub topic: String,
    /// Partition; 0 when absent.
    pub partition: i32,
    /// Offset; when absent, the line index (line number - 1).
    pub offset: i64,
    /// Timestamp in ms since the Unix epoch; 0 when absent.
    pub timestamp: i64,
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Value, if any.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Parses one line (number `line_no`, from 1) into a record. The error says
/// what is wrong, by field, without the file and line (the caller adds them).
pub fn parse_record(text: &str, line_no: usize) -> Result<JsonRecord, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("malformed JSON: {}", json_error(&e)))?;
    let Value::Object(obj) = value else {
        return Err(format!("expected a JSON object, found {}", kind(&value)));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !FIELDS.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {unknown:?} (known: {})",
            FIELDS.join(", ")
        ));
    }
    Ok(JsonRecord {
        topic: match obj.get("topic") {
            None | Some(Value::Null) => DEFAULT_TOPIC.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "field topic: expected a string, found {}",
                    kind(other)
                ));
            }
        },
        partition: int_field(&obj, "partition")?.map_or(Ok(0), |p| {
            i32::try_from(p).map_err(|_| format!("field partition: {p} is out of range"))
        })?,
        offset: int_field(&obj, "offset")?.unwrap_or(line_no as i64 - 1),
        timestamp: int_field(&obj, "timestamp")?.unwrap_or(0),
        key: bytes_field(&obj, "key")?,
        value: bytes_field(&obj, "value")?,
        headers: headers_field(obj.get("headers"))?,
    })
}

/// serde_json's message without its "at line 1 column N" (a line is parsed
/// on its own), with the column put first.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |at| &text[..at]);
    format!("{message} at column {}", e.column())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn int_field(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("field {name}: expected an integer, found {n}")),
        Some(other) => Err(format!(
            "field {name}: expected an integer, found {}",
            kind(other)
        )),
    }
}

/// `name` as text or `name_b64` as base64; both at once is an error.
fn bytes_field(obj: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, String> {
    let b64_name = format!("{name}_b64");
    let text = obj.get(name).filter(|v| !v.is_null());
    let b64 = obj.get(&b64_name).filter(|v| !v.is_null());
    match (text, b64) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(format!(
            "fields {name} and {b64_name} are both given; use one"
        )),
        (Some(Value::String(s)), None) => Ok(Some(s.clone().into_bytes())),
        (Some(other), None) => Err(format!(
            "field {name}: expected a string (UTF-8 text) or null, found {}; use {b64_name} for raw bytes",
            kind(other)
        )),
        (None, Some(v)) => decode_b64(v)
            .map(Some)
            .map_err(|e| format!("field {b64_name}: {e}")),
    }
}

fn decode_b64(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => B64.decode(s).map_err(|e| format!("invalid base64: {e}")),
        other => Err(format!("expected a base64 string, found {}", kind(other))),
    }
}

/// Headers as `{"name": value, ...}` (in name order) or `[["name", value],
/// ...]` (in order, duplicates allowed); a value is text or `{"b64": "..."}`.
fn headers_field(v: Option<&Value>) -> Result<Vec<(String, Vec<u8>)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, v)| Ok((name.clone(), header_value(name, v)?)))
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(name), v]) => Ok((name.clone(), header_value(name, v)?)),
                _ => Err(format!(
                    "field headers: item {i} is not a [\"name\", value] pair"
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "field headers: expected an object or a list of [\"name\", value] pairs, found {}",
            kind(other)
        )),
    }
}

fn header_value(name: &str, v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.clone().into_bytes()),
        Value::Object(o) if o.len() == 1 && o.contains_key("b64") => {
            decode_b64(&o["b64"]).map_err(|e| format!("header {name:?}: {e}"))
        }
        other => Err(format!(
            "header {name:?}: expected a string or {{\"b64\": \"...\"}}, found {}",
            kind(other)
        )),
    }
}

/// Appends `"name":"text"` (or `"name_b64":"..."` for bytes that are not
/// UTF-8, or `"name":null`) to a JSON object being written.
pub fn write_bytes_field(out: &mut String, name: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => push_pair(out, name, "null"),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => push_pair(out, name, &json_string(text)),
            Err(_) => push_pair(out, &format!("{name}_b64"), &json_string(&B64.encode(b))),
        },
    }
}

/// Appends `"headers":{...}` when the names are distinct, else a list of
/// pairs, so that order and duplicates survive.
pub fn write_headers<'h>(
    out: &mut String,
    headers: impl Iterator<Item = (&'h str, &'h [u8])> + Clone,
) {
    let names: Vec<&str> = headers.clone().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let as_object = sorted.len() == names.len() && sorted == names;
    let mut body = String::new();
    for (i, (name, value)) in headers.enumerate() {
        if i > 0 {
            body.push(',');
        }
        let value = match std::str::from_utf8(value) {
            Ok(text) => json_string(text),
            Err(_) => format!("{{\"b64\":{}}}", json_string(&B64.encode(value))),
        };
        if as_object {
            body.push_str(&format!("{}:{value}", json_string(name)));
        } else {
            body.push_str(&format!("[{},{value}]", json_string(name)));
        }
    }
    let headers = if as_object {
        format!("{{{body}}}")
    } else {
        format!("[{body}]")
    };
    push_pair(out, "headers", &headers);
}

/// Appends `"name":raw` (raw being JSON already) to an object being written.
pub fn push_pair(out: &mut String, name: &str, raw: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push_str(&json_string(name));
    out.push(':');
    out.push_str(raw);
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> JsonRecord {
        parse_record(text, 7).unwrap()
    }

    fn err(text: &str) -> String {
        parse_record(text, 7).unwrap_err()
    }

    #[test]
    fn defaults_fill_absent_fields() {
        let r = rec(r#"{"value": "v"}"#);
        assert_eq!(r.topic, "input");
        assert_eq!((r.partition, r.offset, r.timestamp), (0, 6, 0));
        assert_eq!(r.key, None);
        assert_eq!(r.value.as_deref(), Some(&b"v"[..]));
        assert!(r.headers.is_empty());
        assert_eq!(rec(r#"{"key": null, "value": null}"#).value, None);
    }

    #[test]
    fn every_field_is_read() {
        let r = rec(
            r#"{"topic":"t","partition":2,"offset":40,"timestamp":1700,"key_b64":"AP8=","value":"é",
                "headers":[["a","1"],["a",{"b64":"AAE="}]]}"#,
        );
        assert_eq!(
            (r.topic.as_str(), r.partition, r.offset, r.timestamp),
            ("t", 2, 40, 1700)
        );
        assert_eq!(r.key, Some(vec![0, 255]));
        assert_eq!(r.value, Some("é".as_bytes().to_vec()));
        assert_eq!(
            r.headers,
            vec![("a".into(), b"1".to_vec()), ("a".into(), vec![0, 1])]
        );
        let obj = rec(r#"{"headers":{"b":"2","a":"1"}}"#);
        assert_eq!(
            obj.headers,
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
        // Fields that `partita test` writes are ignored.
        assert_eq!(
            rec(r#"{"output":"out","line":3,"value":"v"}"#).value,
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err("{").starts_with("malformed JSON: EOF while parsing an object at column 1"));
        assert_eq!(err("[1]"), "expected a JSON object, found a list");
        assert!(err(r#"{"vaule": "x"}"#).starts_with("unknown field \"vaule\""));
        assert!(
            err(r#"{"key": "a", "key_b64": "YQ=="}"#).contains("key and key_b64 are both given")
        );
        assert!(err(r#"{"value": 5}"#).contains("field value: expected a string"));
        assert!(err(r#"{"value_b64": "!!"}"#).starts_with("field value_b64: invalid base64"));
        assert!(
            err(r#"{"timestamp": "now"}"#)
                .contains("field timestamp: expected an integer, found a string")
        );
        assert!(err(r#"{"offset": 1.5}"#).contains("field offset: expected an integer, found 1.5"));
        assert!(
            err(r#"{"partition": 9999999999}"#)
                .contains("field partition: 9999999999 is out of range")
        );
        assert!(err(r#"{"topic": 1}"#).contains("field topic: expected a string"));
        assert!(err(r#"{"headers": "x"}"#).contains("field headers: expected an object"));
        assert!(err(r#"{"headers": [["a"]]}"#).contains("item 0 is not a"));
        assert!(err(r#"{"headers": {"a": 1}}"#).contains("header \"a\": expected a string"));
        assert!(
            err(r#"{"headers": {"a": {"b64": "%"}}}"#).contains("header \"a\": invalid base64")
        );
    }

    #[test]
    fn writing_round_trips_through_parsing() {
        let mut out = String::from("{");
        write_bytes_field(&mut out, "key", Some(b"k\"1"));
        write_bytes_field(&mut out, "value", Some(&[0xff, 0]));
        write_headers(&mut out, [("b", &b"x"[..]), ("a", &[0xc3][..])].into_iter());
        out.push('}');
        assert_eq!(
            out,
            r#"{"key":"k\"1","value_b64":"/wA=","headers":[["b","x"],["a",{"b64":"ww=="}]]}"#
        );
        let r = rec(&out);
        assert_eq!(r.key, Some(b"k\"1".to_vec()));
        assert_eq!(r.value, Some(vec![0xff, 0]));
        assert_eq!(
            r.headers,
            vec![("b".into(), b"x".to_vec()), ("a".into(), vec![0xc3])]
        );

        let mut obj = String::from("{");
        write_bytes_field(&mut obj, "key", None);
        write_headers(&mut obj, [("a", &b"1"[..]), ("b", &b"2"[..])].into_iter());
        obj.push('}');
        assert_eq!(obj, r#"{"key":null,"headers":{"a":"1","b":"2"}}"#);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Any line, JSON or not: a record, or an error that says what is
        /// wrong (the caller adds the file and line); never a panic.
        #[test]
        fn any_line_is_a_record_or_an_error_saying_why(text in "\\PC{0,80}", line in 1usize..1000) {
            if let Err(e) = parse_record(&text, line) {
                proptest::prop_assert!(!e.is_empty());
            }
        }

        /// Lines shaped like records, with fields of any type.
        #[test]
        fn record_shaped_lines_never_panic(
            key in proptest::option::of("\\PC{0,10}"),
            value in proptest::option::of(proptest::prelude::any::<i64>()),
            ts in proptest::option::of("[-0-9a-z.]{0,12}"),
        ) {
            let mut fields = Vec::new();
            if let Some(k) = key { fields.push(format!("\"key\": {}", json_string(&k))); }
            if let Some(v) = value { fields.push(format!("\"value\": {v}")); }
            if let Some(t) = ts { fields.push(format!("\"timestamp\": {t}")); }
            let _ = parse_record(&format!("{{{}}}", fields.join(", ")), 1);
        }
    }
}
