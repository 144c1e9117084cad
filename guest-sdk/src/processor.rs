//! The trait a processor implements, and the rejection of one record.

use std::fmt;

use crate::{Config, Emitter, Record};

/// A stream processor: built once per instance, then called per record.
///
/// The host creates one instance per stage and partition and calls it with
/// that partition's records in offset order. A processor keeps whatever it
/// likes in `self` (parsed configuration, lookup maps); anything that must
/// survive a restart, a rebalance or a hot swap goes to [`crate::state`].
pub trait Processor: Sized + 'static {
    /// Builds the processor from the stage's configuration. An error refuses
    /// the processor (at start or at hot reload) with that reason; say which
    /// key is wrong ([`crate::ConfigError`] converts into the `String`).
    fn init(config: &Config) -> Result<Self, String>;

    /// The names of the outputs, called once after [`Processor::init`]. An
    /// output's position in this list is its [`crate::Output`] index; the
    /// stage's configuration maps each name to a topic. Names must be
    /// unique. Defaults to one output named `default`.
    fn outputs(&self) -> Vec<String> {
        vec!["default".to_string()]
    }

    /// Handles one record: emit any number of outputs through `out`, or
    /// reject the record (its outputs are then discarded and the host sends
    /// it to the stage's dead-letter topic with the reason). State writes
    /// made before a rejection are kept, so check the record before writing.
    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject>;

    /// Called when time passes: `stream_time` is the largest record
    /// timestamp seen on the partition, `wall_time` the host's clock, both in
    /// milliseconds since the Unix epoch. Outputs emitted here have no input
    /// record: fields left unset are absent and the timestamp defaults to
    /// `stream_time`. Does nothing by default.
    fn on_timer(&mut self, stream_time: i64, wall_time: i64, out: &mut Emitter<'_>) {
        let _ = (stream_time, wall_time, out);
    }
}

/// Why a record was rejected; the reason travels to the dead-letter topic.
///
/// Any error type that implements `Display` converts into a `Reject`, so `?`
/// works on parse errors; give context where the bare error would not say
/// what was wrong (`Reject::new(format!("field `{f}` is not a number"))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    reason: String,
}

impl Reject {
    /// A rejection with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Reject {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl<E: fmt::Display> From<E> for Reject {
    fn from(e: E) -> Self {
        Reject {
            reason: e.to_string(),
        }
    }
}
