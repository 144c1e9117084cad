//! `scripts/bench.sh --smoke`: the benchmark command runs every step
//! (criterion, end to end with the bare loop, passthrough and count and
//! their latency, the partition sweep) with tiny sizes on the debug build, and writes every
//! figure to its results file. Its figures are not checked: benchmarks
//! are read from release runs, never asserted in tests.

use std::process::Command;

use partita_tests::partita::partita_binary;
use partita_tests::wasm::repo_root;

#[test]
fn the_bench_command_runs_every_step_and_writes_its_results() {
    let out = tempfile::tempdir().expect("temporary folder");
    let run = Command::new("bash")
        .arg(repo_root().join("scripts/bench.sh"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .env(
            "PARTITA_BIN",
            partita_binary().expect("the partita binary builds"),
        )
        .output()
        .expect("run scripts/bench.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench.sh --smoke failed:\n{stderr}");
    assert!(stdout.contains("**Engine**"), "{stdout}");
    assert!(stdout.contains("passthrough/bare"), "{stdout}");

    let text = std::fs::read_to_string(out.path().join("results.json")).expect("results.json");
    let r: serde_json::Value = serde_json::from_str(&text).expect("results.json is JSON");
    assert_eq!(r["smoke"], true);
    for shape in ["100B", "1KB", "100B+3h"] {
        for case in ["native", "passthrough"] {
            for size in [1, 64, 512] {
                let id = format!("records/{shape}/{case}/{size}");
                assert!(
                    r["engine"][&id]["ns_per_element"]
                        .as_f64()
                        .is_some_and(|ns| ns > 0.0),
                    "no engine figure for {id}"
                );
            }
        }
    }
    for id in ["state/passthrough/512", "state/count/512"] {
        assert!(r["engine"][id]["ns_per_element"].is_number(), "no {id}");
    }
    let e2e = &r["e2e"]["settings"]["tansu"];
    let latency = &r["e2e"]["latency"]["tansu"];
    for kind in ["bare", "partita", "count"] {
        assert!(
            e2e[kind]["total_rate"].as_f64().is_some_and(|v| v > 0.0),
            "no end-to-end figure for {kind}: {e2e}"
        );
        assert!(
            latency[kind]["p99_ms"].is_u64() && latency[kind]["measured"].as_u64() > Some(0),
            "no latency for {kind}: {latency}"
        );
    }
    let partitions: Vec<u64> = r["partitions"]["runs"]
        .as_array()
        .expect("partition runs")
        .iter()
        .map(|run| run["partitions"].as_u64().expect("a partition count"))
        .collect();
    assert_eq!(partitions, [4, 64]);
    let staged = &r["stages"];
    assert_eq!(staged["stages"], 4, "{staged}");
    assert_eq!(staged["runs"][0]["partitions"], 8, "{staged}");
}
