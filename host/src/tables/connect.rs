//! Kafka Connect's JSON converter with schemas on (`schemas.enable=true`,
//! what a JDBC source connector writes by default) wraps every key and
//! value in an envelope: `{"schema":{…},"payload":…}`. A table with
//! `format = "connect-json"` (values) or `key_format = "connect-json"`
//! (keys) is looked up by the payload alone.
//!
//! The payload is handed over as compact JSON, in its original member
//! order; a key whose payload is a JSON string becomes that string's text
//! (`{"schema":{"type":"string"},"payload":"C1"}` is the key `C1`), so that
//! processors look it up with the plain key. A `null` payload is a
//! tombstone.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope, with both members required and no other allowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    schema: &'a RawValue,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The payload of the envelope in `bytes`: `None` for a `null` payload.
/// With `key`, a string payload is returned as its text; otherwise the
/// payload is compact JSON. The error says what is wrong with the bytes.
pub fn unwrap(bytes: &[u8], key: bool) -> Result<Option<Vec<u8>>, String> {
    let envelope: Envelope<'_> = serde_json::from_slice(bytes).map_err(|e| {
        format!("not a Kafka Connect JSON envelope {{\"schema\":…,\"payload\":…}}: {e}")
    })?;
    let payload = envelope.payload.get();
    if payload == "null" {
        return Ok(None);
    }
    if key && payload.starts_with('"') {
        let text: String = serde_json::from_str(payload)
            .map_err(|e| format!("the payload is not a valid JSON string: {e}"))?;
        return Ok(Some(text.into_bytes()));
    }
    Ok(Some(compact(payload)))
}

/// Valid JSON text without the whitespace between tokens.
fn compact(json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Result<Option<Vec<u8>>, String>) -> Option<String> {
        r.unwrap().map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn a_jdbc_row_becomes_its_payload_in_compact_json_keeping_member_order() {
        let value = br#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"name"},{"type":"int32","optional":true,"field":"tier"}],"optional":false,"name":"customers"},
            "payload": { "name" : "Ada \"the\" Count, \\ esq", "tier":  2, "tags" : [ 1, 2 ] } }"#;
        assert_eq!(
            text(unwrap(value, false)).as_deref(),
            Some(r#"{"name":"Ada \"the\" Count, \\ esq","tier":2,"tags":[1,2]}"#)
        );
    }

    #[test]
    fn a_string_key_becomes_its_text_and_a_struct_key_compact_json() {
        let key = br#"{"schema":{"type":"string","optional":false},"payload":"C1"}"#;
        assert_eq!(text(unwrap(key, true)).as_deref(), Some("C1"));
        let escaped = br#"{"schema":{"type":"string"},"payload":"a\u00e9\"b"}"#;
        assert_eq!(text(unwrap(escaped, true)).as_deref(), Some("a\u{e9}\"b"));
        let number = br#"{"schema":{"type":"int64"},"payload":42}"#;
        assert_eq!(text(unwrap(number, true)).as_deref(), Some("42"));
        let structured = br#"{"schema":{"type":"struct"},"payload":{"id": "C1"}}"#;
        assert_eq!(
            text(unwrap(structured, true)).as_deref(),
            Some(r#"{"id":"C1"}"#)
        );
        // A string value (not a key) stays JSON.
        assert_eq!(text(unwrap(key, false)).as_deref(), Some("\"C1\""));
    }

    #[test]
    fn a_null_payload_is_a_tombstone() {
        assert_eq!(
            text(unwrap(br#"{"schema":null,"payload":null}"#, false)),
            None
        );
        assert_eq!(
            text(unwrap(
                br#"{"schema":{"type":"string"},"payload":null}"#,
                true
            )),
            None
        );
    }

    #[test]
    fn what_is_not_an_envelope_is_an_error_that_says_why() {
        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"name":"Ada"}"#,
                "unknown field `name`, expected `schema` or `payload` at line 1 column 7",
            ),
            (
                br#"{"payload":1}"#,
                "missing field `schema` at line 1 column 13",
            ),
            (
                br#"{"schema":null}"#,
                "missing field `payload` at line 1 column 15",
            ),
            (b"Ada", "expected value at line 1 column 1"),
            (
                br#"{"schema":{},"payload":1,"extra":2}"#,
                "unknown field `extra`, expected `schema` or `payload` at line 1 column 32",
            ),
        ];
        for (bytes, why) in cases {
            let e = unwrap(bytes, false).unwrap_err();
            assert_eq!(
                e,
                format!("not a Kafka Connect JSON envelope {{\"schema\":…,\"payload\":…}}: {why}"),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Any bytes as a Connect envelope: unwrapped or refused, never a
        /// panic.
        #[test]
        fn any_bytes_unwrap_or_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128), key in proptest::prelude::any::<bool>()) {
            let _ = unwrap(&bytes, key);
        }

        /// Envelopes with a payload of any JSON shape.
        #[test]
        fn envelopes_of_any_payload_never_panic(payload in "[\\[\\]{}\":,a-z0-9 ]{0,40}", key in proptest::prelude::any::<bool>()) {
            let text = format!("{{\"schema\": null, \"payload\": {payload}}}");
            let _ = unwrap(text.as_bytes(), key);
        }
    }
}
