//! The identity map as a Fluvio SmartModule: key and value unchanged.

use fluvio_smartmodule::{RecordData, Result, SmartModuleRecord, smartmodule};

#[smartmodule(map)]
pub fn map(record: &SmartModuleRecord) -> Result<(Option<RecordData>, RecordData)> {
    Ok((record.key.clone(), record.value.clone()))
}
