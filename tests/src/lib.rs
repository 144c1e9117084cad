//! Helpers shared by Partita's integration tests.
//!
//! - [`wasm`]: builds the project's components (processors and test guests)
//!   for `wasm32-wasip2` once per test run and finds them by name.
//! - [`broker`]: a private Tansu broker per test, on a free local port.
//! - [`kafka`]: create topics, produce, read to the end, committed offsets.
//! - [`partita`]: runs the `partita` binary as a child process.
//! - [`pipeline`]: pipeline folders, waiting for stages to catch up,
//!   checking outputs against inputs.
//! - [`metrics`]: reads a running `partita`'s Prometheus metrics.
//! - [`browser`]: headless Chromium, to look at HTML pages as a person
//!   would.
//! - [`mock`]: librdkafka's mock cluster in a child process, for the
//!   exactly-once tests (Tansu has no transactions).
//! - [`process`]: child processes killed when their handle drops.
//! - [`orders`]: sample legacy data, orders as CSV lines.
//! - [`chaos`]: the seed, generator and records of the chaos runs.

pub mod broker;
pub mod browser;
pub mod chaos;
pub mod kafka;
pub mod metrics;
pub mod mock;
pub mod noida;
pub mod numbers;
pub mod orders;
pub mod partita;
pub mod pipeline;
pub mod process;
pub mod wasm;
