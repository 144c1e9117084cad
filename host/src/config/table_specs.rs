//! A stage's `tables` key: reference table name → compacted topic, either
//! as a plain topic name or as a table of options.
//!
//! ```toml
//! tables = { rates = "ref.rates" }
//! tables = { customers = { topic = "ref.customers", format = "connect-json", key_format = "connect-json", wait = false } }
//! ```

use toml::de::DeValue;

use super::problems::Problems;
use super::reader::TableReader;

/// How the keys or values of a table topic are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableFormat {
    /// `raw`: the bytes are used as they are.
    #[default]
    Raw,
    /// `connect-json`: Kafka Connect's JSON converter with schemas,
    /// `{"schema":…,"payload":…}`; lookups see the payload (a JSON string
    /// payload as its text, anything else as compact JSON).
    ConnectJson,
}

impl TableFormat {
    /// The name used in the pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormat::Raw => "raw",
            TableFormat::ConnectJson => "connect-json",
        }
    }

    fn parse(text: &str) -> Option<TableFormat> {
        match text {
            "raw" => Some(TableFormat::Raw),
            "connect-json" => Some(TableFormat::ConnectJson),
            _ => None,
        }
    }
}

/// One entry of a stage's `tables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The name processors look the table up by.
    pub name: String,
    /// `topic`: the compacted topic that holds the table.
    pub topic: String,
    /// `format`: how values are written (default `raw`).
    pub format: TableFormat,
    /// `key_format`: how keys are written (default `raw`).
    pub key_format: TableFormat,
    /// `wait`: whether the stage waits at start until the table has caught
    /// up with the end of its topic (default `true`).
    pub wait: bool,
}

impl TableSpec {
    /// A table of raw keys and values that the stage waits for.
    pub fn new(name: impl Into<String>, topic: impl Into<String>) -> TableSpec {
        TableSpec {
            name: name.into(),
            topic: topic.into(),
            format: TableFormat::Raw,
            key_format: TableFormat::Raw,
            wait: true,
        }
    }
}

/// Reads `tables` from a stage table; each topic is checked with
/// `check_topic(topic, span, place, problems)`.
pub(super) fn read_tables(
    r: &mut TableReader<'_, '_>,
    p: &mut Problems<'_>,
    check_topic: fn(&str, super::reader::Span, &str, &mut Problems<'_>),
) -> Vec<TableSpec> {
    let place = r.key_place("tables");
    let Some(v) = r.value("tables") else {
        return Vec::new();
    };
    let DeValue::Table(t) = v.get_ref() else {
        p.add(
            Some(v.span()),
            place,
            format!("expected a table, found {}", v.get_ref().type_str()),
        );
        return Vec::new();
    };
    let mut entries: Vec<(usize, TableSpec)> = Vec::new();
    for (k, v) in t.iter() {
        let name = k.get_ref().to_string();
        let place = format!("{place}.{name}");
        match v.get_ref() {
            DeValue::String(topic) => {
                check_topic(topic, v.span(), &place, p);
                entries.push((v.span().start, TableSpec::new(name, topic.to_string())));
            }
            DeValue::Table(options) => {
                let mut o = TableReader::new(options, v.span(), place.clone());
                let topic = o.required_string("topic", p);
                if let Some((topic, span)) = &topic {
                    check_topic(topic, span.clone(), &o.key_place("topic"), p);
                }
                let format = read_format(&mut o, "format", p);
                let key_format = read_format(&mut o, "key_format", p);
                let wait = o.boolean("wait", p);
                o.finish(p);
                if let (Some((topic, _)), Some(format), Some(key_format)) =
                    (topic, format, key_format)
                {
                    entries.push((
                        v.span().start,
                        TableSpec {
                            name,
                            topic,
                            format,
                            key_format,
                            wait: wait.unwrap_or(true),
                        },
                    ));
                }
            }
            other => p.add(
                Some(v.span()),
                place,
                format!(
                    "expected a topic name or a table of options, found {}",
                    other.type_str()
                ),
            ),
        }
    }
    entries.sort_by_key(|(start, _)| *start);
    entries.into_iter().map(|(_, t)| t).collect()
}

/// A format key: `Some(Raw)` when absent, `None` after a problem.
fn read_format(
    o: &mut TableReader<'_, '_>,
    key: &'static str,
    p: &mut Problems<'_>,
) -> Option<TableFormat> {
    let had = o.span_of(key).is_some();
    match o.string(key, p) {
        None if had => None,
        None => Some(TableFormat::Raw),
        Some((text, span)) => {
            let format = TableFormat::parse(&text);
            if format.is_none() {
                p.add(
                    Some(span),
                    o.key_place(key),
                    format!("unknown format \"{text}\" (expected \"raw\" or \"connect-json\")"),
                );
            }
            format
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{ConfigError, Pipeline};

    const HEAD: &str = r#"[kafka]
bootstrap = "127.0.0.1:9092"
group = "g"

[[stage]]
name = "e"
processor = "p.wasm"
input = "in"
outputs = { default = "out" }
"#;

    fn parse(tables: &str) -> (tempfile::TempDir, Result<Pipeline, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"not checked here").unwrap();
        let file: PathBuf = dir.path().join("pipeline.toml");
        let parsed = Pipeline::parse(&file, &format!("{HEAD}{tables}\n"));
        (dir, parsed)
    }

    fn problems(tables: &str) -> Vec<String> {
        let (dir, parsed) = parse(tables);
        let dir = dir.path().display().to_string();
        parsed
            .expect_err("the file should be refused")
            .problems
            .iter()
            .map(|p| p.to_string().replace(&dir, "DIR"))
            .collect()
    }

    #[test]
    fn the_plain_form_and_the_options_form_are_read_in_file_order() {
        let (_dir, parsed) = parse(
            r#"tables = { rates = "ref.rates", customers = { topic = "ref.customers", format = "connect-json", key_format = "connect-json", wait = false }, plain = { topic = "ref.plain" } }"#,
        );
        let p = parsed.unwrap();
        let t = &p.stages[0].tables;
        assert_eq!(
            t,
            &[
                TableSpec::new("rates", "ref.rates"),
                TableSpec {
                    name: "customers".into(),
                    topic: "ref.customers".into(),
                    format: TableFormat::ConnectJson,
                    key_format: TableFormat::ConnectJson,
                    wait: false,
                },
                TableSpec::new("plain", "ref.plain"),
            ]
        );
        assert!(p.topics().contains(&"ref.customers".to_string()));
    }

    #[test]
    fn a_stage_sub_table_works_too() {
        let (_dir, parsed) =
            parse("[stage.tables.customers]\ntopic = \"ref.customers\"\nformat = \"connect-json\"");
        let p = parsed.unwrap();
        assert_eq!(p.stages[0].tables[0].format, TableFormat::ConnectJson);
        assert_eq!(p.stages[0].tables[0].key_format, TableFormat::Raw);
        assert!(p.stages[0].tables[0].wait);
    }

    #[test]
    fn tables_that_are_not_a_table_are_refused() {
        assert_eq!(
            problems("tables = \"ref.rates\""),
            ["DIR/pipeline.toml:10:10: stage \"e\": tables: expected a table, found string"]
        );
    }

    #[test]
    fn an_entry_of_the_wrong_type_is_refused() {
        assert_eq!(
            problems("tables = { rates = 3 }"),
            [
                "DIR/pipeline.toml:10:20: stage \"e\": tables.rates: expected a topic name or a table of options, found integer"
            ]
        );
    }

    #[test]
    fn an_invalid_topic_is_refused_in_both_forms() {
        assert_eq!(
            problems("tables = { a = \"bad topic\", b = { topic = \"\" } }"),
            [
                "DIR/pipeline.toml:10:16: stage \"e\": tables.a: invalid topic \"bad topic\": a topic name may only use letters, digits, '.', '_' and '-'",
                "DIR/pipeline.toml:10:43: stage \"e\": tables.b: topic: must not be empty",
            ]
        );
    }

    #[test]
    fn options_without_a_topic_are_refused() {
        assert_eq!(
            problems("tables = { a = { format = \"raw\" } }"),
            ["DIR/pipeline.toml:10:16: stage \"e\": tables.a: missing key `topic`"]
        );
    }

    #[test]
    fn unknown_formats_and_options_are_refused() {
        assert_eq!(
            problems(
                "tables = { a = { topic = \"t\", format = \"avro\", key_format = 1, wait = \"no\", compact = true } }"
            ),
            [
                "DIR/pipeline.toml:10:40: stage \"e\": tables.a: format: unknown format \"avro\" (expected \"raw\" or \"connect-json\")",
                "DIR/pipeline.toml:10:61: stage \"e\": tables.a: key_format: expected a string, found integer",
                "DIR/pipeline.toml:10:71: stage \"e\": tables.a: wait: expected true or false, found string",
                "DIR/pipeline.toml:10:77: stage \"e\": tables.a: unknown key `compact` (expected one of: format, key_format, topic, wait)",
            ]
        );
    }
}
