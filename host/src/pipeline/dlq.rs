//! Dead-letter records: the original record plus headers saying why it
//! failed, where, and which processor version failed it.

use partita_wire::RecordRef;

use crate::engine::ProcessError;

/// Header: the rejection reason or the failure.
pub const ERROR: &str = "partita.error";
/// Header: the kind of error ([`ErrorKind::as_str`]).
pub const ERROR_KIND: &str = "partita.error.kind";
/// Header: the stage name.
pub const STAGE: &str = "partita.stage";
/// Header: the processor version (content hash).
pub const PROCESSOR_VERSION: &str = "partita.processor.version";
/// Header: the topic the record was read from.
pub const SOURCE_TOPIC: &str = "partita.source.topic";
/// Header: its partition, in decimal.
pub const SOURCE_PARTITION: &str = "partita.source.partition";
/// Header: its offset, in decimal.
pub const SOURCE_OFFSET: &str = "partita.source.offset";

/// Why a record went to the error policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The processor rejected it.
    Rejected,
    /// It trapped the processor.
    Trap,
    /// It ran past the CPU deadline.
    Deadline,
    /// It hit the memory cap.
    Memory,
    /// The processor returned a malformed buffer for it.
    Malformed,
    /// The state store failed.
    State,
    /// The processor could not be restarted after an earlier failure.
    Restart,
    /// It had more outputs than a record may have (`max_record_outputs`).
    Outputs,
    /// An output or a state write was larger than `max_record_bytes`, or
    /// its outputs together larger than `max_record_output_bytes`.
    TooLarge,
    /// It would have taken its batch past a batch cap
    /// (`max_batch_outputs`, `max_batch_output_bytes`,
    /// `max_batch_state_bytes`).
    BatchLimit,
}

impl ErrorKind {
    /// The kind of a processing failure.
    pub fn of(e: &ProcessError) -> ErrorKind {
        match e {
            ProcessError::Deadline(_) => ErrorKind::Deadline,
            ProcessError::Memory(_) => ErrorKind::Memory,
            ProcessError::Trap(_) => ErrorKind::Trap,
            ProcessError::Malformed(_) => ErrorKind::Malformed,
            ProcessError::State(_) => ErrorKind::State,
            ProcessError::Restart(_) => ErrorKind::Restart,
            ProcessError::TooManyOutputs { .. } => ErrorKind::Outputs,
            ProcessError::TooLarge { .. } | ProcessError::OutputsTooLarge { .. } => {
                ErrorKind::TooLarge
            }
            ProcessError::BatchLimit { .. } => ErrorKind::BatchLimit,
        }
    }

    /// The value of the `partita.error.kind` header.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::Trap => "trap",
            ErrorKind::Deadline => "deadline",
            ErrorKind::Memory => "memory",
            ErrorKind::Malformed => "malformed",
            ErrorKind::State => "state",
            ErrorKind::Restart => "restart",
            ErrorKind::Outputs => "outputs",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::BatchLimit => "batch_limit",
        }
    }
}

/// The headers of the dead-letter record of `record`: its own headers,
/// then Partita's.
pub fn headers<'r>(
    record: &RecordRef<'r>,
    kind: ErrorKind,
    reason: &str,
    stage: &str,
    version: &str,
) -> Vec<(&'r str, Vec<u8>)> {
    let mut h: Vec<(&str, Vec<u8>)> = record
        .headers
        .iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    h.push((ERROR, reason.as_bytes().to_vec()));
    h.push((ERROR_KIND, kind.as_str().as_bytes().to_vec()));
    h.push((STAGE, stage.as_bytes().to_vec()));
    h.push((PROCESSOR_VERSION, version.as_bytes().to_vec()));
    h.push((SOURCE_TOPIC, record.topic.as_bytes().to_vec()));
    h.push((SOURCE_PARTITION, record.partition.to_string().into_bytes()));
    h.push((SOURCE_OFFSET, record.offset.to_string().into_bytes()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_wire::{Batch, BatchWriter};
    use std::time::Duration;

    #[test]
    fn dead_letter_headers_keep_the_original_ones_and_say_why_and_where() {
        let mut w = BatchWriter::new(&["orders"]);
        let hs: [(&[u8], &[u8]); 1] = [(b"trace", b"t1")];
        w.push(0, 3, 1234, 99, Some(b"k"), Some(b"v"), hs.into_iter());
        let batch = Batch::parse(w.as_bytes()).unwrap();
        let record = batch.records().next().unwrap().unwrap();
        let h = headers(
            &record,
            ErrorKind::Rejected,
            "no id",
            "parse",
            "0123456789ab",
        );
        let h: Vec<(&str, &str)> = h
            .iter()
            .map(|(k, v)| (*k, std::str::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            h,
            [
                ("trace", "t1"),
                ("partita.error", "no id"),
                ("partita.error.kind", "rejected"),
                ("partita.stage", "parse"),
                ("partita.processor.version", "0123456789ab"),
                ("partita.source.topic", "orders"),
                ("partita.source.partition", "3"),
                ("partita.source.offset", "1234"),
            ]
        );
    }

    #[test]
    fn error_kinds_name_each_failure() {
        let cases = [
            (ProcessError::Deadline(Duration::from_secs(1)), "deadline"),
            (ProcessError::Memory(1), "memory"),
            (ProcessError::Trap("x".into()), "trap"),
            (ProcessError::Malformed("x".into()), "malformed"),
            (ProcessError::State("x".into()), "state"),
            (ProcessError::Restart("x".into()), "restart"),
            (
                ProcessError::TooManyOutputs {
                    count: 10_001,
                    limit: 10_000,
                },
                "outputs",
            ),
            (
                ProcessError::TooLarge {
                    what: "an output",
                    bytes: 2,
                    limit: 1,
                },
                "too_large",
            ),
            (
                ProcessError::OutputsTooLarge { bytes: 2, limit: 1 },
                "too_large",
            ),
            (
                ProcessError::BatchLimit {
                    what: "outputs",
                    total: 3,
                    setting: "max_batch_outputs",
                    limit: 2,
                },
                "batch_limit",
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(ErrorKind::of(&e).as_str(), kind);
        }
        assert_eq!(ErrorKind::Rejected.as_str(), "rejected");
    }
}
