//! [`Key`]: a state key as the in-memory ordered maps hold it.
//!
//! A map of a million keys is a tree of nodes, and a lookup compares the
//! key sought with a few dozen keys on its way down. Held as `Vec<u8>`,
//! each of those keys sits in an allocation of its own, so each comparison
//! follows a pointer to memory that is rarely in cache. Keys of up to 24
//! bytes (what processors typically use: an id, a word, a composite of a
//! few fields) are kept inside the node instead; longer ones spill to the
//! heap as before. The order is the bytes' order, as for `[u8]`.

use smallvec::SmallVec;

/// Bytes kept inside the map's node before a key spills to the heap.
const INLINE: usize = 24;

/// A state key: its bytes, inline up to [`INLINE`] bytes. Borrows as
/// `[u8]`, so maps keyed by it are looked up and ranged with byte slices.
pub type Key = SmallVec<[u8; INLINE]>;

/// The key holding `bytes`.
#[inline]
pub fn to_key(bytes: &[u8]) -> Key {
    SmallVec::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn keys_inline_or_spilled_sort_as_their_bytes() {
        let words: [&[u8]; 5] = [b"b", b"", &[b'a'; 40], b"a", &[b'a'; 24]];
        let map: BTreeMap<Key, usize> = words.iter().map(|w| (to_key(w), w.len())).collect();
        let mut sorted = words.to_vec();
        sorted.sort();
        let in_map: Vec<&[u8]> = map.keys().map(|k| &k[..]).collect();
        assert_eq!(in_map, sorted);
        assert_eq!(
            map.get(&[b'a'; 40][..]),
            Some(&40),
            "a spilled key is found"
        );
        assert!(!to_key(&[b'a'; 24]).spilled() && to_key(&[b'a'; 25]).spilled());
    }
}
