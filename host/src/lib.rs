//! Partita: an embeddable WebAssembly processor host for Kafka partitions.
//!
//! # Layout
//!
//! - [`engine`]: loads processor components, runs batches under limits.
//! - [`state`]: keyed state per (stage, partition), behind a trait: in
//!   memory, or durable on disk with the changelog offset it reflects.
//! - [`tables`]: read-only reference tables.
//! - [`jsonl`]: the JSON Lines record format of `partita test`.
//! - [`config`]: the pipeline file: parsing and checks, every problem at once.
//! - [`metrics`]: Prometheus metrics, the endpoint and the progress log.
//! - [`kafka`]: Kafka clients: settings, admin, producer, table feeds.
//! - [`pipeline`]: running a pipeline on Kafka: stages, workers, commits.
//! - [`deploy`]: cluster-wide deploys through the pipeline's control
//!   topic (`partita deploy`).
//! - [`validate`]: comparing two topics by business key within a time
//!   window (`partita validate`).
//! - `cli`: the `partita` command line (feature `cli`, on by default:
//!   clap and tracing-subscriber come with it).
//!
//! The data path of `partita run`: a stage's consumer ([`kafka`]) hands each
//! assigned partition to a worker ([`pipeline`]), which encodes a batch
//! (`partita_wire::BatchWriter`), runs it through the partition's
//! [`engine::Instance`], produces the outputs, dead letters and state
//! changes (the stage's changelog), and commits the batch's offsets once the
//! broker has acknowledged all of them.

mod bindings;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod deploy;
pub mod engine;
pub mod jsonl;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod state;
pub mod tables;
pub mod validate;
