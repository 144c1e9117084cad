//! Scans over a store with a set of pending writes laid over it: what a
//! processor's `state.scan` sees during a call (the engine), and what a
//! disk store sees of its write buffer.

use std::collections::BTreeMap;

use crate::state::key::to_key;
use crate::state::{Key, StateStore};

/// Writes laid over a store, the last one per key, in key order:
/// `Some(value)` replaces, `None` deletes.
pub type Overlay = BTreeMap<Key, Option<Vec<u8>>>;

/// Up to `limit` entries of `start <= key < end` as the call sees them: the
/// store's entries overlaid with the call's pending writes, in key order.
pub fn scan_merged(
    store: &mut dyn StateStore,
    pending: &Overlay,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    if end.is_some_and(|e| e <= start) || limit == 0 {
        return Ok(Vec::new());
    }
    let overlay: Vec<(&Key, &Option<Vec<u8>>)> = pending
        .range((
            Included(to_key(start)),
            end.map_or(Unbounded, |e| Excluded(to_key(e))),
        ))
        .collect();
    // Each pending write hides or replaces at most one stored entry, so this
    // many stored entries hold at least `limit` visible ones (or all of them).
    let stored = store.scan(start, end, limit.saturating_add(overlay.len()))?;
    let mut out = Vec::with_capacity(limit.min(stored.len() + overlay.len()));
    let mut s = stored.into_iter().peekable();
    let mut p = overlay.into_iter().peekable();
    while out.len() < limit {
        let take_pending = match (s.peek(), p.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((sk, _)), Some((pk, _))) => {
                if sk.as_slice() == pk.as_slice() {
                    s.next(); // replaced or deleted by the pending write
                    true
                } else {
                    pk.as_slice() < sk.as_slice()
                }
            }
        };
        if take_pending {
            if let Some((k, Some(v))) = p.next() {
                out.push((k.to_vec(), v.clone()));
            }
        } else if let Some(kv) = s.next() {
            out.push(kv);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ChangeSet, MemoryState};

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn scan_overlays_pending_writes_in_key_order() {
        let mut store = MemoryState::new();
        let mut base = ChangeSet::new();
        for k in ["a", "b", "c", "d", "e"] {
            base.put(k.as_bytes(), k.to_uppercase().as_bytes());
        }
        store.commit(&base).unwrap();
        let mut pending = Overlay::new();
        pending.insert(to_key(b"a"), None); // deleted
        pending.insert(to_key(b"b"), None); // deleted
        pending.insert(to_key(b"c"), Some(b"c2".to_vec())); // replaced
        pending.insert(to_key(b"bb"), Some(b"new".to_vec())); // added

        let all = scan_merged(&mut store, &pending, b"", None, 100).unwrap();
        assert_eq!(
            all,
            vec![kv("bb", "new"), kv("c", "c2"), kv("d", "D"), kv("e", "E")]
        );
        // The limit counts visible entries, even when deletes hide the first.
        let two = scan_merged(&mut store, &pending, b"a", None, 2).unwrap();
        assert_eq!(two, vec![kv("bb", "new"), kv("c", "c2")]);
        let bounded = scan_merged(&mut store, &pending, b"b", Some(b"d"), 10).unwrap();
        assert_eq!(bounded, vec![kv("bb", "new"), kv("c", "c2")]);
        assert!(
            scan_merged(&mut store, &pending, b"d", Some(b"a"), 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            scan_merged(&mut store, &pending, b"a", None, 0)
                .unwrap()
                .is_empty()
        );
    }
}
