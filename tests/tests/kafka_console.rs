//! The live console of `partita run --metrics-addr ADDR`, against a real
//! broker and read as a person sees it: headless Chromium loads
//! `http://ADDR/`, runs its JavaScript, and the rendered page shows the
//! stage, its processor version, the records it took in, the partitions
//! this host owns, its dead letters with their reasons, and a hot swap in
//! its version history.

use std::time::Duration;

use partita_tests::broker::{Broker, free_port};
use partita_tests::browser::{chromium, rendered_dom, screenshot};
use partita_tests::kafka::{Record, wait_until};
use partita_tests::metrics::{scrape, sum};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Workspace, toml_path};
use partita_tests::wasm::{component, repo_root};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn the_console_shows_a_running_stage_its_dead_letters_and_its_swaps() {
    if let Err(e) = chromium() {
        eprintln!("skipped: {e:#}");
        return;
    }
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("console.in", 2).unwrap();
    // 40 orders, 4 of them malformed (one field): dead letters.
    let orders = (0..40).map(|i| {
        let line = if i % 10 == 3 {
            format!("broken{i}")
        } else {
            format!("{i},c{},{}.5,NL", i % 4, i)
        };
        Record::new(&format!("c{}", i % 4), &line)
    });
    kafka.produce("console.in", orders).unwrap();

    let ws = Workspace::new().unwrap();
    let processor = ws.path().join("parse.wasm");
    std::fs::copy(component("csv-to-json"), &processor).unwrap();
    let text = format!(
        "[kafka]\nbootstrap = \"{}\"\ngroup = \"console\"\ncreate_topics = true\n\n\
         [[stage]]\nname = \"parse\"\nprocessor = {}\ninput = \"console.in\"\n\
         outputs = {{ default = \"console.json\" }}\n\
         config = {{ columns = \"id,customer,amount,country\", numeric = \"amount\" }}\n",
        broker.bootstrap(),
        toml_path(&processor)
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let mut host = Partita::start(
        "console",
        &["run", file.to_str().unwrap(), "--metrics-addr", &addr],
        &ws.log("console"),
    )
    .unwrap();
    wait_until(WAIT, "every order processed", || {
        Ok(scrape(&addr).is_ok_and(|s| sum(&s, "partita_records_in_total", &[]) >= 40.0))
    })
    .unwrap();
    let v1 = &blake3::hash(&std::fs::read(&processor).unwrap()).to_hex()[..12];

    // A hot swap: the rounding build written over the stage's file.
    let v2_bytes =
        std::fs::read(component("csv-to-json").with_file_name("csv_to_json_round_to_cents.wasm"))
            .unwrap();
    let v2 = blake3::hash(&v2_bytes).to_hex()[..12].to_string();
    std::fs::write(ws.path().join("parse.partial"), &v2_bytes).unwrap();
    std::fs::rename(ws.path().join("parse.partial"), &processor).unwrap();
    wait_until(WAIT, "the swap", || {
        Ok(scrape(&addr).is_ok_and(|s| sum(&s, "partita_reloads_total", &[]) >= 1.0))
    })
    .unwrap();

    let url = format!("http://{addr}/");
    let mut dom = String::new();
    // The page fills itself from /status.json once its script has run.
    wait_until(WAIT, "the page drawn", || {
        dom = rendered_dom(&url).unwrap_or_default();
        Ok(dom.contains("stage-parse"))
    })
    .unwrap();
    host.assert_running().unwrap();
    // What docs/console.png shows (copied from target/ by hand).
    screenshot(&url, &repo_root().join("target/console.png"), 1000, 1100).unwrap();
    let text = strip_tags(&dom);
    for expected in [
        "stage parse",
        &v2,
        v1,
        "records in40",
        "dead letters4",
        "partitions owned2",
        "partitions: 0, 1",
        "expected 4 fields, found 1",
        "swaps1",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` not in the page:\n{text}"
        );
    }
    host.stop(WAIT).unwrap();
}

/// The text of an HTML document, tags removed (cells run together).
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}
