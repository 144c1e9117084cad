use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::render::escape;
use super::*;

fn inputs(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn counters_render_per_stage_and_partition() {
    let m = Metrics::new();
    let s = m.stage("pass", &inputs(&["in"]));
    s.set_version("abc123");
    let p0 = m.partition("pass", 0);
    let p3 = m.partition("pass", 3);
    p0.records_in.fetch_add(10, Relaxed);
    p0.records_out.fetch_add(9, Relaxed);
    p0.rejected.fetch_add(1, Relaxed);
    p0.dlq.fetch_add(1, Relaxed);
    p3.records_in.fetch_add(5, Relaxed);
    p3.failed.fetch_add(2, Relaxed);
    p3.skipped.fetch_add(2, Relaxed);
    s.commit_failures.fetch_add(1, Relaxed);
    s.transactions.fetch_add(4, Relaxed);
    s.transaction_aborts.fetch_add(1, Relaxed);
    let text = m.render();
    for line in [
        "# TYPE partita_records_in_total counter",
        "partita_records_in_total{stage=\"pass\",partition=\"0\"} 10",
        "partita_records_in_total{stage=\"pass\",partition=\"3\"} 5",
        "partita_records_out_total{stage=\"pass\",partition=\"0\"} 9",
        "partita_records_rejected_total{stage=\"pass\",partition=\"0\"} 1",
        "partita_records_failed_total{stage=\"pass\",partition=\"3\"} 2",
        "partita_dlq_total{stage=\"pass\",partition=\"0\"} 1",
        "partita_records_skipped_total{stage=\"pass\",partition=\"3\"} 2",
        "partita_commit_failures_total{stage=\"pass\"} 1",
        "partita_transactions_total{stage=\"pass\"} 4",
        "partita_transaction_aborts_total{stage=\"pass\"} 1",
        "partita_produce_retries_total{stage=\"pass\"} 0",
        "partita_processor_info{stage=\"pass\",version=\"abc123\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn batch_histogram_is_cumulative_with_sum_and_count() {
    let m = Metrics::new();
    let s = m.stage("a", &[]);
    s.observe_batch(Duration::from_micros(300));
    s.observe_batch(Duration::from_millis(3));
    s.observe_batch(Duration::from_secs(20));
    let text = m.render();
    for line in [
        "# TYPE partita_batch_seconds histogram",
        "partita_batch_seconds_bucket{stage=\"a\",le=\"0.0005\"} 1",
        "partita_batch_seconds_bucket{stage=\"a\",le=\"0.001\"} 1",
        "partita_batch_seconds_bucket{stage=\"a\",le=\"0.005\"} 2",
        "partita_batch_seconds_bucket{stage=\"a\",le=\"10\"} 2",
        "partita_batch_seconds_bucket{stage=\"a\",le=\"+Inf\"} 3",
        "partita_batch_seconds_sum{stage=\"a\"} 20.0033",
        "partita_batch_seconds_count{stage=\"a\"} 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn lag_is_the_groups_on_every_partition_marked_owned_or_not() {
    let m = Metrics::new();
    let s = m.stage("join", &inputs(&["a", "b"]));
    m.partition("join", 1).set_assigned(true);
    m.partition("join", 0);
    assert_eq!(m.owned_partitions("join"), BTreeSet::from([1]));
    assert_eq!(m.totals()[0].1.lag, None, "not probed yet");
    let text = m.render();
    assert!(!text.contains("partita_consumer_lag{"), "{text}");
    let row = |topic: &str, partition, lag, owned, stalled| LagRow {
        topic: topic.into(),
        partition,
        lag,
        owned,
        stalled,
    };
    s.set_group_status(GroupStatus {
        rows: vec![
            row("a", 0, 60, false, false),
            row("a", 1, 5, true, true),
            row("b", 0, 0, false, false),
            row("b", 1, 10, true, false),
        ],
        unowned: 1,
    });
    let totals = &m.totals()[0].1;
    assert_eq!(totals.lag, Some(75));
    assert_eq!((totals.owned, totals.partitions, totals.unowned), (1, 2, 1));
    s.rejoins.fetch_add(2, Relaxed);
    let text = m.render();
    for line in [
        "partita_consumer_lag{stage=\"join\",topic=\"a\",partition=\"0\",owned=\"false\"} 60",
        "partita_consumer_lag{stage=\"join\",topic=\"a\",partition=\"1\",owned=\"true\"} 5",
        "partita_consumer_lag{stage=\"join\",topic=\"b\",partition=\"1\",owned=\"true\"} 10",
        "partita_partition_stalled{stage=\"join\",topic=\"a\",partition=\"1\"} 1",
        "partita_partition_stalled{stage=\"join\",topic=\"b\",partition=\"1\"} 0",
        "partita_group_unowned_partitions{stage=\"join\"} 1",
        "partita_group_rejoins_total{stage=\"join\"} 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("partita_partition_stalled{stage=\"join\",topic=\"a\",partition=\"0\"}"),
        "stalled is only for partitions owned here"
    );
    s.clear_group_status();
    assert_eq!(m.totals()[0].1.lag, None, "unknown, not stale");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn progress_line_gives_rates_lag_and_what_this_host_owns() {
    let t = |i, o, d, lag, owned, partitions, unowned| StageTotals {
        records_in: i,
        records_out: o,
        dlq: d,
        lag,
        owned,
        partitions,
        unowned,
        ..StageTotals::default()
    };
    let before = vec![
        ("a".to_string(), t(100, 100, 0, Some(5), 2, 4, 0)),
        ("b".to_string(), t(0, 0, 0, None, 0, 0, 0)),
    ];
    let now = vec![
        ("a".to_string(), t(1100, 1000, 100, Some(7), 2, 4, 0)),
        ("b".to_string(), t(500, 50, 0, None, 1, 0, 0)),
    ];
    assert_eq!(
        progress_line(&before, &now, Duration::from_secs(2)),
        "progress: a in 500/s out 450/s dlq 50/s lag 7 (owns 2 of 4 partitions) \
         | b in 250/s out 25/s dlq 0/s lag ? (owns 1 partitions)"
    );
    let idle = vec![("a".to_string(), t(100, 100, 0, Some(52_000), 0, 4, 4))];
    assert_eq!(
        progress_line(&idle, &idle, Duration::from_secs(5)),
        "progress: a in 0/s out 0/s dlq 0/s lag 52000, owns none of 4 partitions; \
         4 partitions with lag have no owner",
        "a host owning nothing says so, never lag 0"
    );
}

#[tokio::test]
async fn the_endpoint_serves_metrics_and_404_elsewhere() {
    let m = Metrics::new();
    m.stage("s", &inputs(&["t"]));
    m.partition("s", 2).records_in.fetch_add(7, Relaxed);
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(m.clone(), listener));
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let ok = get("/metrics").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("partita_records_in_total{stage=\"s\",partition=\"2\"} 7\n"),
        "{ok}"
    );
    let body = ok.split("\r\n\r\n").nth(1).unwrap();
    let length: usize = ok
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert_eq!(length, body.len());
    let missing = get("/other").await;
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );
    server.abort();
}

#[test]
fn the_status_shows_versions_dead_letters_and_what_this_host_owns() {
    let m = Metrics::new();
    let s = m.stage("parse", &["in".to_string()]);
    s.set_version("v1");
    s.set_version("v1");
    s.set_version("v2");
    for i in 0..(HISTORY as i64 + 5) {
        s.note_dead_letter(("in", 1, i), "rejected", &format!("bad {i}"));
    }
    let p = m.partition("parse", 1);
    p.set_assigned(true);
    p.set_state_keys(7);
    p.records_in.fetch_add(10, Relaxed);
    p.rejected.fetch_add(3, Relaxed);
    let status = m.status();
    let stage = &status["stages"][0];
    assert_eq!(stage["name"], "parse");
    assert_eq!(stage["version"], "v2");
    let versions: Vec<&str> = stage["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v2"], "a version repeated is one entry");
    let letters = stage["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), HISTORY, "only the latest are kept");
    assert_eq!(
        letters[HISTORY - 1]["reason"],
        format!("bad {}", HISTORY + 4)
    );
    assert_eq!(letters[0]["kind"], "rejected");
    assert_eq!(stage["owned"], serde_json::json!([1]));
    assert_eq!(stage["state_keys"], 7);
    assert_eq!(
        (stage["records_in"].as_u64(), stage["rejected"].as_u64()),
        (Some(10), Some(3))
    );
    assert!(stage["shadow"].is_null());
    assert_eq!(status["tables"], serde_json::json!([]));
}
