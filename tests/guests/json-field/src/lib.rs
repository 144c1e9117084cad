//! `json-field`: replaces each record's value, a JSON object, with its
//! field `name` (a string's text, any other value as JSON), keeping key,
//! headers and timestamp. A value that is not such an object is rejected.
//!
//! The same map as the Fluvio SmartModule of `bench/peer-fluvio`, so that
//! the two engines are compared on the same work.

use partita_sdk::{Config, Emitter, Processor, Record, Reject};
use serde_json::Value;

/// Extracts the field `name`.
pub struct JsonField;

impl Processor for JsonField {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&[])?;
        Ok(JsonField)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        let value = record.value().ok_or("record has no value")?;
        let object: serde_json::Map<String, Value> = serde_json::from_slice(value)
            .map_err(|e| Reject::new(format!("value is not a JSON object: {e}")))?;
        match object.get("name") {
            Some(Value::String(s)) => out.value(s.as_bytes()),
            Some(other) => out.value(other.to_string().as_bytes()),
            None => return Err(Reject::new("value has no field `name`")),
        }
        Ok(())
    }
}

partita_sdk::export!(JsonField);

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Harness, TestRecord};

    #[test]
    fn the_field_replaces_the_value_and_bad_values_are_rejected() {
        let mut h = Harness::<JsonField>::new(&[]).unwrap();
        let results = h.run([
            TestRecord::new().key("k").value(r#"{"id":1,"name":"ada"}"#),
            TestRecord::new().value(r#"{"name":12}"#),
            TestRecord::new().value(r#"{"id":1}"#),
            TestRecord::new().value("[1]"),
        ]);
        assert_eq!(results[0].outputs()[0].value_str(), "ada");
        assert_eq!(results[0].outputs()[0].key_str(), "k");
        assert_eq!(results[1].outputs()[0].value_str(), "12");
        assert_eq!(results[2].rejection(), Some("value has no field `name`"));
        assert!(
            results[3]
                .rejection()
                .unwrap()
                .starts_with("value is not a JSON object")
        );
    }
}
