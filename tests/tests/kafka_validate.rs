//! `partita validate` against the real broker: every class, exactly, on
//! inputs with known injected differences; the two sides keyed and
//! partitioned differently; ignores, tolerances and the exit threshold;
//! bad usage.

use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Kafka, Record};
use partita_tests::partita::{Finished, run_to_end};
use serde_json::Value;

const BASE: i64 = 1_700_000_000_000;

/// The settings of the every-class test: 2 s windows, 4 s of grace, half a
/// percent of tolerance on amounts.
const EVERY_CLASS: &[&str] = &[
    "--left",
    "legacy",
    "--right",
    "new",
    "--key",
    "/id",
    "--window",
    "2s",
    "--grace",
    "4s",
    "--tolerance",
    "/amount=0.5%",
];

/// The clean run's settings: orders matched by id, the processing
/// timestamp ignored.
const CLEAN: &[&str] = &[
    "--left",
    "legacy",
    "--right",
    "new",
    "--key",
    "/id",
    "--ignore",
    "/processed_at",
];

/// An order as JSON, with a processing timestamp that differs per side.
fn order(id: u64, amount: f64, processed_at: i64) -> String {
    format!(
        r#"{{"id": {id}, "customer": "c{:03}", "amount": {amount}, "processed_at": {processed_at}}}"#,
        id % 7
    )
}

fn at(mut r: Record, ts: i64) -> Record {
    r.timestamp = Some(ts);
    r
}

fn validate(bootstrap: &str, extra: &[&str]) -> (Finished, Value) {
    let mut args = vec!["validate", "--bootstrap", bootstrap, "--format", "json"];
    args.extend_from_slice(extra);
    let finished = run_to_end(&args, Duration::from_secs(120)).unwrap();
    let json = summary_of(&finished.output).unwrap_or(Value::Null);
    (finished, json)
}

/// Checks that a run gave no verdict: exit status 2 and `message`.
fn assert_no_verdict(run: &Finished, message: &str) {
    assert_eq!(run.status.code(), Some(2), "{}", run.output);
    assert!(
        run.output.contains(message),
        "{message:?} in {}",
        run.output
    );
}

/// The `--format json` summary among the lines of a run's output.
fn summary_of(output: &str) -> Option<Value> {
    output
        .lines()
        .find(|l| l.starts_with("{\"counts\""))
        .map(|l| serde_json::from_str(l).unwrap())
}

fn counts(summary: &Value) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = summary["counts"]
        .as_object()
        .unwrap_or_else(|| panic!("no counts in {summary}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    v.sort();
    v
}

/// 200 orders on the left (legacy: keyed by customer, 3 partitions) and
/// on the right (new: null Kafka keys, 2 partitions), with the right side
/// a little later and processed at other times.
fn produce_both(kafka: &Kafka, left: &str, right: &str, right_amount: impl Fn(u64) -> f64) {
    let mut l = Vec::new();
    let mut r = Vec::new();
    for id in 0..200u64 {
        let ts = BASE + id as i64 * 100;
        let customer = format!("c{:03}", id % 7);
        l.push(at(
            Record::new(&customer, &order(id, id as f64 * 1.5, 1)),
            ts,
        ));
        let mut rec = Record::new("", &order(id, right_amount(id), 2));
        rec.key = None;
        r.push(at(rec, ts + 300));
    }
    kafka.produce(left, l).unwrap();
    kafka.produce(right, r).unwrap();
}

#[test]
fn a_clean_run_matches_everything_across_keys_and_partition_counts() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("legacy", 3).unwrap();
    kafka.create_topic("new", 2).unwrap();
    produce_both(&kafka, "legacy", "new", |id| id as f64 * 1.5);
    let bs = broker.bootstrap();

    let (run, summary) = validate(&bs, CLEAN);
    assert!(run.status.success(), "{}", run.output);
    assert_eq!(summary["total_left"], 200);
    assert_eq!(summary["total_right"], 200);
    assert_eq!(summary["mismatch_share"], 0.0);
    assert_eq!(
        counts(&summary),
        [
            ("duplicate".into(), 0),
            ("late".into(), 0),
            ("match".into(), 400),
            ("mismatch".into(), 0),
            ("only_left".into(), 0),
            ("only_right".into(), 0)
        ]
    );

    // Without the ignore, the processing timestamps differ everywhere.
    let (run, summary) = validate(&bs, &["--left", "legacy", "--right", "new", "--key", "/id"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    assert_eq!(summary["counts"]["mismatch"], 400);
    assert_eq!(summary["fields"][0]["field"], "/processed_at");
    assert_eq!(summary["fields"][0]["mismatches"], 200);

    // From the middle: the left orders 100 to 199, the right ones from 97
    // (300 ms later than their left twins).
    let from = (BASE + 100 * 100).to_string();
    let (_, summary) = validate(&bs, &[CLEAN, &["--from", &from]].concat());
    assert_eq!(summary["total_left"], 100, "{summary}");
    assert_eq!(summary["total_right"], 103, "{summary}");
    assert_eq!(summary["counts"]["match"], 200, "{summary}");
    assert_eq!(summary["counts"]["only_right"], 3, "{summary}");

    // A partition with nothing at or after the timestamp gives nothing
    // (Tansu answers offset 0 for it, Apache Kafka the end).
    kafka.create_topic("early", 1).unwrap();
    let early = (0..3).map(|id| at(Record::new("k", &order(id, 1.0, 2)), BASE + id as i64));
    kafka.produce("early", early).unwrap();
    let (_, summary) = validate(
        &bs,
        &[
            "--left", "legacy", "--right", "early", "--key", "/id", "--from", &from,
        ],
    );
    assert_eq!(summary["total_left"], 100, "{summary}");
    assert_eq!(summary["total_right"], 0, "{summary}");

    // Matched by the Kafka key, the right side (null keys) finds nothing,
    // and says why.
    let (run, summary) = validate(&bs, &["--left", "legacy", "--right", "new"]);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(summary["counts"]["match"], 0, "{summary}");
    assert_eq!(summary["incomplete_keys"]["right"], 200);
}

#[test]
fn every_class_is_counted_exactly_and_the_report_is_written() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("legacy", 3).unwrap();
    kafka.create_topic("new", 2).unwrap();
    let bs = broker.bootstrap();
    let rec = |id: u64, amount: f64, ts: i64| {
        at(
            Record::new(&format!("o{id}"), &order(id, amount, 0)),
            BASE + ts,
        )
    };
    // The left side: ids 0..10 at 1 s apart.
    let left: Vec<Record> = (0..10).map(|id| rec(id, 10.0, id as i64 * 1000)).collect();
    let mut right = Vec::new();
    for id in 0..10u64 {
        let ts = id as i64 * 1000 + 100;
        match id {
            // A changed amount.
            2 => right.push(rec(id, 10.25, ts)),
            // Missing on the right.
            3 => {}
            // A rounding difference within the tolerance.
            4 => right.push(rec(id, 10.001, ts)),
            // Twice on the right.
            5 => {
                right.push(rec(id, 10.0, ts));
                right.push(rec(id, 10.0, ts + 50));
            }
            _ => right.push(rec(id, 10.0, ts)),
        }
    }
    // Only on the right.
    right.push(rec(100, 1.0, 9_500));
    // Out of order in one partition (one Kafka key): stream time reaches
    // 20 s, then a record 5.5 s behind it, within window (2 s) + grace
    // (4 s), still pairs; then one 15 s behind it is late.
    let tail = |id, ts| {
        let mut r = rec(id, if id == 101 { 1.0 } else { 7.0 }, ts);
        r.key = Some(b"tail".to_vec());
        r
    };
    right.push(tail(101, 20_000));
    right.push(tail(102, 14_500));
    right.push(tail(103, 5_000));
    let mut left = left;
    left.push(rec(102, 7.0, 14_600));
    left.push(rec(101, 1.0, 20_000));
    kafka.produce("legacy", left).unwrap();
    kafka.produce("new", right).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let diffs = dir.path().join("diffs.jsonl");
    let outputs = [
        "--report",
        report.to_str().unwrap(),
        "--diffs",
        diffs.to_str().unwrap(),
    ];
    let (run, summary) = validate(&bs, &[EVERY_CLASS, &outputs[..]].concat());
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    assert_eq!(
        counts(&summary),
        [
            ("duplicate".into(), 1),
            ("late".into(), 1),
            // 0, 1, 4, 5, 6, 7, 8, 9, 101, 102: ten pairs.
            ("match".into(), 20),
            ("mismatch".into(), 2),
            ("only_left".into(), 1),
            ("only_right".into(), 1)
        ],
        "{summary}"
    );
    assert_eq!(summary["total_left"], 12);
    assert_eq!(summary["total_right"], 14);
    let mismatch = &summary["examples"]["mismatch"][0];
    assert_eq!(mismatch["key"], "2");
    assert_eq!(mismatch["diff"][0]["field"], "/amount");
    assert_eq!(mismatch["diff"][0]["right"], 10.25);
    assert_eq!(summary["examples"]["only_left"][0]["key"], "3");
    assert_eq!(summary["examples"]["only_right"][0]["key"], "100");
    assert_eq!(summary["examples"]["duplicate"][0]["key"], "5");
    assert_eq!(summary["examples"]["late"][0]["key"], "103");

    let lines: Vec<Value> = std::fs::read_to_string(&diffs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut classes: Vec<&str> = lines.iter().map(|l| l["class"].as_str().unwrap()).collect();
    classes.sort_unstable();
    assert_eq!(
        classes,
        ["duplicate", "late", "mismatch", "only_left", "only_right"],
        "every non-match, once"
    );
    // The same to a topic, keyed by the business key.
    kafka.create_topic("diffs", 1).unwrap();
    let (run, _) = validate(
        &bs,
        &[EVERY_CLASS, &["--diffs", "topic:diffs"][..]].concat(),
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    let mut keys: Vec<String> = kafka
        .consume_all("diffs")
        .unwrap()
        .iter()
        .map(|c| c.key_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["100", "103", "2", "3", "5"]);
    // The report as a browser shows it.
    let url = format!("file://{}", report.display());
    let dom = partita_tests::browser::rendered_dom(&url).unwrap();
    assert!(
        dom.contains(r#"<span id="verdict" class="verdict fail">FAIL</span>"#),
        "{dom}"
    );
    for class in ["mismatch", "only_left", "only_right", "duplicate", "late"] {
        assert!(
            dom.contains(&format!(
                r#"<tr data-class="{class}"><td>{class}</td><td class="n">{}</td>"#,
                summary["counts"][class]
            )),
            "{class} in {dom}"
        );
    }
    assert!(dom.contains("<code>/amount</code>"), "the top field: {dom}");
    assert!(dom.contains("<rect"), "the timeline: {dom}");
    let png = dir.path().join("report.png");
    partita_tests::browser::screenshot(&url, &png, 1000, 1400).unwrap();
    if let Some(keep) = std::env::var_os("PARTITA_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    // The same input, twice: the same counts (the merge does not depend on
    // how fetches interleave).
    let (_, again) = validate(&bs, EVERY_CLASS);
    assert_eq!(counts(&again), counts(&summary));

    // A threshold above the share passes; the text summary says so.
    let share = summary["mismatch_share"].as_f64().unwrap();
    let threshold = format!("{}", share + 0.01);
    let args = [
        &["validate", "--bootstrap", &bs][..],
        EVERY_CLASS,
        &["--max-mismatch", &threshold],
    ]
    .concat();
    let run = run_to_end(&args, Duration::from_secs(120)).unwrap();
    assert!(run.status.success(), "{}", run.output);
    assert!(run.output.contains(": PASS"), "{}", run.output);
}

#[test]
fn bad_usage_and_an_unreachable_broker_exit_2_with_a_clear_message() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("legacy", 1).unwrap();
    kafka.create_topic("new", 1).unwrap();
    let bs = broker.bootstrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--left", "legacy", "--right", "nope"],
            "error: --right: topic nope does not exist",
        ),
        (
            &["--left", "legacy", "--right", "new", "--key", "id"],
            "error: --key: `id` is not a JSON pointer: it must start with /",
        ),
        (
            &["--left", "legacy", "--right", "new", "--window", "2"],
            "error: --window: `2` has no unit (write 500ms, 2s, 1m or 1h)",
        ),
        (
            &["--left", "legacy", "--right", "new", "--tolerance", "/a=x"],
            "error: --tolerance /a=x: `x` is not a number or a percentage",
        ),
        (
            &["--left", "legacy", "--right", "new", "--ignore", "a"],
            "error: --ignore: `a` is not a JSON pointer: it must start with /",
        ),
    ];
    for (extra, message) in cases {
        let (run, _) = validate(&bs, extra);
        assert_no_verdict(&run, message);
    }
    let free = partita_tests::broker::free_port().unwrap();
    let (run, _) = validate(
        &format!("127.0.0.1:{free}"),
        &["--left", "legacy", "--right", "new"],
    );
    assert_no_verdict(&run, "error: cannot reach the cluster");
}

#[test]
fn csv_on_the_left_is_compared_with_json_on_the_right_through_a_normalizing_processor() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("legacy.csv", 2).unwrap();
    kafka.create_topic("new.json", 3).unwrap();
    let bs = broker.bootstrap();
    let mut left = Vec::new();
    let mut right = Vec::new();
    for id in 0..50u64 {
        let ts = BASE + id as i64 * 10;
        let amount = if id == 7 { "12.00" } else { "12.50" };
        left.push(at(
            Record::new(
                &format!("c{}", id % 5),
                &format!("{id},c{},{amount},FR", id % 5),
            ),
            ts,
        ));
        right.push(at(
            Record::new(
                &format!("{id}"),
                &format!(
                    r#"{{"country": "FR", "id": {id}, "customer": "c{}", "amount": 12.5}}"#,
                    id % 5
                ),
            ),
            ts + 5,
        ));
    }
    // A line the legacy system wrote broken: rejected by the processor,
    // reported, not compared.
    left.push(at(Record::new("c0", "broken;line"), BASE + 600));
    kafka.produce("legacy.csv", left).unwrap();
    kafka.produce("new.json", right).unwrap();
    let csv_to_json = partita_tests::wasm::component("csv-to-json");
    let (run, summary) = validate(
        &bs,
        &[
            "--left",
            "legacy.csv",
            "--right",
            "new.json",
            "--key",
            "/id",
            "--left-processor",
            csv_to_json.to_str().unwrap(),
            "--left-config",
            "columns=id,customer,amount,country",
            "--left-config",
            "numeric=id,amount",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    assert_eq!(summary["counts"]["match"], 98, "{summary}");
    assert_eq!(summary["counts"]["mismatch"], 2, "{summary}");
    assert_eq!(summary["examples"]["mismatch"][0]["key"], "7");
    assert_eq!(
        summary["examples"]["mismatch"][0]["diff"][0]["field"],
        "/amount"
    );
    assert_eq!(summary["processor_rejected"]["left"], 1);
    assert!(
        run.output.contains("--left-processor: legacy.csv/"),
        "the rejection is shown: {}",
        run.output
    );

    // A processor that cannot be loaded is a usage error.
    let (run, _) = validate(
        &bs,
        &[
            "--left",
            "legacy.csv",
            "--right",
            "new.json",
            "--left-processor",
            "/nope.wasm",
        ],
    );
    assert_no_verdict(&run, "error: --left-processor:");
}

#[test]
fn following_idle_inputs_declares_what_waits_and_stops_with_a_summary() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("legacy", 2).unwrap();
    kafka.create_topic("new", 2).unwrap();
    let bs = broker.bootstrap();
    let rec = |id: u64, ts: i64| {
        at(
            Record::new(&format!("o{id}"), &order(id, 1.0, 0)),
            BASE + ts,
        )
    };
    kafka
        .produce("legacy", (0..3).map(|id| rec(id, id as i64 * 100)))
        .unwrap();
    kafka
        .produce("new", (0..2).map(|id| rec(id, id as i64 * 100 + 10)))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("validate.log");
    let mut run = partita_tests::partita::Partita::start(
        "validate",
        &[
            "validate",
            "--bootstrap",
            &bs,
            "--left",
            "legacy",
            "--right",
            "new",
            "--key",
            "/id",
            "--window",
            "500ms",
            "--grace",
            "0s",
            "--until",
            "follow",
            "--format",
            "json",
        ],
        &log,
    )
    .unwrap();
    // Both sides go idle: stream time moves on and the unpaired record is
    // declared while following; SIGTERM then ends the run with the summary.
    std::thread::sleep(Duration::from_secs(6));
    run.assert_running().unwrap();
    let status = run.stop(Duration::from_secs(30)).unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{output}");
    let summary = summary_of(&output).unwrap_or_else(|| panic!("no summary in {output}"));
    assert_eq!(summary["counts"]["match"], 4, "{summary}");
    assert_eq!(summary["counts"]["only_left"], 1, "{summary}");
    assert_eq!(summary["examples"]["only_left"][0]["key"], "2");
}
