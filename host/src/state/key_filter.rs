//! [`KeyFilter`]: which keys the durable store may hold, so that a read of
//! a key it has never held costs no lookup.
//!
//! A processor that sees a key for the first time (a new customer, a new
//! session, every record of `count` over distinct keys) reads state that is
//! not there. The store would walk its write buffer's map, then its file's
//! B-tree from the root to a leaf, to find nothing: the largest cost of
//! such a read. A Bloom filter over the store's keys answers "not there"
//! for all but about 1 % of those keys, mostly with one or two bit probes, as
//! RocksDB's per-file filters do for Kafka Streams' stores.
//!
//! The filter holds every key written since it was built (a deleted key
//! stays in it until the next build, which only costs a lookup). It is
//! sized for a number of keys, and built again from the file, twice as
//! large, when more keys went in; the builds scan the file, about twice its
//! final number of keys in all. Its memory is bounded: past
//! [`KeyFilter::fits`] the store goes without one and looks every key up.

use fastbloom::BloomFilter;

/// Bits set per key. Each is a probe of a random word of the filter, so a
/// cache miss on a large one: four probes at [`KeyFilter::BITS_PER_KEY`]
/// let about 1.2 % of absent keys through, where the seven that would be
/// optimal for that size let 0.8 % through at almost twice the misses.
const HASHES: u32 = 4;
/// Keys a new filter is sized for (20 KiB).
const FIRST_CAPACITY: usize = 1 << 14;

/// A Bloom filter over the keys of a store.
pub struct KeyFilter {
    bloom: BloomFilter<foldhash::fast::RandomState>,
    /// Keys the filter was sized for.
    capacity: usize,
    /// Keys inserted since it was built, counting those it was built with
    /// and not those it held already.
    items: usize,
}

impl KeyFilter {
    /// Bits per key: with [`HASHES`] probes, `(1 - e^(-4/10))^4`, about
    /// 1.2 % of absent keys pass.
    pub const BITS_PER_KEY: usize = 10;

    /// An empty filter for about `keys` keys, at least [`FIRST_CAPACITY`].
    /// Its hash is seeded at random, so that keys cannot be chosen to
    /// collide.
    pub fn with_capacity(keys: usize) -> KeyFilter {
        let capacity = keys.max(FIRST_CAPACITY);
        KeyFilter {
            bloom: BloomFilter::with_num_bits(capacity * Self::BITS_PER_KEY)
                .hasher(foldhash::fast::RandomState::default())
                .hashes(HASHES),
            capacity,
            items: 0,
        }
    }

    /// Whether a filter for `keys` keys fits in `bytes` of memory.
    pub fn fits(keys: usize, bytes: usize) -> bool {
        keys.max(FIRST_CAPACITY).saturating_mul(Self::BITS_PER_KEY) <= bytes.saturating_mul(8)
    }

    /// Records `key` as possibly in the store.
    #[inline]
    pub fn insert(&mut self, key: &[u8]) {
        if !self.bloom.insert(key) {
            self.items += 1;
        }
    }

    /// False when `key` is certainly not in the store.
    #[inline]
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.bloom.contains(key)
    }

    /// Whether more keys went in than the filter was sized for, so that
    /// its false positives climb fast: time to build it
    /// again, larger.
    pub fn is_full(&self) -> bool {
        self.items > self.capacity
    }

    /// Bytes of its bits.
    pub fn bytes(&self) -> usize {
        self.bloom.num_bits() / 8
    }

    /// The hash of `key` (tests: filters are seeded apart).
    #[cfg(test)]
    fn hash(&self, key: &[u8]) -> u64 {
        self.bloom.source_hash(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Vec<u8> {
        format!("key-{n:012}").into_bytes()
    }

    #[test]
    fn every_inserted_key_may_be_present_and_most_others_are_not() {
        let mut f = KeyFilter::with_capacity(10_000);
        assert_eq!(f.capacity, FIRST_CAPACITY, "never below the first size");
        for n in 0..FIRST_CAPACITY {
            f.insert(&key(n));
        }
        assert!((0..FIRST_CAPACITY).all(|n| f.may_contain(&key(n))));
        let passed = (FIRST_CAPACITY..FIRST_CAPACITY + 100_000)
            .filter(|&n| f.may_contain(&key(n)))
            .count();
        // 1.2 % expected; 2 % is far outside the binomial spread.
        assert!(passed < 2_000, "{passed} of 100,000 absent keys passed");
        assert!(!f.is_full());
        // Keys it seemed to hold already do not count (a key inserted
        // again, a false positive): it fills a little past its capacity.
        for _ in 0..FIRST_CAPACITY {
            f.insert(&key(0));
        }
        assert!(!f.is_full(), "a key inserted again does not count");
        let mut n = FIRST_CAPACITY;
        while !f.is_full() {
            f.insert(&key(n));
            n += 1;
        }
        assert!(n < FIRST_CAPACITY + 1_000, "full after {n} keys");
    }

    #[test]
    fn size_follows_the_keys_and_the_budget_bounds_it() {
        let f = KeyFilter::with_capacity(1_000_000);
        // 10 bits per key, rounded up to whole words by the crate.
        assert!((1_250_000..1_260_000).contains(&f.bytes()), "{}", f.bytes());
        assert!(KeyFilter::fits(1_000_000, 1_250_000));
        assert!(!KeyFilter::fits(1_000_000, 1_240_000));
        assert!(
            !KeyFilter::fits(1, 16 << 10),
            "a filter has a smallest size"
        );
        assert_ne!(f.hash(b"a"), KeyFilter::with_capacity(1).hash(b"a"));
    }
}
