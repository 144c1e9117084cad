//! Cluster-wide deploys through Kafka (docs/DEPLOY.md): `partita deploy`
//! writes a stage's new processor to the pipeline's control topic,
//! `<group>.deploy`, and every host running the pipeline with
//! `follow = "deploy"` on that stage picks it up and swaps it in with the
//! trial of a hot reload (`crate::pipeline::reload`), or refuses it and
//! says so in its report.
//!
//! - `record`: the records of the control topic (chunks, deployments,
//!   host reports), their keys and values.
//! - `control`: what the topic says, folded from its records.
//! - `topic`: reading and writing it.

mod control;
mod record;
mod topic;

pub use control::{AssemblyError, ControlState};
pub use record::{
    CHUNK_BYTES, ControlRecord, DecodeError, Deployment, HostReport, Refused, Role, ShadowCounts,
    chunk_count,
};
pub use topic::{
    ControlReader, ControlWriter, TopicError, control_topic, ensure_control_topic, now_ms, read,
};

/// This host's default name in its reports: the machine's host name and
/// the process id (two hosts may run on one machine).
pub fn default_host_name() -> String {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!("{machine}:{}", std::process::id())
}
