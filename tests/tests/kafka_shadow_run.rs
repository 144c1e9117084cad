//! Shadow runs (docs/DEPLOY.md, "Candidates"): a candidate deployed with
//! `partita deploy --as candidate` runs beside the live `csv-to-json` on
//! the same records. It is the build that rounds amounts to cents, so it
//! differs exactly on the orders whose amount has more than two decimals:
//! the comparison counts those and only those, names the field, writes
//! them to the diff topic, and the candidate's outputs go to the shadow
//! topic while the live outputs stay the live version's. `--promote` then
//! makes the candidate live.

use std::time::Duration;

use crate::reload_common::{Host, OneStage, tagged, version_of};
use partita_tests::kafka::{Record, wait_until};
use partita_tests::partita::{Finished, run_to_end};
use partita_tests::pipeline::{toml_path, wait_caught_up};
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

/// Waits until `--list` shows `needle`.
fn wait_listed(file: &std::path::Path, needle: &str) {
    let mut last = String::new();
    wait_until(Duration::from_secs(90), needle, || {
        last = deploy(file, &["--list"]).output;
        Ok(last.contains(needle))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlast list:\n{last}"));
}

#[test]
fn every_host_runs_the_candidate_a_late_one_too_and_promote_switches_them_all() {
    let v1 = component("tag-v1");
    let v2 = component("tag-v2");
    let (v1_version, v2_version) = (
        version_of(&std::fs::read(&v1).unwrap()),
        version_of(&std::fs::read(&v2).unwrap()),
    );
    let OneStage {
        broker: _broker,
        ws,
        file,
        ..
    } = OneStage::new(4, "fleet", "tag", &v1, "follow = \"deploy\"");
    let mut a = Host::start("a", &ws, &file);
    let mut b = Host::start("b", &ws, &file);
    wait_listed(&file, &format!("a: live {v1_version}"));
    wait_listed(&file, &format!("b: live {v1_version}"));
    let v2_arg = v2.to_str().unwrap();
    let args = [
        "--stage",
        "tag",
        "--processor",
        v2_arg,
        "--as",
        "candidate",
        "--wait",
        "90",
    ];
    let out = deploy(&file, &args);
    assert!(out.status.success(), "{}", out.output);
    for host in ["a", "b"] {
        assert!(
            out.output.contains(&format!("{host}: runs {v2_version}")),
            "{}",
            out.output
        );
    }
    // A host started now runs the live version and the candidate.
    let mut c = Host::start("c", &ws, &file);
    wait_listed(
        &file,
        &format!("c: live {v1_version}, candidate {v2_version}"),
    );

    let out = deploy(&file, &["--stage", "tag", "--promote", "--wait", "90"]);
    assert!(
        out.status.success(),
        "{}\nhost a:\n{}\nhost b:\n{}",
        out.output,
        a.process.log_tail(30),
        b.process.log_tail(30)
    );
    for host in ["a", "b", "c"] {
        assert!(
            out.output.contains(&format!("{host}: runs {v2_version}")),
            "{}",
            out.output
        );
        wait_listed(&file, &format!("{host}: live {v2_version} ("));
    }
    // Nothing left to withdraw.
    let out = deploy(&file, &["--stage", "tag", "--withdraw"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.output);
    assert!(
        out.output.contains("stage \"tag\" has no candidate"),
        "{}",
        out.output
    );
    for h in [&mut a, &mut b, &mut c] {
        h.process.stop(Duration::from_secs(30)).unwrap();
    }
}

#[test]
fn a_candidate_key_in_the_pipeline_file_runs_on_a_single_host() {
    let v1 = component("tag-v1");
    let v2 = component("tag-v2");
    let candidate = format!("candidate = {}", toml_path(&v2));
    let OneStage {
        broker: _broker,
        kafka,
        ws,
        file,
    } = OneStage::new(2, "single", "tag", &v1, &candidate);
    let mut host = Host::start("host", &ws, &file);
    let records = (0..500).map(|i| Record::new(&format!("k{i}"), &i.to_string()));
    kafka.produce("in", records).unwrap();
    wait_caught_up(
        &kafka,
        &[("single.tag", "in")],
        Duration::from_secs(120),
        || host.process.assert_running(),
    )
    .unwrap();
    let filter = [("stage", "tag"), ("class", "differ")];
    wait_until(Duration::from_secs(60), "500 records compared", || {
        Ok(host.metric("partita_shadow_records_total", &filter) >= 500.0)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", host.log()));
    // Every output differs (its tag; the values are not JSON, so the field
    // is the whole value, ""); the live ones are v1's.
    let whole = [("stage", "tag"), ("field", "")];
    assert_eq!(
        host.metric("partita_shadow_field_diffs_total", &whole),
        500.0
    );
    let live = tagged(&kafka.consume_all("out").unwrap());
    assert_eq!(live.len(), 500);
    assert!(live.values().flatten().all(|t| t.tag == "tag-v1"));
    let shadow = tagged(&kafka.consume_all("out.shadow").unwrap());
    assert_eq!(shadow.len(), 500);
    assert!(shadow.values().flatten().all(|t| t.tag == "tag-v2"));
    host.process.stop(Duration::from_secs(30)).unwrap();
}
