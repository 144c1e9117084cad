//! `enrich`: adds reference data to JSON records. It reads the value as a
//! JSON object, looks up the value of one of its fields in a reference
//! table, and adds the table's JSON value to the object under a new field.
//!
//! # Configuration
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `table` | yes | the reference table to look up (a table name of the stage) |
//! | `field` | yes | the field of the value whose value is the lookup key |
//! | `into` | yes | the field to add (replaced if the object already has it) |
//! | `on_missing` | no | `reject` (default) or `pass`: what to do when there is nothing to add |
//!
//! The lookup key is the field's text: a JSON string without its quotes, or
//! a number as written (`42` and `42.0` are different keys). The table's
//! value must be JSON; it is added as is. The object keeps its members, their
//! order and their formatting; the key, headers and timestamp are kept.
//!
//! # When there is nothing to add
//!
//! With `on_missing = "reject"` the record is rejected, with `pass` it is
//! forwarded unchanged, when the field is absent or `null`
//! (``value has no field `customer` ``) or when the table has no entry for
//! the key (``no entry for `42` in table `customers` ``).
//!
//! # Rejections, whatever `on_missing` says
//!
//! | reason | when |
//! | --- | --- |
//! | `record has no value` | a tombstone |
//! | ``value is not a JSON object: ...`` | the parser's message, with line and column |
//! | ``field `customer` must be a string or a number, found an object`` | a key that is not text |
//! | ``table `customers` value for key `42` is not JSON: ...`` | bad reference data |

use std::borrow::Cow;
use std::fmt;

use partita_sdk::{Config, ConfigError, Emitter, Processor, Record, Reject, tables};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Adds a table's value to each JSON record.
pub struct Enrich {
    table: String,
    field: String,
    into: String,
    /// `"into":`, escaped once at init.
    into_prefix: Vec<u8>,
    pass_missing: bool,
    /// Output buffer, reused from record to record.
    json: Vec<u8>,
}

impl Processor for Enrich {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&["table", "field", "into", "on_missing"])?;
        let pass_missing = match config.get("on_missing").map(str::trim) {
            None | Some("reject") => false,
            Some("pass") => true,
            Some(other) => {
                let problem = format!("must be `reject` or `pass`, found `{other}`");
                return Err(ConfigError::new("on_missing", problem).into());
            }
        };
        let into = config.require("into")?.trim().to_string();
        let mut into_prefix = json_string(&into);
        into_prefix.push(b':');
        Ok(Enrich {
            table: config.require("table")?.trim().to_string(),
            field: config.require("field")?.trim().to_string(),
            into,
            into_prefix,
            pass_missing,
            json: Vec::new(),
        })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        let value = record.value().ok_or("record has no value")?;
        let object: Object<'_> = serde_json::from_slice(value)
            .map_err(|e| Reject::new(format!("value is not a JSON object: {e}")))?;
        let found = object
            .0
            .iter()
            .find(|(k, _)| *k == self.field)
            .map(|(_, v)| *v);
        let key = match found {
            Some(raw) if raw.get() != "null" => lookup_key(&self.field, raw)?,
            _ => return self.missing(out, || format!("value has no field `{}`", self.field)),
        };
        let Some(extra) = tables::lookup(&self.table, key.as_bytes()) else {
            return self.missing(out, || {
                format!("no entry for `{key}` in table `{}`", self.table)
            });
        };
        let extra: &RawValue = serde_json::from_slice(&extra).map_err(|e| {
            Reject::new(format!(
                "table `{}` value for key `{key}` is not JSON: {e}",
                self.table
            ))
        })?;

        let json = &mut self.json;
        json.clear();
        json.push(b'{');
        let mut added = false;
        for (name, raw) in &object.0 {
            let replace = *name == self.into;
            if replace && added {
                continue;
            }
            if json.len() > 1 {
                json.push(b',');
            }
            if replace {
                json.extend_from_slice(&self.into_prefix);
                json.extend_from_slice(extra.get().as_bytes());
                added = true;
            } else {
                json.extend_from_slice(&json_string(name));
                json.push(b':');
                json.extend_from_slice(raw.get().as_bytes());
            }
        }
        if !added {
            if json.len() > 1 {
                json.push(b',');
            }
            json.extend_from_slice(&self.into_prefix);
            json.extend_from_slice(extra.get().as_bytes());
        }
        json.push(b'}');
        out.value(json);
        Ok(())
    }
}

impl Enrich {
    /// Nothing to add: forward unchanged or reject, as configured.
    fn missing(
        &self,
        out: &mut Emitter<'_>,
        reason: impl FnOnce() -> String,
    ) -> Result<(), Reject> {
        if self.pass_missing {
            out.forward();
            Ok(())
        } else {
            Err(Reject::new(reason()))
        }
    }
}

partita_sdk::export!(Enrich);

/// The table key for a field's raw JSON value: a string's text or a
/// number's digits.
fn lookup_key<'a>(field: &str, raw: &'a RawValue) -> Result<Cow<'a, str>, Reject> {
    let text = raw.get();
    match text.as_bytes()[0] {
        b'"' => {
            let s: Cow<'a, str> = serde_json::from_str::<Key<'a>>(text).map(|k| k.0)?;
            Ok(s)
        }
        b'-' | b'0'..=b'9' => Ok(Cow::Borrowed(text)),
        first => {
            let kind = match first {
                b'{' => "an object",
                b'[' => "an array",
                _ => "a boolean",
            };
            Err(Reject::new(format!(
                "field `{field}` must be a string or a number, found {kind}"
            )))
        }
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_default()
}

/// A JSON object's members in document order, values left unparsed.
struct Object<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Object<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k.0, v));
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(Members)
    }
}

/// A string borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Harness, Outcome, TestRecord};

    const BASE: [(&str, &str); 3] = [
        ("table", "customers"),
        ("field", "customer"),
        ("into", "customer_info"),
    ];

    fn harness(extra: &[(&str, &str)]) -> Harness<Enrich> {
        let config: Vec<(&str, &str)> = BASE.iter().chain(extra).copied().collect();
        let mut h = Harness::new(&config).unwrap();
        h.set_table("customers", "42", r#"{"name":"Ada","tier":"gold"}"#);
        h.set_table("customers", "C-7", r#""plain string""#);
        h.set_table("customers", "bad", "not json");
        h
    }

    fn enriched(h: &mut Harness<Enrich>, value: &str) -> String {
        h.run_one(TestRecord::new().key("k").value(value)).outputs()[0]
            .value_str()
            .to_string()
    }

    fn rejection(h: &mut Harness<Enrich>, value: &str) -> String {
        match h.run_one(TestRecord::new().value(value)) {
            Outcome::Rejected(r) => r,
            Outcome::Ok(o) => panic!("expected a rejection, got {o:?}"),
        }
    }

    #[test]
    fn adds_the_table_value_keeping_order_and_formatting() {
        let mut h = harness(&[]);
        let r = h.run_one(
            TestRecord::new()
                .key("order-1")
                .value(r#"{"order":1, "customer":42,"amount":12.50,"note":"caf\u00e9"}"#)
                .header("h", "v")
                .timestamp(9),
        );
        let o = &r.outputs()[0];
        assert_eq!(
            o.value_str(),
            r#"{"order":1,"customer":42,"amount":12.50,"note":"caf\u00e9","customer_info":{"name":"Ada","tier":"gold"}}"#
        );
        assert_eq!(
            (o.key_str(), o.timestamp, o.headers.len()),
            ("order-1", 9, 1)
        );
        assert_eq!(h.host_calls().table_lookups, 1);
    }

    #[test]
    fn string_keys_are_looked_up_without_quotes_and_existing_fields_replaced() {
        let mut h = harness(&[]);
        assert_eq!(
            enriched(
                &mut h,
                r#"{"customer_info":"old","customer":"C-7","customer_info":"dup"}"#
            ),
            r#"{"customer_info":"plain string","customer":"C-7"}"#
        );
        assert_eq!(
            enriched(&mut h, r#"{"customer":"C\u002d7"}"#),
            r#"{"customer":"C\u002d7","customer_info":"plain string"}"#,
            "the key is unescaped for the lookup, the member kept as written"
        );
    }

    #[test]
    fn missing_keys_are_rejected_by_default() {
        let mut h = harness(&[]);
        assert_eq!(
            rejection(&mut h, r#"{"customer":7}"#),
            "no entry for `7` in table `customers`"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":42.0}"#),
            "no entry for `42.0` in table `customers`"
        );
        assert_eq!(
            rejection(&mut h, r#"{"other":1}"#),
            "value has no field `customer`"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":null}"#),
            "value has no field `customer`"
        );
    }

    #[test]
    fn missing_keys_pass_unchanged_when_configured() {
        let mut h = harness(&[("on_missing", "pass")]);
        let value = r#"{"customer": 7}"#;
        let r = h.run_one(TestRecord::new().key("k").value(value));
        assert_eq!(r.outputs()[0].value_str(), value);
        assert_eq!(enriched(&mut h, r#"{}"#), "{}");
        assert_eq!(
            enriched(&mut h, r#"{"customer":42}"#),
            r#"{"customer":42,"customer_info":{"name":"Ada","tier":"gold"}}"#
        );
    }

    #[test]
    fn malformed_values_are_rejected_even_with_pass() {
        let mut h = harness(&[("on_missing", "pass")]);
        assert_eq!(
            rejection(&mut h, "[1,2]"),
            "value is not a JSON object: invalid type: sequence, expected a JSON object at line 1 column 0"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":"#),
            "value is not a JSON object: EOF while parsing a value at line 1 column 12"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":{"id":1}}"#),
            "field `customer` must be a string or a number, found an object"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":[1]}"#),
            "field `customer` must be a string or a number, found an array"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":true}"#),
            "field `customer` must be a string or a number, found a boolean"
        );
        assert_eq!(
            rejection(&mut h, r#"{"customer":"bad"}"#),
            "table `customers` value for key `bad` is not JSON: expected ident at line 1 column 2"
        );
        assert_eq!(
            h.run_one(TestRecord::new().key("k")).rejection(),
            Some("record has no value")
        );
    }

    #[test]
    fn bad_configuration_is_refused_naming_the_key() {
        let err = |config: &[(&str, &str)]| Harness::<Enrich>::new(config).err().unwrap();
        assert_eq!(
            err(&[("field", "f"), ("into", "i")]),
            "config key `table`: is required but missing"
        );
        assert_eq!(
            err(&[("table", "t"), ("into", "i")]),
            "config key `field`: is required but missing"
        );
        assert_eq!(
            err(&[("table", "t"), ("field", "f")]),
            "config key `into`: is required but missing"
        );
        let mut bad: Vec<(&str, &str)> = BASE.to_vec();
        bad.push(("on_missing", "skip"));
        assert_eq!(
            err(&bad),
            "config key `on_missing`: must be `reject` or `pass`, found `skip`"
        );
        bad.pop();
        bad.push(("tabel", "x"));
        assert_eq!(
            err(&bad),
            "config key `tabel`: unknown key (known keys: table, field, into, on_missing)"
        );
    }
}
