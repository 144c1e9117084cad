//! The records of a control topic: their keys and values.
//!
//! | key | value |
//! |---|---|
//! | `chunk/<hash>/<index>` | bytes `index` of the component whose blake3 hash is `hash` |
//! | `deploy/<stage>/<role>/<at-ms>-<hash12>` | a [`Deployment`], JSON |
//! | `host/<host>/<stage>` | a [`HostReport`], JSON |
//!
//! Every chunk and deployment has a key of its own, so compaction keeps the
//! whole history (rolling back is deploying a version still in the topic);
//! a host's report replaces its previous one.

use serde::{Deserialize, Serialize};

/// Which processor of a stage a deployment sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The processor whose outputs are the stage's.
    Live,
    /// A processor run beside the live one, its outputs to shadow topics.
    Candidate,
}

impl Role {
    /// `live` or `candidate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Live => "live",
            Role::Candidate => "candidate",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "live" => Ok(Role::Live),
            "candidate" => Ok(Role::Candidate),
            other => Err(format!("unknown role \"{other}\" (live or candidate)")),
        }
    }
}

/// One deployment: stage `stage`'s `role` processor is the component
/// `hash` from now on (or, for a candidate with no hash, none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The stage.
    pub stage: String,
    /// Live or candidate.
    pub role: Role,
    /// The component's blake3 hash (hex); `None` withdraws a candidate.
    pub hash: Option<String>,
    /// The component's size in bytes.
    pub size: u64,
    /// How many chunks it was written in.
    pub chunks: u32,
    /// Who deployed it (`user@host`).
    pub by: String,
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
    /// What it came from (the file name given to `partita deploy`).
    pub source: String,
}

/// What a host runs for one stage, and what it last refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// The host's name.
    pub host: String,
    /// The stage.
    pub stage: String,
    /// The live processor's content hash.
    pub live: String,
    /// The candidate's content hash, if one runs.
    pub candidate: Option<String>,
    /// The last deployed version this host refused.
    pub refused: Option<Refused>,
    /// The candidate's comparison with the live processor so far.
    #[serde(default)]
    pub shadow: Option<ShadowCounts>,
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
}

/// A deployed version a host refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Its content hash.
    pub hash: String,
    /// The reason label (as in `partita_reload_failures_total`).
    pub reason: String,
    /// What went wrong.
    pub message: String,
}

/// Records compared between a candidate and the live processor, by class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowCounts {
    /// Same outputs.
    pub same: u64,
    /// Outputs that differ.
    pub differ: u64,
    /// Records the candidate failed on (trap, deadline, rejection) and
    /// the live processor did not.
    pub candidate_failed: u64,
    /// Records the live processor failed on and the candidate did not.
    #[serde(default)]
    pub live_failed: u64,
    /// Records the candidate did not see (paused, behind).
    pub skipped: u64,
}

/// A record of the control topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlRecord {
    /// Part of a component.
    Chunk {
        /// The component's hash.
        hash: String,
        /// The chunk's place, from 0.
        index: u32,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A deployment.
    Deployment(Deployment),
    /// A host's report.
    Report(HostReport),
}

/// A record that is not one of [`ControlRecord`]'s.
#[derive(Debug, thiserror::Error)]
#[error("control record with key \"{key}\": {reason}")]
pub struct DecodeError {
    /// The record's key, lossily as text.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The largest chunk of a component: under the 1 MB record limit of a
/// broker's defaults (`message.max.bytes`), with room for the key.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The key of chunk `index` of component `hash`.
pub fn chunk_key(hash: &str, index: u32) -> String {
    format!("chunk/{hash}/{index}")
}

/// The key of a deployment.
pub fn deployment_key(d: &Deployment) -> String {
    let hash = d.hash.as_deref().unwrap_or("none");
    let short = &hash[..hash.len().min(12)];
    format!("deploy/{}/{}/{}-{short}", d.stage, d.role.as_str(), d.at_ms)
}

/// The key of a host's report on a stage.
pub fn report_key(host: &str, stage: &str) -> String {
    format!("host/{host}/{stage}")
}

/// Splits `component` into chunk records (key, value), [`CHUNK_BYTES`]
/// each at most.
pub fn chunks<'a>(hash: &'a str, component: &'a [u8]) -> impl Iterator<Item = (String, &'a [u8])> {
    component
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(move |(i, bytes)| (chunk_key(hash, u32::try_from(i).unwrap_or(u32::MAX)), bytes))
}

/// How many chunks a component of `size` bytes takes (at least one).
pub fn chunk_count(size: usize) -> u32 {
    u32::try_from(size.div_ceil(CHUNK_BYTES).max(1)).unwrap_or(u32::MAX)
}

/// Decodes one record of the control topic. A record without a value (a
/// tombstone) is `Ok(None)`.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<ControlRecord>, DecodeError> {
    let text = String::from_utf8_lossy(key);
    let fail = |reason: String| DecodeError {
        key: text.to_string(),
        reason,
    };
    let Some(value) = value else {
        return Ok(None);
    };
    let parts: Vec<&str> = text.split('/').collect();
    let json = |what: &str| fail(format!("not a {what} in JSON"));
    match parts.as_slice() {
        ["chunk", hash, index] => {
            let index = index
                .parse()
                .map_err(|_| fail(format!("chunk index \"{index}\" is not a number")))?;
            Ok(Some(ControlRecord::Chunk {
                hash: hash.to_string(),
                index,
                bytes: value.to_vec(),
            }))
        }
        ["deploy", ..] => serde_json::from_slice(value)
            .map(|d| Some(ControlRecord::Deployment(d)))
            .map_err(|e| fail(format!("{}: {e}", json("deployment").reason))),
        ["host", ..] => serde_json::from_slice(value)
            .map(|r| Some(ControlRecord::Report(r)))
            .map_err(|e| fail(format!("{}: {e}", json("host report").reason))),
        _ => Err(fail("unknown kind of record".into())),
    }
}

/// The JSON value of a deployment or report.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            stage: "count".into(),
            role: Role::Candidate,
            hash: Some("ab".repeat(32)),
            size: 1_300_000,
            chunks: 3,
            by: "ana@build-1".into(),
            at_ms: 1_796_000_000_000,
            source: "count.wasm".into(),
        }
    }

    #[test]
    fn a_component_is_split_in_chunks_that_add_up() {
        let component: Vec<u8> = (0..1_300_000u32).map(|i| i as u8).collect();
        let parts: Vec<_> = chunks("h", &component).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(chunk_count(component.len()), 3);
        assert_eq!(parts[2].0, "chunk/h/2");
        assert!(parts.iter().all(|(_, b)| b.len() <= CHUNK_BYTES));
        assert_eq!(parts.concat_bytes(), component);
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(CHUNK_BYTES), 1);
        assert_eq!(chunk_count(CHUNK_BYTES + 1), 2);
    }

    trait Concat {
        fn concat_bytes(&self) -> Vec<u8>;
    }
    impl Concat for Vec<(String, &[u8])> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, b)| b.iter().copied()).collect()
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let d = deployment();
        let key = deployment_key(&d);
        assert_eq!(key, "deploy/count/candidate/1796000000000-abababababab");
        let back = decode(key.as_bytes(), Some(&encode(&d))).unwrap();
        assert_eq!(back, Some(ControlRecord::Deployment(d)));

        let r = HostReport {
            host: "h1".into(),
            stage: "count".into(),
            live: "cd".into(),
            candidate: None,
            refused: Some(Refused {
                hash: "ef".into(),
                reason: "wrong_world".into(),
                message: "no".into(),
            }),
            shadow: Some(ShadowCounts {
                same: 3,
                ..ShadowCounts::default()
            }),
            at_ms: 5,
        };
        let back = decode(report_key("h1", "count").as_bytes(), Some(&encode(&r))).unwrap();
        assert_eq!(back, Some(ControlRecord::Report(r)));

        let chunk = decode(b"chunk/ab/7", Some(b"xyz")).unwrap();
        assert_eq!(
            chunk,
            Some(ControlRecord::Chunk {
                hash: "ab".into(),
                index: 7,
                bytes: b"xyz".to_vec()
            })
        );
        assert_eq!(decode(b"host/h1/count", None).unwrap(), None);
    }

    #[test]
    fn foreign_records_say_what_is_wrong() {
        let e = decode(b"chunk/ab/x", Some(b"")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "control record with key \"chunk/ab/x\": chunk index \"x\" is not a number"
        );
        let e = decode(b"deploy/count/live/1-ab", Some(b"{")).unwrap_err();
        assert!(e.to_string().contains("not a deployment in JSON"), "{e}");
        let e = decode(b"other", Some(b"1")).unwrap_err();
        assert!(e.to_string().ends_with("unknown kind of record"), "{e}");
        assert!("shadow".parse::<Role>().is_err());
        assert_eq!("candidate".parse::<Role>(), Ok(Role::Candidate));
    }
}
