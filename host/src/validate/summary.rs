//! What a validation found: counts per class (in records: a pair counts
//! one on each side), per-field mismatch counts, the mismatch share over
//! event time, and the first examples of each class; written as text, as
//! one JSON object, and as one JSON line per non-match (`--diffs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::pairing::{Class, Outcome};
use partita_compare::json::{pair_json, single_json};

/// Examples kept per class.
pub const EXAMPLES: usize = 5;
/// Field names listed in the text summary.
const TOP_FIELDS: usize = 10;

/// Records per class, and how they were classified.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records per class.
    pub counts: BTreeMap<Class, u64>,
    /// Records read on the left.
    pub total_left: u64,
    /// Records read on the right.
    pub total_right: u64,
    /// Mismatched pairs per differing field (JSON pointer; `""` for a
    /// value compared as bytes).
    pub fields: BTreeMap<String, u64>,
    /// Per second of event time: (records classified, not `match`).
    pub timeline: BTreeMap<i64, (u64, u64)>,
    /// The first outcomes of each class, as JSON.
    pub examples: BTreeMap<Class, Vec<Value>>,
    /// Records whose business key was incomplete, per side (left, right).
    pub incomplete_keys: (u64, u64),
    /// Records each side's normalizing processor rejected or failed on
    /// (left, right): never compared.
    pub normalizer_rejected: (u64, u64),
    /// Records per second read on each side (left, right).
    pub rates: (f64, f64),
    /// Seconds the run took.
    pub seconds: f64,
}

impl Summary {
    /// Counts `outcome`.
    pub fn add(&mut self, outcome: &Outcome) {
        let class = outcome.class();
        let (records, ts): (u64, i64) = match outcome {
            Outcome::Pair { left, .. } => (2, left.timestamp),
            Outcome::Single { record, .. } => (1, record.timestamp),
        };
        *self.counts.entry(class).or_default() += records;
        let slot = self.timeline.entry(ts.div_euclid(1000)).or_default();
        slot.0 += records;
        if class != Class::Match {
            slot.1 += records;
        }
        if let Outcome::Pair {
            difference: Some(d),
            ..
        } = outcome
        {
            for f in d.fields() {
                *self.fields.entry(f.to_string()).or_default() += 1;
            }
        }
        let examples = self.examples.entry(class).or_default();
        if examples.len() < EXAMPLES {
            examples.push(outcome_json(outcome));
        }
    }

    /// Records of `class`.
    pub fn count(&self, class: Class) -> u64 {
        self.counts.get(&class).copied().unwrap_or(0)
    }

    /// Records of `class` in percent of all records (0 when there are
    /// none).
    pub fn percent(&self, class: Class) -> f64 {
        let total = self.total_left + self.total_right;
        if total == 0 {
            0.0
        } else {
            self.count(class) as f64 * 100.0 / total as f64
        }
    }

    /// Every record that is not a `match`, over all records (0 when there
    /// are none).
    pub fn mismatch_share(&self) -> f64 {
        let total = self.total_left + self.total_right;
        if total == 0 {
            return 0.0;
        }
        (total - self.count(Class::Match).min(total)) as f64 / total as f64
    }

    /// The fields that differ most often, most first.
    pub fn top_fields(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.fields.iter().map(|(f, n)| (f.as_str(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }

    /// The summary as one JSON object: `counts` with every class name,
    /// `total_left`, `total_right`, `mismatch_share`, top fields, examples.
    pub fn to_json(&self) -> Value {
        let counts: serde_json::Map<String, Value> = Class::ALL
            .iter()
            .map(|c| (c.name().to_string(), json!(self.count(*c))))
            .collect();
        let fields: Vec<Value> = self
            .top_fields()
            .iter()
            .map(|(f, n)| json!({"field": f, "mismatches": n}))
            .collect();
        let examples: serde_json::Map<String, Value> = self
            .examples
            .iter()
            .map(|(c, e)| (c.name().to_string(), Value::Array(e.clone())))
            .collect();
        json!({
            "counts": counts,
            "total_left": self.total_left,
            "total_right": self.total_right,
            "mismatch_share": self.mismatch_share(),
            "fields": fields,
            "examples": examples,
            "incomplete_keys": {"left": self.incomplete_keys.0, "right": self.incomplete_keys.1},
            "processor_rejected": {"left": self.normalizer_rejected.0, "right": self.normalizer_rejected.1},
            "records_per_second": {"left": self.rates.0, "right": self.rates.1},
            "seconds": self.seconds,
        })
    }

    /// The summary for a person: counts, share, top fields, examples.
    pub fn to_text(&self, max_mismatch: f64) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "validated {} left and {} right records in {:.1}s ({:.0}/s left, {:.0}/s right)",
            self.total_left, self.total_right, self.seconds, self.rates.0, self.rates.1
        );
        if self.total_left + self.total_right == 0 {
            let _ = writeln!(
                s,
                "warning: no record was read on either side: check the topics and --from"
            );
        }
        for c in Class::ALL {
            let _ = writeln!(
                s,
                "  {:<11} {:>10}  {:6.2}%",
                c.name(),
                self.count(c),
                self.percent(c)
            );
        }
        let verdict = if self.mismatch_share() <= max_mismatch {
            "PASS"
        } else {
            "FAIL"
        };
        let _ = writeln!(
            s,
            "mismatch share {:.4}% (allowed {:.4}%): {verdict}",
            self.mismatch_share() * 100.0,
            max_mismatch * 100.0
        );
        if self.incomplete_keys != (0, 0) {
            let _ = writeln!(
                s,
                "records with an incomplete business key (null Kafka key, missing field, not JSON): \
                 {} left, {} right; they are matched by their null key",
                self.incomplete_keys.0, self.incomplete_keys.1
            );
        }
        if self.normalizer_rejected != (0, 0) {
            let _ = writeln!(
                s,
                "records the normalizing processors rejected (not compared): {} left, {} right",
                self.normalizer_rejected.0, self.normalizer_rejected.1
            );
        }
        let top = self.top_fields();
        if !top.is_empty() {
            let _ = writeln!(s, "fields that differ:");
            for (f, n) in top.iter().take(TOP_FIELDS) {
                let name = if f.is_empty() { "(whole value)" } else { f };
                let _ = writeln!(s, "  {name:<30} {n}");
            }
        }
        for c in Class::ALL.iter().filter(|c| **c != Class::Match) {
            let Some(examples) = self.examples.get(c) else {
                continue;
            };
            let _ = writeln!(s, "{} examples:", c.name());
            for e in examples {
                let _ = writeln!(s, "  {}", example_line(e));
            }
        }
        s
    }
}

/// One outcome as JSON: class, key, the records of each side, the diff.
pub fn outcome_json(o: &Outcome) -> Value {
    match o {
        Outcome::Pair {
            left,
            right,
            difference,
        } => pair_json(left, right, difference.as_ref()),
        Outcome::Single { class, record } => single_json(*class, record),
    }
}

/// One example as a line of text.
fn example_line(e: &Value) -> String {
    let key = e["key"].as_str().unwrap_or_default();
    let at = |side: &str| {
        let r = &e[side];
        if r.is_null() {
            return None;
        }
        Some(format!(
            "{side} {}@{} ts {}",
            r["partition"], r["offset"], r["timestamp"]
        ))
    };
    let places: Vec<String> = ["left", "right"].into_iter().filter_map(at).collect();
    let mut line = format!("key {key}: {}", places.join(", "));
    if let Some(diff) = e["diff_text"].as_str() {
        let _ = write!(line, ": {diff}");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::diff::{Difference, FieldDiff};
    use crate::validate::pairing::{Seen, Side};

    fn seen(side: Side, ts: i64) -> Seen {
        Seen {
            side,
            partition: 1,
            offset: 7,
            timestamp: ts,
            key: b"\x01c1".to_vec(),
            value: Some(b"{}".to_vec()),
        }
    }

    #[test]
    fn counts_are_records_and_the_share_is_everything_but_match() {
        let mut s = Summary {
            total_left: 3,
            total_right: 2,
            ..Summary::default()
        };
        s.add(&Outcome::Pair {
            left: seen(Side::Left, 1000),
            right: seen(Side::Right, 1001),
            difference: None,
        });
        s.add(&Outcome::Pair {
            left: seen(Side::Left, 2000),
            right: seen(Side::Right, 2001),
            difference: Some(Difference::Fields(vec![FieldDiff {
                pointer: "/amount".into(),
                left: Some(json!(1.5)),
                right: Some(json!(1.0)),
            }])),
        });
        s.add(&Outcome::Single {
            class: Class::OnlyLeft,
            record: seen(Side::Left, 2500),
        });
        assert_eq!(s.count(Class::Match), 2);
        assert_eq!(s.count(Class::Mismatch), 2);
        assert!((s.mismatch_share() - 0.6).abs() < 1e-9);
        let j = s.to_json();
        let names: Vec<&String> = j["counts"].as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            [
                "duplicate",
                "late",
                "match",
                "mismatch",
                "only_left",
                "only_right"
            ]
        );
        assert_eq!(j["fields"][0]["field"], "/amount");
        assert_eq!(j["examples"]["only_left"][0]["left"]["offset"], 7);
        assert_eq!(s.timeline[&2], (3, 3));
        let text = s.to_text(0.5);
        assert!(
            text.contains("mismatch share 60.0000% (allowed 50.0000%): FAIL"),
            "{text}"
        );
        assert!(
            text.contains("key c1: left 1@7 ts 2000, right 1@7 ts 2001: /amount: 1.5 ≠ 1.0"),
            "{text}"
        );
    }
}
