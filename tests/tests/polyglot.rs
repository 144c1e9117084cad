//! Processors written in JavaScript and Python, run by the same host as
//! Rust ones, against the same WIT world.
//!
//! - [`polyglot::setup`]: builds the components once per run
//!   (`scripts/build-polyglot.sh`) and runs `partita test` on them.
//! - [`polyglot::unit`]: the helpers' and ports' own tests (node's test
//!   runner, Python's unittest).
//! - [`polyglot::conformance`]: each port and its Rust twin get the same
//!   input and configuration; outputs, rejections and state must be equal.
//! - [`polyglot::limits`]: the memory cap and the CPU deadline stop these
//!   guests as they stop Rust ones.

mod polyglot {
    pub mod conformance;
    pub mod limits;
    pub mod setup;
    pub mod unit;
}
