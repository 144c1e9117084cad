//! Shadow runs (docs/DEPLOY.md, "Candidates"): a candidate deployed with
//! `partita deploy --as candidate` runs beside the live `csv-to-json` on
//! the same records. It is the build that rounds amounts to cents, so it
//! differs exactly on the orders whose amount has more than two decimals:
//! the comparison counts those and only those, names the field, writes
//! them to the diff topic, and the candidate's outputs go to the shadow
//! topic while the live outputs stay the live version's. `--promote` then
//! makes the candidate live.

use std::time::Duration;

use crate::reload_common::{Host, OneStage, version_of};
use partita_tests::kafka::{Record, wait_until};
use partita_tests::partita::{Finished, run_to_end};
use partita_tests::pipeline::wait_caught_up;
use partita_tests::wasm::component;

const RECORDS: u64 = 2_000;

/// Order `i`: every tenth has an amount with three decimals.
fn line(i: u64) -> String {
    let amount = if i.is_multiple_of(10) {
        "12.345"
    } else {
        "12.34"
    };
    format!("{i},c{},{amount},FR", i % 7)
}

fn deploy(file: &std::path::Path, args: &[&str]) -> Finished {
    let mut all = vec!["deploy", file.to_str().unwrap()];
    all.extend_from_slice(args);
    run_to_end(&all, Duration::from_secs(180)).unwrap()
}

#[test]
fn a_candidate_differs_exactly_where_its_logic_does_and_is_promoted() {
    let live = component("csv-to-json");
    let candidate = component("csv-to-json-round-to-cents");
    let candidate_version = version_of(&std::fs::read(&candidate).unwrap());
    let config = "follow = \"deploy\"\n\
                  config = { columns = \"id,customer,amount,country\", numeric = \"amount\" }";
    let OneStage {
        broker: _broker,
        kafka,
        ws,
        file,
    } = OneStage::new(2, "shadow", "parse", &live, config);
    let mut host = Host::start("host", &ws, &file);

    let out = deploy(
        &file,
        &[
            "--stage",
            "parse",
            "--processor",
            candidate.to_str().unwrap(),
            "--as",
            "candidate",
            "--wait",
            "90",
        ],
    );
    assert!(out.status.success(), "{}\n{}", out.output, host.log());
    assert!(
        out.output
            .contains(&format!("host: runs {candidate_version}")),
        "{}",
        out.output
    );

    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record::new(&format!("k{i}"), &line(i)))
        .collect();
    kafka.produce("in", records).unwrap();
    wait_caught_up(
        &kafka,
        &[("shadow.parse", "in")],
        Duration::from_secs(120),
        || host.process.assert_running(),
    )
    .unwrap();
    let class = |host: &mut Host, c: &str| {
        host.metric(
            "partita_shadow_records_total",
            &[("stage", "parse"), ("class", c)],
        )
    };
    wait_until(Duration::from_secs(60), "every record compared", || {
        let seen: f64 = [
            "same",
            "differ",
            "candidate_failed",
            "live_failed",
            "skipped",
        ]
        .iter()
        .map(|c| class(&mut host, c))
        .sum();
        Ok(seen >= RECORDS as f64)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", host.log()));
    assert_eq!(class(&mut host, "differ"), (RECORDS / 10) as f64);
    assert_eq!(class(&mut host, "same"), (RECORDS - RECORDS / 10) as f64);
    assert_eq!(class(&mut host, "skipped"), 0.0);
    assert_eq!(
        host.metric(
            "partita_shadow_field_diffs_total",
            &[("stage", "parse"), ("field", "/amount")]
        ),
        (RECORDS / 10) as f64
    );

    // The live outputs are the live version's: every amount kept.
    let outputs = kafka.consume_all("out").unwrap();
    assert_eq!(outputs.len() as u64, RECORDS);
    let kept = outputs
        .iter()
        .filter(|o| String::from_utf8_lossy(o.value.as_deref().unwrap()).contains("12.345"))
        .count();
    assert_eq!(kept as u64, RECORDS / 10);
    // The candidate's go to the shadow topic, rounded.
    let shadow = kafka.consume_all("out.shadow").unwrap();
    assert_eq!(shadow.len() as u64, RECORDS);
    assert!(
        shadow
            .iter()
            .all(|o| !String::from_utf8_lossy(o.value.as_deref().unwrap()).contains("12.345"))
    );
    // A sample of the differences, each one of the orders with three
    // decimals, naming the field.
    let diffs = kafka.consume_all("shadow.parse.diffs").unwrap();
    assert!(!diffs.is_empty());
    for d in &diffs {
        let json: serde_json::Value = serde_json::from_slice(d.value.as_deref().unwrap()).unwrap();
        assert_eq!(json["class"], "differ", "{json}");
        assert_eq!(json["fields"], serde_json::json!(["/amount"]), "{json}");
        let live_value = json["live"][0]["value"].as_str().unwrap();
        assert!(live_value.contains("12.345"), "{json}");
    }
    // Hosts report their comparison every few seconds.
    let want = format!(
        "host: same {}, differ {}, candidate failed 0",
        RECORDS - RECORDS / 10,
        RECORDS / 10
    );
    let mut status = deploy(&file, &["--status"]);
    wait_until(Duration::from_secs(60), &want, || {
        status = deploy(&file, &["--status"]);
        assert!(status.status.success(), "{}", status.output);
        Ok(status.output.contains(&want))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", status.output));
    println!("{}", status.output);

    // Promoted: the rounding build is live, and nothing is a candidate.
    let out = deploy(&file, &["--stage", "parse", "--promote", "--wait", "90"]);
    assert!(out.status.success(), "{}\n{}", out.output, host.log());
    let info = [("stage", "parse"), ("version", candidate_version.as_str())];
    assert_eq!(host.metric("partita_processor_info", &info), 1.0);
    kafka
        .produce("in", [Record::new("k-last", &line(10 * RECORDS))])
        .unwrap();
    wait_caught_up(
        &kafka,
        &[("shadow.parse", "in")],
        Duration::from_secs(60),
        || host.process.assert_running(),
    )
    .unwrap();
    let outputs = kafka.consume_all("out").unwrap();
    let last = outputs
        .iter()
        .find(|o| o.key.as_deref() == Some(b"k-last".as_slice()))
        .expect("the output of the record after the promotion");
    let value = String::from_utf8_lossy(last.value.as_deref().unwrap());
    assert!(
        !value.contains("12.345"),
        "rounded by the promoted version: {value}"
    );
    let listed = deploy(&file, &["--list"]);
    assert!(
        listed.output.contains("  candidate  -"),
        "{}",
        listed.output
    );
    host.process.stop(Duration::from_secs(30)).unwrap();
}
