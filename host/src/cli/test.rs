//! `partita test`: runs one processor over a JSONL file of records, offline.
//!
//! Outputs go to stdout, one JSON line each (docs/RECORDS.md); rejected and
//! failed records go to stderr with their input line, then a summary. Every
//! input (arguments, record file, table files, component) is checked before
//! the first record runs, and a problem stops the command with one line that
//! says what and where.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use partita_wire::{BatchWriter, OutputRef, Outputs, RecordRef};

use crate::engine::{Counters, Engine, EngineConfig, InstanceSetup, Limits, RecordOutcome};
use crate::jsonl::{self, JsonRecord};
use crate::state::MemoryState;
use crate::tables::{MemoryTables, Table};

/// Arguments of `partita test`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every record ran (rejections included), \
    1 on bad input, 2 when some record failed (a trap or a limit).\n\
    The record format is described in docs/RECORDS.md."
)]
pub struct TestArgs {
    /// The processor component (.wasm).
    pub component: PathBuf,
    /// The records, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// A configuration entry passed to the processor's `init` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// A reference table read from a JSONL file of key/value records
    /// (repeatable).
    #[arg(long = "table", value_name = "NAME=FILE")]
    pub tables: Vec<String>,
    /// Memory cap of the processor instance, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub memory_mb: usize,
    /// CPU deadline of one batch, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub deadline_ms: u64,
    /// Records per batch.
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Call the processor's `on-timer` once after the last record, with the
    /// largest record timestamp as stream time.
    #[arg(long)]
    pub timer: bool,
    /// Where compiled components are cached (default: the user's cache
    /// folder, e.g. ~/.cache/partita/compiled).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component without reading or writing the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// Exit status when at least one record failed (1 is bad input, 2 a bad
/// command line, as clap reports it).
const FAILED_RECORDS: u8 = 3;

/// Counts for the summary line.
#[derive(Debug, Default)]
struct Summary {
    records: usize,
    outputs: usize,
    rejected: usize,
    failed: usize,
}

/// Runs `partita test`.
pub fn main(args: TestArgs) -> anyhow::Result<ExitCode> {
    let config = args
        .config
        .iter()
        .map(|a| split_arg(a, "--config", "KEY=VALUE"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let table_args = args
        .tables
        .iter()
        .map(|a| split_arg(a, "--table", "NAME=FILE"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let records = read_records(&args.input)?;
    let tables = MemoryTables::new();
    for (name, file) in &table_args {
        tables.insert_table(name, read_table(Path::new(file))?);
    }

    let engine = Engine::new(EngineConfig {
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(super::compiled_cache_dir)
        },
        epoch_tick: Duration::from_millis(10),
    })?;
    let processor = engine.load(&args.component)?;
    let counters = Arc::new(Counters::new());
    let mut instance = processor.instantiate(InstanceSetup {
        stage: stage_name(&args.component),
        partition: 0,
        config: config
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        state: Box::new(MemoryState::new()),
        tables: Arc::new(tables),
        limits: Limits {
            memory_bytes: args.memory_mb.saturating_mul(1 << 20),
            deadline: Duration::from_millis(args.deadline_ms),
            ..Limits::default()
        },
        counters: counters.clone(),
    })?;

    let mut topics: Vec<&str> = records.iter().map(|(_, r)| r.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    let mut batch = BatchWriter::new(&topics);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = String::new();
    let mut summary = Summary {
        records: records.len(),
        ..Summary::default()
    };
    for chunk in records.chunks(args.batch_size as usize) {
        batch.clear();
        for (_, r) in chunk {
            let topic = topics.binary_search(&r.topic.as_str()).unwrap_or_default();
            batch.push(
                topic as u32,
                r.partition,
                r.offset,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
            );
        }
        let outcome = instance.process(&batch);
        let names = outcome.output_names();
        for ((line_no, _), (record, result)) in chunk.iter().zip(outcome.iter()) {
            match result {
                RecordOutcome::Ok(outputs) => {
                    for o in outputs.iter() {
                        format_output(&mut line, names, &o, Some(&record), Some(*line_no));
                        writeln!(out, "{line}").context("cannot write to stdout")?;
                        summary.outputs += 1;
                    }
                }
                RecordOutcome::Rejected(reason) => {
                    summary.rejected += 1;
                    eprintln!("{}:{line_no}: rejected: {reason}", args.input.display());
                }
                RecordOutcome::Failed(e) => {
                    summary.failed += 1;
                    eprintln!("{}:{line_no}: failed: {e}", args.input.display());
                }
            }
        }
    }
    if args.timer {
        let stream_time = records.iter().map(|(_, r)| r.timestamp).max().unwrap_or(0);
        let wall_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let names = instance.outputs().to_vec();
        match instance.on_timer(stream_time, wall_time) {
            Ok(outputs) => {
                summary.outputs += print_timer(&mut out, &mut line, &names, outputs, stream_time)?;
            }
            Err(e) => {
                summary.failed += 1;
                eprintln!("on-timer: failed: {e}");
            }
        }
    }
    out.flush().context("cannot write to stdout")?;
    let Summary {
        records,
        outputs,
        rejected,
        failed,
    } = summary;
    eprintln!("records: {records}, outputs: {outputs}, rejected: {rejected}, failed: {failed}");
    for ((name, label), value) in counters.snapshot() {
        match label.as_str() {
            "" => eprintln!("counter {name}: {value}"),
            _ => eprintln!("counter {name} {label:?}: {value}"),
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(FAILED_RECORDS)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_timer(
    out: &mut impl Write,
    line: &mut String,
    names: &[String],
    outputs: Outputs<'_>,
    stream_time: i64,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for o in outputs.iter() {
        let o = OutputRef {
            timestamp: Some(o.timestamp.unwrap_or(stream_time)),
            ..o
        };
        format_output(line, names, &o, None, None);
        writeln!(out, "{line}").context("cannot write to stdout")?;
        n += 1;
    }
    Ok(n)
}

/// Writes one output as a JSON line into `line`, with fields marked keep
/// resolved against `input` (absent for a timer's outputs).
fn format_output(
    line: &mut String,
    names: &[String],
    o: &OutputRef<'_>,
    input: Option<&RecordRef<'_>>,
    line_no: Option<usize>,
) {
    line.clear();
    line.push('{');
    let name = names.get(o.output as usize).map_or("", String::as_str);
    jsonl::push_pair(line, "output", &jsonl::json_string(name));
    jsonl::write_bytes_field(line, "key", o.key.or_input(input.and_then(|r| r.key)));
    jsonl::write_bytes_field(line, "value", o.value.or_input(input.and_then(|r| r.value)));
    match (o.headers, input) {
        (Some(h), _) => jsonl::write_headers(line, h.iter()),
        (None, Some(r)) => jsonl::write_headers(line, r.headers.iter()),
        (None, None) => jsonl::write_headers(line, std::iter::empty()),
    }
    let timestamp = o.timestamp.or(input.map(|r| r.timestamp)).unwrap_or(0);
    jsonl::push_pair(line, "timestamp", &timestamp.to_string());
    match line_no {
        Some(n) => jsonl::push_pair(line, "line", &n.to_string()),
        None => jsonl::push_pair(line, "timer", "true"),
    }
    line.push('}');
}

/// Splits `KEY=VALUE` (`what` names the flag in errors).
fn split_arg<'a>(arg: &'a str, flag: &str, form: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => bail!("malformed {flag} argument {arg:?}: expected {form}"),
    }
}

/// The records of `path` with their line numbers; blank lines are skipped.
fn read_records(path: &Path) -> anyhow::Result<Vec<(usize, JsonRecord)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read input file {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = jsonl::parse_record(line, i + 1)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        records.push((i + 1, record));
    }
    Ok(records)
}

/// A table from a JSONL file: each line's key maps to its value; a later
/// line replaces an earlier one and a null value deletes the key, as in a
/// compacted topic.
fn read_table(path: &Path) -> anyhow::Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read table file {}", path.display()))?;
    let mut table = Table::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let r = jsonl::parse_record(line, i + 1).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        let Some(key) = r.key else {
            bail!("{}: a table record needs a key", at());
        };
        match r.value {
            Some(v) => table.insert(key, v),
            None => table.remove(&key),
        };
    }
    Ok(table)
}

/// The stage name used in log lines: the component's file stem.
fn stage_name(component: &Path) -> String {
    component
        .file_stem()
        .map_or_else(|| "test".into(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_table_arguments_need_an_equals_sign() {
        assert_eq!(
            split_arg("a=b=c", "--config", "KEY=VALUE").unwrap(),
            ("a", "b=c")
        );
        assert_eq!(split_arg("a=", "--config", "KEY=VALUE").unwrap(), ("a", ""));
        let e = split_arg("novalue", "--config", "KEY=VALUE")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "malformed --config argument \"novalue\": expected KEY=VALUE"
        );
        assert!(split_arg("=x", "--table", "NAME=FILE").is_err());
    }

    #[test]
    fn tables_follow_compaction_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, "{\"key\":\"a\",\"value\":\"1\"}\n\n{\"key\":\"b\",\"value\":\"2\"}\n{\"key\":\"a\",\"value\":null}\n")
            .unwrap();
        let t = read_table(&p).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&b"b"[..]), Some(&b"2".to_vec()));
        std::fs::write(&p, "{\"value\":\"1\"}\n").unwrap();
        let e = read_table(&p).unwrap_err().to_string();
        assert!(e.ends_with("t.jsonl:1: a table record needs a key"), "{e}");
    }

    #[test]
    fn output_lines_resolve_kept_fields() {
        let mut b = BatchWriter::new(&["input"]);
        let headers = [(&b"h"[..], &b"v"[..])];
        b.push(0, 0, 5, 77, Some(b"k"), Some(b"v"), headers.into_iter());
        let batch = partita_wire::Batch::parse(b.as_bytes()).unwrap();
        let record = batch.records().next().unwrap().unwrap();
        let names = vec!["out".to_string()];
        let mut line = String::new();
        let keep = OutputRef {
            output: 0,
            key: partita_wire::Field::Keep,
            value: partita_wire::Field::Bytes(b"new"),
            headers: None,
            timestamp: None,
        };
        format_output(&mut line, &names, &keep, Some(&record), Some(3));
        assert_eq!(
            line,
            r#"{"output":"out","key":"k","value":"new","headers":{"h":"v"},"timestamp":77,"line":3}"#
        );
        let timer = OutputRef {
            key: partita_wire::Field::Null,
            timestamp: Some(9),
            ..keep
        };
        format_output(&mut line, &names, &timer, None, None);
        assert_eq!(
            line,
            r#"{"output":"out","key":null,"value":"new","headers":{},"timestamp":9,"timer":true}"#
        );
    }
}
