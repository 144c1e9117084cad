//! [`MemoryState`]: state in an ordered in-memory map (used by
//! `partita test`, by the engine's embedders and in tests).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use super::key::{Key, to_key};
use super::{ChangeSet, StateStore};

/// State kept in an ordered in-memory map.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    map: BTreeMap<Key, Vec<u8>>,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StateStore for MemoryState {
    fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.map.get(&to_key(key)).cloned())
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        if end.is_some_and(|e| e <= start) {
            return Ok(Vec::new());
        }
        let upper = end.map_or(Unbounded, |e| Excluded(to_key(e)));
        Ok(self
            .map
            .range((Included(to_key(start)), upper))
            .take(limit)
            .map(|(k, v)| (k.to_vec(), v.clone()))
            .collect())
    }

    fn commit(&mut self, changes: &ChangeSet) -> anyhow::Result<()> {
        for (k, v) in changes.iter() {
            // One walk down the tree per write: a short key is made without
            // allocating, so the entry costs no more than a lookup.
            match v {
                Some(v) => match self.map.entry(to_key(k)) {
                    // An update reuses the value's allocation.
                    Entry::Occupied(mut e) => {
                        let slot = e.get_mut();
                        slot.clear();
                        slot.extend_from_slice(v);
                    }
                    Entry::Vacant(e) => {
                        e.insert(v.to_vec());
                    }
                },
                None => {
                    self.map.remove(&to_key(k));
                }
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_and_scan_in_key_order() {
        let mut s = MemoryState::new();
        let mut c = ChangeSet::new();
        for k in ["b", "a", "d", "c"] {
            c.put(k.as_bytes(), k.to_uppercase().as_bytes());
        }
        s.commit(&c).unwrap();
        let keys: Vec<_> = s
            .scan(b"b", Some(b"d"), 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(s.scan(b"a", None, 2).unwrap().len(), 2);
        assert!(s.scan(b"d", Some(b"a"), 10).unwrap().is_empty());
        let mut del = ChangeSet::new();
        del.delete(b"a");
        s.commit(&del).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"B".to_vec()));
        assert_eq!(s.len(), 3);
        // A key written twice in one change set ends with its last write.
        let twice: ChangeSet = [("b", Some("1")), ("b", Some("2")), ("c", None)]
            .into_iter()
            .collect();
        s.commit(&twice).unwrap();
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.get(b"c").unwrap(), None);
    }
}
