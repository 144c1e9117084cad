//! The worker's `on-timer` calls against the mock cluster: after a batch
//! with the batch's stream time, when idle every `timer_interval_ms`, their
//! outputs produced and counted, and failed calls counted without stopping
//! the records.

use partita_wire::{OutputRef, Outputs};

use super::*;

/// Forwards no record; its timer emits `batch T` on the call after a
/// batch and `idle T` once, on the first call after the first batch that
/// has no batch before it (T the stream time); or fails every call with
/// `fail`.
struct Ticker {
    outputs: Vec<String>,
    ran: bool,
    ran_once: bool,
    idle_sent: bool,
    fail: bool,
    /// Buffer the emitted outputs are encoded in.
    buf: Vec<u8>,
}

impl BatchRunner for Ticker {
    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn version(&self) -> &str {
        "ticker"
    }

    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {
        self.ran = true;
        self.ran_once = true;
        let parsed = Batch::parse(batch.as_bytes()).unwrap();
        let mut w = ResultWriter::default();
        let records: Vec<RecordRef<'_>> = parsed.records().map(|r| r.unwrap()).collect();
        for _ in &records {
            w.begin();
        }
        let buf = w.finish();
        let results = Results::parse(&buf, records.len(), 1).unwrap();
        for (r, result) in records.into_iter().zip(results.iter()) {
            if let partita_wire::RecordResult::Ok(o) = result {
                each(r, RecordOutcome::Ok(o));
            }
        }
    }

    fn on_timer(
        &mut self,
        stream_time: i64,
        _wall_time: i64,
        each: &mut dyn FnMut(OutputRef<'_>),
    ) -> Result<(), ProcessError> {
        if self.fail {
            return Err(ProcessError::Trap("unreachable".into()));
        }
        let value = if std::mem::take(&mut self.ran) {
            format!("batch {stream_time}")
        } else if self.ran_once && !self.idle_sent {
            self.idle_sent = true;
            format!("idle {stream_time}")
        } else {
            return Ok(());
        };
        let mut w = ResultWriter::default();
        w.begin();
        w.output(&OutputSpec {
            output: 0,
            key: Some(Some(b"timer")),
            value: Some(Some(value.as_bytes())),
            ..OutputSpec::default()
        });
        self.buf = w.finish();
        let results = Results::parse(&self.buf, 1, 1).unwrap();
        if let Some(partita_wire::RecordResult::Ok(outputs)) = results.iter().next() {
            let outputs: Outputs<'_> = outputs;
            for o in outputs.iter() {
                each(o);
            }
        }
        Ok(())
    }
}

struct Tickers {
    fail: bool,
}

impl RunnerFactory for Tickers {
    fn version(&self) -> String {
        "ticker".into()
    }

    fn start(&self, _partition: i32) -> anyhow::Result<Box<dyn BatchRunner>> {
        Ok(Box::new(Ticker {
            outputs: vec!["default".into()],
            ran: false,
            ran_once: false,
            idle_sent: false,
            fail: self.fail,
            buf: Vec::new(),
        }))
    }
}

fn ticking_stage(fail: bool) -> (StageConfig, Arc<dyn RunnerFactory>) {
    let mut s = stage("t", "in", &[("default", "out")], OnError::Stop);
    s.timer_interval = Duration::from_millis(50);
    (s, Arc::new(Tickers { fail }))
}

#[test]
fn timer_outputs_follow_each_batch_and_come_when_idle() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    // Timestamps 1000, 1001, 1002.
    produce(&bs, "in", 1, &values(3, |_| None));
    let run = Running::start(kafka(bs.clone(), "g"), vec![ticking_stage(false)]);
    wait_for("commits", || committed(&bs, "g.t", "in", 1) == [3]);
    // The idle call comes after the batches, once nothing else arrives.
    let mut got = Vec::new();
    while !got.iter().any(|g: &Got| g.value.starts_with("idle")) {
        got = consume(&bs, "out", 1, got.len() + 1);
    }
    run.stop().unwrap();
    let values: Vec<&str> = got.iter().map(|g| g.value.as_str()).collect();
    let (idle, batches) = values.split_last().unwrap();
    assert_eq!(*idle, "idle 1002", "{values:?}");
    assert!(!batches.is_empty(), "{values:?}");
    assert!(
        batches.iter().all(|v| v.starts_with("batch 100")),
        "{values:?}"
    );
    assert_eq!(batches.last(), Some(&"batch 1002"), "{values:?}");
    let last = got.last().unwrap();
    assert_eq!(last.key, "timer");
    assert_eq!(last.timestamp, Some(1002), "stream time by default");
    assert!(last.headers.is_empty());
}

#[test]
fn failed_timer_calls_are_counted_and_records_still_flow() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    produce(&bs, "in", 1, &values(5, |_| None));
    let run = Running::start(kafka(bs.clone(), "g"), vec![ticking_stage(true)]);
    wait_for("commits", || committed(&bs, "g.t", "in", 1) == [5]);
    wait_for("idle failures too", || {
        run.counter("partita_timer_failures_total", "t") >= 3
    });
    assert_eq!(run.counter("partita_records_in_total", "t"), 5);
    run.stop().unwrap();
    assert_eq!(high_watermarks(&bs, "out", 1), [0], "nothing emitted");
}
