//! [`ChangeSet`]: state writes in the order they were made, their bytes
//! end to end in one buffer.
//!
//! A call's writes reach the host as one encoded buffer, are applied to the
//! store, and go to the changelog, in that order, once each. Kept as a
//! sorted map they cost two allocations and a tree walk per write, for an
//! order nobody needs; kept flat, a change set reuses its buffers from
//! batch to batch and costs a copy of the bytes.

/// State writes in the order made: a put of a value, or a delete (`None`).
/// A key may appear more than once; its last write is the one that counts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Keys and values end to end.
    bytes: Vec<u8>,
    writes: Vec<Write>,
}

/// Where one write's key and value sit in the buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Write {
    key_end: usize,
    /// End of the value, which starts at `key_end`; `None` for a delete.
    value_end: Option<usize>,
}

impl ChangeSet {
    /// No writes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `value` under `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.push(key, Some(value));
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.push(key, None);
    }

    /// Adds a write: `Some(value)` to store, `None` to delete.
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        let value_end = value.map(|v| {
            self.bytes.extend_from_slice(v);
            self.bytes.len()
        });
        self.writes.push(Write { key_end, value_end });
    }

    /// Adds every write of `other`, after those already here.
    pub fn append(&mut self, other: &ChangeSet) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.writes.extend(other.writes.iter().map(|w| Write {
            key_end: base + w.key_end,
            value_end: w.value_end.map(|e| base + e),
        }));
    }

    /// The writes in the order made.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: &self.bytes,
            writes: self.writes.iter(),
            start: 0,
        }
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// True when there is no write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Removes every write, keeping the buffers for the next ones.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.writes.clear();
    }
}

/// The writes of a [`ChangeSet`] in the order made: key, and value or
/// `None` for a delete.
pub struct Iter<'a> {
    bytes: &'a [u8],
    writes: std::slice::Iter<'a, Write>,
    /// Where the next write's key starts.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let w = self.writes.next()?;
        let key = &self.bytes[self.start..w.key_end];
        let value = w.value_end.map(|end| &self.bytes[w.key_end..end]);
        self.start = w.value_end.unwrap_or(w.key_end);
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.writes.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ChangeSet {
    type Item = (&'a [u8], Option<&'a [u8]>);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, Option<V>)> for ChangeSet {
    fn from_iter<I: IntoIterator<Item = (K, Option<V>)>>(writes: I) -> Self {
        let mut c = ChangeSet::new();
        for (k, v) in writes {
            c.push(k.as_ref(), v.as_ref().map(AsRef::as_ref));
        }
        c
    }
}

impl std::fmt::Debug for ChangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), v.map(String::from_utf8_lossy))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(c: &ChangeSet) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        c.iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn writes_come_back_in_order_with_empty_keys_and_values() {
        let mut c = ChangeSet::new();
        c.put(b"a", b"1");
        c.delete(b"b");
        c.put(b"", b"");
        c.put(b"a", b"22");
        c.delete(b"");
        assert_eq!(c.len(), 5);
        assert_eq!(
            all(&c),
            vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), None),
                (b"".to_vec(), Some(b"".to_vec())),
                (b"a".to_vec(), Some(b"22".to_vec())),
                (b"".to_vec(), None),
            ]
        );
    }

    #[test]
    fn append_adds_after_and_clear_empties() {
        let mut first: ChangeSet = [("x", Some("1")), ("y", None)].into_iter().collect();
        let second: ChangeSet = [("z", Some("3"))].into_iter().collect();
        first.append(&second);
        assert_eq!(
            all(&first),
            vec![
                (b"x".to_vec(), Some(b"1".to_vec())),
                (b"y".to_vec(), None),
                (b"z".to_vec(), Some(b"3".to_vec())),
            ]
        );
        first.clear();
        assert!(first.is_empty());
        assert_eq!(first.iter().count(), 0);
        assert_eq!(format!("{second:?}"), r#"[("z", Some("3"))]"#);
    }
}
