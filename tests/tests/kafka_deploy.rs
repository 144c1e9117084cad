//! Cluster-wide deploys through the control topic (docs/DEPLOY.md): two
//! hosts run a stage with `follow = "deploy"` while records flow;
//! `partita deploy` publishes a component, both hosts try it and swap it
//! in (or both refuse it), a host started later starts on the deployed
//! version, and deploying an earlier version rolls every host back.

use std::path::Path;
use std::time::Duration;

use crate::reload_common::{Flow, Host, OneStage, check_exactly_once_in_order, tagged, version_of};
use partita_tests::kafka::wait_until;
use partita_tests::partita::{Finished, run_to_end};
use partita_tests::pipeline::wait_caught_up;
use partita_tests::wasm::component;

const PARTITIONS: i32 = 4;
const TOTAL: u64 = 30_000;
const CATCH_UP: Duration = Duration::from_secs(180);
/// How long `partita deploy` waits for the hosts' answers.
const WAIT: &str = "90";

/// `partita deploy PIPELINE ARGS...`, to its end.
fn deploy(pipeline: &Path, args: &[&str]) -> Finished {
    let mut all = vec!["deploy", pipeline.to_str().unwrap()];
    all.extend_from_slice(args);
    run_to_end(&all, Duration::from_secs(180)).unwrap()
}

/// What `partita deploy --list` prints.
fn list(pipeline: &Path) -> String {
    let out = deploy(pipeline, &["--list"]);
    assert!(out.status.success(), "{}", out.output);
    out.output
}

/// Stage `tag` of group `fleet` following deployments, starting on
/// `initial`.
fn setup(initial: &Path) -> OneStage {
    OneStage::new(PARTITIONS, "fleet", "tag", initial, "follow = \"deploy\"")
}

/// Waits until `--list` shows `host` running `version` on stage `tag`.
fn wait_listed(pipeline: &Path, host: &str, version: &str) {
    let needle = format!("{host}: live {version}");
    let mut last = String::new();
    wait_until(Duration::from_secs(90), &needle, || {
        last = list(pipeline);
        Ok(last.contains(&needle))
    })
    .unwrap_or_else(|e| panic!("{e:#}\nlast list:\n{last}"));
}

#[test]
fn a_deploy_reaches_every_host_a_bad_one_is_refused_by_all_and_a_late_host_starts_on_it() {
    let v1_path = component("tag-v1");
    let v1 = std::fs::read(&v1_path).unwrap();
    let v2_path = component("tag-v2");
    let v2 = std::fs::read(&v2_path).unwrap();
    // The broker runs as long as `_broker` lives.
    let OneStage {
        broker: _broker,
        kafka,
        ws,
        file,
    } = setup(&v1_path);
    let mut a = Host::start("a", &ws, &file);
    let mut b = Host::start("b", &ws, &file);
    wait_listed(&file, "a", &version_of(&v1));
    wait_listed(&file, "b", &version_of(&v1));

    // The version the hosts started with, deployed: nothing to swap, and
    // it is in the topic to roll back to later.
    let out = deploy(
        &file,
        &[
            "--stage",
            "tag",
            "--processor",
            v1_path.to_str().unwrap(),
            "--wait",
            WAIT,
        ],
    );
    assert!(out.status.success(), "{}", out.output);

    let flow = Flow::start(&kafka, "in", TOTAL, 256, Duration::from_millis(300));
    flow.wait_produced(5_000);

    // A component of another world: both hosts refuse it, v1 runs on.
    let wrong = component("wrong-world");
    let out = deploy(
        &file,
        &[
            "--stage",
            "tag",
            "--processor",
            wrong.to_str().unwrap(),
            "--wait",
            WAIT,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.output);
    for host in ["a", "b"] {
        assert!(
            out.output
                .contains(&format!("{host}: refused it (wrong_world)")),
            "{}",
            out.output
        );
    }
    a.wait_refused("tag", "wrong_world", 1.0);
    b.wait_refused("tag", "wrong_world", 1.0);

    let during = flow.produced();
    let out = deploy(
        &file,
        &[
            "--stage",
            "tag",
            "--processor",
            v2_path.to_str().unwrap(),
            "--wait",
            WAIT,
        ],
    );
    assert!(out.status.success(), "{}", out.output);
    let v2_version = version_of(&v2);
    for host in ["a", "b"] {
        assert!(
            out.output.contains(&format!("{host}: runs {v2_version}")),
            "{}",
            out.output
        );
    }
    assert_eq!(flow.join(), TOTAL);
    assert!(during < TOTAL, "records kept flowing through the deploy");
    wait_caught_up(&kafka, &[("fleet.tag", "in")], CATCH_UP, || {
        a.process.assert_running()?;
        b.process.assert_running()
    })
    .unwrap();

    // Every input has exactly one output, v1 then v2 per partition.
    let outputs = kafka.consume_all("out").unwrap();
    let ends: Vec<i64> = kafka
        .watermarks("in")
        .unwrap()
        .iter()
        .map(|w| w.high)
        .collect();
    let counts = check_exactly_once_in_order(&tagged(&outputs), &ends, &["tag-v1", "tag-v2"]);
    assert_eq!(counts.values().sum::<u64>(), TOTAL);
    assert!(counts["tag-v1"] > 0 && counts["tag-v2"] > 0, "{counts:?}");
    println!("outputs per version: {counts:?}");

    // A host started now starts on the deployed version.
    let mut c = Host::start("c", &ws, &file);
    wait_listed(&file, "c", &v2_version);
    assert!(
        c.log().contains("starting with the deployed tag_v2.wasm"),
        "{}",
        c.log()
    );

    // Rolling back: deploying v1 again, from the topic.
    let v1_version = version_of(&v1);
    let out = deploy(
        &file,
        &[
            "--stage",
            "tag",
            "--version",
            &v1_version[..8],
            "--wait",
            WAIT,
        ],
    );
    assert!(out.status.success(), "{}", out.output);
    for host in ["a", "b", "c"] {
        assert!(
            out.output.contains(&format!("{host}: runs {v1_version}")),
            "{}",
            out.output
        );
    }
    let listed = list(&file);
    println!("{listed}");
    assert!(
        listed.contains(&format!("live       {v1_version} tag_v1.wasm")),
        "{listed}"
    );
    assert_eq!(
        listed.matches("    live ").count(),
        4,
        "four deployments in the history (v1, wrong world, v2, v1):\n{listed}"
    );
    for h in [&mut a, &mut b, &mut c] {
        h.process.stop(Duration::from_secs(30)).unwrap();
    }
}

#[test]
fn bad_arguments_deploy_nothing() {
    let v1_path = component("tag-v1");
    // The broker and the folder last as long as `_broker` and `_ws`.
    let OneStage {
        broker: _broker,
        ws: _ws,
        file,
        ..
    } = setup(&v1_path);
    let out = deploy(
        &file,
        &["--stage", "nope", "--processor", v1_path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.output);
    assert!(out.output.contains("--stage nope: "), "{}", out.output);
    assert!(
        out.output.contains("has no such stage (its stages: tag)"),
        "{}",
        out.output
    );
    let out = deploy(&file, &["--stage", "tag", "--version", "0123456789ab"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.output);
    assert!(
        out.output.contains("no deployment of stage \"tag\""),
        "{}",
        out.output
    );
    let out = deploy(&file, &["--stage", "tag"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.output);
    assert!(
        out.output
            .contains("give --processor FILE.wasm or --version HASH"),
        "{}",
        out.output
    );
    assert!(list(&file).contains("nothing deployed yet"));
}
