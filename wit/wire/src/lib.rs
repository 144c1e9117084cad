//! The byte layout of what crosses the Partita processor boundary.
//!
//! A batch of records goes from host to processor as one `list<u8>`, and the
//! processor's results come back as one `list<u8>`: one buffer each way costs
//! a few tens of nanoseconds per record, where a typed `list<record>` costs
//! hundreds (see `docs/BENCHMARKS.md`). This crate is the single definition
//! of that layout; the host and the Rust guest SDK both use it, and
//! `wit/processor.wit` documents it for authors of other SDKs.
//!
//! # Layout, version 1
//!
//! Integers are little-endian and unaligned. `bytes` is a `u32` length then
//! that many bytes; `str` is `bytes` holding UTF-8; `opt` is a `u32` length
//! where [`NULL`] (`0xFFFF_FFFF`) means absent.
//!
//! ```text
//! batch    = u8 version, u32 n_topics, str × n_topics,
//!            u32 n_records, record × n_records
//! record   = u32 topic_index, i32 partition, i64 offset, i64 timestamp_ms,
//!            opt key, opt value, headers
//! headers  = u32 n, (str name, bytes value) × n
//!
//! results  = u8 version, u32 n_results (= n_records), result × n_results
//! result   = u8 0 (ok), outputs | u8 1 (rejected), str reason
//! outputs  = u32 n, output × n
//! output   = u32 output_index, field key, field value, out_headers, ts
//! field    = opt, where KEEP (0xFFFF_FFFE) means "as in the input record"
//! out_headers = headers, where n = KEEP means "as in the input record"
//! ts       = u8 0 (as in the input record) | u8 1, i64 timestamp_ms
//!
//! timer    = u8 version, outputs        (KEEP means absent; ts KEEP means
//!                                        the stream time of the timer call)
//! writes   = u8 version, u32 n, (u8 0 put, bytes key, bytes value
//!                                | u8 1 delete, bytes key) × n
//! ```
//!
//! Readers of guest-written buffers ([`Results::parse`], [`Outputs::parse`],
//! [`Writes::parse`]) validate the whole buffer before handing out views, so
//! iterating the views afterwards cannot fail.
#![no_std]

extern crate alloc;

use core::fmt;

mod counter;
mod read;
mod write;

pub use counter::{MAX_COUNTERS, MAX_LABEL, MAX_NAME, check_counter};

pub use read::{
    Batch, Field, HeaderIter, Headers, OutputIter, OutputRef, Outputs, RecordIter, RecordRef,
    RecordResult, ResultIter, Results, Write, WriteIter, Writes,
};
pub use write::{BatchWriter, OutputSpec, ResultWriter, WritesWriter};

/// Version byte that starts every buffer of this layout.
pub const VERSION: u8 = 1;
/// Length marker for an absent key or value.
pub const NULL: u32 = u32::MAX;
/// Length (or header count) marker for "keep the input record's field".
pub const KEEP: u32 = u32::MAX - 1;

/// Why a buffer could not be read: what was wrong and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset in the buffer where reading failed.
    pub at: usize,
    /// What was expected or found there.
    pub what: &'static str,
    /// Index of the result (or record) being read, when there is one.
    pub item: Option<u32>,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(i) => write!(f, "{} at byte {} (item {i})", self.what, self.at),
            None => write!(f, "{} at byte {}", self.what, self.at),
        }
    }
}

impl core::error::Error for WireError {}

#[cfg(test)]
mod tests;
