//! Comparing the records of two streams by business key, shared by
//! `partita validate` (two topics, read to the end or followed) and the
//! `shadow-compare` processor (a pipeline stage that runs for days): how
//! the business key is found ([`key`]), how two values are compared
//! ([`diff`]), the classes every record ends in ([`class`]), how a record
//! waiting for its partner is stored ([`waiting`]) and how a classified
//! record is written as JSON ([`json`]).

pub mod class;
pub mod diff;
pub mod json;
pub mod key;
pub mod waiting;
