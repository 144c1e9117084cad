//! Write Partita stream processors in Rust.
