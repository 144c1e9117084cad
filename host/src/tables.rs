//! Read-only reference tables that processors look up by name and key.
//!
//! [`MemoryTables`] holds tables loaded up front (from files for `partita
//! test`, or materialized from compacted topics by the runtime). It is shared
//! by every instance of a stage, so lookups take `&self`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Lookup by table name and key.
pub trait Tables: Send + Sync + 'static {
    /// The current value of `key` in `table`, if both exist.
    fn lookup(&self, table: &str, key: &[u8]) -> Option<Vec<u8>>;
}

/// One table: key → value.
pub type Table = HashMap<Vec<u8>, Vec<u8>>;

/// Tables kept in memory, updatable while instances read them.
#[derive(Debug, Default, Clone)]
pub struct MemoryTables {
    tables: Arc<RwLock<HashMap<String, Table>>>,
}

impl MemoryTables {
    /// No tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole table `name`.
    pub fn insert_table(&self, name: &str, table: Table) {
        self.write().insert(name.to_string(), table);
    }

    /// Sets (`Some`) or deletes (`None`) one entry of table `name`.
    pub fn upsert(&self, name: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        let mut tables = self.write();
        let t = tables.entry(name.to_string()).or_default();
        match value {
            Some(v) => t.insert(key, v),
            None => t.remove(&key),
        };
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Table>> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Tables for MemoryTables {
    fn lookup(&self, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.get(table)?.get(key).cloned()
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
}
