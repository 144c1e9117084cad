//! Round trips and malformed-buffer cases for the wire layout.

use alloc::vec;
use alloc::vec::Vec;

use crate::*;

fn sample_batch() -> BatchWriter {
    let mut w = BatchWriter::new(&["in", "other"]);
    w.push(
        0,
        3,
        10,
        1000,
        Some(b"k1"),
        Some(b"v1"),
        [(&b"h"[..], &b"x"[..])].into_iter(),
    );
    w.push(1, 3, 11, 1001, None, None, core::iter::empty());
    w
}

#[test]
fn batch_round_trip() {
    let w = sample_batch();
    let b = Batch::parse(w.as_bytes()).unwrap();
    let rs: Vec<_> = b.records().map(Result::unwrap).collect();
    assert_eq!(rs.len(), 2);
    assert_eq!(
        (rs[0].topic, rs[0].partition, rs[0].offset, rs[0].timestamp),
        ("in", 3, 10, 1000)
    );
    assert_eq!(rs[0].key, Some(&b"k1"[..]));
    assert_eq!(
        rs[0].headers.iter().collect::<Vec<_>>(),
        vec![("h", &b"x"[..])]
    );
    assert_eq!((rs[1].topic, rs[1].key, rs[1].value), ("other", None, None));
}

#[test]
fn single_record_batch() {
    let w = sample_batch();
    let one = w.single(1);
    let b = Batch::parse(&one).unwrap();
    let rs: Vec<_> = b.records().map(Result::unwrap).collect();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].offset, 11);
}

#[test]
fn truncated_batch_is_an_error_not_a_panic() {
    let w = sample_batch();
    let bytes = w.as_bytes();
    for cut in 0..bytes.len() {
        if let Ok(b) = Batch::parse(&bytes[..cut]) {
            assert!(b.records().any(|r| r.is_err()), "cut at {cut} read fine");
        }
    }
}

#[test]
fn results_round_trip_with_keep_and_reject() {
    let mut w = ResultWriter::with_capacity(64);
    w.begin();
    w.output(&OutputSpec::default());
    w.output(&OutputSpec {
        output: 1,
        key: Some(None),
        value: Some(Some(b"new")),
        headers: Some(&[("a", b"b")]),
        timestamp: Some(7),
    });
    w.begin();
    w.output(&OutputSpec::default());
    w.reject("bad line");
    w.begin();
    let buf = w.finish();
    let r = Results::parse(&buf, 3, 2).unwrap();
    let all: Vec<_> = r.iter().collect();
    let RecordResult::Ok(outs) = all[0] else {
        panic!()
    };
    let outs: Vec<_> = outs.iter().collect();
    assert_eq!(
        outs[0],
        OutputRef {
            output: 0,
            key: Field::Keep,
            value: Field::Keep,
            headers: None,
            timestamp: None
        }
    );
    assert_eq!(outs[1].key, Field::Null);
    assert_eq!(outs[1].value, Field::Bytes(b"new"));
    assert_eq!(
        outs[1].headers.unwrap().iter().collect::<Vec<_>>(),
        vec![("a", &b"b"[..])]
    );
    assert_eq!(outs[1].timestamp, Some(7));
    assert!(matches!(all[1], RecordResult::Rejected("bad line")));
    assert!(matches!(all[2], RecordResult::Ok(o) if o.is_empty()));
}

#[test]
fn results_are_validated() {
    let mut w = ResultWriter::with_capacity(64);
    w.begin();
    w.output(&OutputSpec {
        output: 5,
        ..Default::default()
    });
    let buf = w.finish();
    assert_eq!(
        Results::parse(&buf, 1, 2).unwrap_err().what,
        "output index out of range"
    );
    assert_eq!(
        Results::parse(&buf, 2, 9).unwrap_err().what,
        "result count differs from record count"
    );
    let mut trailing = buf.clone();
    trailing.push(0);
    assert_eq!(
        Results::parse(&trailing, 1, 9).unwrap_err().what,
        "trailing bytes after the last item"
    );
    for cut in 0..buf.len() {
        assert!(Results::parse(&buf[..cut], 1, 9).is_err());
    }
    let mut bad_version = buf.clone();
    bad_version[0] = 9;
    assert_eq!(
        Results::parse(&bad_version, 1, 9).unwrap_err().what,
        "unsupported layout version"
    );
}

#[test]
fn invalid_utf8_header_name_is_refused() {
    let mut w = ResultWriter::with_capacity(64);
    w.begin();
    w.output(&OutputSpec {
        headers: Some(&[("ab", b"v")]),
        ..Default::default()
    });
    let mut buf = w.finish();
    let at = buf.windows(2).position(|x| x == b"ab").unwrap();
    buf[at] = 0xff;
    let e = Results::parse(&buf, 1, 1).unwrap_err();
    assert_eq!(e.what, "invalid UTF-8");
    assert_eq!(e.item, Some(0));
}

#[test]
fn timer_outputs_and_writes_round_trip() {
    let buf = ResultWriter::timer_outputs(&[OutputSpec {
        value: Some(Some(b"w")),
        ..Default::default()
    }]);
    let o = Outputs::parse(&buf, 1).unwrap();
    assert_eq!(o.iter().next().unwrap().value, Field::Bytes(b"w"));

    let mut w = WritesWriter::default();
    w.put(b"a", b"1");
    w.delete(b"b");
    let buf = w.finish();
    let ws: Vec<_> = Writes::parse(&buf).unwrap().iter().collect();
    assert_eq!(ws, vec![Write::Put(b"a", b"1"), Write::Delete(b"b")]);
    assert!(Writes::parse(&buf[..buf.len() - 1]).is_err());
}
