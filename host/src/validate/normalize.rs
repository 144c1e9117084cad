//! A side's normalizing processor (`--left-processor`,
//! `--right-processor`): any Partita component run over that side's
//! records before they are keyed and compared, so that, say, a legacy CSV
//! output can be compared with a new JSON one (`csv-to-json` on the left).
//!
//! Every output of the processor, on any of its outputs, is a record of
//! the side, with the input's key, value and timestamp where the output
//! keeps them. A record the processor rejects or fails on is counted and
//! reported, never compared.

use std::path::Path;
use std::time::Duration;

use partita_wire::BatchWriter;

use super::ValidateError;
use crate::engine::{Engine, Instance, InstanceSetup, Limits, RecordOutcome};

/// One record after normalizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Its Kafka key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its timestamp.
    pub timestamp: i64,
}

/// A loaded normalizing processor.
pub struct Normalizer {
    instance: Instance,
    batch: BatchWriter,
}

impl Normalizer {
    /// Loads `path` with `config` for `flag` (which names it in errors).
    pub fn load(
        engine: &Engine,
        path: &Path,
        config: &[(String, String)],
        flag: &str,
    ) -> Result<Normalizer, ValidateError> {
        let usage = |e: &dyn std::fmt::Display| ValidateError::Usage(format!("{flag}: {e}"));
        let processor = engine.load(path).map_err(|e| usage(&e))?;
        let config: Vec<(&str, &str)> = config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let instance = processor
            .instantiate(InstanceSetup::standalone(
                "validate",
                &config,
                Limits {
                    memory_bytes: 256 << 20,
                    deadline: Duration::from_secs(5),
                    ..Limits::default()
                },
            ))
            .map_err(|e| usage(&e))?;
        Ok(Normalizer {
            instance,
            batch: BatchWriter::new(&["input"]),
        })
    }

    /// Runs one record through the processor: its outputs, or why it was
    /// rejected or failed.
    pub fn apply(
        &mut self,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Vec<Normalized>, String> {
        self.batch.clear();
        self.batch.push(
            0,
            partition,
            offset,
            timestamp,
            key,
            value,
            std::iter::empty(),
        );
        let outcome = self.instance.process(&self.batch);
        let mut out = Vec::new();
        for (record, result) in outcome.iter() {
            match result {
                RecordOutcome::Ok(outputs) => {
                    for o in outputs.iter() {
                        out.push(Normalized {
                            key: o.key.or_input(record.key).map(<[u8]>::to_vec),
                            value: o.value.or_input(record.value).map(<[u8]>::to_vec),
                            timestamp: o.timestamp.unwrap_or(record.timestamp),
                        });
                    }
                }
                RecordOutcome::Rejected(reason) => return Err(format!("rejected: {reason}")),
                RecordOutcome::Failed(e) => return Err(format!("failed: {e}")),
            }
        }
        Ok(out)
    }
}
