//! The value's JSON field `name` (a string's text, any other value as
//! JSON), the key kept: the same map as Partita's `json-field` test guest.

use fluvio_smartmodule::{RecordData, Result, SmartModuleRecord, eyre, smartmodule};
use serde_json::Value;

#[smartmodule(map)]
pub fn map(record: &SmartModuleRecord) -> Result<(Option<RecordData>, RecordData)> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(record.value.as_ref())?;
    let name = match object.get("name") {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
        None => return Err(eyre!("value has no field `name`")),
    };
    Ok((record.key.clone(), name.into()))
}
