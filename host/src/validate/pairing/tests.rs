use super::*;
use crate::state::MemoryState;

fn rec(side: Side, key: &str, ts: i64, value: &str) -> Seen {
    Seen {
        side,
        partition: 0,
        offset: ts,
        timestamp: ts,
        key: key.as_bytes().to_vec(),
        value: Some(value.as_bytes().to_vec()),
    }
}

/// Pushes every record, then finishes; returns (class, key, side or
/// sides) per decision, in decision order.
fn run(window: i64, grace: i64, records: Vec<Seen>) -> Vec<(Class, String, i64)> {
    let mut p = Pairing::new(MemoryState::new(), window, grace, Rules::default());
    let mut got = Vec::new();
    let mut out = |o: Outcome| {
        let class = o.class();
        let (key, ts) = match &o {
            Outcome::Pair { left, .. } => (left.key.clone(), left.timestamp),
            Outcome::Single { record, .. } => (record.key.clone(), record.timestamp),
        };
        got.push((class, String::from_utf8(key).unwrap(), ts));
    };
    for r in records {
        p.push(r, &mut out).unwrap();
    }
    p.finish(&mut out).unwrap();
    assert_eq!(p.waiting(), 0);
    got
}

use Side::{Left as L, Right as R};

#[test]
fn equal_values_within_the_window_match_and_differing_ones_mismatch() {
    let got = run(
        1000,
        0,
        vec![
            rec(L, "a", 0, "1"),
            rec(R, "a", 500, "1"),
            rec(L, "b", 600, "{\"x\": 1}"),
            rec(R, "b", 1600, "{\"x\": 2}"),
        ],
    );
    assert_eq!(
        got,
        [
            (Class::Match, "a".into(), 0),
            (Class::Mismatch, "b".into(), 600)
        ]
    );
}

#[test]
fn records_too_far_apart_are_only_on_their_side_once_stream_time_passes() {
    let got = run(
        1000,
        500,
        vec![
            rec(L, "a", 0, "1"),
            rec(R, "a", 1001, "1"),
            rec(L, "z", 2600, "1"),
        ],
    );
    assert_eq!(
        got,
        [
            // Both declared when stream time (2600) passed their
            // timestamps + 1000 + 500.
            (Class::OnlyLeft, "a".into(), 0),
            (Class::OnlyRight, "a".into(), 1001),
            // Declared at the end.
            (Class::OnlyLeft, "z".into(), 2600),
        ]
    );
}

#[test]
fn the_earliest_partner_pairs_first_and_an_extra_record_is_a_duplicate() {
    let got = run(
        1000,
        0,
        vec![
            rec(L, "a", 0, "first"),
            rec(L, "a", 10, "second"),
            rec(R, "a", 20, "first"),
            // Right first, then two lefts: the second left is the extra.
            rec(R, "b", 100, "x"),
            rec(L, "b", 110, "x"),
            rec(L, "b", 120, "x"),
        ],
    );
    assert_eq!(
        got,
        [
            (Class::Match, "a".into(), 0),
            (Class::Match, "b".into(), 110),
            (Class::Duplicate, "a".into(), 10),
            (Class::Duplicate, "b".into(), 120),
        ]
    );
}

#[test]
fn a_record_behind_stream_time_by_more_than_window_and_grace_is_late() {
    let got = run(
        1000,
        500,
        vec![
            rec(L, "a", 5000, "1"),
            // 5000 - 3600 = 1400 < 1500: within grace, still pairs later.
            rec(L, "b", 3600, "1"),
            rec(R, "b", 3700, "1"),
            // 5000 - 3400 = 1600 > 1500: late.
            rec(R, "c", 3400, "1"),
            rec(R, "a", 5100, "1"),
        ],
    );
    assert_eq!(
        got,
        [
            (Class::Match, "b".into(), 3600),
            (Class::Late, "c".into(), 3400),
            (Class::Match, "a".into(), 5000),
        ]
    );
}

#[test]
fn a_null_key_pairs_with_a_null_key() {
    let mut left = rec(L, "", 0, "v");
    left.key = vec![0];
    let mut right = rec(R, "", 1, "v");
    right.key = vec![0];
    let got = run(1000, 0, vec![left, right]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Class::Match);
}

#[test]
fn advancing_stream_time_declares_what_it_passes() {
    let mut p = Pairing::new(MemoryState::new(), 1000, 0, Rules::default());
    let mut got = Vec::new();
    p.push(rec(L, "a", 0, "1"), &mut |o| got.push(o.class()))
        .unwrap();
    p.advance(1000, &mut |o| got.push(o.class())).unwrap();
    assert!(got.is_empty(), "0 + 1000 is not yet passed");
    p.advance(1001, &mut |o| got.push(o.class())).unwrap();
    assert_eq!(got, [Class::OnlyLeft]);
    assert_eq!(p.waiting(), 0);
}

#[test]
fn every_record_ends_in_exactly_one_class() {
    // A deterministic mix: many keys, both sides, jittered timestamps.
    let mut records = Vec::new();
    let mut x: u64 = 42;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..2000i64 {
        let side = if next() % 2 == 0 { L } else { R };
        let key = format!("k{}", next() % 50);
        let ts = i * 10 + (next() % 30) as i64;
        records.push(rec(side, &key, ts, &format!("{}", next() % 3)));
    }
    let n = records.len();
    let got = run(100, 50, records);
    let counted: usize = got
        .iter()
        .map(|(c, _, _)| match c {
            Class::Match | Class::Mismatch => 2,
            _ => 1,
        })
        .sum();
    assert_eq!(counted, n);
}
