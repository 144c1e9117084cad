//! What the live console shows, as JSON (`GET /status.json`): per stage
//! its totals, the partitions this host owns, its lag, the versions it
//! ran, its latest dead letters and its candidate's comparison; per
//! reference table, its progress. The page itself (`console.html`, served
//! at `/`) polls it and draws the rates.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Value, json};

use super::{Metrics, lock};

/// The console's page: plain HTML, CSS and JavaScript, no build step.
pub const CONSOLE_HTML: &str = include_str!("console.html");

impl Metrics {
    /// Everything the console shows, as of now.
    pub fn status(&self) -> Value {
        let totals = self.totals();
        let r = lock(&self.registry);
        let stages: Vec<Value> = totals
            .iter()
            .map(|(name, t)| {
                let stage = r.stages.get(name);
                let owned: Vec<i32> = r
                    .partitions
                    .iter()
                    .filter(|((s, _), p)| s == name && p.assigned())
                    .map(|((_, partition), _)| *partition)
                    .collect();
                let versions: Vec<Value> = stage
                    .map(|s| s.versions())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(at_ms, version)| json!({ "at_ms": at_ms, "version": version }))
                    .collect();
                let shadow = stage.and_then(|s| s.shadow()).map(|sh| {
                    let classes: serde_json::Map<String, Value> = sh
                        .by_class()
                        .iter()
                        .map(|(c, n)| ((*c).to_string(), json!(n)))
                        .collect();
                    let fields: serde_json::Map<String, Value> = sh
                        .by_field()
                        .into_iter()
                        .map(|(f, n)| (f, json!(n)))
                        .collect();
                    json!({ "classes": classes, "fields": fields })
                });
                json!({
                    "name": name,
                    "version": t.version,
                    "records_in": t.records_in,
                    "records_out": t.records_out,
                    "rejected": t.rejected,
                    "failed": t.failed,
                    "dlq": t.dlq,
                    "lag": t.lag,
                    "partitions": t.partitions,
                    "owned": owned,
                    "unowned": t.unowned,
                    "state_keys": t.state_keys,
                    "reloads": t.reloads,
                    "versions": versions,
                    "dead_letters": stage.map(|s| s.dead_letters()).unwrap_or_default(),
                    "shadow": shadow,
                })
            })
            .collect();
        let tables: Vec<Value> = r
            .tables
            .iter()
            .map(|(topic, m)| {
                json!({
                    "topic": topic,
                    "applied": m.applied.load(Relaxed),
                    "invalid": m.invalid.load(Relaxed),
                    "keys": m.keys.load(Relaxed),
                    "caught_up": m.caught_up.load(Relaxed),
                })
            })
            .collect();
        json!({ "stages": stages, "tables": tables })
    }
}
