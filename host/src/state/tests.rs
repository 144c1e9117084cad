//! Tests of the durable store and of the local store folders.

use std::time::Duration;

use super::local::{CLEAN_MARKER, Wiped};
use super::*;

fn put(c: &mut ChangeSet, k: &str, v: &str) {
    c.put(k.as_bytes(), v.as_bytes());
}

fn del(c: &mut ChangeSet, k: &str) {
    c.delete(k.as_bytes());
}

fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    entries
        .iter()
        .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
        .collect()
}

/// Flushes only when asked: no size or time trigger in the way.
fn manual() -> DiskOptions {
    DiskOptions {
        cache_bytes: 1 << 20,
        max_dirty_bytes: usize::MAX,
        flush_interval: Duration::from_secs(3600),
        filter_bytes: 1 << 20,
    }
}

#[test]
fn scan_is_in_key_order_across_the_file_and_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    let mut c = ChangeSet::new();
    for k in ["b", "d", "f", "h"] {
        put(&mut c, k, &k.to_uppercase());
    }
    s.commit(&c).unwrap();
    s.flush().unwrap();
    let mut c = ChangeSet::new();
    put(&mut c, "a", "A");
    put(&mut c, "e", "E");
    del(&mut c, "f");
    put(&mut c, "d", "D2");
    s.commit(&c).unwrap();
    let all = s.scan(b"", None, 100).unwrap();
    assert_eq!(keys(&all), ["a", "b", "d", "e", "h"]);
    assert_eq!(all[2].1, b"D2");
    assert_eq!(
        keys(&s.scan(b"b", Some(b"f"), 100).unwrap()),
        ["b", "d", "e"]
    );
    assert_eq!(keys(&s.scan(b"c", None, 2).unwrap()), ["d", "e"]);
    assert!(s.scan(b"f", Some(b"a"), 10).unwrap().is_empty());
    assert_eq!(s.get(b"f").unwrap(), None, "deleted in the buffer");
    assert_eq!(s.get(b"b").unwrap(), Some(b"B".to_vec()), "from the file");
    s.flush().unwrap();
    assert_eq!(
        keys(&s.scan(b"", None, 100).unwrap()),
        ["a", "b", "d", "e", "h"]
    );
    assert_eq!(s.len(), 5);
}

#[test]
fn a_reopened_store_has_its_flushed_data_and_checkpoint_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = DiskState::open(dir.path(), manual()).unwrap();
        assert_eq!(s.checkpoint(), None);
        let mut c = ChangeSet::new();
        put(&mut c, "k1", "v1");
        put(&mut c, "k2", "v2");
        s.commit(&c).unwrap();
        s.set_checkpoint(41).unwrap();
        assert_eq!(s.checkpoint(), None, "kept for the next flush");
        s.flush().unwrap();
        assert_eq!(s.checkpoint(), Some(41));
        s.set_checkpoint(7).unwrap();
        s.flush().unwrap();
        assert_eq!(s.checkpoint(), Some(41), "a checkpoint never goes back");
        // Written after the last flush, then the process "crashes": the
        // store is dropped without a flush.
        let mut c = ChangeSet::new();
        put(&mut c, "k3", "v3");
        del(&mut c, "k1");
        s.commit(&c).unwrap();
        s.set_checkpoint(50).unwrap();
    }
    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    assert_eq!(
        s.checkpoint(),
        Some(41),
        "the checkpoint of the data on disk"
    );
    assert_eq!(s.get(b"k1").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(s.get(b"k3").unwrap(), None);
    assert_eq!(s.len(), 2);
}

#[test]
fn the_checkpoint_is_written_once_the_flush_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let options = DiskOptions {
        flush_interval: Duration::ZERO,
        ..manual()
    };
    let mut s = DiskState::open(dir.path(), options).unwrap();
    let mut c = ChangeSet::new();
    put(&mut c, "k", "v");
    s.commit(&c).unwrap();
    s.set_checkpoint(3).unwrap();
    assert_eq!(s.checkpoint(), Some(3));
    drop(s);
    let mut s = DiskState::open(dir.path(), options).unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.checkpoint(), Some(3));
}

#[test]
fn changelog_records_apply_idempotently_and_move_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    let log: [(&[u8], Option<&[u8]>); 4] = [
        (b"a", Some(b"1")),
        (b"b", Some(b"2")),
        (b"a", Some(b"3")),
        (b"b", None),
    ];
    for round in 0..2 {
        for (offset, (k, v)) in log.iter().enumerate() {
            s.apply_changelog(k, *v, offset as i64).unwrap();
        }
        s.flush().unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"3".to_vec()), "round {round}");
        assert_eq!(s.get(b"b").unwrap(), None, "round {round}");
        assert_eq!(s.checkpoint(), Some(3));
        assert_eq!(s.len(), 1);
    }
}

#[test]
fn state_larger_than_the_memory_budget_is_kept_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB of page cache and a 16 KiB buffer for about 2 MB of state.
    let options = DiskOptions::with_memory(64 << 10);
    let mut s = DiskState::open(dir.path(), options).unwrap();
    let value = [7u8; 64];
    for batch in 0..40 {
        let mut c = ChangeSet::new();
        for i in 0..500 {
            let k = format!("key-{:06}", batch * 500 + i);
            c.put(k.as_bytes(), &value);
        }
        s.commit(&c).unwrap();
        assert!(
            s.dirty_bytes() < 16 * 1024 + 500 * 200,
            "the buffer is bounded"
        );
    }
    s.close().unwrap();
    assert_eq!(s.len(), 20_000);
    for i in (0..20_000).step_by(997) {
        let k = format!("key-{i:06}");
        assert_eq!(s.get(k.as_bytes()).unwrap(), Some(value.to_vec()), "{k}");
    }
    let first = s.scan(b"key-019998", None, 10).unwrap();
    assert_eq!(keys(&first), ["key-019998", "key-019999"]);
    let size = std::fs::metadata(s.path()).unwrap().len();
    assert!(size > 1_000_000, "the state is in the file ({size} bytes)");
}

#[test]
fn the_clean_marker_is_written_at_close_and_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let stores = LocalStores::new(dir.path(), "g", manual(), false);
    let folder = stores.dir_of("count", 3);
    assert_eq!(folder, dir.path().join("g").join("count").join("3"));
    let opened = stores.open("count", 3).unwrap();
    assert!(!opened.was_clean);
    assert_eq!(opened.wiped, None);
    let mut s = opened.store;
    let mut c = ChangeSet::new();
    put(&mut c, "k", "v");
    s.commit(&c).unwrap();
    s.close().unwrap();
    assert!(folder.join(CLEAN_MARKER).exists());
    drop(s);
    let opened = stores.open("count", 3).unwrap();
    assert!(opened.was_clean);
    assert!(!folder.join(CLEAN_MARKER).exists(), "removed while open");
    let mut s = opened.store;
    assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn under_exactly_once_an_uncleanly_closed_store_is_wiped() {
    let dir = tempfile::tempdir().unwrap();
    let alos = LocalStores::new(dir.path(), "g", manual(), false);
    let eos = LocalStores::new(dir.path(), "g", manual(), true);
    let write = |stores: &LocalStores, close: bool| {
        let mut s = stores.open("count", 0).unwrap().store;
        let mut c = ChangeSet::new();
        put(&mut c, "k", "v");
        s.commit(&c).unwrap();
        s.flush().unwrap();
        if close {
            s.close().unwrap();
        }
    };
    // A crash (no close) under at-least-once: the store is kept.
    write(&alos, false);
    let mut opened = alos.open("count", 0).unwrap();
    assert_eq!(opened.wiped, None);
    assert_eq!(opened.store.get(b"k").unwrap(), Some(b"v".to_vec()));
    drop(opened);
    // The same under exactly-once: wiped.
    let mut opened = eos.open("count", 0).unwrap();
    assert_eq!(opened.wiped, Some(Wiped::Unclean));
    assert_eq!(opened.store.get(b"k").unwrap(), None);
    drop(opened);
    // A clean close under exactly-once: kept.
    write(&eos, true);
    let mut opened = eos.open("count", 0).unwrap();
    assert_eq!(opened.wiped, None);
    assert_eq!(opened.store.get(b"k").unwrap(), Some(b"v".to_vec()));
    // Asked for: emptied, checkpoint gone.
    opened.store.set_checkpoint(9).unwrap();
    opened.store.flush().unwrap();
    let mut again = eos.reopen_empty(opened.store).unwrap();
    assert_eq!(again.wiped, Some(Wiped::Asked));
    assert_eq!(again.store.get(b"k").unwrap(), None);
    assert_eq!(again.store.checkpoint(), None);
}

#[test]
fn a_state_folder_that_cannot_be_created_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let err = DiskState::open(&file.join("0"), manual()).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("cannot create the state folder"), "{text}");
    assert!(text.contains("not-a-folder"), "{text}");
}

#[test]
fn the_file_is_created_by_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(disk::FILE_NAME);
    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    // Read, scanned, flushed and closed without a write: no file.
    assert_eq!(s.get(b"k").unwrap(), None);
    assert!(s.scan(b"", None, 10).unwrap().is_empty());
    s.flush().unwrap();
    s.close().unwrap();
    assert!(!file.exists(), "a store that never wrote has no file");
    drop(s);

    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    let mut c = ChangeSet::new();
    put(&mut c, "k", "v");
    s.commit(&c).unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    s.set_checkpoint(4).unwrap();
    s.flush().unwrap();
    assert!(file.exists());
    drop(s);

    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!((s.len(), s.checkpoint()), (1, Some(4)));
}

/// Reads `0..n` back (each `key-N` holds `N`) and `n..n + 2000` as absent.
fn check_reads(s: &mut DiskState, n: usize) {
    for i in 0..n {
        let k = format!("key-{i:06}");
        let v = s.get(k.as_bytes()).unwrap();
        assert_eq!(v, Some(i.to_string().into_bytes()), "{k}");
    }
    for i in n..n + 2000 {
        let k = format!("key-{i:06}");
        assert_eq!(s.get(k.as_bytes()).unwrap(), None, "{k}");
    }
}

#[test]
fn reads_are_right_while_the_key_filter_grows_and_after_a_reopen() {
    for filter_bytes in [1 << 20, 0] {
        let dir = tempfile::tempdir().unwrap();
        let options = DiskOptions {
            filter_bytes,
            ..manual()
        };
        let mut s = DiskState::open(dir.path(), options).unwrap();
        assert_eq!(s.filter_bytes().is_some(), filter_bytes > 0);
        let first = s.filter_bytes();
        // 50,000 keys in flushes of 1,000: the filter, sized for 16,384 at
        // first, is built again from the file twice on the way.
        for batch in 0..50 {
            let mut c = ChangeSet::new();
            for i in batch * 1000..(batch + 1) * 1000 {
                c.put(format!("key-{i:06}").as_bytes(), i.to_string().as_bytes());
            }
            s.commit(&c).unwrap();
            s.flush().unwrap();
        }
        if filter_bytes > 0 {
            assert!(s.filter_bytes() > first, "the filter grew with the file");
        }
        check_reads(&mut s, 50_000);
        // Keys in the buffer only, and in a restore's buffer.
        let mut c = ChangeSet::new();
        for i in 50_000..51_000 {
            c.put(format!("key-{i:06}").as_bytes(), i.to_string().as_bytes());
        }
        s.commit(&c).unwrap();
        for i in 51_000..52_000 {
            let k = format!("key-{i:06}");
            s.apply_changelog(k.as_bytes(), Some(i.to_string().as_bytes()), i)
                .unwrap();
        }
        check_reads(&mut s, 52_000);
        s.flush().unwrap();
        check_reads(&mut s, 52_000);
        // A deleted key reads as absent though the filter still holds it.
        let mut c = ChangeSet::new();
        c.delete(b"key-000007");
        s.commit(&c).unwrap();
        s.flush().unwrap();
        assert_eq!(s.get(b"key-000007").unwrap(), None);
        s.close().unwrap();
        drop(s);

        let mut s = DiskState::open(dir.path(), options).unwrap();
        assert_eq!(s.filter_bytes().is_some(), filter_bytes > 0);
        let mut c = ChangeSet::new();
        c.put(b"key-000007", b"7");
        s.commit(&c).unwrap();
        s.flush().unwrap();
        check_reads(&mut s, 52_000);
    }
}

#[test]
fn a_store_whose_keys_outgrow_the_filter_budget_goes_without_one() {
    let dir = tempfile::tempdir().unwrap();
    // About 27,000 keys' worth of filter.
    let options = DiskOptions {
        filter_bytes: 32 << 10,
        ..manual()
    };
    let mut s = DiskState::open(dir.path(), options).unwrap();
    assert!(s.filter_bytes().is_some());
    // In commits of 1,000: the filter is built again before a commit once
    // it is full, and dropped once the keys pass what the budget holds.
    for batch in 0..30 {
        let mut c = ChangeSet::new();
        for i in batch * 1000..(batch + 1) * 1000 {
            c.put(format!("key-{i:06}").as_bytes(), i.to_string().as_bytes());
        }
        s.commit(&c).unwrap();
        if batch == 20 {
            check_reads(&mut s, 21_000);
        }
    }
    assert_eq!(s.filter_bytes(), None);
    check_reads(&mut s, 30_000);
    s.flush().unwrap();
    drop(s);
    let mut s = DiskState::open(dir.path(), options).unwrap();
    assert_eq!(s.filter_bytes(), None, "nor after a reopen");
    check_reads(&mut s, 30_000);
}

#[test]
fn a_key_deleted_then_written_in_the_buffer_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = DiskState::open(dir.path(), manual()).unwrap();
    assert!(s.filter_bytes().is_some());
    // In one change set: a delete of a key the store never held, then a
    // put; and across two.
    let mut c = ChangeSet::new();
    del(&mut c, "a");
    put(&mut c, "a", "1");
    del(&mut c, "b");
    s.commit(&c).unwrap();
    let mut c = ChangeSet::new();
    put(&mut c, "b", "2");
    s.commit(&c).unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
    s.flush().unwrap();
    assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
}
