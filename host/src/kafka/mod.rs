//! Kafka clients, built on rdkafka (librdkafka).
//!
//! - [`client`]: client settings (Partita's defaults, then the pipeline
//!   file's properties) and logging of librdkafka through `tracing`.
//! - [`admin`]: waiting for the cluster, checking and creating topics.
//! - [`changelog`]: the changelog topic of a stage's state: creation,
//!   writing change sets with their batch, restoring a partition's store.
//! - [`group`]: a stage's consumer group seen from outside: end and
//!   committed offsets of its inputs, its members and their partitions.
//! - [`produce`]: the shared producer and per-batch delivery tracking.
//! - [`tables`]: reference tables kept up to date from their compacted
//!   topics, one reader thread per topic.
//! - [`transactions`]: a worker's transactional producer under
//!   exactly-once.
//!
//! The stage consumers live with the workers they feed, in
//! [`crate::pipeline`], because their rebalance callbacks start and stop
//! those workers.

pub mod admin;
pub mod changelog;
pub mod client;
pub mod group;
pub mod produce;
pub mod table_feeds;
pub mod transactions;
