//! [`DiskState`]: the durable store of one (stage, partition).
//!
//! The data lives in one redb file (a copy-on-write B-tree, so a commit is
//! all or nothing and survives a crash of the process). In front of it sits
//! a write-back buffer: a call's change set goes into an in-memory ordered
//! map, and the buffer is written to the file in one transaction when it
//! grows past [`DiskOptions::max_dirty_bytes`], when a checkpoint arrives
//! and [`DiskOptions::flush_interval`] has passed, and when the store is
//! closed. Each of those transactions also records the checkpoint: the
//! changelog offset whose records (and all before them) the file reflects.
//!
//! The file is created by the first write: a partition whose processor
//! never writes state (a stateless stage) starts without waiting for the
//! disk, which matters when a host takes a thousand partitions at once.
//!
//! A crash loses the buffer and whatever the file had not committed, and
//! with it the matching checkpoint, so what is on disk is always a state the
//! changelog reached at or after its checkpoint: a restore re-applies the
//! changelog from the checkpoint on, which is harmless because applying
//! changelog records is idempotent. The checkpoint is never ahead of the
//! data.
//!
//! A read first asks a Bloom filter over the keys of the buffer and the
//! file ([`KeyFilter`]), so that a key the store never held (the common
//! case of a key seen for the first time) costs neither a walk down the
//! buffer's map nor one down the file's B-tree.
//!
//! Memory stays bounded whatever the size of the state: the buffer is at
//! most `max_dirty_bytes`, redb's page cache at most
//! [`DiskOptions::cache_bytes`] and the filter at most
//! [`DiskOptions::filter_bytes`] (beyond it the store reads the file
//! without one); the rest is read from the file.

use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use super::key::to_key;
use super::key_filter::KeyFilter;
use super::overlay::scan_merged;
use super::{ChangeSet, Overlay, StateStore};

/// The state: key bytes → value bytes.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
/// Bookkeeping: the checkpoint.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// The `META` key of the checkpoint.
const CHECKPOINT: &str = "changelog_offset";
/// The store's file, in its partition folder.
pub const FILE_NAME: &str = "state.redb";
/// Bytes counted per buffered entry on top of its key and value.
const ENTRY_OVERHEAD: usize = 48;

/// Memory and flush settings of a [`DiskState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskOptions {
    /// redb's page cache, in bytes.
    pub cache_bytes: usize,
    /// The write-back buffer is written to the file once it holds this many
    /// bytes (keys, values and bookkeeping).
    pub max_dirty_bytes: usize,
    /// A checkpoint is written at most this long after it arrived.
    pub flush_interval: Duration,
    /// Most bytes of the filter over the file's keys (about 1.2 bytes per
    /// key); a store with more keys than that holds goes without one.
    pub filter_bytes: usize,
}

impl DiskOptions {
    /// Settings for a memory budget of `memory_bytes` per partition: a
    /// quarter for the buffer, a sixteenth for the key filter (enough for
    /// about 2.7 million keys in 64 MiB), the rest for the page cache.
    pub fn with_memory(memory_bytes: usize) -> Self {
        let filter_bytes = memory_bytes / 16;
        DiskOptions {
            cache_bytes: (memory_bytes / 4 * 3 - filter_bytes).max(64 << 10),
            max_dirty_bytes: (memory_bytes / 4).max(16 << 10),
            flush_interval: Duration::from_secs(1),
            filter_bytes,
        }
    }
}

impl Default for DiskOptions {
    /// 64 MiB per partition.
    fn default() -> Self {
        DiskOptions::with_memory(64 << 20)
    }
}

/// The on-disk part: the redb file and a read snapshot reused between
/// flushes.
struct File {
    /// `None` until the first write creates the file.
    db: Option<Database>,
    /// Read snapshot of the data table, dropped at each flush.
    read: Option<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    /// Keys in the file, as of the last flush.
    keys: u64,
}

impl File {
    /// The data table as of the last write; `None` while there is no file.
    fn table(&mut self) -> anyhow::Result<Option<&ReadOnlyTable<&'static [u8], &'static [u8]>>> {
        let Some(db) = &self.db else {
            return Ok(None);
        };
        if self.read.is_none() {
            let tx = db.begin_read().context("reading the state file")?;
            let table = tx.open_table(DATA).context("reading the state file")?;
            self.read = Some(table);
        }
        Ok(self.read.as_ref())
    }
}

impl StateStore for File {
    fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(table) = self.table()? else {
            return Ok(None);
        };
        let got = table.get(key).context("reading the state file")?;
        Ok(got.map(|v| v.value().to_vec()))
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        if end.is_some_and(|e| e <= start) || limit == 0 {
            return Ok(Vec::new());
        }
        let upper = end.map_or(Unbounded, Excluded);
        let Some(table) = self.table()? else {
            return Ok(Vec::new());
        };
        let range = table
            .range::<&[u8]>((Included(start), upper))
            .context("scanning the state file")?;
        let mut out = Vec::new();
        for entry in range.take(limit) {
            let (k, v) = entry.context("scanning the state file")?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn commit(&mut self, _changes: &ChangeSet) -> anyhow::Result<()> {
        unreachable!("the file is written by DiskState::flush")
    }

    fn len(&self) -> usize {
        usize::try_from(self.keys).unwrap_or(usize::MAX)
    }
}

/// The keys in `db`, its checkpoint, and whether a table is missing.
fn read_meta(db: &Database, path: &Path) -> anyhow::Result<(u64, Option<i64>, bool)> {
    let what = || format!("cannot read the state file {}", path.display());
    let tx = db.begin_read().with_context(what)?;
    let mut missing = false;
    let keys = match tx.open_table(DATA) {
        Ok(t) => t.len().with_context(what)?,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            missing = true;
            0
        }
        Err(e) => return Err(e).with_context(what),
    };
    let checkpoint = match tx.open_table(META) {
        Ok(t) => t.get(CHECKPOINT).with_context(what)?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => {
            missing = true;
            None
        }
        Err(e) => return Err(e).with_context(what),
    };
    Ok((keys, checkpoint, missing))
}

/// The durable state of one (stage, partition); see the module docs.
pub struct DiskState {
    file: File,
    path: PathBuf,
    options: DiskOptions,
    /// Writes not yet in the file, `None` for a delete.
    dirty: Overlay,
    /// Every key with a value in the buffer or the file may be in it;
    /// `None` when the file has more keys than
    /// [`DiskOptions::filter_bytes`] can hold.
    filter: Option<KeyFilter>,
    dirty_bytes: usize,
    /// The checkpoint in the file.
    checkpoint: Option<i64>,
    /// A checkpoint to write with the next flush.
    pending_checkpoint: Option<i64>,
    last_flush: Instant,
}

impl DiskState {
    /// Opens the store in `dir`, creating the folder; the file is created
    /// by the first write.
    pub fn open(dir: &Path, options: DiskOptions) -> anyhow::Result<DiskState> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state folder {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let (db, keys, checkpoint, missing) = if path.exists() {
            let db = Database::builder()
                .set_cache_size(options.cache_bytes)
                .create(&path)
                .with_context(|| format!("cannot open the state file {}", path.display()))?;
            let (keys, checkpoint, missing) = read_meta(&db, &path)?;
            (Some(db), keys, checkpoint, missing)
        } else {
            (None, 0, None, false)
        };
        let mut store = DiskState {
            file: File {
                db,
                read: None,
                keys,
            },
            path,
            options,
            dirty: Overlay::new(),
            filter: None,
            dirty_bytes: 0,
            checkpoint,
            pending_checkpoint: None,
            last_flush: Instant::now(),
        };
        if missing {
            // A file whose tables were lost in a crash before their first
            // commit: creates them, so that reads never meet a missing one.
            store.write(Durability::Immediate)?;
        }
        store.build_filter()?;
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies one changelog record (`None`: a tombstone) read at `offset`
    /// during a restore; the checkpoint moves to `offset` with it.
    pub fn apply_changelog(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        offset: i64,
    ) -> anyhow::Result<()> {
        if self.dirty_bytes >= self.options.max_dirty_bytes {
            self.flush()?;
        }
        self.grow_filter()?;
        self.dirty_bytes += key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        if value.is_some()
            && let Some(filter) = &mut self.filter
        {
            filter.insert(key);
        }
        self.dirty.insert(to_key(key), value.map(<[u8]>::to_vec));
        self.note_checkpoint(offset);
        Ok(())
    }

    /// Writes the buffer and the latest checkpoint to the file, waiting for
    /// the disk; nothing when neither has changed since the last write
    /// (every write waits for the disk, so the file already holds them).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if self.dirty.is_empty() && self.pending_checkpoint.is_none() {
            return Ok(());
        }
        self.write(Durability::Immediate)
    }

    /// Bytes held in the write-back buffer.
    pub fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    /// Bytes of the filter over the file's keys; `None` without one.
    pub fn filter_bytes(&self) -> Option<usize> {
        self.filter.as_ref().map(KeyFilter::bytes)
    }

    /// Builds the key filter from the keys of the file and the buffer,
    /// sized for twice as many (so that the builds cost about two reads of
    /// each key in all), or for as many as [`DiskOptions::filter_bytes`]
    /// holds; none when that is not a quarter more than there are.
    fn build_filter(&mut self) -> anyhow::Result<()> {
        self.filter = None;
        let bytes = self.options.filter_bytes;
        let keys = usize::try_from(self.file.keys)
            .unwrap_or(usize::MAX)
            .saturating_add(self.dirty.len());
        let most = bytes.saturating_mul(8) / KeyFilter::BITS_PER_KEY;
        let capacity = keys.saturating_mul(2).min(most);
        if !KeyFilter::fits(capacity, bytes) || capacity < keys.saturating_add(keys / 4) {
            return Ok(());
        }
        let mut filter = KeyFilter::with_capacity(capacity);
        if let Some(table) = self.file.table()? {
            for entry in table.iter().context("reading the state file's keys")? {
                let (k, _) = entry.context("reading the state file's keys")?;
                filter.insert(k.value());
            }
        }
        for (k, v) in &self.dirty {
            if v.is_some() {
                filter.insert(k);
            }
        }
        self.filter = Some(filter);
        Ok(())
    }

    /// Builds the key filter again, larger, once more keys went in than it
    /// was sized for (past that its false positives climb fast).
    fn grow_filter(&mut self) -> anyhow::Result<()> {
        if self.filter.as_ref().is_some_and(KeyFilter::is_full) {
            self.build_filter()?;
        }
        Ok(())
    }

    fn note_checkpoint(&mut self, offset: i64) {
        let current = self.pending_checkpoint.or(self.checkpoint);
        if current.is_none_or(|c| offset > c) {
            self.pending_checkpoint = Some(offset);
        }
    }

    /// One transaction: the buffer, then the checkpoint.
    fn write(&mut self, durability: Durability) -> anyhow::Result<()> {
        let what = || format!("cannot write the state file {}", self.path.display());
        self.file.read = None;
        if self.file.db.is_none() {
            let db = Database::builder()
                .set_cache_size(self.options.cache_bytes)
                .create(&self.path)
                .with_context(|| format!("cannot create the state file {}", self.path.display()))?;
            self.file.db = Some(db);
        }
        let db = self.file.db.as_ref().expect("created above");
        let mut tx = db.begin_write().with_context(what)?;
        tx.set_durability(durability).with_context(what)?;
        tx.set_quick_repair(true);
        let keys = {
            let mut data = tx.open_table(DATA).with_context(what)?;
            for (k, v) in &self.dirty {
                match v {
                    Some(v) => {
                        data.insert(k.as_slice(), v.as_slice()).with_context(what)?;
                    }
                    None => {
                        data.remove(k.as_slice()).with_context(what)?;
                    }
                }
            }
            let mut meta = tx.open_table(META).with_context(what)?;
            if let Some(c) = self.pending_checkpoint {
                meta.insert(CHECKPOINT, c).with_context(what)?;
            }
            data.len().with_context(what)?
        };
        tx.commit().with_context(what)?;
        self.dirty.clear();
        self.dirty_bytes = 0;
        self.file.keys = keys;
        if let Some(c) = self.pending_checkpoint.take() {
            self.checkpoint = Some(c);
        }
        self.last_flush = Instant::now();
        Ok(())
    }
}

impl StateStore for DiskState {
    fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        if self.filter.as_ref().is_some_and(|f| !f.may_contain(key)) {
            return Ok(None);
        }
        match self.dirty.get(&to_key(key)) {
            Some(v) => Ok(v.clone()),
            None => self.file.get(key),
        }
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_merged(&mut self.file, &self.dirty, start, end, limit)
    }

    /// All or nothing: a flush the buffer needs, and a build of the key
    /// filter, happen first, and if they fail none of `changes` is
    /// applied.
    fn commit(&mut self, changes: &ChangeSet) -> anyhow::Result<()> {
        if self.dirty_bytes >= self.options.max_dirty_bytes {
            self.flush()?;
        }
        self.grow_filter()?;
        for (k, v) in changes.iter() {
            self.dirty_bytes += k.len() + v.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
            // One walk down the tree per write: a short key is made
            // without allocating, so the entry costs no more than a lookup.
            let gets_value = match self.dirty.entry(to_key(k)) {
                Entry::Occupied(mut e) => match (e.get_mut(), v) {
                    (Some(slot), Some(v)) => {
                        slot.clear();
                        slot.extend_from_slice(v);
                        false
                    }
                    (slot, v) => {
                        let was_delete = slot.is_none();
                        *slot = v.map(<[u8]>::to_vec);
                        was_delete && v.is_some()
                    }
                },
                Entry::Vacant(e) => {
                    e.insert(v.map(<[u8]>::to_vec));
                    v.is_some()
                }
            };
            // A key that gets a value in the buffer goes into the filter;
            // one that had a value there is in it already.
            if gets_value && let Some(filter) = &mut self.filter {
                filter.insert(k);
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.file.len()
    }

    /// Flushes when the interval has passed and there is something to
    /// write, so that calling it again with the same offset while idle
    /// writes the last checkpoint once and then nothing.
    fn set_checkpoint(&mut self, offset: i64) -> anyhow::Result<()> {
        self.note_checkpoint(offset);
        let due = self.last_flush.elapsed() >= self.options.flush_interval;
        if due && (self.pending_checkpoint.is_some() || !self.dirty.is_empty()) {
            self.flush()?;
        }
        Ok(())
    }

    fn checkpoint(&self) -> Option<i64> {
        self.checkpoint
    }

    /// Flushes, then writes the clean marker next to the file.
    fn close(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        match self.path.parent() {
            Some(dir) => super::local::mark_clean(dir),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for DiskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskState")
            .field("path", &self.path)
            .field("keys", &self.file.keys)
            .field("dirty", &self.dirty.len())
            .field("filter_bytes", &self.filter_bytes())
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}
