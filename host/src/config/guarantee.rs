//! The `guarantee` key of the pipeline file: `"at-least-once"` (the
//! default) or `"exactly-once"`, set either at the top level of the file or
//! in `[kafka]`, not both.

use super::problems::Problems;
use super::reader::{Span, TableReader};

/// What a run promises about records processed again after a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Guarantee {
    /// Outputs are acknowledged, then offsets committed: after a crash the
    /// uncommitted tail is processed again and its outputs may repeat.
    #[default]
    AtLeastOnce,
    /// Outputs, dead letters, changelog records and input offsets of a
    /// batch commit in one Kafka transaction per (stage, partition);
    /// consumers read `read_committed`.
    ExactlyOnce,
}

impl Guarantee {
    /// The value as the pipeline file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }
}

/// Reads `guarantee` from the table `r` reads; `None` when absent or
/// invalid (a problem is recorded), else the value and its span.
pub(super) fn read(r: &mut TableReader<'_, '_>, p: &mut Problems<'_>) -> Option<(Guarantee, Span)> {
    let (value, span) = r.string("guarantee", p)?;
    match value.as_str() {
        "at-least-once" => Some((Guarantee::AtLeastOnce, span)),
        "exactly-once" => Some((Guarantee::ExactlyOnce, span)),
        other => {
            let msg = format!(
                "unknown guarantee \"{other}\" (expected \"at-least-once\" or \"exactly-once\")"
            );
            p.add(Some(span), r.key_place("guarantee"), msg);
            None
        }
    }
}

/// Records the problem of a `guarantee` set at the top level (at
/// `top_span`) when `[kafka]` sets it too.
pub(super) fn set_twice(top_span: Span, p: &mut Problems<'_>) {
    p.add(
        Some(top_span),
        "guarantee",
        "also set in [kafka]: set it in one place",
    );
}
