//! Partita's integration tests, in one test binary (one link instead of
//! one per file: each binary links wasmtime and librdkafka). Only
//! `engine_ticker`, which counts its process's threads, has a binary of
//! its own.
//!
//! - `engine*`: the Wasm engine and the processors of `processors/`, in
//!   memory.
//! - `kafka_*`: `partita run`, `validate` and the library against a real
//!   broker (Tansu, and noida-db for exactly-once).
//! - `polyglot*`: processors written in JavaScript and Python.
//! - `scaffold`: `partita new` projects in each language.
//! - `deploy_files`: the container recipe and the systemd unit.
//!
//! Run one file's tests with a filter: `cargo test -p partita-tests --test
//! suite kafka_state::`.

mod bench_smoke;
mod deploy_files;
mod engine;
mod engine_processors;
mod engine_window_sum;
mod kafka_broker_restart;
mod kafka_chaos;
mod kafka_chaos_exactly_once;
mod kafka_console;
mod kafka_consumer_group;
mod kafka_dead_letters;
mod kafka_deploy;
mod kafka_embed;
mod kafka_exactly_once;
mod kafka_exactly_once_noida;
mod kafka_group_health;
mod kafka_harness;
mod kafka_host_crash;
mod kafka_invalid_pipeline;
mod kafka_pipeline;
mod kafka_reload;
mod kafka_reload_polyglot;
mod kafka_shadow_compare;
mod kafka_shadow_run;
mod kafka_state;
mod kafka_tables;
mod kafka_timers;
mod kafka_validate;
mod polyglot;
mod polyglot_pipeline;
mod reload_common;
mod scaffold;
