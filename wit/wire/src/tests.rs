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
    assert_eq!(outs[0].own_bytes(), 0, "kept fields count nothing");
    // The value, and the header block: two length prefixes, "a" and "b".
    assert_eq!(outs[1].own_bytes(), 3 + 4 + 1 + 4 + 1);
    assert_eq!(r.largest_output(), 13);
    assert_eq!(r.most_output_bytes(), 13);
    assert_eq!((r.outputs(), r.output_bytes()), (2, 13));
    assert!(matches!(all[1], RecordResult::Rejected("bad line")));
    assert!(matches!(all[2], RecordResult::Ok(o) if o.is_empty()));
    let RecordResult::Ok(first) = all[0] else {
        panic!()
    };
    assert_eq!((first.largest(), first.bytes()), (13, 13));

    // Kept offsets give the same results, and the same statistics.
    let mut ends = Vec::new();
    let indexed = Results::parse_indexed(&buf, 3, 2, &mut ends).unwrap();
    assert_eq!(read_all(&indexed), read_all(&r));
    assert_eq!(
        (indexed.outputs(), indexed.output_bytes()),
        (r.outputs(), r.output_bytes())
    );
}

/// Every result of `r` with its outputs, or its rejection reason.
fn read_all<'a>(r: &Results<'a>) -> Vec<Result<Vec<OutputRef<'a>>, &'a str>> {
    r.iter()
        .map(|result| match result {
            RecordResult::Ok(outputs) => Ok(outputs.iter().collect()),
            RecordResult::Rejected(reason) => Err(reason),
        })
        .collect()
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

/// What a processor returns is untrusted: no byte sequence may make a
/// reader panic, a reader that accepts a buffer hands out views that can
/// all be read, and an error points inside the buffer.
mod hostile {
    use alloc::string::String;
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use crate::*;

    /// Reads everything a parsed results buffer offers.
    fn walk_results(r: &Results<'_>) {
        for result in r.iter() {
            if let RecordResult::Ok(outputs) = result {
                walk_outputs(&outputs);
            }
        }
    }

    fn walk_outputs(o: &Outputs<'_>) {
        for out in o.iter() {
            if let Some(h) = out.headers {
                for (name, value) in h.iter() {
                    let _ = (name.len(), value.len());
                }
            }
        }
    }

    /// One record's result: output index, value, timestamp, or a
    /// rejection reason.
    type Part = (u32, Option<Vec<u8>>, Option<i64>, Option<String>);

    /// A valid results buffer built from arbitrary parts.
    fn results(parts: &[Part]) -> Vec<u8> {
        let mut w = ResultWriter::with_capacity(64);
        for (output, value, timestamp, reject) in parts {
            w.begin();
            match reject {
                Some(reason) => w.reject(reason),
                None => w.output(&OutputSpec {
                    output: output % 3,
                    value: Some(value.as_deref()),
                    timestamp: *timestamp,
                    ..OutputSpec::default()
                }),
            }
        }
        w.finish()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn random_bytes_never_panic_a_reader(buf in proptest::collection::vec(any::<u8>(), 0..256), n in 0usize..8) {
            match Results::parse(&buf, n, 3) {
                Ok(r) => walk_results(&r),
                Err(e) => prop_assert!(e.at <= buf.len(), "{e}"),
            }
            match Outputs::parse(&buf, 3) {
                Ok(o) => walk_outputs(&o),
                Err(e) => prop_assert!(e.at <= buf.len(), "{e}"),
            }
            match Writes::parse(&buf) {
                Ok(w) => for write in w.iter() { let _ = write; },
                Err(e) => prop_assert!(e.at <= buf.len(), "{e}"),
            }
            if let Ok(b) = Batch::parse(&buf) {
                for record in b.records() {
                    let _ = record;
                }
            }
        }

        #[test]
        fn a_damaged_results_buffer_is_read_whole_or_refused_with_a_place(
            parts in proptest::collection::vec(
                (any::<u32>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
                 proptest::option::of(any::<i64>()), proptest::option::of("[a-z ]{0,12}")),
                1..6),
            cut in any::<usize>(),
            flip in any::<(usize, u8)>(),
        ) {
            let good = results(&parts);
            let parsed = Results::parse(&good, parts.len(), 3);
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
            let parsed = parsed.unwrap();
            let accepted = parts.iter().filter(|p| p.3.is_none()).count();
            prop_assert_eq!(parsed.most_outputs(), usize::from(accepted > 0));
            prop_assert_eq!(parsed.outputs(), accepted);
            // Cut short: always refused, at a byte within what is left.
            let short = &good[..cut % good.len()];
            match Results::parse(short, parts.len(), 3) {
                Ok(_) => prop_assert!(false, "a truncated buffer was accepted"),
                Err(e) => prop_assert!(e.at <= short.len(), "{e}"),
            }
            // One byte changed: read whole, or refused with a place.
            let mut bad = good.clone();
            let at = flip.0 % bad.len();
            bad[at] ^= flip.1 | 1;
            match Results::parse(&bad, parts.len(), 3) {
                Ok(r) => {
                    walk_results(&r);
                    // Read with kept offsets, a buffer reads the same.
                    let mut ends = Vec::new();
                    let indexed = Results::parse_indexed(&bad, parts.len(), 3, &mut ends).unwrap();
                    prop_assert_eq!(super::read_all(&indexed), super::read_all(&r));
                }
                Err(e) => prop_assert!(e.at <= bad.len(), "{e}"),
            }
            let mut ends = Vec::new();
            let indexed = Results::parse_indexed(&good, parts.len(), 3, &mut ends).unwrap();
            prop_assert_eq!(super::read_all(&indexed), super::read_all(&parsed));
        }
    }
}
