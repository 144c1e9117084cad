//! What a control topic says, folded from its records in order: the
//! components (reassembled from their chunks and checked by content hash),
//! every deployment, and each host's last report.

use std::collections::{BTreeMap, HashMap};

use super::record::{ControlRecord, Deployment, HostReport, Role};

/// The state of a control topic as of the records applied so far.
#[derive(Debug, Default)]
pub struct ControlState {
    /// Chunks per component hash, by index.
    chunks: HashMap<String, BTreeMap<u32, Vec<u8>>>,
    /// Every deployment, in topic order.
    deployments: Vec<Deployment>,
    /// Each (host, stage)'s last report.
    reports: BTreeMap<(String, String), HostReport>,
}

/// Why a deployed component cannot be put together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    /// Some chunks are not in the topic (yet, or any more).
    #[error("component {hash}: {have} of its {want} chunks are in the control topic")]
    Missing {
        /// The component's hash.
        hash: String,
        /// Chunks found.
        have: usize,
        /// Chunks the deployment names.
        want: u32,
    },
    /// The chunks put together do not have the deployed hash.
    #[error("component {hash}: its chunks put together hash to {actual} ({size} bytes)")]
    Hash {
        /// The deployed hash.
        hash: String,
        /// The hash of what was put together.
        actual: String,
        /// How many bytes were put together.
        size: usize,
    },
}

impl ControlState {
    /// An empty state.
    pub fn new() -> ControlState {
        ControlState::default()
    }

    /// Applies the next record of the topic.
    pub fn apply(&mut self, record: ControlRecord) {
        match record {
            ControlRecord::Chunk { hash, index, bytes } => {
                self.chunks.entry(hash).or_default().insert(index, bytes);
            }
            ControlRecord::Deployment(d) => self.deployments.push(d),
            ControlRecord::Report(r) => {
                self.reports.insert((r.host.clone(), r.stage.clone()), r);
            }
        }
    }

    /// Every deployment, in the order they were made.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    /// The last deployment of `stage`'s `role`, if it sets a component
    /// (a withdrawn candidate is `None`).
    pub fn current(&self, stage: &str, role: Role) -> Option<&Deployment> {
        self.deployments
            .iter()
            .rev()
            .find(|d| d.stage == stage && d.role == role)
            .filter(|d| d.hash.is_some())
    }

    /// The last deployment of component `hash` (a prefix of at least 8
    /// hex digits will do) for `stage`.
    pub fn find(&self, stage: &str, hash: &str) -> Option<&Deployment> {
        if hash.len() < 8 {
            return None;
        }
        self.deployments
            .iter()
            .rev()
            .find(|d| d.stage == stage && d.hash.as_deref().is_some_and(|h| h.starts_with(hash)))
    }

    /// The latest report of every host, by host then stage.
    pub fn reports(&self) -> impl Iterator<Item = &HostReport> {
        self.reports.values()
    }

    /// The bytes of deployment `d`'s component, put together from its
    /// chunks and checked against its hash.
    pub fn component(&self, d: &Deployment) -> Result<Vec<u8>, AssemblyError> {
        let hash = d.hash.clone().unwrap_or_default();
        let chunks = self.chunks.get(&hash);
        let have = chunks.map_or(0, |c| (0..d.chunks).filter(|i| c.contains_key(i)).count());
        let (Some(chunks), true) = (chunks, have == d.chunks as usize) else {
            return Err(AssemblyError::Missing {
                hash,
                have,
                want: d.chunks,
            });
        };
        let bytes: Vec<u8> = (0..d.chunks)
            .flat_map(|i| chunks[&i].iter().copied())
            .collect();
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if actual != hash {
            return Err(AssemblyError::Hash {
                hash,
                actual,
                size: bytes.len(),
            });
        }
        Ok(bytes)
    }

    /// Forgets the chunks of components that were deployed to `stages`
    /// but are no longer current there (a following host keeps only what
    /// it may have to load). Chunks of a component whose deployment has
    /// not arrived yet are kept.
    pub fn drop_unused_chunks(&mut self, stages: &[String]) {
        let current: Vec<&str> = stages
            .iter()
            .flat_map(|s| [Role::Live, Role::Candidate].map(|r| self.current(s, r)))
            .flatten()
            .filter_map(|d| d.hash.as_deref())
            .collect();
        let superseded: Vec<String> = self
            .deployments
            .iter()
            .filter(|d| stages.contains(&d.stage))
            .filter_map(|d| d.hash.clone())
            .filter(|h| !current.contains(&h.as_str()))
            .collect();
        self.chunks.retain(|hash, _| !superseded.contains(hash));
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{self, CHUNK_BYTES};
    use super::*;

    fn deploy(
        state: &mut ControlState,
        stage: &str,
        role: Role,
        bytes: &[u8],
        at_ms: i64,
    ) -> String {
        let hash = blake3::hash(bytes).to_hex().to_string();
        for (key, chunk) in record::chunks(&hash, bytes) {
            let r = record::decode(key.as_bytes(), Some(chunk))
                .unwrap()
                .unwrap();
            state.apply(r);
        }
        state.apply(ControlRecord::Deployment(Deployment {
            stage: stage.into(),
            role,
            hash: Some(hash.clone()),
            size: bytes.len() as u64,
            chunks: record::chunk_count(bytes.len()),
            by: "t".into(),
            at_ms,
            source: "x.wasm".into(),
        }));
        hash
    }

    #[test]
    fn the_last_deployment_of_a_role_is_current_and_put_together() {
        let mut s = ControlState::new();
        let v1 = vec![1u8; CHUNK_BYTES * 2 + 10];
        let v2 = vec![2u8; 100];
        deploy(&mut s, "count", Role::Live, &v1, 1);
        let h2 = deploy(&mut s, "count", Role::Live, &v2, 2);
        deploy(&mut s, "count", Role::Candidate, &v1, 3);
        let live = s.current("count", Role::Live).unwrap();
        assert_eq!(live.hash.as_deref(), Some(h2.as_str()));
        assert_eq!(s.component(live).unwrap(), v2);
        let candidate = s.current("count", Role::Candidate).unwrap();
        assert_eq!(s.component(candidate).unwrap(), v1);
        assert!(s.current("parse", Role::Live).is_none());
        assert_eq!(s.find("count", &h2[..8]).unwrap().at_ms, 2);
        assert!(s.find("count", &h2[..4]).is_none(), "too short a prefix");

        // A withdrawn candidate.
        s.apply(ControlRecord::Deployment(Deployment {
            hash: None,
            at_ms: 4,
            ..candidate.clone()
        }));
        assert!(s.current("count", Role::Candidate).is_none());
        // Chunks that arrived before their deployment are kept.
        let next = vec![3u8; 10];
        let next_hash = blake3::hash(&next).to_hex().to_string();
        s.apply(ControlRecord::Chunk {
            hash: next_hash.clone(),
            index: 0,
            bytes: next,
        });
        s.drop_unused_chunks(&["count".into()]);
        assert!(s.component(s.current("count", Role::Live).unwrap()).is_ok());
        assert!(s.chunks.contains_key(&next_hash));
        assert_eq!(s.chunks.len(), 2, "v1's chunks are gone");
    }

    #[test]
    fn missing_or_altered_chunks_are_refused() {
        let mut s = ControlState::new();
        let bytes = vec![7u8; CHUNK_BYTES + 1];
        let hash = deploy(&mut s, "count", Role::Live, &bytes, 1);
        let d = s.current("count", Role::Live).unwrap().clone();
        s.apply(ControlRecord::Chunk {
            hash: hash.clone(),
            index: 1,
            bytes: vec![8u8],
        });
        let e = s.component(&d).unwrap_err();
        assert!(
            matches!(e, AssemblyError::Hash { size, .. } if size == CHUNK_BYTES + 1),
            "{e}"
        );

        let lost = Deployment { chunks: 3, ..d };
        assert_eq!(
            s.component(&lost).unwrap_err().to_string(),
            format!("component {hash}: 2 of its 3 chunks are in the control topic")
        );
    }
}
