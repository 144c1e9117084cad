use super::*;
use crate::config::OnError;

fn kafka() -> KafkaConfig {
    KafkaConfig::new("127.0.0.1:9092", "g")
}

#[test]
fn a_pipeline_built_in_code_has_the_file_defaults() {
    let p = Pipeline::builder(kafka())
        .stage(
            Stage::new("parse")
                .processor(ProcessorSource::bytes("parse.wasm", vec![0u8, 1]))
                .input("legacy.orders")
                .output("default", "orders.json")
                .config("columns", "id,amount"),
        )
        .build()
        .unwrap();
    assert_eq!(p.stages.len(), 1);
    let s = &p.stages[0];
    assert_eq!(s.name, "parse");
    assert_eq!(s.inputs, ["legacy.orders"]);
    assert_eq!(s.output_topic("default"), Some("orders.json"));
    assert_eq!(
        s.dlq_topic("legacy.orders").as_deref(),
        Some("legacy.orders.dlq")
    );
    assert_eq!(s.batch, BatchLimits::default());
    assert_eq!(s.limits.memory_bytes, 128 << 20);
    assert_eq!(s.processor.to_string(), "parse.wasm");
    assert_eq!(s.processor.file(), None);
}

#[test]
fn every_problem_is_reported_in_the_words_of_the_file_checks() {
    let err = Pipeline::builder(KafkaConfig::new("x:1", "bad group"))
        .stage(Stage::new("a").processor("/no/such.wasm"))
        .stage(
            Stage::new("b b")
                .processor(ProcessorSource::bytes("b.wasm", vec![0u8]))
                .input("in")
                .input("in")
                .output("default", "in")
                .on_error(OnError::Dlq {
                    topic: Some("..".into()),
                }),
        )
        .stage(
            Stage::new("a")
                .input("x")
                .processor(ProcessorSource::bytes("c.wasm", vec![0u8])),
        )
        .build()
        .unwrap_err();
    let lines: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "pipeline: kafka: group: group \"bad group\" may only use letters, digits, '.', '_' and '-'",
            "pipeline: stage \"a\": processor: file /no/such.wasm not found",
            "pipeline: stage \"a\": input: no topic: name at least one input topic",
            "pipeline: stage[1]: name: stage name \"b b\" may only use letters, digits, '.', '_' and '-'",
            "pipeline: stage[1]: input: topic in is listed twice",
            "pipeline: stage[1]: outputs.default: topic in is also an input of this stage (a loop)",
            "pipeline: stage[1]: dlq: invalid topic \"..\": a topic cannot be named \".\" or \"..\"",
            "pipeline: stage \"a\": name: another stage has the same name",
        ]
    );
    let err = Pipeline::builder(kafka())
        .stage(Stage::new("p").input("in"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline: stage \"p\": processor: missing key `processor`"
    );
}
