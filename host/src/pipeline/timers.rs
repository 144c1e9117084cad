//! Timers of one worker: when to call the processor's `on-timer`, with
//! which stream time, and where its outputs go.
//!
//! Stream time is the largest record timestamp the worker has seen on its
//! partition, over all its inputs (-1 before the first record). The worker
//! calls `on-timer` after each batch, and while no record arrives, every
//! `timer_interval_ms` of the stage. A timer call's outputs are produced
//! through the same producer, routes and acknowledgements as a batch's: at
//! a batch end they belong to that batch, when idle to a batch of their
//! own, so offsets are committed only after them, in order. Outputs that
//! leave a field unset have no key, no value or no headers, and stream time
//! as their timestamp. A failed call (trap, limit, malformed outputs) is
//! logged and counted in `partita_timer_failures_total`; the processor
//! instance is started afresh and the next call comes as usual.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::StageFailure;
use super::runner::BatchRunner;
use crate::kafka::produce::{self, Acks, OutRecord, Producer};

/// When one worker calls `on-timer`, and the stream time it passes.
pub(crate) struct Timers {
    interval: Duration,
    stream_time: i64,
    last_call: Instant,
}

/// Where a timer call's outputs go.
pub(crate) struct TimerSink<'a> {
    /// The producer of the worker.
    pub producer: &'a Producer,
    /// The acknowledgements the outputs join.
    pub acks: &'a Arc<Acks>,
    /// Output index → topic.
    pub routes: &'a [String],
}

/// What a timer call came to.
#[derive(Debug, Default)]
pub(crate) struct Fired {
    /// Outputs handed to the producer.
    pub outputs: u64,
    /// The call failed (logged already).
    pub failed: bool,
    /// An output could not be queued at all: the run cannot go on.
    pub fatal: Option<StageFailure>,
}

impl Timers {
    /// Timers that call at least every `interval` when idle.
    pub(crate) fn new(interval: Duration) -> Timers {
        Timers {
            interval,
            stream_time: -1,
            last_call: Instant::now(),
        }
    }

    /// The stream time so far.
    #[cfg(test)]
    pub(crate) fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// True when an idle call is due.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.last_call + self.interval
    }

    /// How long until an idle call is due.
    pub(crate) fn until_due(&self, now: Instant) -> Duration {
        (self.last_call + self.interval).saturating_duration_since(now)
    }

    /// Calls `on-timer` after a batch whose largest record timestamp is
    /// `latest` (`None`: no record).
    pub(crate) fn after_batch(
        &mut self,
        latest: Option<i64>,
        runner: &mut dyn BatchRunner,
        sink: &TimerSink<'_>,
        stage: &str,
        partition: i32,
    ) -> Fired {
        if let Some(t) = latest {
            self.stream_time = self.stream_time.max(t);
        }
        self.fire(runner, sink, stage, partition)
    }

    /// Calls `on-timer` with the current stream time and wall-clock time,
    /// and hands its outputs to the producer.
    pub(crate) fn fire(
        &mut self,
        runner: &mut dyn BatchRunner,
        sink: &TimerSink<'_>,
        stage: &str,
        partition: i32,
    ) -> Fired {
        self.last_call = Instant::now();
        let stream_time = self.stream_time;
        let mut fired = Fired::default();
        let mut each = |o: partita_wire::OutputRef<'_>| {
            if fired.fatal.is_some() {
                return;
            }
            let Some(topic) = sink.routes.get(o.output as usize) else {
                return;
            };
            let out = OutRecord {
                key: o.key.or_input(None),
                value: o.value.or_input(None),
                headers: o.headers.and_then(|h| produce::headers(h.iter())),
                timestamp: Some(o.timestamp.unwrap_or(stream_time)),
                partition: None,
            };
            match sink.producer.send(topic, out, sink.acks) {
                Ok(()) => fired.outputs += 1,
                Err(source) => {
                    fired.fatal = Some(StageFailure::Produce {
                        topic: topic.clone(),
                        source,
                    })
                }
            }
        };
        if let Err(e) = runner.on_timer(stream_time, wall_clock(), &mut each) {
            tracing::warn!(
                "stage \"{stage}\", partition {partition}: on-timer (stream time {stream_time}) failed: {e}; the instance was restarted"
            );
            fired.failed = true;
        }
        fired
    }
}

/// Milliseconds since the Unix epoch.
fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use partita_wire::{BatchWriter, OutputSpec, Outputs, RecordRef, ResultWriter};

    use super::*;
    use crate::config::KafkaConfig;
    use crate::engine::{ProcessError, RecordOutcome};

    /// Emits one output per timer call, to output `n % outputs`, with the
    /// stream time as value; fails every call when `fail` is set.
    struct Ticking {
        outputs: Vec<String>,
        calls: Vec<(i64, i64)>,
        fail: bool,
        /// Bytes of padding appended to the value.
        pad: usize,
    }

    impl BatchRunner for Ticking {
        fn outputs(&self) -> &[String] {
            &self.outputs
        }

        fn version(&self) -> &str {
            "ticking"
        }

        fn run(&mut self, _: &BatchWriter, _: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {}

        fn on_timer(
            &mut self,
            stream_time: i64,
            wall_time: i64,
            each: &mut dyn FnMut(partita_wire::OutputRef<'_>),
        ) -> Result<(), ProcessError> {
            self.calls.push((stream_time, wall_time));
            if self.fail {
                return Err(ProcessError::Trap("unreachable".into()));
            }
            let value = format!("{stream_time}{}", "x".repeat(self.pad));
            let mut w = ResultWriter::default();
            w.begin();
            w.output(&OutputSpec {
                output: 0,
                value: Some(Some(value.as_bytes())),
                ..OutputSpec::default()
            });
            let buf = w.finish();
            let results = partita_wire::Results::parse(&buf, 1, 1).unwrap();
            if let Some(partita_wire::RecordResult::Ok(outputs)) = results.iter().next() {
                let outputs: Outputs<'_> = outputs;
                for o in outputs.iter() {
                    each(o);
                }
            }
            Ok(())
        }
    }

    fn ticking(fail: bool) -> Ticking {
        Ticking {
            outputs: vec!["default".into()],
            calls: Vec::new(),
            fail,
            pad: 0,
        }
    }

    #[test]
    fn stream_time_is_the_largest_timestamp_seen_and_outputs_are_produced() {
        // Nothing listens there: the records stay queued, which is all
        // this test needs.
        let producer = Producer::new(&KafkaConfig::new("127.0.0.1:1", "g")).unwrap();
        let acks = Acks::new(std::thread::current());
        let routes = ["out".to_string()];
        let sink = TimerSink {
            producer: &producer,
            acks: &acks,
            routes: &routes,
        };
        let mut timers = Timers::new(Duration::from_secs(3600));
        let mut runner = ticking(false);
        assert_eq!(timers.stream_time(), -1);
        let f = timers.fire(&mut runner, &sink, "s", 0);
        assert_eq!((f.outputs, f.failed), (1, false));
        assert!(f.fatal.is_none());
        timers.after_batch(Some(1_000), &mut runner, &sink, "s", 0);
        timers.after_batch(Some(500), &mut runner, &sink, "s", 0);
        timers.after_batch(None, &mut runner, &sink, "s", 0);
        let streams: Vec<i64> = runner.calls.iter().map(|c| c.0).collect();
        assert_eq!(streams, [-1, 1_000, 1_000, 1_000]);
        let before = wall_clock();
        assert!(
            runner
                .calls
                .iter()
                .all(|c| c.1 > 1_600_000_000_000 && c.1 <= before)
        );
        acks.close();
        assert_eq!(acks.pending(), 4, "each output joined the acknowledgements");
    }

    #[test]
    fn a_failed_call_is_reported_and_produces_nothing() {
        let producer = Producer::new(&KafkaConfig::new("127.0.0.1:1", "g")).unwrap();
        let acks = Acks::new(std::thread::current());
        let routes = ["out".to_string()];
        let sink = TimerSink {
            producer: &producer,
            acks: &acks,
            routes: &routes,
        };
        let mut timers = Timers::new(Duration::from_secs(3600));
        let f = timers.after_batch(Some(7), &mut ticking(true), &sink, "s", 0);
        assert_eq!((f.outputs, f.failed), (0, true));
        assert!(f.fatal.is_none());
        acks.close();
        assert_eq!(acks.pending(), 0);
    }

    #[test]
    fn an_idle_call_is_due_one_interval_after_the_last_call() {
        let mut timers = Timers::new(Duration::from_millis(200));
        let start = timers.last_call;
        assert!(!timers.due(start + Duration::from_millis(199)));
        assert!(timers.due(start + Duration::from_millis(200)));
        assert_eq!(
            timers.until_due(start + Duration::from_millis(50)),
            Duration::from_millis(150)
        );
        timers.last_call = start + Duration::from_secs(1);
        assert!(!timers.due(start + Duration::from_millis(1100)));
        assert_eq!(
            timers.until_due(start + Duration::from_secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn an_output_the_producer_cannot_queue_is_fatal() {
        let mut kafka = KafkaConfig::new("127.0.0.1:1", "g");
        kafka.producer = vec![("message.max.bytes".into(), "1000".into())];
        let producer = Producer::new(&kafka).unwrap();
        let acks = Acks::new(std::thread::current());
        let routes = ["out".to_string()];
        let sink = TimerSink {
            producer: &producer,
            acks: &acks,
            routes: &routes,
        };
        let mut runner = ticking(false);
        runner.pad = 5_000;
        let f = Timers::new(Duration::from_secs(1)).fire(&mut runner, &sink, "s", 0);
        assert_eq!(f.outputs, 0);
        let fatal = f.fatal.expect("a fatal error");
        assert!(
            matches!(&fatal, StageFailure::Produce { topic, .. } if topic == "out"),
            "{fatal:?}"
        );
        assert!(!fatal.retryable(), "too large for the producer: {fatal:?}");
    }
}
