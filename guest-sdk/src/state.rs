//! Keyed state of this stage and partition, owned by the host, with a cache
//! in the instance.
//!
//! The host keeps the state durable (a local store mirrored to a changelog
//! topic) and restores it after a crash, a rebalance or a hot swap. Every
//! call into the host costs about 140 ns, so the SDK keeps a cache that lives
//! as long as the instance:
//!
//! - reads ([`get`], [`with`], [`get_as`], the read of [`update`]) are served
//!   from the cache; a miss asks the host once and remembers the answer,
//!   including "no value";
//! - writes ([`put`], [`delete`], [`update`], [`put_as`]) go to the cache
//!   and are sent to the host in **one** `write-batch` call when the
//!   `process` or `on-timer` call returns (several writes to one key in a
//!   call send only the last);
//! - [`scan`] sends the pending writes first, then asks the host (scans are
//!   not cached).
//!
//! This is coherent because the host lets only this instance write this
//! partition's state while it runs, and after any failure or swap it starts
//! a fresh instance (with an empty cache). If a call traps, its writes never
//! reach the host, as the WIT contract requires.
//!
//! The cache is bounded ([`CacheLimits`], set with [`set_cache_limits`],
//! typically in `init`). When the calls end with more entries or bytes than
//! allowed, clean entries are evicted down to three quarters of the limit,
//! entries not used in the last call first. Entries written in the current
//! call are never evicted before they are sent, so within one call the cache
//! may grow past the limit by that call's writes.
//!
//! The functions panic if called from inside the closure given to [`with`]
//! or [`update`].

use std::cell::RefCell;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use indexmap::IndexMap;
use smallvec::SmallVec;

use partita_wire::WritesWriter;

use crate::host;

/// Estimated bookkeeping bytes per cached entry, on top of key and value.
const ENTRY_OVERHEAD: usize = 64;

/// Bounds of the state cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most entries kept between calls (a remembered "no value" counts).
    pub max_entries: usize,
    /// Most bytes kept between calls: keys, values and about 64 bytes of
    /// bookkeeping per entry.
    pub max_bytes: usize,
}

impl Default for CacheLimits {
    /// 100,000 entries and 16 MiB.
    fn default() -> Self {
        CacheLimits {
            max_entries: 100_000,
            max_bytes: 16 << 20,
        }
    }
}

/// Size of the cache, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes held, as counted against [`CacheLimits::max_bytes`].
    pub bytes: usize,
    /// Entries written in the current call and not yet sent to the host.
    pub pending: usize,
}

struct Slot {
    value: Option<Vec<u8>>,
    dirty: bool,
    /// The call in which the entry was last used.
    used: u32,
}

fn size(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

/// A cached key: up to 32 bytes live inside the map's entry, so a lookup
/// compares bytes already at hand instead of following a pointer (record
/// keys are usually that short).
type Key = SmallVec<[u8; 32]>;

/// The cache's map. Entries sit in one vector in insertion order, so the
/// writes of a call are remembered by position and sent without a second
/// lookup. foldhash hashes a 16-byte key several times faster than the
/// standard SipHash; its per-instance seed comes from the host's random
/// source, so that record keys cannot be chosen to collide.
type Map = IndexMap<Key, Slot, SeedableRandomState>;

fn new_map() -> Map {
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    let random = RandomState::new();
    let shared = SHARED.get_or_init(|| SharedSeed::from_u64(random.hash_one(1u64)));
    IndexMap::with_hasher(SeedableRandomState::with_seed(
        random.hash_one(0u64),
        shared,
    ))
}

struct Cache {
    map: Map,
    /// Positions in `map` of the entries written in the current call, each
    /// once, in first-write order. Entries move only when the cache is
    /// trimmed, after the writes are sent.
    dirty: Vec<usize>,
    bytes: usize,
    limits: CacheLimits,
    /// Number of the current call.
    call: u32,
}

impl Cache {
    fn new() -> Self {
        Cache {
            map: new_map(),
            dirty: Vec::new(),
            bytes: 0,
            limits: CacheLimits::default(),
            call: 0,
        }
    }

    /// Position of `key`'s entry, loading it from the host on a miss.
    fn load(&mut self, key: &[u8]) -> usize {
        if let Some(i) = self.map.get_index_of(key) {
            return i;
        }
        let value = host::state_get(key);
        self.bytes += size(key, &value);
        let slot = Slot {
            value,
            dirty: false,
            used: self.call,
        };
        self.map.insert_full(Key::from_slice(key), slot).0
    }

    /// Marks the entry at `i` as used now, and as written if `write`.
    fn touch(&mut self, i: usize, write: bool) -> &mut Slot {
        let slot = &mut self.map[i];
        slot.used = self.call;
        if write && !slot.dirty {
            slot.dirty = true;
            self.dirty.push(i);
        }
        slot
    }

    /// Runs `f` on the slot of `key`, loading it from the host on a miss.
    /// `write` marks the slot dirty.
    fn access<R>(
        &mut self,
        key: &[u8],
        write: bool,
        f: impl FnOnce(&mut Option<Vec<u8>>) -> R,
    ) -> R {
        let i = self.load(key);
        let slot = self.touch(i, write);
        let before = size(key, &slot.value);
        let r = f(&mut slot.value);
        let after = size(key, &slot.value);
        self.bytes = self.bytes + after - before;
        r
    }

    /// Sets `key` without reading it first.
    fn set(&mut self, key: &[u8], value: Option<&[u8]>) {
        let value = value.map(<[u8]>::to_vec);
        let added = size(key, &value);
        let i = match self.map.get_index_of(key) {
            Some(i) => {
                self.bytes -= size(key, &self.map[i].value);
                self.map[i].value = value;
                i
            }
            None => {
                let slot = Slot {
                    value,
                    dirty: false,
                    used: self.call,
                };
                self.map.insert_full(Key::from_slice(key), slot).0
            }
        };
        self.bytes += added;
        self.touch(i, true);
    }

    /// Sends the pending writes to the host in one call.
    fn write_back(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let mut writes = WritesWriter::default();
        for &i in &self.dirty {
            if let Some((key, slot)) = self.map.get_index_mut(i) {
                slot.dirty = false;
                match &slot.value {
                    Some(v) => writes.put(key, v),
                    None => writes.delete(key),
                }
            }
        }
        self.dirty.clear();
        if let Err(e) = host::state_write_batch(&writes.finish()) {
            panic!("the host refused this call's state writes: {e}");
        }
    }

    /// Ends a call: sends the writes, then trims the cache to its limits.
    fn end_call(&mut self) {
        self.write_back();
        self.evict();
        self.call = self.call.wrapping_add(1);
    }

    fn over(&self, entries: usize, bytes: usize) -> bool {
        entries > self.limits.max_entries || bytes > self.limits.max_bytes
    }

    fn evict(&mut self) {
        if !self.over(self.map.len(), self.bytes) {
            return;
        }
        let target = CacheLimits {
            max_entries: self.limits.max_entries - self.limits.max_entries / 4,
            max_bytes: self.limits.max_bytes - self.limits.max_bytes / 4,
        };
        let call = self.call;
        // First entries not used in this call, then any clean entry.
        for keep_recent in [true, false] {
            let (mut entries, mut bytes) = (self.map.len(), self.bytes);
            self.map.retain(|k, slot| {
                let over = entries > target.max_entries || bytes > target.max_bytes;
                if !over || slot.dirty || (keep_recent && slot.used == call) {
                    return true;
                }
                entries -= 1;
                bytes -= size(k, &slot.value);
                false
            });
            self.bytes = bytes;
            if entries <= target.max_entries && bytes <= target.max_bytes {
                break;
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new());
}

fn cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c
            .try_borrow_mut()
            .expect("partita_sdk::state functions must not be called inside a state::with or state::update closure");
        f(&mut c)
    })
}

/// Ends a `process` or `on-timer` call: one `write-batch` with its writes.
pub(crate) fn end_call() {
    cache(Cache::end_call);
}

/// Forgets the cache, as a fresh instance would have it (native tests).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset() {
    cache(|c| *c = Cache::new());
}

/// The value under `key`, if any (a copy; see [`with`] to read in place).
pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    with(key, |v| v.map(<[u8]>::to_vec))
}

/// Runs `f` on the value under `key` without copying it.
pub fn with<R>(key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    cache(|c| c.access(key, false, |v| f(v.as_deref())))
}

/// Stores `value` under `key`.
pub fn put(key: &[u8], value: &[u8]) {
    cache(|c| c.set(key, Some(value)));
}

/// Removes `key`.
pub fn delete(key: &[u8]) {
    cache(|c| c.set(key, None));
}

/// Reads and changes the value under `key` in place, with one cache lookup:
/// `f` gets the current value (`None` if absent) and may replace it, change
/// it or set it to `None` to delete the key. The key counts as written.
pub fn update<R>(key: &[u8], f: impl FnOnce(&mut Option<Vec<u8>>) -> R) -> R {
    cache(|c| c.access(key, true, f))
}

/// Up to `limit` entries with `start <= key < end` (no upper bound when
/// `end` is `None`), in ascending byte order of key, as stored by the host
/// after this call's pending writes.
pub fn scan(start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    cache(Cache::write_back);
    host::state_scan(start, end, limit)
}

/// Sets the cache's bounds; the new bounds apply from the end of the
/// current call.
pub fn set_cache_limits(limits: CacheLimits) {
    cache(|c| c.limits = limits);
}

/// The cache's current size.
pub fn cache_stats() -> CacheStats {
    cache(|c| CacheStats {
        entries: c.map.len(),
        bytes: c.bytes,
        pending: c.dirty.len(),
    })
}

/// A value stored in state with a fixed encoding, for [`get_as`] and
/// [`put_as`].
///
/// Numbers are stored as 8 (or 4) little-endian bytes, `String` as UTF-8,
/// `Vec<u8>` as is.
pub trait StateValue: Sized {
    /// Name of the type, for error messages.
    const NAME: &'static str;

    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads a value; `Err` says what is wrong with the bytes.
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

macro_rules! fixed_width {
    ($($t:ty),*) => {$(
        impl StateValue for $t {
            const NAME: &'static str = stringify!($t);

            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            fn decode(bytes: &[u8]) -> Result<Self, String> {
                let a = bytes.try_into().map_err(|_| {
                    format!("expected {} bytes, found {}", std::mem::size_of::<$t>(), bytes.len())
                })?;
                Ok(<$t>::from_le_bytes(a))
            }
        }
    )*};
}

fixed_width!(u64, i64, f64, u32, i32);

impl StateValue for String {
    const NAME: &'static str = "String";

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("invalid UTF-8 at offset {}", e.utf8_error().valid_up_to()))
    }
}

impl StateValue for Vec<u8> {
    const NAME: &'static str = "bytes";

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
}

/// A stored value that could not be read as the requested type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    key: Vec<u8>,
    ty: &'static str,
    problem: String,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state under key `{}` is not a valid {}: {}",
            String::from_utf8_lossy(&self.key),
            self.ty,
            self.problem
        )
    }
}

impl std::error::Error for StateError {}

/// The value under `key` decoded as `T`.
pub fn get_as<T: StateValue>(key: &[u8]) -> Result<Option<T>, StateError> {
    with(key, |v| v.map(T::decode).transpose()).map_err(|problem| StateError {
        key: key.to_vec(),
        ty: T::NAME,
        problem,
    })
}

/// Stores `value` under `key`, encoded as [`StateValue`] says.
pub fn put_as<T: StateValue>(key: &[u8], value: &T) {
    let mut bytes = Vec::new();
    value.encode(&mut bytes);
    put(key, &bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{FAKE, FakeHost, HostCalls};

    fn fresh() {
        FAKE.with_borrow_mut(|h| *h = FakeHost::default());
        reset();
    }

    fn calls() -> HostCalls {
        FAKE.with_borrow(|h| h.calls)
    }

    fn stored(key: &[u8]) -> Option<Vec<u8>> {
        FAKE.with_borrow(|h| h.state.get(key).cloned())
    }

    #[test]
    fn reads_hit_the_cache_and_misses_are_remembered() {
        fresh();
        FAKE.with_borrow_mut(|h| h.state.insert(b"a".to_vec(), b"1".to_vec()));
        assert_eq!(get(b"a"), Some(b"1".to_vec()));
        assert_eq!(get(b"a"), Some(b"1".to_vec()));
        assert_eq!(get(b"missing"), None);
        assert_eq!(get(b"missing"), None);
        end_call();
        assert_eq!(get(b"a"), Some(b"1".to_vec()));
        assert_eq!(calls().state_gets, 2);
    }

    #[test]
    fn writes_reach_the_host_once_per_call_and_only_at_its_end() {
        fresh();
        put(b"k", b"1");
        put(b"k", b"2");
        update(b"n", |v| *v = Some(b"x".to_vec()));
        delete(b"gone");
        assert_eq!(
            get(b"k"),
            Some(b"2".to_vec()),
            "reads see the call's own writes"
        );
        assert_eq!(stored(b"k"), None, "nothing is sent before the call ends");
        assert_eq!(cache_stats().pending, 3);
        end_call();
        assert_eq!(calls().state_write_batches, 1);
        assert_eq!(stored(b"k"), Some(b"2".to_vec()));
        assert_eq!(stored(b"n"), Some(b"x".to_vec()));
        assert_eq!(cache_stats().pending, 0);
        end_call();
        assert_eq!(
            calls().state_write_batches,
            1,
            "a call without writes sends nothing"
        );
        // `put` of an unknown key does not read it; `update` does.
        assert_eq!(calls().state_gets, 1);
    }

    #[test]
    fn delete_reaches_the_host() {
        fresh();
        FAKE.with_borrow_mut(|h| h.state.insert(b"a".to_vec(), b"1".to_vec()));
        delete(b"a");
        assert_eq!(get(b"a"), None);
        end_call();
        assert_eq!(stored(b"a"), None);
    }

    #[test]
    fn scan_sends_pending_writes_first() {
        fresh();
        put(b"a1", b"x");
        put(b"a2", b"y");
        put(b"b1", b"z");
        let got = scan(b"a", Some(b"b"), 10);
        assert_eq!(
            got,
            vec![
                (b"a1".to_vec(), b"x".to_vec()),
                (b"a2".to_vec(), b"y".to_vec())
            ]
        );
        assert_eq!(scan(b"a", None, 1).len(), 1);
        assert_eq!(calls().state_write_batches, 1);
    }

    #[test]
    fn eviction_keeps_the_cache_within_its_limits() {
        fresh();
        set_cache_limits(CacheLimits {
            max_entries: 8,
            max_bytes: 1 << 20,
        });
        for i in 0..20u8 {
            put(&[i], &[i]);
        }
        assert_eq!(cache_stats().entries, 20, "pending writes are not evicted");
        end_call();
        let s = cache_stats();
        assert_eq!(s.entries, 6, "evicted down to three quarters of the limit");
        assert_eq!(s.bytes, 6 * (2 + ENTRY_OVERHEAD));
        // Evicted entries are read back from the host.
        for i in 0..20u8 {
            assert_eq!(get(&[i]), Some(vec![i]));
        }
        assert_eq!(calls().state_gets, 14);
    }

    #[test]
    fn eviction_prefers_entries_not_used_in_the_last_call() {
        fresh();
        set_cache_limits(CacheLimits {
            max_entries: 5,
            max_bytes: usize::MAX,
        });
        for i in 0..5u8 {
            put(&[i], &[i]);
        }
        end_call();
        assert_eq!(cache_stats().entries, 5, "at the limit, nothing is evicted");
        // The next call uses 2, 3 and 4 and adds 5: six entries, trimmed to four.
        let _ = get(&[2]);
        let _ = get(&[3]);
        put(&[4], &[40]);
        put(&[5], &[5]);
        end_call();
        assert_eq!(cache_stats().entries, 4);
        let gets = calls().state_gets;
        for i in 2..6u8 {
            let _ = get(&[i]);
        }
        assert_eq!(
            calls().state_gets,
            gets,
            "the entries used in the last call stayed"
        );
    }

    #[test]
    fn writes_after_an_eviction_reach_the_host_under_their_own_keys() {
        fresh();
        set_cache_limits(CacheLimits {
            max_entries: 4,
            max_bytes: usize::MAX,
        });
        // Keys short enough to sit in the entry and long ones held apart.
        let key = |i: u8| {
            let len = if i.is_multiple_of(2) { 3 } else { 40 };
            vec![i; len]
        };
        for i in 0..10u8 {
            put(&key(i), &[i]);
        }
        end_call();
        assert_eq!(cache_stats().entries, 3, "the eviction moved entries");
        // Entries kept and entries read back, written in one call.
        for i in (0..10u8).rev() {
            update(&key(i), |v| v.as_mut().unwrap().push(i));
        }
        end_call();
        for i in 0..10u8 {
            assert_eq!(stored(&key(i)), Some(vec![i, i]), "key {i}");
        }
        assert_eq!(calls().state_write_batches, 2);
    }

    #[test]
    fn byte_limit_counts_values() {
        fresh();
        set_cache_limits(CacheLimits {
            max_entries: usize::MAX,
            max_bytes: 1000,
        });
        put(b"big", &[0u8; 900]);
        put(b"small", b"s");
        assert_eq!(cache_stats().bytes, 3 + 900 + 5 + 1 + 2 * ENTRY_OVERHEAD);
        end_call();
        assert!(cache_stats().bytes <= 750);
        update(b"small", |v| *v = Some(vec![1; 10]));
        assert_eq!(cache_stats().bytes, 5 + 10 + ENTRY_OVERHEAD);
    }

    #[test]
    fn typed_values_round_trip_and_report_bad_bytes() {
        fresh();
        put_as(b"n", &42u64);
        put_as(b"f", &1.5f64);
        put_as(b"s", &"hé".to_string());
        assert_eq!(get_as::<u64>(b"n"), Ok(Some(42)));
        assert_eq!(get_as::<f64>(b"f"), Ok(Some(1.5)));
        assert_eq!(get_as::<String>(b"s"), Ok(Some("hé".to_string())));
        assert_eq!(get_as::<i64>(b"none"), Ok(None));
        put(b"short", b"abc");
        assert_eq!(
            get_as::<u64>(b"short").unwrap_err().to_string(),
            "state under key `short` is not a valid u64: expected 8 bytes, found 3"
        );
        put(b"bad", &[0xff]);
        assert_eq!(
            get_as::<String>(b"bad").unwrap_err().to_string(),
            "state under key `bad` is not a valid String: invalid UTF-8 at offset 0"
        );
    }

    #[test]
    #[should_panic(expected = "must not be called inside a state::with or state::update closure")]
    fn nested_calls_panic_with_a_clear_message() {
        fresh();
        with(b"a", |_| get(b"b"));
    }
}
