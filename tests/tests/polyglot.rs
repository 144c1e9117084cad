//! Processors written in JavaScript and Python, run by the same host as
//! Rust ones, against the same WIT world.
//!
//! - [`setup`]: builds the components once per run
//!   (`scripts/build-polyglot.sh`) and runs `partita test` on them.
//! - [`unit`]: the helpers' and ports' own tests (node's test
//!   runner, Python's unittest).
//! - [`conformance`]: each port and its Rust twin get the same
//!   input and configuration; outputs, rejections and state must be equal.
//! - [`limits`]: the memory cap and the CPU deadline stop these
//!   guests as they stop Rust ones.

mod conformance;
mod limits;
pub mod setup;
mod unit;
