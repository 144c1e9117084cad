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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{FAKE, FakeHost};

    #[test]
    fn lookups_reach_the_host_every_time() {
        FAKE.with_borrow_mut(|h| {
            *h = FakeHost::default();
            h.tables
                .entry("rates".into())
                .or_default()
                .insert(b"EUR".to_vec(), b"1.1".to_vec());
            h.tables
                .entry("rates".into())
                .or_default()
                .insert(b"BAD".to_vec(), vec![b'x', 0xff]);
        });
        assert_eq!(lookup("rates", b"EUR"), Some(b"1.1".to_vec()));
        assert_eq!(lookup("rates", b"EUR"), Some(b"1.1".to_vec()));
        assert_eq!(lookup("rates", b"USD"), None);
        assert_eq!(lookup("nope", b"EUR"), None);
        assert_eq!(lookup_str("rates", b"EUR"), Ok(Some("1.1".to_string())));
        assert_eq!(lookup_str("rates", b"USD"), Ok(None));
        assert_eq!(
            lookup_str("rates", b"BAD"),
            Err(
                "table `rates` value for key `BAD` is not UTF-8 (invalid byte at offset 1)"
                    .to_string()
            )
        );
        assert_eq!(FAKE.with_borrow(|h| h.calls.table_lookups), 7);
    }
}
