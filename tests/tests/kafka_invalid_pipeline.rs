//! `partita run` refuses each invalid pipeline file with the error that
//! docs/PIPELINE.md documents: every problem on its own line as
//! `FILE:LINE:COLUMN: PLACE: MESSAGE`, exit status 2, before anything
//! starts. Most cases point at a port where no broker listens, which shows
//! that the checks run before Kafka is contacted; the missing-topics case
//! runs against a real broker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::partita::{Finished, run_to_end};
use partita_tests::pipeline::{Workspace, toml_path};
use partita_tests::wasm::component;

/// A bootstrap address where nothing listens.
const NOWHERE: &str = "127.0.0.1:1";

/// Generous: the first check of a processor compiles it.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn run(pipeline: &Path) -> Finished {
    run_to_end(&["run", pipeline.to_str().unwrap()], RUN_TIMEOUT).unwrap()
}

/// Runs `text` as `pipeline.toml` and asserts exit status 2 and, for each
/// `(line, place_and_message)`, an output line
/// `FILE:LINE:COLUMN: PLACE_AND_MESSAGE...`.
fn expect_problems(text: &str, expected: &[(usize, &str)]) -> String {
    let ws = Workspace::new().unwrap();
    let file = ws.write("pipeline.toml", text).unwrap();
    let done = run(&file);
    assert_eq!(
        done.status.code(),
        Some(2),
        "status {}; output:\n{}",
        done.status,
        done.output
    );
    let prefix = format!("{}:", file.display());
    for (line, what) in expected {
        let found = done.output.lines().any(|l| {
            let Some(rest) = l.strip_prefix(&prefix) else {
                return false;
            };
            let mut parts = rest.splitn(3, ':');
            let (Some(l_no), Some(col), Some(msg)) = (parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            l_no == line.to_string()
                && col.parse::<usize>().is_ok_and(|c| c >= 1)
                && msg.trim_start().starts_with(what)
        });
        assert!(
            found,
            "no line `{prefix}{line}:COL: {what}...` in:\n{}",
            done.output
        );
    }
    done.output
}

fn misbehave() -> PathBuf {
    component("misbehave")
}

fn passthrough() -> PathBuf {
    component("passthrough")
}

/// A valid one-stage pipeline with `extra` added to the stage.
fn stage_with(extra: &str) -> String {
    format!(
        r#"[kafka]
bootstrap = "{NOWHERE}"
group = "g"

[[stage]]
name = "pass"
processor = {}
input = "in"
outputs = {{ default = "out" }}
{extra}
"#,
        toml_path(&passthrough())
    )
}

#[test]
fn unknown_key_in_a_stage() {
    expect_problems(
        &stage_with("batchsize = 10"),
        &[(10, "stage \"pass\": unknown key `batchsize`")],
    );
}

#[test]
fn unknown_key_in_kafka() {
    let text = stage_with("").replace("group = \"g\"", "group = \"g\"\nbrokers = \"x\"");
    expect_problems(&text, &[(4, "kafka: unknown key `brokers`")]);
}

#[test]
fn missing_bootstrap_and_missing_stage_input() {
    let text = stage_with("")
        .replace(&format!("bootstrap = \"{NOWHERE}\"\n"), "")
        .replace("input = \"in\"\n", "");
    expect_problems(
        &text,
        &[
            (1, "kafka: missing key `bootstrap`"),
            (4, "stage \"pass\": missing key `input`"),
        ],
    );
}

#[test]
fn wrong_types_name_the_key() {
    let text = stage_with("batch_size = \"many\"")
        .replace("group = \"g\"", "group = \"g\"\ncreate_topics = \"yes\"");
    expect_problems(
        &text,
        &[
            (
                4,
                "kafka: create_topics: expected true or false, found string",
            ),
            (11, "stage \"pass\": batch_size: expected"),
        ],
    );
}

#[test]
fn toml_syntax_error() {
    let text = stage_with("").replace("name = \"pass\"", "name = \"pass");
    let out = expect_problems(&text, &[]);
    assert!(out.contains("invalid TOML"), "{out}");
}

#[test]
fn processor_file_missing() {
    let text = stage_with("").replace(&toml_path(&passthrough()), "\"processors/nope.wasm\"");
    expect_problems(
        &text,
        &[(
            7,
            "stage \"pass\": processor: file processors/nope.wasm not found (looked for ",
        )],
    );
}

#[test]
fn processor_file_not_a_component() {
    let ws = Workspace::new().unwrap();
    let junk = ws.write("junk.wasm", "this is not WebAssembly").unwrap();
    let text = stage_with("").replace(&toml_path(&passthrough()), &toml_path(&junk));
    let out = expect_problems(&text, &[(7, "stage \"pass\": processor: ")]);
    assert!(out.contains("is not a WebAssembly component"), "{out}");
}

#[test]
fn processor_of_another_world() {
    let text = stage_with("").replace(
        &toml_path(&passthrough()),
        &toml_path(&component("wrong-world")),
    );
    let out = expect_problems(&text, &[(7, "stage \"pass\": processor: ")]);
    assert!(
        out.contains("does not implement the partita:processor@0.1.0 stage world"),
        "{out}"
    );
}

#[test]
fn processor_refuses_its_config() {
    let text = stage_with("config = { columns = \"a,b\" }");
    let out = expect_problems(&text, &[(10, "stage \"pass\": config: ")]);
    assert!(out.contains("refused to start"), "{out}");
    assert!(out.contains("config key `columns`: unknown key"), "{out}");
}

#[test]
fn output_emitted_without_a_topic_and_topic_for_an_undeclared_output() {
    let text = format!(
        r#"[kafka]
bootstrap = "{NOWHERE}"
group = "g"

[[stage]]
name = "m"
processor = {}
input = "in"
outputs = {{ out = "o1", extra = "o2" }}
config = {{ outputs = "out,rejects" }}
"#,
        toml_path(&misbehave())
    );
    expect_problems(
        &text,
        &[
            (
                9,
                "stage \"m\": outputs: processor emits \"rejects\" but the stage maps no topic to it",
            ),
            (
                9,
                "stage \"m\": outputs.extra: the processor declares no output \"extra\" (it declares: out, rejects)",
            ),
        ],
    );
}

#[test]
fn duplicate_stage_names() {
    let mut text = stage_with("");
    text.push_str(&format!(
        "\n[[stage]]\nname = \"pass\"\nprocessor = {}\ninput = \"out\"\noutputs = {{ default = \"out2\" }}\n",
        toml_path(&passthrough())
    ));
    expect_problems(
        &text,
        &[(13, "stage \"pass\": name: another stage has the same name")],
    );
}

#[test]
fn unknown_error_policy() {
    expect_problems(
        &stage_with("on_error = \"retry\""),
        &[(
            10,
            "stage \"pass\": on_error: unknown policy \"retry\" (expected \"dlq\", \"skip\" or \"stop\")",
        )],
    );
}

#[test]
fn dead_letter_topic_without_the_dlq_policy() {
    let out = expect_problems(
        &stage_with("on_error = \"skip\"\ndlq = \"dead\""),
        &[(11, "stage \"pass\": ")],
    );
    assert!(
        out.contains("a dead-letter topic needs on_error = \"dlq\""),
        "{out}"
    );
}

#[test]
fn stage_writing_to_its_own_input() {
    let text = stage_with("").replace("default = \"out\"", "default = \"in\"");
    let out = expect_problems(&text, &[(9, "stage \"pass\": ")]);
    assert!(
        out.contains("topic in is also an input of this stage (a loop)"),
        "{out}"
    );
}

#[test]
fn reserved_librdkafka_property() {
    let text = stage_with("").replace(
        "group = \"g\"\n",
        "group = \"g\"\n\n[kafka.properties]\n\"group.id\" = \"mine\"\n",
    );
    expect_problems(&text, &[(6, "kafka: properties.group.id: set by Partita")]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = stage_with("batchsize = 1\non_error = \"retry\"")
        .replace("group = \"g\"", "group = \"g\"\ncreate_topics = 3");
    let out = expect_problems(
        &text,
        &[
            (4, "kafka: create_topics: expected true or false"),
            (11, "stage \"pass\": unknown key `batchsize`"),
            (12, "stage \"pass\": on_error: unknown policy \"retry\""),
        ],
    );
    assert!(out.lines().count() >= 3, "{out}");
}

#[test]
fn pipeline_file_missing() {
    let ws = Workspace::new().unwrap();
    let done = run(&ws.path().join("absent.toml"));
    assert_ne!(done.status.code(), Some(0), "{}", done.output);
    assert!(done.output.contains("absent.toml"), "{}", done.output);
}

#[test]
fn missing_topics_are_listed_in_one_error() {
    let broker = Broker::start().unwrap();
    broker.kafka().create_topic("in", 2).unwrap();
    let text = format!(
        r#"[kafka]
bootstrap = "{}"
group = "g"

[[stage]]
name = "pass"
processor = {}
input = "in"
outputs = {{ default = "absent.out" }}
dlq = "absent.dlq"
"#,
        broker.bootstrap(),
        toml_path(&passthrough())
    );
    let ws = Workspace::new().unwrap();
    let file = ws.write("pipeline.toml", &text).unwrap();
    let done = run(&file);
    assert_eq!(done.status.code(), Some(2), "{}", done.output);
    assert!(done.output.contains("absent.out"), "{}", done.output);
    assert!(done.output.contains("absent.dlq"), "{}", done.output);
    assert!(
        !done.output.contains("topic in "),
        "an existing topic is reported:\n{}",
        done.output
    );
}

#[test]
fn the_default_dead_letter_topic_is_created_like_the_changelog() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("in", 2).unwrap();
    kafka.create_topic("out", 2).unwrap();
    // The README's smallest pipeline: no dlq key, no create_topics.
    let text = format!(
        r#"[kafka]
bootstrap = "{}"
group = "g"

[[stage]]
name = "pass"
processor = {}
input = "in"
outputs = {{ default = "out" }}
"#,
        broker.bootstrap(),
        toml_path(&passthrough())
    );
    let ws = Workspace::new().unwrap();
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut host = partita_tests::partita::Partita::run("host", &file, &ws.log("host")).unwrap();
    kafka
        .wait_until("in.dlq to exist", || {
            host.assert_running()?;
            Ok(kafka.partition_count("in.dlq").is_ok_and(|n| n > 0))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", host.log_tail(20)));
    let status = host.stop(Duration::from_secs(30)).unwrap();
    let log = std::fs::read_to_string(ws.log("host")).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("created topic in.dlq"), "{log}");
}
