//! `partita validate` without the broker: the windowed pairing
//! ([`Pairing`]) over the durable store of waiting records, on 1,000,000
//! records per side, as the merge hands them over (interleaved by
//! timestamp, the right side 300 ms behind the left, one amount in 1,000
//! differing, JSON values of about 60 bytes keyed by order id). Against it,
//! in the same run, the cost of only parsing the same values as JSON and
//! extracting the key (what the readers do anyway), so the ratio says what
//! pairing and comparing add.
//!
//! Run with `cargo bench -p partita --bench validate` (`-- N` for another
//! record count). Results: docs/BENCHMARKS.md, section Validate.

#![allow(missing_docs)]

use std::time::Instant;

use partita::state::{DiskOptions, DiskState};
use partita::validate::diff::{Parsed, Rules};
use partita::validate::key::KeySpec;
use partita::validate::pairing::{Class, Pairing, Seen, Side};

fn records(n: u64) -> Vec<Seen> {
    let key = KeySpec::Fields(vec!["/id".into()]);
    let mut out = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        let amount = (i * 7919) % 100_000;
        for (side, offset_ms, delta) in [
            (Side::Left, 0, 0),
            (Side::Right, 300, u64::from(i % 1000 == 0)),
        ] {
            let value = format!(
                r#"{{"id": {i}, "customer": "c{:04}", "amount": {}.{:02}}}"#,
                i % 100,
                amount / 100,
                (amount + delta) % 100
            );
            let k = key.key_of(None, &Parsed::new(Some(value.as_bytes())));
            out.push(Seen {
                side,
                partition: (i % 4) as i32,
                offset: i as i64,
                timestamp: 1_700_000_000_000 + i as i64 + offset_ms,
                key: k.bytes,
                value: Some(value.into_bytes()),
            });
        }
    }
    out.sort_by_key(|r| (r.timestamp, r.side));
    out
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let input = records(n);
    let key = KeySpec::Fields(vec!["/id".into()]);

    // What the readers do for every record anyway: parse and key.
    let start = Instant::now();
    let mut keyed = 0usize;
    for r in &input {
        let k = key.key_of(None, &Parsed::new(r.value.as_deref()));
        keyed += k.bytes.len();
    }
    let parse = start.elapsed();
    std::hint::black_box(keyed);

    let dir = tempfile::tempdir().unwrap();
    let store = DiskState::open(dir.path(), DiskOptions::with_memory(256 << 20)).unwrap();
    let mut pairing = Pairing::new(store, 2000, 1000, Rules::default());
    let (mut matched, mut mismatched, mut other) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut out = |o: partita::validate::pairing::Outcome| match o.class() {
        Class::Match => matched += 1,
        Class::Mismatch => mismatched += 1,
        _ => other += 1,
    };
    for r in input {
        pairing.push(r, &mut out).unwrap();
    }
    pairing.finish(&mut out).unwrap();
    let pair = start.elapsed();
    assert_eq!((matched + mismatched, other), (n, 0));
    assert_eq!(mismatched, n.div_ceil(1000));

    let per_side = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("records per side                      {n}");
    println!(
        "parse and key only                    {:7.2} s  {:>10.0} records/s per side",
        parse.as_secs_f64(),
        per_side(parse)
    );
    println!(
        "pair, compare and classify            {:7.2} s  {:>10.0} records/s per side",
        pair.as_secs_f64(),
        per_side(pair)
    );
    println!(
        "pairing / parsing                     {:7.2}",
        pair.as_secs_f64() / parse.as_secs_f64()
    );
}
