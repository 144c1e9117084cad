//! Read-only reference tables that processors look up by name and key.
//!
//! A [`SharedTable`] is one table (key → value) behind a lock: the runtime
//! keeps one per table topic, updated by a background reader
//! (`kafka::table_feeds`), and hands the same one to every stage and partition
//! that uses the topic. [`MemoryTables`] is a stage's view: table name →
//! table. `partita test` fills one from files.
//!
//! - [`connect`]: unwrapping Kafka Connect's JSON envelope.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub mod connect;

/// Lookup by table name and key.
pub trait Tables: Send + Sync + 'static {
    /// The current value of `key` in `table`, if both exist.
    fn lookup(&self, table: &str, key: &[u8]) -> Option<Vec<u8>>;
}

/// One table: key → value.
pub type Table = HashMap<Vec<u8>, Vec<u8>>;

/// One table that several readers and one writer share.
#[derive(Debug, Default, Clone)]
pub struct SharedTable {
    entries: Arc<RwLock<Table>>,
}

impl SharedTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding `table`.
    pub fn from_table(table: Table) -> Self {
        SharedTable {
            entries: Arc::new(RwLock::new(table)),
        }
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.read().get(key).cloned()
    }

    /// Sets (`Some`) or deletes (`None`) the entry of `key`.
    pub fn apply(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let mut t = self.write();
        match value {
            Some(v) => t.insert(key, v),
            None => t.remove(&key),
        };
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when the table has no key.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tables by name, updatable while instances read them.
#[derive(Debug, Default, Clone)]
pub struct MemoryTables {
    tables: Arc<RwLock<HashMap<String, SharedTable>>>,
}

impl MemoryTables {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole table `name`.
    pub fn insert_table(&self, name: &str, table: Table) {
        self.share(name, SharedTable::from_table(table));
    }

    /// Makes `table` visible as `name` (the same table may be shared under
    /// several names and by several stages).
    pub fn share(&self, name: &str, table: SharedTable) {
        self.write().insert(name.to_string(), table);
    }

    /// Sets (`Some`) or deletes (`None`) one entry of table `name`.
    pub fn upsert(&self, name: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        let table = self.write().entry(name.to_string()).or_default().clone();
        table.apply(key, value);
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, SharedTable>> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Tables for MemoryTables {
    fn lookup(&self, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.get(table)?.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_and_tombstone() {
        let t = MemoryTables::new();
        t.upsert("rates", b"EUR".to_vec(), Some(b"1.1".to_vec()));
        assert_eq!(t.lookup("rates", b"EUR"), Some(b"1.1".to_vec()));
        t.upsert("rates", b"EUR".to_vec(), None);
        assert_eq!(t.lookup("rates", b"EUR"), None);
        assert_eq!(t.lookup("missing", b"EUR"), None);
    }

    #[test]
    fn a_shared_table_is_seen_under_every_name_and_by_every_stage() {
        let shared = SharedTable::new();
        let a = MemoryTables::new();
        let b = MemoryTables::new();
        a.share("customers", shared.clone());
        b.share("clients", shared.clone());
        shared.apply(b"C1".to_vec(), Some(b"Ada".to_vec()));
        assert_eq!(a.lookup("customers", b"C1"), Some(b"Ada".to_vec()));
        assert_eq!(b.lookup("clients", b"C1"), Some(b"Ada".to_vec()));
        assert_eq!(shared.len(), 1);
        shared.apply(b"C1".to_vec(), None);
        assert_eq!(a.lookup("customers", b"C1"), None);
        assert!(shared.is_empty());
    }
}
