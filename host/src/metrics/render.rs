//! The registry as Prometheus text, exposition format 0.0.4, written by
//! hand: a few `writeln!`s per family, where a client crate would bring its
//! own registry to keep in step with this one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::{
    BATCH_BUCKETS, GroupStatus, Metrics, PartitionMetrics, StageMetrics, TableMetrics, lock,
};

impl Metrics {
    /// The metrics as Prometheus text, format version 0.0.4.
    pub fn render(&self) -> String {
        let r = lock(&self.registry);
        let mut out = String::with_capacity(4096);
        type Get = fn(&PartitionMetrics) -> u64;
        let counters: [(&str, &str, Get); 6] = [
            (
                "partita_records_in_total",
                "Records read and processed.",
                |p| p.records_in.load(Relaxed),
            ),
            (
                "partita_records_out_total",
                "Output records acknowledged by the broker.",
                |p| p.records_out.load(Relaxed),
            ),
            (
                "partita_records_rejected_total",
                "Records the processor rejected.",
                |p| p.rejected.load(Relaxed),
            ),
            (
                "partita_records_failed_total",
                "Records that trapped or exceeded a limit on their own.",
                |p| p.failed.load(Relaxed),
            ),
            (
                "partita_dlq_total",
                "Records acknowledged on a dead-letter topic.",
                |p| p.dlq.load(Relaxed),
            ),
            (
                "partita_records_skipped_total",
                "Records dropped by on_error = skip.",
                |p| p.skipped.load(Relaxed),
            ),
        ];
        for (name, help, get) in counters {
            header(&mut out, name, help, "counter");
            for ((stage, partition), p) in &r.partitions {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",partition=\"{partition}\"}} {}",
                    escape(stage),
                    get(p)
                );
            }
        }

        let name = "partita_state_restored_records_total";
        header(
            &mut out,
            name,
            "Changelog records read to restore a partition's state.",
            "counter",
        );
        for ((stage, partition), p) in &r.partitions {
            let n = p.state_restored.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}{{stage=\"{}\",partition=\"{partition}\"}} {n}",
                escape(stage)
            );
        }
        let name = "partita_processor_counter_total";
        header(
            &mut out,
            name,
            "Counters the processor keeps through its metrics import.",
            "counter",
        );
        for ((stage, partition), p) in &r.partitions {
            for ((counter, label), n) in p.counters.snapshot() {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",partition=\"{partition}\",name=\"{}\",label=\"{}\"}} {n}",
                    escape(stage),
                    escape(&counter),
                    escape(&label)
                );
            }
        }
        let name = "partita_state_keys";
        header(
            &mut out,
            name,
            "Keys in a partition's state store (as of its last flush).",
            "gauge",
        );
        for ((stage, partition), p) in &r.partitions {
            let n = p.state_keys.load(Relaxed);
            if n >= 0 {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",partition=\"{partition}\"}} {n}",
                    escape(stage)
                );
            }
        }

        render_group(&mut out, &r.stages);
        render_shadow(&mut out, &r.stages);

        let name = "partita_batch_seconds";
        header(
            &mut out,
            name,
            "Time to run one batch through the processor and hand its outputs over.",
            "histogram",
        );
        for (stage, s) in &r.stages {
            let stage = escape(stage);
            let mut cumulative = 0;
            for (bound, n) in BATCH_BUCKETS.iter().zip(&s.batch_buckets) {
                cumulative += n.load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{stage=\"{stage}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = s.batch_count.load(Relaxed);
            let sum = s.batch_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {count}");
        }

        type StageGet = fn(&StageMetrics) -> u64;
        let stage_counters: [(&str, &str, StageGet); 5] = [
            (
                "partita_produce_retries_total",
                "Outputs produced again after the client gave up on them.",
                |s| s.produce_retries.load(Relaxed),
            ),
            (
                "partita_commit_failures_total",
                "Offset commits the broker did not accept.",
                |s| s.commit_failures.load(Relaxed),
            ),
            (
                "partita_transactions_total",
                "Exactly-once: transactions committed.",
                |s| s.transactions.load(Relaxed),
            ),
            (
                "partita_transaction_aborts_total",
                "Exactly-once: transactions aborted, their batches processed again.",
                |s| s.transaction_aborts.load(Relaxed),
            ),
            (
                "partita_reloads_total",
                "Processor versions swapped in by a hot reload (rollbacks included).",
                |s| s.reloads.load(Relaxed),
            ),
        ];
        for (name, help, get) in stage_counters {
            header(&mut out, name, help, "counter");
            for (stage, s) in &r.stages {
                let _ = writeln!(out, "{name}{{stage=\"{}\"}} {}", escape(stage), get(s));
            }
        }

        let name = "partita_reload_failures_total";
        header(
            &mut out,
            name,
            "Processor versions a hot reload refused (the old one kept running) or rolled back, by reason.",
            "counter",
        );
        for (stage, s) in &r.stages {
            for (reason, n) in lock(&s.reload_failures).iter() {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",reason=\"{reason}\"}} {n}",
                    escape(stage)
                );
            }
        }

        let name = "partita_processor_info";
        header(
            &mut out,
            name,
            "The processor version each stage runs.",
            "gauge",
        );
        for (stage, s) in &r.stages {
            let version = lock(&s.version);
            if !version.is_empty() {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",version=\"{}\"}} 1",
                    escape(stage),
                    escape(&version)
                );
            }
        }

        let name = "partita_timer_failures_total";
        header(
            &mut out,
            name,
            "on-timer calls that trapped, exceeded a limit or returned malformed outputs.",
            "counter",
        );
        for (stage, s) in &r.stages {
            let n = s.timer_failures.load(Relaxed);
            let _ = writeln!(out, "{name}{{stage=\"{}\"}} {n}", escape(stage));
        }

        type TableGet = fn(&TableMetrics) -> u64;
        let table_metrics: [(&str, &str, &str, TableGet); 4] = [
            (
                "partita_table_records_total",
                "Records of a reference table topic applied to the table.",
                "counter",
                |t| t.applied.load(Relaxed),
            ),
            (
                "partita_table_invalid_records_total",
                "Records of a reference table topic skipped: no key, or a key or value that its format cannot read.",
                "counter",
                |t| t.invalid.load(Relaxed),
            ),
            (
                "partita_table_keys",
                "Keys in a reference table.",
                "gauge",
                |t| t.keys.load(Relaxed),
            ),
            (
                "partita_table_caught_up",
                "1 once a reference table has read its topic up to the end it had at start.",
                "gauge",
                |t| u64::from(t.caught_up.load(Relaxed)),
            ),
        ];
        for (name, help, kind, get) in table_metrics {
            if r.tables.is_empty() {
                break;
            }
            header(&mut out, name, help, kind);
            for (topic, t) in &r.tables {
                let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape(topic), get(t));
            }
        }
        out
    }
}

/// The comparison of each stage's candidate with its live processor: records
/// by class, and the JSON fields that differed.
fn render_shadow(out: &mut String, stages: &BTreeMap<String, Arc<StageMetrics>>) {
    let shadows: Vec<(String, Arc<crate::pipeline::shadow::ShadowTotals>)> = stages
        .iter()
        .filter_map(|(name, s)| Some((escape(name), s.shadow()?)))
        .collect();
    if shadows.is_empty() {
        return;
    }
    let name = "partita_shadow_records_total";
    header(
        out,
        name,
        "Records of the stage's candidate by how they compare with the live processor's (same, differ, candidate_failed, live_failed, skipped).",
        "counter",
    );
    for (stage, t) in &shadows {
        for (class, n) in t.by_class() {
            let _ = writeln!(out, "{name}{{stage=\"{stage}\",class=\"{class}\"}} {n}");
        }
    }
    let name = "partita_shadow_field_diffs_total";
    header(
        out,
        name,
        "Records whose output differed between the candidate and the live processor in this JSON field.",
        "counter",
    );
    for (stage, t) in &shadows {
        for (field, n) in t.by_field() {
            let _ = writeln!(
                out,
                "{name}{{stage=\"{stage}\",field=\"{}\"}} {n}",
                escape(&field)
            );
        }
    }
}

/// The group metrics of every stage: lag per input partition (owned here
/// or not), stalled partitions, unowned partitions and rejoins.
fn render_group(out: &mut String, stages: &BTreeMap<String, Arc<StageMetrics>>) {
    let statuses: Vec<(String, Option<GroupStatus>)> = stages
        .iter()
        .map(|(name, s)| (escape(name), s.group_status()))
        .collect();
    let name = "partita_consumer_lag";
    header(
        out,
        name,
        "The group's lag on an input partition: end offset minus the group's committed offset; owned says whether this host holds it.",
        "gauge",
    );
    for (stage, g) in &statuses {
        for row in g.iter().flat_map(|g| &g.rows) {
            let _ = writeln!(
                out,
                "{name}{{stage=\"{stage}\",topic=\"{}\",partition=\"{}\",owned=\"{}\"}} {}",
                escape(&row.topic),
                row.partition,
                row.owned,
                row.lag
            );
        }
    }
    let name = "partita_partition_stalled";
    header(
        out,
        name,
        "1 when an input partition owned here has lag and has not advanced for stalled_after_ms.",
        "gauge",
    );
    for (stage, g) in &statuses {
        for row in g.iter().flat_map(|g| &g.rows).filter(|r| r.owned) {
            let _ = writeln!(
                out,
                "{name}{{stage=\"{stage}\",topic=\"{}\",partition=\"{}\"}} {}",
                escape(&row.topic),
                row.partition,
                u8::from(row.stalled)
            );
        }
    }
    let name = "partita_group_unowned_partitions";
    header(
        out,
        name,
        "Input partitions with lag that no live member of the stage's settled group owns.",
        "gauge",
    );
    for (stage, g) in &statuses {
        if let Some(g) = g {
            let _ = writeln!(out, "{name}{{stage=\"{stage}\"}} {}", g.unowned);
        }
    }
    let name = "partita_group_rejoins_total";
    header(
        out,
        name,
        "Times the stage's consumer left and rejoined its group because partitions with lag had no owner.",
        "counter",
    );
    for (stage, s) in stages {
        let n = s.rejoins.load(Relaxed);
        let _ = writeln!(out, "{name}{{stage=\"{}\"}} {n}", escape(stage));
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
