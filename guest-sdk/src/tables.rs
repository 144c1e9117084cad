//! Read-only reference tables that the host materializes from compacted
//! topics (configuration tables, customer master data...).
//!
//! Tables change while the processor runs (the host applies new records of
//! the table's topic as they arrive), so lookups are not cached: each one is
//! a call into the host (about 140 ns). A processor that needs the same
//! lookup many times within a batch can keep it in a local variable.

/// The current value of `key` in the table named `table` (a name from the
/// stage's configuration); `None` if the key or the table is unknown.
pub fn lookup(table: &str, key: &[u8]) -> Option<Vec<u8>> {
    crate::host::table_lookup(table, key)
}

/// Like [`lookup`], with the value as UTF-8 text; `Err` carries a reason
/// naming the table and key when the value is not UTF-8.
pub fn lookup_str(table: &str, key: &[u8]) -> Result<Option<String>, String> {
    match lookup(table, key) {
        None => Ok(None),
        Some(v) => String::from_utf8(v).map(Some).map_err(|e| {
            format!(
                "table `{table}` value for key `{}` is not UTF-8 (invalid byte at offset {})",
                String::from_utf8_lossy(key),
                e.utf8_error().valid_up_to()
            )
        }),
    }
}
