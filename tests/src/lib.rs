//! Helpers shared by Partita's integration tests.
//!
//! - [`wasm`]: builds the project's components (processors and test guests)
//!   for `wasm32-wasip2` once per test run and finds them by name.

pub mod wasm;
