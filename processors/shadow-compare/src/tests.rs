use partita_sdk::testing::{Emitted, Harness, TestRecord};
use serde_json::Value;

use super::*;

const CONFIG: &[(&str, &str)] = &[
    ("left", "legacy"),
    ("right", "new"),
    ("key", "/id"),
    ("window_ms", "1000"),
    ("grace_ms", "500"),
    ("idle_ms", "10000"),
    ("ignore", "/processed_at"),
    ("tolerance", "/amount=1%"),
];

fn harness() -> Harness<ShadowCompare> {
    Harness::new(CONFIG).unwrap()
}

fn order(topic: &str, ts: i64, id: u64, amount: f64) -> TestRecord {
    TestRecord::new().topic(topic).timestamp(ts).value(format!(
        r#"{{"id": {id}, "amount": {amount}, "processed_at": {}}}"#,
        ts + 7
    ))
}

fn left(ts: i64, id: u64, amount: f64) -> TestRecord {
    order("legacy", ts, id, amount)
}

fn right(ts: i64, id: u64, amount: f64) -> TestRecord {
    order("new", ts, id, amount)
}

fn json(e: &Emitted) -> Value {
    serde_json::from_str(e.value_str()).unwrap()
}

/// The class and key of each output.
fn classes(outputs: &[Emitted]) -> Vec<(String, String)> {
    outputs
        .iter()
        .map(|e| {
            let v = json(e);
            (
                v["class"].as_str().unwrap().to_string(),
                e.key_str().to_string(),
            )
        })
        .collect()
}

fn counts(h: &Harness<ShadowCompare>) -> [u64; 6] {
    Class::ALL.map(|c| h.counter(RECORDS, c.name()))
}

#[test]
fn pairs_within_the_window_match_or_differ_by_field() {
    let mut h = harness();
    assert_eq!(h.outputs(), ["diffs"]);
    // Equal up to the ignored field and the 1% tolerance.
    h.run([left(1_000, 1, 100.0), left(1_100, 2, 50.0)]);
    let out = h.run([right(1_400, 1, 100.5), right(1_500, 2, 60.0)]);
    assert!(out[0].outputs().is_empty(), "a match writes nothing");
    let diff = &out[1].outputs()[0];
    assert_eq!(diff.output, "diffs");
    assert_eq!(diff.key_str(), "2");
    assert_eq!(diff.timestamp, 1_500);
    let v = json(diff);
    assert_eq!(v["class"], "mismatch");
    assert_eq!(v["diff"][0]["field"], "/amount");
    assert_eq!(v["left"]["timestamp"], 1_100);
    assert_eq!(v["right"]["offset"], 3);
    assert_eq!(counts(&h), [2, 2, 0, 0, 0, 0]);
    assert_eq!(h.counter(FIELDS, "/amount"), 1);
    // Nothing waits any more, and declaring finds nothing.
    assert!(h.timer(100_000, 0).is_empty());
    assert!(h.timer(100_000, 20_000).is_empty());
}

#[test]
fn unpaired_records_are_declared_once_the_slower_side_passes_them() {
    let mut h = harness();
    h.run([left(1_000, 1, 1.0), right(1_000, 2, 1.0)]);
    // The right side is behind: the left one's time alone declares nothing.
    h.run([left(50_000, 3, 1.0)]);
    assert!(h.timer(50_000, 0).is_empty());
    // Its partner comes late in wall time but in time: a match, not
    // only_left.
    h.run([right(1_200, 1, 1.0)]);
    assert!(h.timer(50_000, 100).is_empty());
    assert_eq!(counts(&h), [2, 0, 0, 0, 0, 0]);
    // Right catches up: 2 (right, alone) is declared; 3 (left, at 50 s)
    // still has time.
    h.run([right(40_000, 4, 1.0)]);
    let declared = h.timer(50_000, 200);
    assert_eq!(classes(&declared), [("only_right".into(), "2".into())]);
    assert_eq!(declared[0].timestamp, 1_000);
    let v = json(&declared[0]);
    assert_eq!(v["side"], "right");
    assert!(v["right"]["value"].as_str().unwrap().contains("\"id\": 2"));
    assert_eq!(counts(&h), [2, 0, 0, 1, 0, 0]);
    assert!(h.timer(50_000, 300).is_empty(), "declared once");
}

#[test]
fn a_side_that_has_sent_nothing_yet_holds_back_until_it_is_idle() {
    let mut h = harness();
    h.run([right(1_000, 1, 1.0), right(60_000, 2, 1.0)]);
    assert!(h.timer(60_000, 0).is_empty());
    assert!(h.timer(60_000, 10_000).is_empty(), "left not idle yet");
    let out = h.run_one(left(1_100, 1, 1.0));
    assert!(out.outputs().is_empty(), "a match");
    assert!(h.timer(60_000, 10_001).is_empty());
    // Left sent at 10 001, right at 0: both are idle from 20 002 on, and
    // time follows the wall clock from right's 60 s.
    assert!(h.timer(60_000, 20_001).is_empty());
    let declared = h.timer(60_000, 20_002);
    assert_eq!(classes(&declared), [("only_right".into(), "2".into())]);
    assert_eq!(counts(&h), [2, 0, 0, 1, 0, 0]);
}

#[test]
fn an_idle_side_stops_holding_back_and_both_idle_follow_the_wall_clock() {
    let mut h = harness();
    h.run([left(1_000, 1, 1.0), right(1_000, 2, 1.0)]);
    assert!(h.timer(1_000, 0).is_empty());
    h.run([left(20_000, 3, 1.0)]);
    assert!(
        h.timer(20_000, 5_000).is_empty(),
        "right is behind, not idle"
    );
    // Right has sent nothing for 10 s of wall time: the left side decides.
    let declared = h.timer(20_000, 10_001);
    assert_eq!(
        classes(&declared),
        [
            ("only_left".into(), "1".into()),
            ("only_right".into(), "2".into())
        ]
    );
    // Both idle: time moves on with the wall clock, and the last record is
    // declared too.
    assert!(h.timer(20_000, 15_000).is_empty(), "left moved at 5 s");
    let declared = h.timer(20_000, 15_001 + 1_501);
    assert_eq!(classes(&declared), [("only_left".into(), "3".into())]);
    assert_eq!(counts(&h), [0, 0, 2, 1, 0, 0]);
    assert!(h.state_entries().iter().all(|(k, _)| !k.starts_with(b"p")));
}

#[test]
fn extra_records_of_a_key_are_duplicates_and_old_ones_are_late() {
    let mut h = harness();
    h.run([
        left(1_000, 1, 1.0),
        left(1_200, 1, 1.0),
        right(1_300, 1, 1.0),
    ]);
    h.run([left(10_000, 9, 1.0), right(10_000, 9, 1.0)]);
    let declared = h.timer(10_000, 0);
    assert_eq!(classes(&declared), [("duplicate".into(), "1".into())]);
    assert_eq!(json(&declared[0])["left"]["timestamp"], 1_200);
    // Its time has been declared: a record from then is late, at once.
    let late = h.run_one(right(1_100, 1, 1.0));
    assert_eq!(classes(late.outputs()), [("late".into(), "1".into())]);
    assert_eq!(counts(&h), [4, 0, 0, 0, 1, 1]);
}

#[test]
fn waiting_records_survive_a_restart() {
    let mut h = harness();
    h.run([left(1_000, 1, 1.0), right(900, 5, 1.0)]);
    h.timer(1_000, 0);
    h.restart().unwrap();
    let out = h.run_one(right(1_500, 1, 2.0));
    assert_eq!(classes(out.outputs()), [("mismatch".into(), "1".into())]);
    // Stream times came back from state: right at 1500, left at 1000.
    h.run([left(5_000, 2, 1.0), right(5_000, 2, 1.0)]);
    let declared = h.timer(5_000, 1);
    assert_eq!(classes(&declared), [("only_right".into(), "5".into())]);
}

#[test]
fn a_third_topic_is_rejected_and_null_keys_are_counted() {
    let mut h = Harness::<ShadowCompare>::new(&[("left", "a"), ("right", "b")]).unwrap();
    let out = h.run_one(TestRecord::new().topic("c").key("k"));
    assert_eq!(
        out.rejection(),
        Some("topic `c` is neither left (`a`) nor right (`b`)")
    );
    h.run([
        TestRecord::new().topic("a").value("x"),
        TestRecord::new().topic("b").value("x"),
    ]);
    assert_eq!(h.counter("compare_incomplete_keys", "left"), 1);
    assert_eq!(
        h.counter(RECORDS, "match"),
        2,
        "null keys pair with each other"
    );
}

#[test]
fn bad_configuration_names_the_key() {
    let err = |config: &[(&str, &str)]| Harness::<ShadowCompare>::new(config).err().unwrap();
    assert_eq!(
        err(&[("right", "b")]),
        "config key `left`: is required but missing"
    );
    assert_eq!(
        err(&[("left", "a"), ("right", "a")]),
        "config key `right`: is `a` too: compare two topics"
    );
    assert_eq!(
        err(&[("left", "a"), ("right", "b"), ("key", "id")]),
        "config key `key`: `id` is not a JSON pointer: it must start with /"
    );
    assert_eq!(
        err(&[("left", "a"), ("right", "b"), ("tolerance", "/x=y")]),
        "config key `tolerance`: /x=y: `y` is not a number or a percentage"
    );
    assert_eq!(
        err(&[("left", "a"), ("right", "b"), ("window_ms", "-1")]),
        "config key `window_ms`: must not be negative"
    );
    assert!(err(&[("left", "a"), ("right", "b"), ("windw_ms", "1")]).contains("unknown key"));
}
