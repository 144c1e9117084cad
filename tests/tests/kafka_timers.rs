//! `window-sum` under `partita run` against a real broker: each tumbling
//! window is emitted exactly once, by the timer call that follows the
//! first batch whose records take stream time to the window's end plus the
//! grace period, not before; records late but within grace are summed, and
//! records later than that go to the dead-letter topic with the reason.
//!
//! Every check runs once the stage has committed all its input: a batch's
//! offsets are committed only after the outputs of its timer call are
//! acknowledged, so the output topic is then complete for that stream time.

use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Kafka, Record};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml, wait_caught_up};
use partita_tests::wasm::component;

/// A whole second, so windows of 1 s start at T0.
const T0: i64 = 1_700_000_000_000;

fn amount(key: &str, at: i64, value: &str) -> Record {
    Record {
        timestamp: Some(T0 + at),
        ..Record::new(key, value)
    }
}

/// The windows emitted so far, as `(key, start - T0, end - T0, sum, count)`.
fn windows(kafka: &Kafka) -> Vec<(String, i64, i64, f64, u64)> {
    let mut out: Vec<_> = kafka
        .consume_all("sums")
        .unwrap()
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.value_str()).unwrap();
            assert_eq!(c.key_str(), v["key"].as_str().unwrap());
            assert_eq!(
                c.timestamp,
                v["window_end"].as_i64(),
                "timestamped at the end"
            );
            (
                v["key"].as_str().unwrap().to_string(),
                v["window_start"].as_i64().unwrap() - T0,
                v["window_end"].as_i64().unwrap() - T0,
                v["sum"].as_f64().unwrap(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    out
}

fn w(key: &str, start: i64, sum: f64, count: u64) -> (String, i64, i64, f64, u64) {
    (key.to_string(), start, start + 1000, sum, count)
}

#[test]
fn windows_close_once_when_stream_time_passes_end_plus_grace() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    for t in ["amounts", "sums", "amounts.dlq"] {
        kafka.create_topic(t, 1).unwrap();
    }
    let processor = component("window-sum");
    let ws = Workspace::new().unwrap();
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        "commit_interval_ms = 100",
        &[Stage {
            name: "win",
            processor: &processor,
            input: "amounts",
            outputs: &[("default", "sums")],
            extra: "config = { window_ms = 1000, grace_ms = 500 }\ntimer_interval_ms = 50",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut host = Partita::run("host", &file, &ws.log("host")).unwrap();
    let caught_up = |host: &mut Partita| {
        wait_caught_up(
            &kafka,
            &[("g.win", "amounts")],
            Duration::from_secs(60),
            || host.assert_running(),
        )
        .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    };

    // Window [0, 1000) open; stream time 900.
    kafka
        .produce(
            "amounts",
            [
                amount("a", 100, "1"),
                amount("b", 200, "2"),
                amount("a", 900, "3"),
            ],
        )
        .unwrap();
    caught_up(&mut host);
    assert_eq!(windows(&kafka), [], "stream time 900: nothing closed");

    // Past the end, within grace: stream time 1200 < 1000 + 500; a record
    // for [0, 1000) arriving now still counts.
    kafka
        .produce("amounts", [amount("c", 1_200, "5"), amount("a", 950, "4")])
        .unwrap();
    caught_up(&mut host);
    assert_eq!(windows(&kafka), [], "stream time 1200: still within grace");

    // Stream time 1500 = end + grace: [0, 1000) closes, once, with the late
    // record in it; c's window [1000, 2000) stays open.
    kafka
        .produce("amounts", [amount("b", 1_500, "10")])
        .unwrap();
    caught_up(&mut host);
    let first = vec![w("a", 0, 8.0, 3), w("b", 0, 2.0, 1)];
    assert_eq!(windows(&kafka), first);

    // Too late for [0, 1000): to the DLQ. Stream time 2600 closes [1000, 2000).
    kafka
        .produce(
            "amounts",
            [amount("a", 999, "100"), amount("a", 2_600, "1")],
        )
        .unwrap();
    caught_up(&mut host);
    let mut all = first.clone();
    all.extend([w("b", 1000, 10.0, 1), w("c", 1000, 5.0, 1)]);
    assert_eq!(windows(&kafka), all, "each window once");

    let dead = kafka.consume_all("amounts.dlq").unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].value_str(), "100");
    assert_eq!(
        dead[0].header_str("partita.error").as_deref(),
        Some(
            format!(
                "late: window [{T0}, {}) closed at stream time {} (grace 500 ms)",
                T0 + 1000,
                T0 + 1500
            )
            .as_str()
        )
    );
    assert_eq!(
        dead[0].header_str("partita.error.kind").as_deref(),
        Some("rejected")
    );

    // Idle timer calls emit nothing more while stream time stands still.
    host.stop(Duration::from_secs(30)).unwrap();
    assert_eq!(windows(&kafka), all);
}
