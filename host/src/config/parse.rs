//! From the text of a pipeline file to a checked [`Pipeline`], recording
//! every problem on the way.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::problems::Problems;
use super::reader::{Span, TableReader};
use super::rules;
use super::{
    BatchLimits, ConfigError, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE, DEFAULT_COMMIT_INTERVAL,
    DEFAULT_DEADLINE, DEFAULT_MAX_WAIT, DEFAULT_MEMORY_MB, DEFAULT_TIMER_INTERVAL, KafkaConfig,
    OnError, Pipeline, ProcessorSource, StageConfig, StageLocations,
};
use crate::engine::Limits;

/// librdkafka properties that Partita sets itself, with what to use instead.
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `bootstrap` in [kafka]"),
    ("metadata.broker.list", "set `bootstrap` in [kafka]"),
    (
        "group.id",
        "set `group` in [kafka]; each stage uses `<group>.<stage>`",
    ),
    (
        "enable.auto.commit",
        "Partita commits offsets itself once outputs are acknowledged",
    ),
    (
        "enable.auto.offset.store",
        "Partita commits offsets itself once outputs are acknowledged",
    ),
    (
        "auto.commit.interval.ms",
        "set `commit_interval_ms` in [kafka]",
    ),
    ("enable.partition.eof", "Partita manages it"),
    (
        "transactional.id",
        "set `guarantee = \"exactly-once\"`; each stage and partition then gets its own",
    ),
];

pub(super) fn parse(path: &Path, text: &str) -> Result<Pipeline, ConfigError> {
    let file = path.display().to_string();
    let mut p = Problems::new(file, text);
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            p.add(
                e.span(),
                "",
                format!("invalid TOML: {}", e.message().trim()),
            );
        }
        return Err(p.finish().err().unwrap_or_else(|| fallback_error(path)));
    }
    let root_span = root.span();
    let root = root.into_inner();
    let mut top = TableReader::new(&root, root_span, "");

    let top_guarantee = super::guarantee::read(&mut top, &mut p);
    let mut kafka_sets_guarantee = false;
    let mut commit_interval_at = None;
    let mut kafka = match top.value("kafka") {
        Some(v) => match v.get_ref() {
            DeValue::Table(t) => {
                kafka_sets_guarantee = t.iter().any(|(k, _)| k.get_ref().as_ref() == "guarantee");
                let span_of = |key: &str| {
                    t.iter()
                        .find(|(k, _)| k.get_ref().as_ref() == key)
                        .map(|(_, v)| v.span())
                };
                commit_interval_at = span_of("commit_interval_ms").or(span_of("guarantee"));
                read_kafka(t, v.span(), &mut p)
            }
            other => {
                p.add(
                    Some(v.span()),
                    "kafka",
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        },
        None => {
            p.add(Some(0..0), "", "missing table [kafka]");
            None
        }
    };

    let dir = path.parent().unwrap_or(Path::new(""));
    let mut stages = Vec::new();
    match top.value("stage") {
        Some(v) => match v.get_ref() {
            DeValue::Array(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            if let Some(s) = read_stage(t, item.span(), i, dir, &mut p) {
                                stages.push(s);
                            }
                        }
                        other => {
                            let msg = format!("expected a table, found {}", other.type_str());
                            p.add(Some(item.span()), format!("stage[{i}]"), msg);
                        }
                    }
                }
            }
            DeValue::Array(_) => p.add(
                Some(v.span()),
                "stage",
                "no stage: add at least one [[stage]]",
            ),
            other => {
                let msg = format!("expected [[stage]] tables, found {}", other.type_str());
                p.add(Some(v.span()), "stage", msg);
            }
        },
        None => p.add(None, "", "no stage: add at least one [[stage]]"),
    }
    let state = super::state::read(&mut top, dir, &mut p);
    top.finish(&mut p);
    if let Some((guarantee, span)) = &top_guarantee {
        if kafka_sets_guarantee {
            super::guarantee::set_twice(span.clone(), &mut p);
        } else if let Some(k) = &mut kafka {
            k.guarantee = *guarantee;
        }
    }
    if let Some(k) = &kafka {
        let at = commit_interval_at.or(top_guarantee.map(|(_, span)| span));
        super::guarantee::check_commit_interval(k, at, &mut p);
    }

    check_stage_names(&stages, &root, &mut p);
    p.finish()?;
    let kafka = kafka.ok_or_else(|| fallback_error(path))?;
    Ok(Pipeline {
        file: path.to_path_buf(),
        kafka,
        stages,
        state,
    })
}

/// The error for a state that recorded problems should rule out (a table
/// that failed to read without a problem); keeps the parser free of panics.
fn fallback_error(path: &Path) -> ConfigError {
    let file = path.display().to_string();
    ConfigError {
        problems: vec![super::Problem {
            file,
            at: None,
            place: "kafka".into(),
            message: "invalid [kafka] table".into(),
        }],
    }
}

fn read_kafka(t: &DeTable<'_>, span: Span, p: &mut Problems<'_>) -> Option<KafkaConfig> {
    let before = p_len(p);
    let mut r = TableReader::new(t, span, "kafka");
    let bootstrap = r.required_string("bootstrap", p);
    let group = r.required_string("group", p);
    if let Some((g, span)) = &group {
        check_name(g, span.clone(), &r.key_place("group"), "group", p);
    }
    let properties = read_properties(&mut r, "properties", p);
    let consumer = read_properties(&mut r, "consumer", p);
    let producer = read_properties(&mut r, "producer", p);
    let create_topics = r.boolean("create_topics", p).unwrap_or(false);
    let partitions = r
        .integer("new_topic_partitions", 1, 100_000, p)
        .unwrap_or(1);
    let replication = r
        .integer("new_topic_replication", 1, 32_767, p)
        .unwrap_or(1);
    let commit = r.integer("commit_interval_ms", 1, 3_600_000, p);
    let guarantee = super::guarantee::read(&mut r, p).map(|(g, _)| g);
    let millis = |v: Option<u64>, default| v.map_or(default, Duration::from_millis);
    let lag_interval = millis(
        r.integer("lag_interval_ms", 100, 3_600_000, p),
        super::DEFAULT_LAG_INTERVAL,
    );
    let rejoin_after = millis(
        r.integer("rejoin_after_ms", 1_000, 86_400_000, p),
        super::DEFAULT_REJOIN_AFTER,
    );
    let stalled_after = millis(
        r.integer("stalled_after_ms", 1_000, 86_400_000, p),
        super::DEFAULT_STALLED_AFTER,
    );
    r.finish(p);
    if p_len(p) > before {
        return None;
    }
    Some(KafkaConfig {
        bootstrap: bootstrap?.0,
        group: group?.0,
        properties,
        consumer,
        producer,
        create_topics,
        new_topic_partitions: i32::try_from(partitions).unwrap_or(1),
        new_topic_replication: i32::try_from(replication).unwrap_or(1),
        commit_interval: commit.map_or(DEFAULT_COMMIT_INTERVAL, Duration::from_millis),
        guarantee: guarantee.unwrap_or_default(),
        lag_interval,
        rejoin_after,
        stalled_after,
    })
}

fn p_len(p: &Problems<'_>) -> usize {
    p.len()
}

fn read_properties(
    r: &mut TableReader<'_, '_>,
    key: &'static str,
    p: &mut Problems<'_>,
) -> Vec<(String, String)> {
    let Some(entries) = r.string_map(key, true, p) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value, span) in entries {
        let place = format!("{}.{name}", r.key_place(key));
        if let Some((_, why)) = RESERVED_PROPERTIES.iter().find(|(n, _)| *n == name) {
            p.add(Some(span), place, format!("set by Partita: {why}"));
        } else if name == "partition.assignment.strategy" && value.trim() != "range" {
            let msg = "only `range` is supported: a stage needs partition p of all its inputs on one member";
            p.add(Some(span), place, msg);
        } else {
            out.push((name, value));
        }
    }
    out
}

fn read_stage(
    t: &DeTable<'_>,
    span: Span,
    index: usize,
    dir: &Path,
    p: &mut Problems<'_>,
) -> Option<StageConfig> {
    let before = p_len(p);
    let mut r = TableReader::new(t, span.clone(), format!("stage[{index}]"));
    let name = r.required_string("name", p);
    if let Some((n, span)) = &name {
        let place = format!("stage[{index}]: name");
        if check_name(n, span.clone(), &place, "stage name", p) {
            r.set_place(format!("stage \"{n}\""));
        }
    }
    let processor = r.required_string("processor", p);
    let processor_path = processor.as_ref().map(|(f, _)| dir.join(f));
    if let (Some((file, span)), Some(path)) = (&processor, &processor_path) {
        check_file(file, path, span.clone(), &r.key_place("processor"), p);
    }
    let candidate = r.string("candidate", p);
    let candidate_path = candidate.as_ref().map(|(f, _)| dir.join(f));
    if let (Some((file, span)), Some(path)) = (&candidate, &candidate_path) {
        check_file(file, path, span.clone(), &r.key_place("candidate"), p);
    }

    let inputs = r.strings("input", p);
    if let Some(inputs) = &inputs {
        if inputs.is_empty() {
            p.add(r.span_of("input"), r.key_place("input"), rules::NO_INPUT);
        }
        for (i, (topic, span)) in inputs.iter().enumerate() {
            check_topic(topic, span.clone(), &r.key_place("input"), p);
            if inputs[..i].iter().any(|(t, _)| t == topic) {
                p.add(
                    Some(span.clone()),
                    r.key_place("input"),
                    rules::listed_twice(topic),
                );
            }
        }
    }

    let outputs = r.string_map("outputs", false, p).unwrap_or_default();
    for (name, topic, span) in &outputs {
        let place = format!("{}.{name}", r.key_place("outputs"));
        check_topic(topic, span.clone(), &place, p);
        if inputs
            .as_ref()
            .is_some_and(|i| i.iter().any(|(t, _)| t == topic))
        {
            p.add(Some(span.clone()), place, rules::a_loop(topic));
        }
    }

    let config = r.string_map("config", true, p).unwrap_or_default();
    let tables = super::table_specs::read_tables(&mut r, p, check_topic);

    let policy = r.string("on_error", p);
    let dlq = r.string("dlq", p);
    let on_error = match policy.as_ref().map(|(s, span)| (s.as_str(), span.clone())) {
        None | Some(("dlq", _)) => Some(OnError::Dlq {
            topic: dlq.as_ref().map(|(t, _)| t.clone()),
        }),
        Some(("skip", _)) => Some(OnError::Skip),
        Some(("stop", _)) => Some(OnError::Stop),
        Some((other, span)) => {
            let msg =
                format!("unknown policy \"{other}\" (expected \"dlq\", \"skip\" or \"stop\")");
            p.add(Some(span), r.key_place("on_error"), msg);
            None
        }
    };
    if let Some((topic, span)) = &dlq {
        if let Some(OnError::Skip | OnError::Stop) = on_error {
            p.add(
                Some(span.clone()),
                r.key_place("dlq"),
                rules::DLQ_NEEDS_POLICY,
            );
        }
        check_topic(topic, span.clone(), &r.key_place("dlq"), p);
        if inputs
            .as_ref()
            .is_some_and(|i| i.iter().any(|(t, _)| t == topic))
        {
            p.add(Some(span.clone()), r.key_place("dlq"), rules::a_loop(topic));
        }
    }

    let memory_mb = r
        .integer("memory_mb", 1, 65_536, p)
        .unwrap_or(DEFAULT_MEMORY_MB);
    let deadline = r
        .integer("deadline_ms", 1, 3_600_000, p)
        .map_or(DEFAULT_DEADLINE, Duration::from_millis);
    let max_record_bytes = r
        .integer("max_record_bytes", 1, 1 << 30, p)
        .map_or(crate::engine::DEFAULT_MAX_RECORD_BYTES, to_usize);
    let caps = Limits::default();
    let max_record_outputs = r
        .integer("max_record_outputs", 1, 100_000_000, p)
        .map_or(caps.max_record_outputs, to_usize);
    let max_record_output_bytes = r
        .integer("max_record_output_bytes", 1, 1 << 40, p)
        .map_or(caps.max_record_output_bytes, to_usize);
    let max_batch_outputs = r
        .integer("max_batch_outputs", 1, 100_000_000, p)
        .map_or(caps.max_batch_outputs, to_usize);
    let max_batch_output_bytes = r
        .integer("max_batch_output_bytes", 1, 1 << 40, p)
        .map_or(caps.max_batch_output_bytes, to_usize);
    let max_batch_state_bytes = r
        .integer("max_batch_state_bytes", 1, 1 << 40, p)
        .map_or(caps.max_batch_state_bytes, to_usize);
    let batch_size = r
        .integer("batch_size", 1, 1_000_000, p)
        .map_or(DEFAULT_BATCH_SIZE, to_usize);
    let batch_bytes = r
        .integer("batch_bytes", 1, 1 << 30, p)
        .map_or(DEFAULT_BATCH_BYTES, to_usize);
    let max_wait = r
        .integer("max_wait_ms", 0, 3_600_000, p)
        .map_or(DEFAULT_MAX_WAIT, Duration::from_millis);
    let timer_interval = r
        .integer("timer_interval_ms", 1, 3_600_000, p)
        .map_or(DEFAULT_TIMER_INTERVAL, Duration::from_millis);
    let reload = super::reload_settings::read(&mut r, p);

    let at = StageLocations {
        stage: Some(p.locate(span.start)),
        processor: r.span_of("processor").map(|s| p.locate(s.start)),
        candidate: r.span_of("candidate").map(|s| p.locate(s.start)),
        outputs: r.span_of("outputs").map(|s| p.locate(s.start)),
        config: r.span_of("config").map(|s| p.locate(s.start)),
    };
    r.finish(p);
    if p_len(p) > before {
        return None;
    }
    Some(StageConfig {
        name: name?.0,
        processor: ProcessorSource::File(processor_path?),
        candidate: candidate_path.map(ProcessorSource::File),
        inputs: inputs?.into_iter().map(|(t, _)| t).collect(),
        outputs: outputs.into_iter().map(|(n, t, _)| (n, t)).collect(),
        config: config.into_iter().map(|(k, v, _)| (k, v)).collect(),
        tables,
        timer_interval,
        on_error: on_error?,
        limits: Limits {
            memory_bytes: to_usize(memory_mb) << 20,
            deadline,
            max_record_bytes,
            max_record_outputs,
            max_record_output_bytes,
            max_batch_outputs,
            max_batch_output_bytes,
            max_batch_state_bytes,
        },
        batch: BatchLimits {
            max_records: batch_size,
            max_bytes: batch_bytes,
            max_wait,
        },
        reload,
        at,
    })
}

/// Records a problem when `file` (at `path`, resolved against the pipeline
/// file's folder) is not a file.
fn check_file(file: &str, path: &Path, span: Span, place: &str, p: &mut Problems<'_>) {
    if path.is_file() {
        return;
    }
    let msg = if path.exists() {
        format!(
            "{file} is not a file ({} from the pipeline file)",
            path.display()
        )
    } else {
        format!("file {file} not found (looked for {})", path.display())
    };
    p.add(Some(span), place.to_string(), msg);
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Records the problem with a stage name or the group id, if any; true
/// when it is valid.
fn check_name(name: &str, span: Span, place: &str, what: &str, p: &mut Problems<'_>) -> bool {
    match rules::name_problem(name, what) {
        Some(message) => {
            p.add(Some(span), place, message);
            false
        }
        None => true,
    }
}

/// Records the problem with a topic name, if any.
fn check_topic(topic: &str, span: Span, place: &str, p: &mut Problems<'_>) {
    if let Some(message) = rules::topic_problem(topic) {
        p.add(Some(span), place, message);
    }
}

/// Stage names must be unique: they name consumer groups and metrics.
fn check_stage_names(stages: &[StageConfig], root: &DeTable<'_>, p: &mut Problems<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    // The spans of the names, from the raw tables (stages that failed to
    // read are not in `stages`, so look them up by name).
    let name_spans: Vec<(String, Span)> = root
        .iter()
        .filter(|(k, _)| k.get_ref().as_ref() == "stage")
        .filter_map(|(_, v)| v.get_ref().as_array())
        .flat_map(|a| a.iter())
        .filter_map(|item| item.get_ref().as_table())
        .filter_map(|t| {
            t.iter()
                .find(|(k, _)| k.get_ref().as_ref() == "name")
                .map(|(_, v)| v)
        })
        .filter_map(|v| v.get_ref().as_str().map(|s| (s.to_string(), v.span())))
        .collect();
    let mut spans = name_spans.iter();
    for s in stages {
        let count = seen.entry(s.name.as_str()).or_insert(0);
        *count += 1;
        let span = spans
            .by_ref()
            .find(|(n, _)| *n == s.name)
            .map(|(_, sp)| sp.clone());
        if *count >= 2 {
            p.add(
                span,
                format!("stage \"{}\": name", s.name),
                rules::SAME_NAME,
            );
        }
    }
}
