//! [`Key`]: a state key as the in-memory ordered maps hold it.
//!
//! A map of a million keys is a tree of nodes, and a lookup compares the
//! key sought with a few dozen keys on its way down. Two things make those
//! comparisons cheap:
//!
//! - Keys of up to 24 bytes (what processors typically use: an id, a word,
//!   a composite of a few fields) are kept inside the node, so a comparison
//!   reads bytes already at hand instead of following a pointer to an
//!   allocation of their own; longer ones spill to the heap.
//! - A comparison reads eight bytes at a time as one big-endian number,
//!   inline, where the order of byte slices calls `memcmp` for each one.
//!
//! The order is the bytes' order, as for `[u8]`. Maps keyed by [`Key`] are
//! looked up and ranged with a `Key` ([`to_key`] makes one without
//! allocating for a short key), so that every comparison takes the fast
//! path.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

/// Bytes kept inside the map's node before a key spills to the heap.
const INLINE: usize = 24;

/// A state key: its bytes, inline up to [`INLINE`] bytes, ordered as the
/// bytes are.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Key(SmallVec<[u8; INLINE]>);

/// The key holding `bytes`.
#[inline]
pub fn to_key(bytes: &[u8]) -> Key {
    Key(SmallVec::from_slice(bytes))
}

impl Key {
    /// The key's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// True when the key's bytes are on the heap (longer than
    /// [`INLINE`]).
    pub fn spilled(&self) -> bool {
        self.0.spilled()
    }
}

impl Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Ord for Key {
    #[inline]
    fn cmp(&self, other: &Key) -> Ordering {
        compare(&self.0, &other.0)
    }
}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// The order of `a` and `b` as byte slices, eight bytes at a time.
#[inline]
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let (a_words, a_tail) = a[..common].as_chunks::<8>();
    let (b_words, b_tail) = b[..common].as_chunks::<8>();
    for (x, y) in a_words.iter().zip(b_words) {
        if x != y {
            // Big-endian: the first byte that differs decides.
            return u64::from_be_bytes(*x).cmp(&u64::from_be_bytes(*y));
        }
    }
    for (x, y) in a_tail.iter().zip(b_tail) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
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
        let in_map: Vec<&[u8]> = map.keys().map(|k| k.as_slice()).collect();
        assert_eq!(in_map, sorted);
        assert_eq!(
            map.get(&to_key(&[b'a'; 40])),
            Some(&40),
            "a spilled key is found"
        );
        assert!(!to_key(&[b'a'; 24]).spilled() && to_key(&[b'a'; 25]).spilled());
    }

    #[test]
    fn keys_compare_as_their_bytes() {
        // Lengths on both sides of a word, prefixes of each other, and bytes
        // with the high bit set (an order on signed bytes would differ).
        let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..20 {
            for _ in 0..12 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Few distinct byte values, so that long shared prefixes
                // are common.
                let k: Vec<u8> = (0..len)
                    .map(|i| [0x00, 0x61, 0x7f, 0x80, 0xff][(seed >> (i * 3 % 60)) as usize % 5])
                    .collect();
                keys.push(k);
            }
        }
        let base = keys.clone();
        for k in &base {
            for extra in [0x00, 0x80] {
                let mut longer = k.clone();
                longer.push(extra);
                keys.push(longer);
            }
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    to_key(a).cmp(&to_key(b)),
                    a.as_slice().cmp(b.as_slice()),
                    "{a:?} against {b:?}"
                );
            }
        }
    }
}
