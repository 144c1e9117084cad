//! Tests of the pipeline file: the minimal example, defaults, and one test
//! per problem, each asserting the file, position and key in the message.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::*;
use crate::engine::{Engine, EngineConfig};

/// The component built from crate `name` by `scripts/build-wasm.sh`, which
/// runs once per test binary (into its own target directory, so it does
/// not wait for this test's build lock).
pub(crate) fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let built = BUILT.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/build-wasm.sh"))
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .output()
            .map_err(|e| format!("cannot run scripts/build-wasm.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "scripts/build-wasm.sh failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let path = root
        .join("target/wasm/components")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.is_file(), "no component {}", path.display());
    path
}

/// An engine without the on-disk cache.
pub(crate) fn engine() -> Engine {
    Engine::new(EngineConfig {
        cache_dir: None,
        epoch_tick: Duration::from_millis(10),
    })
    .unwrap()
}

/// A folder holding a pipeline file's neighbours (`p.wasm`).
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("processors")).unwrap();
        std::fs::write(
            dir.path().join("processors/passthrough.wasm"),
            b"not checked here",
        )
        .unwrap();
        Dir { dir }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("pipeline.toml")
    }

    fn parse(&self, text: &str) -> Result<Pipeline, ConfigError> {
        Pipeline::parse(&self.file(), text)
    }

    /// The problems, rendered, with the temporary folder shown as `DIR`.
    fn problems(&self, text: &str) -> Vec<String> {
        let err = self.parse(text).expect_err("the file should be refused");
        let dir = self.dir.path().display().to_string();
        err.problems
            .iter()
            .map(|p| p.to_string().replace(&dir, "DIR"))
            .collect()
    }
}

const MINIMAL: &str = r#"
[kafka]
bootstrap = "127.0.0.1:9092"
group = "orders"

[[stage]]
name = "pass"
processor = "processors/passthrough.wasm"   # relative to the pipeline file
input = "legacy.orders"
outputs = { default = "orders.out" }
"#;

#[test]
fn the_minimal_file_of_the_issue_works_as_written() {
    let d = Dir::new();
    let p = d.parse(MINIMAL).unwrap();
    assert_eq!(p.kafka.bootstrap, "127.0.0.1:9092");
    assert_eq!(p.kafka.group, "orders");
    assert_eq!(p.kafka.group_id("pass"), "orders.pass");
    assert!(!p.kafka.create_topics);
    assert_eq!(p.kafka.commit_interval, DEFAULT_COMMIT_INTERVAL);
    assert_eq!(p.stages.len(), 1);
    let s = &p.stages[0];
    assert_eq!(s.name, "pass");
    assert_eq!(
        s.processor,
        d.dir.path().join("processors/passthrough.wasm").into()
    );
    assert_eq!(s.inputs, ["legacy.orders"]);
    assert_eq!(
        s.outputs,
        [("default".to_string(), "orders.out".to_string())]
    );
    assert_eq!(s.on_error, OnError::Dlq { topic: None });
    assert_eq!(
        s.dlq_topic("legacy.orders").as_deref(),
        Some("legacy.orders.dlq")
    );
    assert_eq!(s.batch, BatchLimits::default());
    assert_eq!(
        s.limits,
        Limits {
            memory_bytes: 128 << 20,
            deadline: Duration::from_secs(1),
            ..Limits::default()
        }
    );
    assert_eq!(
        s.at.processor,
        Some(Location {
            line: 8,
            column: 13
        })
    );
    assert_eq!(
        p.topics(),
        ["legacy.orders", "legacy.orders.dlq", "orders.out"]
    );
}

#[test]
fn every_key_of_the_full_example_is_read() {
    let d = Dir::new();
    let text = r#"
[kafka]
bootstrap = "k1:9092,k2:9092"
group = "orders"
create_topics = true
new_topic_partitions = 4
new_topic_replication = 3
commit_interval_ms = 250
lag_interval_ms = 2000
rejoin_after_ms = 90000
stalled_after_ms = 120000
properties = { "security.protocol" = "sasl_ssl", "sasl.mechanism" = "PLAIN" }
consumer = { "auto.offset.reset" = "latest", "fetch.min.bytes" = 1024 }
producer = { "linger.ms" = 5, "enable.idempotence" = true }

[[stage]]
name = "parse"
processor = "processors/passthrough.wasm"
input = ["a", "b"]
outputs = { default = "parsed", rejects = "parsed.rejects" }
config = { threshold = 10, mode = "strict", ratio = 0.5, verbose = false }
tables = { rates = "ref.rates" }
on_error = "dlq"
dlq = "parse.errors"
memory_mb = 64
deadline_ms = 250
batch_size = 100
batch_bytes = 65536
max_wait_ms = 0

[[stage]]
name = "count"
processor = "processors/passthrough.wasm"
input = "parsed"
on_error = "skip"
"#;
    let p = d.parse(text).unwrap();
    let k = &p.kafka;
    assert!(k.create_topics);
    assert_eq!((k.new_topic_partitions, k.new_topic_replication), (4, 3));
    assert_eq!(k.commit_interval, Duration::from_millis(250));
    assert_eq!(k.lag_interval, Duration::from_secs(2));
    assert_eq!(k.rejoin_after, Duration::from_secs(90));
    assert_eq!(k.stalled_after, Duration::from_secs(120));
    assert_eq!(k.properties.len(), 2);
    assert_eq!(
        k.consumer,
        [
            ("auto.offset.reset".into(), "latest".into()),
            ("fetch.min.bytes".into(), "1024".into())
        ]
    );
    assert_eq!(
        k.producer,
        [
            ("linger.ms".into(), "5".into()),
            ("enable.idempotence".into(), "true".into())
        ]
    );
    let s = &p.stages[0];
    assert_eq!(s.inputs, ["a", "b"]);
    assert_eq!(s.output_topic("rejects"), Some("parsed.rejects"));
    let config: Vec<(&str, &str)> = s
        .config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        config,
        [
            ("threshold", "10"),
            ("mode", "strict"),
            ("ratio", "0.5"),
            ("verbose", "false")
        ]
    );
    assert_eq!(s.tables, [TableSpec::new("rates", "ref.rates")]);
    assert_eq!(s.dlq_topic("a").as_deref(), Some("parse.errors"));
    assert_eq!(
        s.limits,
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_millis(250),
            ..Limits::default()
        }
    );
    assert_eq!(
        s.batch,
        BatchLimits {
            max_records: 100,
            max_bytes: 65536,
            max_wait: Duration::ZERO
        }
    );
    assert_eq!(
        s.written_topics(),
        ["parse.errors", "parsed", "parsed.rejects"]
    );
    let c = &p.stages[1];
    assert_eq!(c.on_error, OnError::Skip);
    assert_eq!(c.dlq_topic("parsed"), None);
    assert!(c.outputs.is_empty());
}

#[test]
fn an_unknown_key_is_named_with_its_position_and_the_expected_keys() {
    let d = Dir::new();
    let text = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\nbatchsize = 10",
    );
    let problems = d.problems(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "DIR/pipeline.toml:10:1: stage \"pass\": unknown key `batchsize` (expected one of: "
        ),
        "{problems:?}"
    );
    assert!(problems[0].contains("batch_size"), "{problems:?}");
}

#[test]
fn unknown_keys_in_kafka_and_at_the_top_are_reported() {
    let d = Dir::new();
    let text = format!(
        "pipeline = 1\n{}",
        MINIMAL.replace("group = \"orders\"", "group = \"orders\"\nbroker = \"x\"")
    );
    let problems = d.problems(&text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("DIR/pipeline.toml:1:1: unknown key `pipeline`"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("DIR/pipeline.toml:6:1: kafka: unknown key `broker`"),
        "{problems:?}"
    );
}

#[test]
fn missing_keys_are_all_named() {
    let d = Dir::new();
    let text = "[kafka]\ngroup = \"g\"\n\n[[stage]]\nname = \"a\"\n";
    let problems = d.problems(text);
    assert_eq!(
        problems,
        [
            "DIR/pipeline.toml:1:1: kafka: missing key `bootstrap`",
            "DIR/pipeline.toml:4:1: stage \"a\": missing key `processor`",
            "DIR/pipeline.toml:4:1: stage \"a\": missing key `input`",
        ]
    );
}

#[test]
fn a_missing_kafka_table_and_no_stage_are_reported() {
    let d = Dir::new();
    let problems = d.problems("");
    assert_eq!(
        problems,
        [
            "DIR/pipeline.toml:1:1: missing table [kafka]",
            "DIR/pipeline.toml: no stage: add at least one [[stage]]"
        ]
    );
}

#[test]
fn a_stage_without_a_name_is_named_by_its_index() {
    let d = Dir::new();
    let text = MINIMAL.replace("name = \"pass\"\n", "");
    assert_eq!(
        d.problems(&text),
        ["DIR/pipeline.toml:6:1: stage[0]: missing key `name`"]
    );
}

#[test]
fn wrong_types_name_the_key_and_what_was_expected() {
    let d = Dir::new();
    let text = MINIMAL
        .replace(
            "input = \"legacy.orders\"",
            "input = [\"a\", 3]\nbatch_size = \"big\"",
        )
        .replace(
            "group = \"orders\"",
            "group = \"orders\"\ncreate_topics = \"yes\"",
        )
        .replace(
            "outputs = { default = \"orders.out\" }",
            "outputs = { default = 1 }\nconfig = { a = [1] }",
        );
    let problems = d.problems(&text);
    assert_eq!(
        problems,
        [
            "DIR/pipeline.toml:5:17: kafka: create_topics: expected true or false, found string",
            "DIR/pipeline.toml:10:15: stage \"pass\": input[1]: expected a string, found integer",
            "DIR/pipeline.toml:11:14: stage \"pass\": batch_size: expected an integer from 1 to 1000000, found string",
            "DIR/pipeline.toml:12:23: stage \"pass\": outputs.default: expected a string, found integer",
            "DIR/pipeline.toml:13:16: stage \"pass\": config.a: expected a string, number or boolean, found array",
        ]
    );
}

#[test]
fn numbers_out_of_range_are_refused() {
    let d = Dir::new();
    let text = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\nmemory_mb = 0\nbatch_size = -5",
    );
    assert_eq!(
        d.problems(&text),
        [
            "DIR/pipeline.toml:10:13: stage \"pass\": memory_mb: expected an integer from 1 to 65536, found 0",
            "DIR/pipeline.toml:11:14: stage \"pass\": batch_size: expected an integer from 1 to 1000000, found -5",
        ]
    );
}

#[test]
fn max_record_bytes_sets_the_stage_limit_within_its_range() {
    let d = Dir::new();
    let set = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\nmax_record_bytes = 5000",
    );
    let p = d.parse(&set).unwrap();
    assert_eq!(p.stages[0].limits.max_record_bytes, 5000);
    let default = d.parse(MINIMAL).unwrap();
    assert_eq!(
        default.stages[0].limits.max_record_bytes,
        crate::engine::DEFAULT_MAX_RECORD_BYTES
    );
    let zero = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\nmax_record_bytes = 0",
    );
    assert_eq!(
        d.problems(&zero),
        [
            "DIR/pipeline.toml:10:20: stage \"pass\": max_record_bytes: expected an integer from 1 to 1073741824, found 0"
        ]
    );
}

#[test]
fn the_caps_on_outputs_and_state_writes_are_set_per_stage_within_their_ranges() {
    let d = Dir::new();
    let set = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\nmax_record_outputs = 5\nmax_record_output_bytes = 6\n\
         max_batch_outputs = 7\nmax_batch_output_bytes = 8\nmax_batch_state_bytes = 9",
    );
    let limits = d.parse(&set).unwrap().stages[0].limits;
    assert_eq!(
        (
            limits.max_record_outputs,
            limits.max_record_output_bytes,
            limits.max_batch_outputs,
            limits.max_batch_output_bytes,
            limits.max_batch_state_bytes,
        ),
        (5, 6, 7, 8, 9)
    );
    assert_eq!(
        d.parse(MINIMAL).unwrap().stages[0].limits,
        crate::engine::Limits::default()
    );
    let bad = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\nmax_batch_outputs = 0\nmax_record_output_bytes = \"big\"",
    );
    assert_eq!(
        d.problems(&bad),
        [
            "DIR/pipeline.toml:10:21: stage \"pass\": max_batch_outputs: expected an integer from 1 to 100000000, found 0",
            "DIR/pipeline.toml:11:27: stage \"pass\": max_record_output_bytes: expected an integer from 1 to 1099511627776, found string",
        ]
    );
}

#[test]
fn group_health_timings_out_of_range_are_refused() {
    let d = Dir::new();
    let text = MINIMAL.replace(
        "group = \"orders\"",
        "group = \"orders\"\nlag_interval_ms = 10\nrejoin_after_ms = 0\nstalled_after_ms = \"1m\"",
    );
    assert_eq!(
        d.problems(&text),
        [
            "DIR/pipeline.toml:5:19: kafka: lag_interval_ms: expected an integer from 100 to 3600000, found 10",
            "DIR/pipeline.toml:6:19: kafka: rejoin_after_ms: expected an integer from 1000 to 86400000, found 0",
            "DIR/pipeline.toml:7:20: kafka: stalled_after_ms: expected an integer from 1000 to 86400000, found string",
        ]
    );
    let defaults = d.parse(MINIMAL).unwrap().kafka;
    assert_eq!(defaults.lag_interval, Duration::from_secs(5));
    assert_eq!(defaults.rejoin_after, Duration::from_secs(30));
    assert_eq!(defaults.stalled_after, Duration::from_secs(60));
}

#[test]
fn a_missing_processor_file_is_named_with_where_it_was_looked_for() {
    let d = Dir::new();
    let text = MINIMAL.replace("processors/passthrough.wasm", "processors/nope.wasm");
    assert_eq!(
        d.problems(&text),
        [
            "DIR/pipeline.toml:8:13: stage \"pass\": processor: file processors/nope.wasm not found \
             (looked for DIR/processors/nope.wasm)"
        ]
    );
}

#[test]
fn a_processor_path_that_is_a_folder_is_refused() {
    let d = Dir::new();
    let text = MINIMAL.replace("processors/passthrough.wasm", "processors");
    let problems = d.problems(&text);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with(
        "DIR/pipeline.toml:8:13: stage \"pass\": processor: processors is not a file"
    ));
}

#[test]
fn duplicate_stage_names_are_refused() {
    let d = Dir::new();
    let second = "\n[[stage]]\nname = \"pass\"\nprocessor = \"processors/passthrough.wasm\"\ninput = \"x\"\n";
    let text = format!("{MINIMAL}{second}");
    assert_eq!(
        d.problems(&text),
        ["DIR/pipeline.toml:13:8: stage \"pass\": name: another stage has the same name"]
    );
}

#[test]
fn invalid_names_and_topics_are_refused() {
    let d = Dir::new();
    let text = MINIMAL
        .replace("name = \"pass\"", "name = \"pa ss\"")
        .replace("\"orders.out\"", "\"orders/out\"")
        .replace("group = \"orders\"", "group = \"\"");
    assert_eq!(
        d.problems(&text),
        [
            "DIR/pipeline.toml:4:9: kafka: group: must not be empty",
            "DIR/pipeline.toml:7:8: stage[0]: name: stage name \"pa ss\" may only use letters, digits, '.', '_' and '-'",
            "DIR/pipeline.toml:10:23: stage[0]: outputs.default: invalid topic \"orders/out\": \
             a topic name may only use letters, digits, '.', '_' and '-'",
        ]
    );
}

#[test]
fn a_stage_writing_to_its_own_input_is_a_loop() {
    let d = Dir::new();
    let text = MINIMAL.replace("\"orders.out\"", "\"legacy.orders\"");
    assert_eq!(
        d.problems(&text),
        [
            "DIR/pipeline.toml:10:23: stage \"pass\": outputs.default: topic legacy.orders is also an input of this stage (a loop)"
        ]
    );
}

#[test]
fn error_policies_are_checked() {
    let d = Dir::new();
    let bad = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\non_error = \"retry\"",
    );
    assert_eq!(
        d.problems(&bad),
        [
            "DIR/pipeline.toml:10:12: stage \"pass\": on_error: unknown policy \"retry\" (expected \"dlq\", \"skip\" or \"stop\")"
        ]
    );
    let dlq_with_skip = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\non_error = \"skip\"\ndlq = \"d\"",
    );
    assert_eq!(
        d.problems(&dlq_with_skip),
        [
            "DIR/pipeline.toml:11:7: stage \"pass\": dlq: a dead-letter topic needs on_error = \"dlq\" (the default)"
        ]
    );
    let stop = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\non_error = \"stop\"",
    );
    assert_eq!(d.parse(&stop).unwrap().stages[0].on_error, OnError::Stop);
}

#[test]
fn properties_that_partita_owns_are_refused_with_the_reason() {
    let d = Dir::new();
    let text = MINIMAL.replace(
        "group = \"orders\"",
        "group = \"orders\"\n[kafka.properties]\n\"enable.auto.commit\" = true\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n\"security.protocol\" = \"ssl\"",
    );
    assert_eq!(
        d.problems(&text),
        [
            "DIR/pipeline.toml:6:24: kafka: properties.enable.auto.commit: set by Partita: \
             Partita commits offsets itself once outputs are acknowledged",
            "DIR/pipeline.toml:7:35: kafka: properties.partition.assignment.strategy: only `range` is supported: \
             a stage needs partition p of all its inputs on one member",
        ]
    );
}

#[test]
fn invalid_toml_is_reported_with_its_position() {
    let d = Dir::new();
    let problems = d.problems("[kafka]\nbootstrap = \"x\"\ngroup = \n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("DIR/pipeline.toml:3:"),
        "{problems:?}"
    );
    assert!(problems[0].contains("invalid TOML"), "{problems:?}");
}

#[test]
fn problems_in_several_stages_are_reported_together() {
    let d = Dir::new();
    let text = r#"
[kafka]
bootstrap = "b"
group = "g"

[[stage]]
name = "a"
processor = "processors/passthrough.wasm"
input = "in"
colour = "red"

[[stage]]
name = "b"
processor = "processors/missing.wasm"
input = "a.out"
deadline_ms = 0
"#;
    let problems = d.problems(text);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("DIR/pipeline.toml:10:1: stage \"a\": unknown key `colour`"));
    assert!(problems[1].starts_with(
        "DIR/pipeline.toml:14:13: stage \"b\": processor: file processors/missing.wasm"
    ));
    assert!(
        problems[2]
            .starts_with("DIR/pipeline.toml:16:15: stage \"b\": deadline_ms: expected an integer")
    );
}

#[test]
fn an_unreadable_file_is_a_problem_naming_it() {
    let err = Pipeline::load(Path::new("/nonexistent/pipeline.toml")).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/pipeline.toml: cannot read: "),
        "{text}"
    );
}

#[test]
fn processors_that_start_and_declare_mapped_outputs_pass_the_check() {
    let d = Dir::new();
    let text = format!(
        "[kafka]\nbootstrap = \"b\"\ngroup = \"g\"\n\n[[stage]]\nname = \"m\"\nprocessor = {:?}\ninput = \"in\"\n\
         outputs = {{ out = \"o\", rejects = \"r\" }}\nconfig = {{ outputs = \"out,rejects\" }}\n",
        component("misbehave").display().to_string()
    );
    let p = d.parse(&text).unwrap();
    let checked = check_processors(&p, &engine()).unwrap();
    assert_eq!(checked.len(), 1);
    assert_eq!(checked[0].outputs, ["out", "rejects"]);
    assert_eq!(checked[0].processor.version().len(), 12);
}

#[test]
fn processor_problems_are_all_reported_with_the_stage_and_key() {
    let d = Dir::new();
    std::fs::write(d.dir.path().join("garbage.wasm"), b"\0asm but not really").unwrap();
    let misbehave = format!("{:?}", component("misbehave").display().to_string());
    let wrong_world = format!("{:?}", component("wrong-world").display().to_string());
    let stage = |name: &str, processor: &str, extra: &str| {
        format!(
            "\n[[stage]]\nname = \"{name}\"\nprocessor = {processor}\ninput = \"in-{name}\"\n{extra}\n"
        )
    };
    let text = [
        "[kafka]\nbootstrap = \"b\"\ngroup = \"g\"\n".to_string(),
        stage("garbage", "\"garbage.wasm\"", "outputs = { out = \"o\" }"),
        stage("world", &wrong_world, "outputs = { out = \"o\" }"),
        stage(
            "init",
            &misbehave,
            "outputs = { out = \"o\" }\nconfig = { fail_init = \"yes\" }",
        ),
        stage(
            "unmapped",
            &misbehave,
            "outputs = { out = \"o\" }\nconfig = { outputs = \"out,rejects\" }",
        ),
        stage(
            "undeclared",
            &misbehave,
            "outputs = { out = \"o\", extra = \"x\" }",
        ),
        stage("fine", &misbehave, "outputs = { out = \"o\" }"),
    ]
    .concat();
    let p = d.parse(&text).unwrap();
    let err = check_processors(&p, &engine()).err().expect("problems");
    let dir = d.dir.path().display().to_string();
    let lines: Vec<String> = err
        .problems
        .iter()
        .map(|p| p.to_string().replace(&dir, "DIR"))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].starts_with("DIR/pipeline.toml:7:13: stage \"garbage\": processor: DIR/garbage.wasm is not a WebAssembly component"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("DIR/pipeline.toml:13:13: stage \"world\": processor: "),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("does not implement the partita:processor@0.1.0 stage world"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("DIR/pipeline.toml:22:10: stage \"init\": config: processor "),
        "{lines:#?}"
    );
    assert!(
        lines[2].ends_with("refused to start: init failed as configured"),
        "{lines:#?}"
    );
    assert_eq!(
        lines[3],
        "DIR/pipeline.toml:28:11: stage \"unmapped\": outputs: processor emits \"rejects\" but the stage maps no topic to it"
    );
    assert_eq!(
        lines[4],
        "DIR/pipeline.toml:35:11: stage \"undeclared\": outputs.extra: the processor declares no output \"extra\" (it declares: out)"
    );
}

#[test]
fn the_guarantee_is_at_least_once_unless_set_at_the_top_or_in_kafka() {
    let d = Dir::new();
    assert_eq!(
        d.parse(MINIMAL).unwrap().kafka.guarantee,
        Guarantee::AtLeastOnce
    );
    let top = format!("guarantee = \"exactly-once\"\n{MINIMAL}");
    assert_eq!(
        d.parse(&top).unwrap().kafka.guarantee,
        Guarantee::ExactlyOnce
    );
    let in_kafka = MINIMAL.replace(
        "group = \"orders\"",
        "group = \"orders\"\nguarantee = \"exactly-once\"",
    );
    assert_eq!(
        d.parse(&in_kafka).unwrap().kafka.guarantee,
        Guarantee::ExactlyOnce
    );
    let explicit = format!("guarantee = \"at-least-once\"\n{MINIMAL}");
    assert_eq!(
        d.parse(&explicit).unwrap().kafka.guarantee,
        Guarantee::AtLeastOnce
    );
}

#[test]
fn an_unknown_guarantee_is_refused_where_it_is_written() {
    let d = Dir::new();
    let top = format!("guarantee = \"exactly-twice\"\n{MINIMAL}");
    assert_eq!(
        d.problems(&top),
        [
            "DIR/pipeline.toml:1:13: guarantee: unknown guarantee \"exactly-twice\" \
             (expected \"at-least-once\" or \"exactly-once\")"
        ]
    );
    let in_kafka = MINIMAL.replace("group = \"orders\"", "group = \"orders\"\nguarantee = 1");
    assert_eq!(
        d.problems(&in_kafka),
        ["DIR/pipeline.toml:5:13: kafka: guarantee: expected a string, found integer"]
    );
}

#[test]
fn a_guarantee_set_both_at_the_top_and_in_kafka_is_refused() {
    let d = Dir::new();
    let text = format!("guarantee = \"exactly-once\"\n{MINIMAL}").replace(
        "group = \"orders\"",
        "group = \"orders\"\nguarantee = \"exactly-once\"",
    );
    assert_eq!(
        d.problems(&text),
        ["DIR/pipeline.toml:1:13: guarantee: also set in [kafka]: set it in one place"]
    );
}

#[test]
fn timer_interval_ms_has_a_default_and_is_checked() {
    let d = Dir::new();
    let p = d.parse(MINIMAL).unwrap();
    assert_eq!(p.stages[0].timer_interval, DEFAULT_TIMER_INTERVAL);
    let set = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\ntimer_interval_ms = 250",
    );
    assert_eq!(
        d.parse(&set).unwrap().stages[0].timer_interval,
        Duration::from_millis(250)
    );
    let zero = MINIMAL.replace(
        "input = \"legacy.orders\"",
        "input = \"legacy.orders\"\ntimer_interval_ms = 0",
    );
    assert_eq!(
        d.problems(&zero),
        [
            "DIR/pipeline.toml:10:21: stage \"pass\": timer_interval_ms: expected an integer from 1 to 3600000, found 0"
        ]
    );
}

#[test]
fn under_exactly_once_the_commit_interval_must_be_shorter_than_the_transaction_timeout() {
    let d = Dir::new();
    let with = |lines: &str| {
        MINIMAL.replace(
            "group = \"orders\"",
            &format!("group = \"orders\"\n{lines}"),
        )
    };
    let long = with("guarantee = \"exactly-once\"\ncommit_interval_ms = 60000");
    assert_eq!(
        d.problems(&long),
        [
            "DIR/pipeline.toml:6:22: kafka: commit_interval_ms: 60000 ms is not shorter than the \
             producer's transaction timeout (60000 ms, transaction.timeout.ms, librdkafka's \
             default): under exactly-once the broker would abort each transaction before it is \
             committed"
        ]
    );
    let set = with(
        "guarantee = \"exactly-once\"\ncommit_interval_ms = 5000\n[kafka.producer]\n\"transaction.timeout.ms\" = 5000",
    );
    assert_eq!(
        d.problems(&set),
        [
            "DIR/pipeline.toml:6:22: kafka: commit_interval_ms: 5000 ms is not shorter than the \
             producer's transaction timeout (5000 ms, transaction.timeout.ms): under exactly-once \
             the broker would abort each transaction before it is committed"
        ]
    );
    let top = format!(
        "guarantee = \"exactly-once\"\n{}",
        with("[kafka.producer]\n\"transaction.timeout.ms\" = 900")
    );
    assert_eq!(
        d.problems(&top),
        [
            "DIR/pipeline.toml:1:13: kafka: commit_interval_ms: 1000 ms is not shorter than the \
             producer's transaction timeout (900 ms, transaction.timeout.ms): under exactly-once \
             the broker would abort each transaction before it is committed"
        ]
    );
    let longer = with(
        "guarantee = \"exactly-once\"\ncommit_interval_ms = 60000\n[kafka.producer]\n\"transaction.timeout.ms\" = 120000",
    );
    assert!(d.parse(&longer).is_ok());
    let at_least_once = with("commit_interval_ms = 60000");
    assert!(d.parse(&at_least_once).is_ok());
}

#[test]
fn a_candidate_is_checked_like_the_processor_with_problems_at_its_key() {
    let d = Dir::new();
    let misbehave = format!("{:?}", component("misbehave").display().to_string());
    let wrong_world = format!("{:?}", component("wrong-world").display().to_string());
    let text = |candidate: &str| {
        format!(
            "[kafka]\nbootstrap = \"b\"\ngroup = \"g\"\n\n[[stage]]\nname = \"m\"\nprocessor = {misbehave}\n\
             candidate = {candidate}\ninput = \"in\"\noutputs = {{ out = \"o\" }}\n"
        )
    };
    // A candidate that starts is loaded.
    let p = d.parse(&text(&misbehave)).unwrap();
    assert!(p.stages[0].may_have_candidate());
    let checked = check_processors(&p, &engine()).unwrap();
    assert_eq!(
        checked[0].candidate.as_ref().map(|c| c.version()),
        Some(checked[0].processor.version())
    );
    // Its file must exist.
    let err = d.parse(&text("\"missing.wasm\"")).expect_err("refused");
    let shown = err
        .to_string()
        .replace(&d.dir.path().display().to_string(), "DIR");
    assert_eq!(
        shown,
        "DIR/pipeline.toml:8:13: stage \"m\": candidate: file missing.wasm not found \
         (looked for DIR/missing.wasm)"
    );
    // And it must pass the trial.
    let p = d.parse(&text(&wrong_world)).unwrap();
    let err = check_processors(&p, &engine()).err().expect("problems");
    assert_eq!(err.problems.len(), 1, "{err}");
    let line = err.problems[0].to_string();
    assert!(line.contains(":8:13: stage \"m\": candidate: "), "{line}");
    assert!(
        line.contains("does not implement the partita:processor@0.1.0 stage world"),
        "{line}"
    );
}

mod damaged_files {
    //! Pipeline files damaged at random: each is read or refused with
    //! problems that name the file and say what is wrong; never a panic.

    use super::*;

    /// A file with most sections, to damage.
    const RICH: &str = r#"
guarantee = "at-least-once"

[kafka]
bootstrap = "127.0.0.1:9092"
group = "orders"
commit_interval_ms = 500
create_topics = true

[kafka.consumer]
"fetch.wait.max.ms" = 10

[state]
memory_mb = 8

[[stage]]
name = "pass"
processor = "processors/passthrough.wasm"
input = "orders"
outputs = { default = "orders.out" }
config = { field = "id", limit = 3 }
tables = { rates = "ref.rates", customers = { topic = "ref.customers", format = "connect-json" } }
batch_size = 64
max_wait_ms = 20
on_error = "dlq"
"#;

    #[test]
    fn the_file_damaged_below_is_valid_as_it_stands() {
        let d = Dir::new();
        if let Err(e) = d.parse(RICH) {
            panic!("{e}");
        }
    }

    fn check(d: &Dir, text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Err(e) = d.parse(text) {
            let file = d.file().display().to_string();
            proptest::prop_assert!(!e.problems.is_empty());
            for p in &e.problems {
                proptest::prop_assert_eq!(&p.file, &file);
                proptest::prop_assert!(!p.message.is_empty(), "{}", p);
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// A span of the file replaced by other text.
        #[test]
        fn a_damaged_file_is_read_or_refused_naming_the_file(
            at in 0usize..RICH.len(),
            len in 0usize..40,
            with in "[\\[\\]{}=\"',.a-z0-9_ \\n#-]{0,12}",
        ) {
            let d = Dir::new();
            let (from, to) = (at, (at + len).min(RICH.len()));
            if RICH.is_char_boundary(from) && RICH.is_char_boundary(to) {
                let text = format!("{}{}{}", &RICH[..from], with, &RICH[to..]);
                check(&d, &text)?;
            }
        }

        /// Any text at all.
        #[test]
        fn any_text_is_read_or_refused_naming_the_file(text in "\\PC{0,200}") {
            check(&Dir::new(), &text)?;
        }
    }
}
