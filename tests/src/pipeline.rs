//! Building blocks of the tests that run `partita run` on a real broker: a
//! folder for pipeline files and logs, waiting until every stage has
//! committed its input, and checking outputs against inputs (each input
//! accounted for, duplicates counted, per-partition order).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::kafka::{Consumed, Kafka, Position, wait_until};
use crate::orders::{Order, id_of_line};

/// A temporary folder holding a test's pipeline files and process logs.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// A new, empty folder.
    pub fn new() -> Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix("partita-pipeline-")
            .tempdir()
            .context("cannot create a folder for the pipeline")?;
        Ok(Workspace { dir })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to the file `name` in the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Path of the log file `NAME.log` in the folder.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

/// `text` as a TOML basic string, quotes included.
pub fn toml_string(text: &str) -> String {
    // JSON string escapes are a subset of TOML basic string escapes.
    serde_json::to_string(text).expect("a string serializes")
}

/// `path` as a TOML basic string.
pub fn toml_path(path: &Path) -> String {
    toml_string(&path.to_string_lossy())
}

/// One `[[stage]]` of a pipeline file written by [`pipeline_toml`].
#[derive(Debug, Clone)]
pub struct Stage<'a> {
    /// `name`.
    pub name: &'a str,
    /// `processor` (written as an absolute path).
    pub processor: &'a Path,
    /// `input`.
    pub input: &'a str,
    /// `outputs`, name to topic.
    pub outputs: &'a [(&'a str, &'a str)],
    /// More lines for the stage table, such as `dlq = "x"`.
    pub extra: &'a str,
}

/// The text of a pipeline file: `[kafka]` with `bootstrap`, `group` and the
/// lines of `kafka_extra`, then the stages.
pub fn pipeline_toml(
    bootstrap: &str,
    group: &str,
    kafka_extra: &str,
    stages: &[Stage<'_>],
) -> String {
    let mut text = format!(
        "[kafka]\nbootstrap = {}\ngroup = {}\n{kafka_extra}\n",
        toml_string(bootstrap),
        toml_string(group)
    );
    for s in stages {
        let outputs: Vec<String> = s
            .outputs
            .iter()
            .map(|(n, t)| format!("{} = {}", toml_string(n), toml_string(t)))
            .collect();
        text.push_str(&format!(
            "\n[[stage]]\nname = {}\nprocessor = {}\ninput = {}\noutputs = {{ {} }}\n{}\n",
            toml_string(s.name),
            toml_path(s.processor),
            toml_string(s.input),
            outputs.join(", "),
            s.extra
        ));
    }
    text
}

/// Waits until every `(group, topic)` has committed the whole topic, in the
/// order given (list a pipeline's stages upstream first, so that a
/// downstream stage is checked after everything upstream reached its
/// topic). `check` runs at each poll and fails the wait at once, for
/// example when a host process died.
pub fn wait_caught_up(
    kafka: &Kafka,
    stages: &[(&str, &str)],
    timeout: Duration,
    mut check: impl FnMut() -> Result<()>,
) -> Result<()> {
    let mut last = String::new();
    let result = wait_until(timeout, "every stage to commit its whole input", || {
        check()?;
        let mut lags = Vec::new();
        for (group, topic) in stages {
            let lag = kafka.lag(group, topic)?;
            lags.push(format!("{group} on {topic}: lag {lag}"));
            if lag > 0 {
                last = lags.join(", ");
                return Ok(false);
            }
        }
        Ok(true)
    });
    result.with_context(|| format!("last seen: {last}"))
}

/// The order id an output value carries: the `id` field of a JSON object
/// (string or number), else the number that leads a CSV line.
pub fn id_of_value(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    if text.trim_start().starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        match &json["id"] {
            serde_json::Value::String(s) => s.parse().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
    } else {
        id_of_line(text)
    }
}

/// Where each order id was produced in the input topic.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    by_id: HashMap<u64, Position>,
}

impl Inputs {
    /// Pairs orders with the positions their records got.
    pub fn new(orders: &[Order], positions: &[Position]) -> Inputs {
        assert_eq!(orders.len(), positions.len(), "one position per order");
        Inputs {
            by_id: orders
                .iter()
                .map(|o| o.id)
                .zip(positions.iter().copied())
                .collect(),
        }
    }

    /// From the input topic as read back (the log as the broker stored it,
    /// which is the truth when delivery reports are not: after a broker
    /// restart a retried record's report may lack its offset). The id of a
    /// record comes from `id_of`; an id read more than once keeps its first
    /// position, and the extra copies are counted in the second value.
    pub fn from_topic(
        records: &[Consumed],
        id_of: impl Fn(&Consumed) -> Option<u64>,
    ) -> (Inputs, usize) {
        let mut by_id = HashMap::new();
        let mut extra = 0;
        for r in records {
            let Some(id) = id_of(r) else { continue };
            let at = Position {
                partition: r.partition,
                offset: r.offset,
            };
            match by_id.entry(id) {
                Entry::Occupied(_) => extra += 1,
                Entry::Vacant(slot) => {
                    slot.insert(at);
                }
            }
        }
        (Inputs { by_id }, extra)
    }

    /// From ids and the positions of their input records.
    pub fn from_positions(by_id: &HashMap<u64, Position>) -> Inputs {
        Inputs {
            by_id: by_id.clone(),
        }
    }

    /// Adds more orders produced later.
    pub fn extend(&mut self, orders: &[Order], positions: &[Position]) {
        assert_eq!(orders.len(), positions.len(), "one position per order");
        self.by_id
            .extend(orders.iter().map(|o| o.id).zip(positions.iter().copied()));
    }

    /// Where order `id` was produced.
    pub fn position(&self, id: u64) -> Option<Position> {
        self.by_id.get(&id).copied()
    }

    /// How many orders.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// How a set of output records compares with the inputs expected in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Inputs expected in the outputs.
    pub expected: usize,
    /// Output records read.
    pub records: usize,
    /// Expected ids found at least once.
    pub found: usize,
    /// Ids found more than once, with how many extra copies.
    pub duplicates: BTreeMap<u64, usize>,
    /// Expected ids not found.
    pub missing: Vec<u64>,
    /// Output records whose id is not expected here, or that carry no id
    /// (their value, lossy).
    pub unexpected: Vec<String>,
    /// Breaks of per-partition order: an output partition where a record of
    /// input partition p comes after one of a later offset of p.
    pub out_of_order: Vec<String>,
}

impl Report {
    /// Extra copies in total.
    pub fn duplicate_count(&self) -> usize {
        self.duplicates.values().sum()
    }

    /// True when every expected input is there, nothing else is, and order
    /// holds; duplicates are allowed.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.out_of_order.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn first<T: fmt::Debug>(items: &[T]) -> String {
            let shown: Vec<String> = items.iter().take(10).map(|i| format!("{i:?}")).collect();
            let more = if items.len() > 10 { ", ..." } else { "" };
            format!("[{}{more}]", shown.join(", "))
        }
        let dups: Vec<(u64, usize)> = self.duplicates.iter().map(|(k, v)| (*k, *v)).collect();
        write!(
            f,
            "{} expected, {} records read, {} found, {} duplicate copies {}, {} missing {}, \
             {} unexpected {}, {} out of order {}",
            self.expected,
            self.records,
            self.found,
            self.duplicate_count(),
            first(&dups),
            self.missing.len(),
            first(&self.missing),
            self.unexpected.len(),
            first(&self.unexpected),
            self.out_of_order.len(),
            first(&self.out_of_order),
        )
    }
}

/// Compares `outputs` (records read from one topic, ordered by partition and
/// offset) with the order ids `expected` in them. The id of an output comes
/// from `id_of` (for example [`id_of_value`] on its value).
///
/// Order is checked per output partition on the first copy of each id: the
/// records that came from one input partition must keep their input offset
/// order.
pub fn account(
    inputs: &Inputs,
    expected: &HashSet<u64>,
    outputs: &[Consumed],
    id_of: impl Fn(&Consumed) -> Option<u64>,
) -> Report {
    let mut report = Report {
        expected: expected.len(),
        records: outputs.len(),
        ..Report::default()
    };
    let mut seen: HashSet<u64> = HashSet::new();
    // (output partition, input partition) -> input offset of the last first copy.
    let mut last: HashMap<(i32, i32), (i64, u64)> = HashMap::new();
    for record in outputs {
        let Some(id) = id_of(record).filter(|id| expected.contains(id)) else {
            report.unexpected.push(record.value_str());
            continue;
        };
        if !seen.insert(id) {
            *report.duplicates.entry(id).or_default() += 1;
            continue;
        }
        let Some(from) = inputs.position(id) else {
            report.unexpected.push(record.value_str());
            continue;
        };
        let slot = last
            .entry((record.partition, from.partition))
            .or_insert((-1, 0));
        if from.offset < slot.0 {
            report.out_of_order.push(format!(
                "output {}/{}@{}: id {id} (input {}@{}) after id {} (input {}@{})",
                record.topic,
                record.partition,
                record.offset,
                from.partition,
                from.offset,
                slot.1,
                from.partition,
                slot.0
            ));
        } else {
            *slot = (from.offset, id);
        }
    }
    report.found = seen.len();
    report.missing = expected
        .iter()
        .filter(|id| !seen.contains(id))
        .copied()
        .collect();
    report.missing.sort_unstable();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::Orders;

    fn consumed(partition: i32, offset: i64, value: &str) -> Consumed {
        Consumed {
            topic: "out".into(),
            partition,
            offset,
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
            timestamp: None,
        }
    }

    /// Orders 1..=6; odd ids on input partition 0, even on 1, in id order.
    fn inputs() -> (Inputs, HashSet<u64>) {
        let orders: Vec<Order> = Orders::default().generate(6).collect();
        let positions: Vec<Position> = orders
            .iter()
            .map(|o| Position {
                partition: (o.id % 2 == 0) as i32,
                offset: (o.id as i64 - 1) / 2,
            })
            .collect();
        (Inputs::new(&orders, &positions), (1..=6).collect())
    }

    fn by_value(c: &Consumed) -> Option<u64> {
        id_of_value(c.value.as_deref().unwrap_or_default())
    }

    #[test]
    fn everything_once_in_order_is_complete() {
        let (inputs, expected) = inputs();
        let out: Vec<Consumed> = [1, 3, 5, 2, 4, 6]
            .iter()
            .enumerate()
            .map(|(i, id)| consumed((id % 2 == 0) as i32, i as i64, &format!("{id},x")))
            .collect();
        let report = account(&inputs, &expected, &out, by_value);
        assert!(report.complete(), "{report}");
        assert_eq!((report.found, report.duplicate_count()), (6, 0));
    }

    #[test]
    fn interleaved_input_partitions_in_one_output_partition_are_in_order() {
        let (inputs, expected) = inputs();
        let out: Vec<Consumed> = [1, 2, 3, 4, 5, 6]
            .iter()
            .enumerate()
            .map(|(i, id)| consumed(0, i as i64, &format!("{{\"id\":\"{id}\"}}")))
            .collect();
        let report = account(&inputs, &expected, &out, by_value);
        assert!(report.complete(), "{report}");
    }

    #[test]
    fn missing_duplicates_unexpected_and_disorder_are_reported() {
        let (inputs, expected) = inputs();
        let values = ["1", "5", "3", "3", "99", "no id", "2", "4"];
        let out: Vec<Consumed> = values
            .iter()
            .enumerate()
            .map(|(i, v)| consumed(0, i as i64, v))
            .collect();
        let report = account(&inputs, &expected, &out, by_value);
        assert_eq!(report.missing, vec![6]);
        assert_eq!(report.duplicates, BTreeMap::from([(3, 1)]));
        assert_eq!(
            report.unexpected,
            vec!["99".to_string(), "no id".to_string()]
        );
        assert_eq!(report.out_of_order.len(), 1, "{report}");
        assert!(report.out_of_order[0].contains("id 3"), "{report}");
        assert!(!report.complete());
        let text = report.to_string();
        assert!(text.contains("1 missing [6]"), "{text}");
    }

    #[test]
    fn replayed_tail_counts_as_duplicates_not_disorder() {
        let (inputs, expected) = inputs();
        // 1, 3, 5 then a crash replays 3 and 5.
        let values = ["1", "3", "5", "3", "5", "2", "4", "6"];
        let out: Vec<Consumed> = values
            .iter()
            .enumerate()
            .map(|(i, v)| consumed(0, i as i64, v))
            .collect();
        let report = account(&inputs, &expected, &out, by_value);
        assert!(report.complete(), "{report}");
        assert_eq!(report.duplicate_count(), 2);
    }

    #[test]
    fn inputs_from_the_topic_keep_first_positions_and_count_copies() {
        let read = [
            consumed(0, 0, "1"),
            consumed(0, 1, "2"),
            consumed(0, 2, "1"),
            consumed(1, 0, "x"),
        ];
        let (inputs, extra) = Inputs::from_topic(&read, by_value);
        assert_eq!(extra, 1);
        assert_eq!(inputs.len(), 2);
        assert_eq!(
            inputs.position(1),
            Some(Position {
                partition: 0,
                offset: 0
            })
        );
        assert_eq!(
            inputs.position(2),
            Some(Position {
                partition: 0,
                offset: 1
            })
        );
    }

    #[test]
    fn ids_come_from_json_or_csv() {
        assert_eq!(id_of_value(br#"{"id":"12","customer":"c1"}"#), Some(12));
        assert_eq!(id_of_value(br#"{"id":13}"#), Some(13));
        assert_eq!(id_of_value(br#"{"customer":"c1"}"#), None);
        assert_eq!(id_of_value(b"14,c0001,1.00,FR"), Some(14));
        assert_eq!(id_of_value(b"15;c0001;1.00;FR"), Some(15));
        assert_eq!(id_of_value(&[0xff]), None);
    }

    #[test]
    fn pipeline_toml_writes_every_stage() {
        let text = pipeline_toml(
            "127.0.0.1:9",
            "g",
            "commit_interval_ms = 200",
            &[
                Stage {
                    name: "a",
                    processor: Path::new("/p/a.wasm"),
                    input: "in",
                    outputs: &[("default", "mid")],
                    extra: "batch_size = 10",
                },
                Stage {
                    name: "b",
                    processor: Path::new("/p/b.wasm"),
                    input: "mid",
                    outputs: &[("x", "o1"), ("y", "o2")],
                    extra: "",
                },
            ],
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["kafka"]["bootstrap"].as_str(), Some("127.0.0.1:9"));
        assert_eq!(v["kafka"]["commit_interval_ms"].as_integer(), Some(200));
        let stages = v["stage"].as_array().unwrap();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0]["processor"].as_str(), Some("/p/a.wasm"));
        assert_eq!(stages[0]["batch_size"].as_integer(), Some(10));
        assert_eq!(stages[1]["outputs"]["y"].as_str(), Some("o2"));
    }

    #[test]
    fn toml_strings_escape_quotes_and_backslashes() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        let parsed: toml::Value =
            toml::from_str(&format!("k = {}", toml_string("x\"y\\z"))).unwrap();
        assert_eq!(parsed["k"].as_str(), Some("x\"y\\z"));
    }
}
