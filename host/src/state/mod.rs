//! Keyed state of one (stage, partition), behind a trait the engine calls.
//!
//! The engine buffers a call's writes in a [`ChangeSet`] and hands them to
//! the store only when the call succeeds, so a trapped batch leaves state as
//! it was.
//!
//! - [`changes`]: [`ChangeSet`], writes in the order made, in one buffer.
//! - [`key`]: [`Key`], a key as the in-memory ordered maps hold it.
//! - [`key_filter`]: [`key_filter::KeyFilter`], a Bloom filter over the
//!   keys of a durable store's file.
//! - [`memory`]: [`MemoryState`], state in an ordered in-memory map.
//! - [`disk`]: [`DiskState`], the durable store of `partita run`: a redb
//!   file per (stage, partition) behind a write-back buffer, recording the
//!   changelog offset it reflects (its checkpoint).
//! - [`local`]: where each partition's store lives (`<dir>/<group>/<stage>/
//!   <partition>/`), the clean-shutdown marker, and when a store must be
//!   wiped before a restore.
//!
//! The changelog topic that makes the state durable across hosts is in
//! [`crate::kafka::changelog`].

pub mod changes;
pub mod disk;
pub mod key;
pub mod key_filter;
pub mod local;
pub mod memory;
mod overlay;

pub use changes::ChangeSet;
pub use disk::{DiskOptions, DiskState};
pub use key::Key;
pub use local::{LocalStores, OpenedStore};
pub use memory::MemoryState;
pub use overlay::{Overlay, scan_merged};

/// A key/value store scoped to one stage and partition.
pub trait StateStore: Send + 'static {
    /// The value under `key`.
    fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>>;

    /// Up to `limit` entries with `start <= key < end` (unbounded when `end`
    /// is `None`), in ascending key order.
    fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Applies the writes of one successful call, all or nothing, in
    /// order (a key's last write wins).
    fn commit(&mut self, changes: &ChangeSet) -> anyhow::Result<()>;

    /// Number of keys stored, for metrics (a durable store may report the
    /// count of its last flush).
    fn len(&self) -> usize;

    /// True when no key is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that every changelog record up to `offset` is reflected by
    /// the store (its data was committed before those records were
    /// acknowledged). A durable store keeps it atomically with its data; a
    /// store without a changelog ignores it.
    fn set_checkpoint(&mut self, offset: i64) -> anyhow::Result<()> {
        let _ = offset;
        Ok(())
    }

    /// The changelog offset the store reflects, if it has one.
    fn checkpoint(&self) -> Option<i64> {
        None
    }

    /// Makes everything durable and marks the store as closed cleanly
    /// (after the partition's last commit, on revoke or stop).
    fn close(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
