//! The loop behind the exports: decode a batch, call the processor per
//! record, encode the results, flush state once.

use std::cell::RefCell;
use std::marker::PhantomData;

use partita_wire::{Batch, OutputSpec, RecordRef, ResultWriter};

use crate::emit::TimerOutput;
use crate::wit::exports::partita::processor::processor::Guest;
use crate::{Config, Emitter, Processor, Record, log, state};

/// Encoded bytes per record reserved up front: a forwarded record takes 22.
const RESULT_BYTES_PER_RECORD: usize = 32;

/// Headers borrowed for encoding.
type HeaderList<'a> = Vec<(&'a str, &'a [u8])>;

/// One processor instance with its declared outputs.
pub(crate) struct Driver<P> {
    processor: P,
    outputs: Vec<String>,
}

impl<P: Processor> Driver<P> {
    /// Builds the processor and checks its output names.
    pub(crate) fn init(config: Vec<(String, String)>) -> Result<Self, String> {
        let processor = P::init(&Config::new(config))?;
        let outputs = processor.outputs();
        for (i, name) in outputs.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("output {i} has an empty name"));
            }
            if outputs[..i].contains(name) {
                return Err(format!("output `{name}` is declared twice"));
            }
        }
        Ok(Driver { processor, outputs })
    }

    /// The declared output names.
    pub(crate) fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Runs one encoded batch and returns the encoded results.
    ///
    /// Panics (traps) if the batch header cannot be read: without the record
    /// count no valid answer exists. Records that cannot be read are
    /// rejected with the wire error.
    pub(crate) fn process(&mut self, buf: &[u8]) -> Vec<u8> {
        let batch = match Batch::parse(buf) {
            Ok(batch) => batch,
            Err(e) => panic!("partita_sdk: cannot read the batch header the host sent: {e}"),
        };
        let n = batch.len();
        let mut writer = ResultWriter::with_capacity(16 + n.min(1 << 16) * RESULT_BYTES_PER_RECORD);
        let mut records = batch.records();
        let mut broken = None;
        for _ in 0..n {
            writer.begin();
            match records.next() {
                Some(Ok(record)) if broken.is_none() => self.one(&mut writer, record),
                Some(Err(e)) => {
                    let reason = format!("malformed batch: {e}");
                    writer.reject(&reason);
                    broken = Some(reason);
                }
                _ => writer.reject(
                    broken
                        .as_deref()
                        .unwrap_or("malformed batch: fewer records than announced"),
                ),
            }
        }
        state::end_call();
        crate::metrics::end_call();
        writer.finish()
    }

    #[inline]
    fn one(&mut self, writer: &mut ResultWriter, raw: RecordRef<'_>) {
        let record = Record::new(raw);
        let mut out = Emitter::for_record(writer, &self.outputs);
        let result = self.processor.process(&record, &mut out);
        let misuse = out.take_error();
        match (result, misuse) {
            (Ok(()), None) => {}
            (Err(reject), _) => writer.reject(reject.reason()),
            (Ok(()), Some(reason)) => writer.reject(&reason),
        }
    }

    /// Runs `on-timer` and returns the encoded outputs.
    pub(crate) fn on_timer(&mut self, stream_time: i64, wall_time: i64) -> Vec<u8> {
        let mut list: Vec<TimerOutput> = Vec::new();
        let mut out = Emitter::for_timer(&mut list, &self.outputs);
        self.processor.on_timer(stream_time, wall_time, &mut out);
        if let Some(reason) = out.take_error() {
            log::error(&format!("on_timer: {reason}; that output was dropped"));
        }
        state::end_call();
        crate::metrics::end_call();
        let headers: Vec<Option<HeaderList<'_>>> = list
            .iter()
            .map(|o| {
                o.headers
                    .as_ref()
                    .map(|hs| hs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect())
            })
            .collect();
        let specs: Vec<OutputSpec<'_>> = list
            .iter()
            .zip(&headers)
            .map(|(o, h)| OutputSpec {
                output: o.output,
                key: o.key.as_ref().map(Option::as_deref),
                value: o.value.as_ref().map(Option::as_deref),
                headers: h.as_deref(),
                timestamp: o.timestamp,
            })
            .collect();
        ResultWriter::timer_outputs(&specs)
    }
}

/// A driver with its processor type erased, so that one slot can hold it.
trait Stage {
    fn process(&mut self, batch: &[u8]) -> Vec<u8>;
    fn on_timer(&mut self, stream_time: i64, wall_time: i64) -> Vec<u8>;
}

impl<P: Processor> Stage for Driver<P> {
    fn process(&mut self, batch: &[u8]) -> Vec<u8> {
        Driver::process(self, batch)
    }

    fn on_timer(&mut self, stream_time: i64, wall_time: i64) -> Vec<u8> {
        Driver::on_timer(self, stream_time, wall_time)
    }
}

thread_local! {
    /// The instance's processor, set by `init`.
    static STAGE: RefCell<Option<Box<dyn Stage>>> = const { RefCell::new(None) };
}

fn with_stage<R>(f: impl FnOnce(&mut dyn Stage) -> R) -> R {
    STAGE.with_borrow_mut(|s| {
        f(s.as_deref_mut()
            .expect("partita_sdk: the host called the processor before init"))
    })
}

/// Implements the WIT `processor` interface for processor `P`; named by
/// [`crate::export!`].
pub struct Runner<P>(PhantomData<P>);

impl<P: Processor> Guest for Runner<P> {
    fn init(config: Vec<(String, String)>) -> Result<Vec<String>, String> {
        let driver = Driver::<P>::init(config)?;
        let names = driver.outputs().to_vec();
        STAGE.with_borrow_mut(|s| *s = Some(Box::new(driver)));
        Ok(names)
    }

    fn process(batch: Vec<u8>) -> Vec<u8> {
        with_stage(|s| s.process(&batch))
    }

    fn on_timer(stream_time: i64, wall_time: i64) -> Vec<u8> {
        with_stage(|s| s.on_timer(stream_time, wall_time))
    }
}

#[cfg(test)]
mod tests {
    use partita_wire::{BatchWriter, RecordResult, Results};

    use crate::testing::{Emitted, Harness, Level, Outcome, TestRecord};
    use crate::{Config, Emitter, Output, Processor, Record, Reject, log, state};

    /// Behaves as the record's value says: a small language for tests.
    struct Scripted {
        names: Vec<String>,
    }

    impl Processor for Scripted {
        fn init(config: &Config) -> Result<Self, String> {
            let names = config.list("outputs").unwrap_or_else(|| vec!["default"]);
            if config.get("fail").is_some() {
                return Err(config.require("fail")?.to_string());
            }
            Ok(Scripted {
                names: names.into_iter().map(String::from).collect(),
            })
        }

        fn outputs(&self) -> Vec<String> {
            self.names.clone()
        }

        fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
            match record.value_str()? {
                "forward" => out.forward(),
                "value" => out.value(b"new"),
                "second" => out.forward_to(Output::at(1)),
                "named" => {
                    let o = out.output_named("audit").ok_or("no output named audit")?;
                    out.to(o).send();
                }
                "all" => out
                    .to(Output::DEFAULT)
                    .key(b"K")
                    .value(b"V")
                    .headers(&[("a", b"1"), ("b", b"")])
                    .timestamp(99)
                    .send(),
                "nulls" => out
                    .to(Output::DEFAULT)
                    .no_key()
                    .no_value()
                    .headers(&[])
                    .send(),
                "twice-then-reject" => {
                    out.forward();
                    out.value(b"x");
                    return Err(Reject::new("changed my mind"));
                }
                "bad-index" => {
                    out.forward();
                    out.forward_to(Output::at(7));
                }
                "count" => {
                    let key = record.key().ok_or("no key")?;
                    let n = state::get_as::<u64>(key)?.unwrap_or(0) + 1;
                    state::put_as(key, &n);
                    out.value(n.to_string().as_bytes());
                }
                "meta" => {
                    let text = format!(
                        "{}/{}/{}/{}/{:?}",
                        record.topic(),
                        record.partition(),
                        record.offset(),
                        record.timestamp(),
                        record
                            .header("h")
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    );
                    out.value(text.as_bytes());
                }
                other => return Err(Reject::new(format!("unknown command `{other}`"))),
            }
            Ok(())
        }

        fn on_timer(&mut self, stream_time: i64, wall_time: i64, out: &mut Emitter<'_>) {
            log::info(&format!("timer {stream_time} {wall_time}"));
            state::put(b"timer", b"fired");
            out.to(Output::DEFAULT).value(b"tick").send();
            out.to(Output::DEFAULT)
                .key(b"k")
                .timestamp(wall_time)
                .headers(&[("x", b"y")])
                .send();
            out.forward();
            out.to(Output::at(9)).send();
        }
    }

    fn value(s: &str) -> TestRecord {
        TestRecord::new()
            .key("k")
            .value(s)
            .header("h", "hv")
            .timestamp(5)
    }

    fn one(h: &mut Harness<Scripted>, s: &str) -> Outcome {
        h.run_one(value(s))
    }

    #[test]
    fn forward_keeps_every_field() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let r = one(&mut h, "forward");
        let o = &r.outputs()[0];
        assert_eq!(
            o,
            &Emitted {
                output: "default".into(),
                key: Some(b"k".to_vec()),
                value: Some(b"forward".to_vec()),
                headers: vec![("h".into(), b"hv".to_vec())],
                timestamp: 5,
            }
        );
    }

    #[test]
    fn value_replaces_only_the_value() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let r = one(&mut h, "value");
        let o = &r.outputs()[0];
        assert_eq!((o.key_str(), o.value_str(), o.timestamp), ("k", "new", 5));
        assert_eq!(o.headers, vec![("h".to_string(), b"hv".to_vec())]);
    }

    #[test]
    fn builder_sets_every_field_or_clears_it() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let r = one(&mut h, "all");
        let o = &r.outputs()[0];
        assert_eq!(
            o,
            &Emitted {
                output: "default".into(),
                key: Some(b"K".to_vec()),
                value: Some(b"V".to_vec()),
                headers: vec![("a".into(), b"1".to_vec()), ("b".into(), vec![])],
                timestamp: 99,
            }
        );
        let r = one(&mut h, "nulls");
        let o = &r.outputs()[0];
        assert_eq!(
            (&o.key, &o.value, o.headers.len(), o.timestamp),
            (&None, &None, 0, 5)
        );
    }

    #[test]
    fn outputs_are_chosen_by_index_or_name() {
        let mut h = Harness::<Scripted>::new(&[("outputs", "main,audit")]).unwrap();
        assert_eq!(h.outputs(), ["main", "audit"]);
        assert_eq!(one(&mut h, "second").outputs()[0].output, "audit");
        assert_eq!(one(&mut h, "named").outputs()[0].output, "audit");
        assert_eq!(one(&mut h, "forward").outputs()[0].output, "main");
    }

    #[test]
    fn a_rejection_discards_the_record_outputs() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let results = h.run([
            value("forward"),
            value("twice-then-reject"),
            value("bogus"),
            value("forward"),
        ]);
        assert_eq!(results[0].outputs().len(), 1);
        assert_eq!(results[1], Outcome::Rejected("changed my mind".into()));
        assert_eq!(results[2].rejection(), Some("unknown command `bogus`"));
        assert_eq!(results[3].outputs().len(), 1);
    }

    #[test]
    fn an_output_index_out_of_range_rejects_the_record_with_the_declared_names() {
        let mut h = Harness::<Scripted>::new(&[("outputs", "main,audit")]).unwrap();
        assert_eq!(
            one(&mut h, "bad-index").rejection(),
            Some(
                "output index 7 is out of range: the processor declared 2 output(s) (main, audit)"
            )
        );
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        assert_eq!(
            one(&mut h, "named").rejection(),
            Some("no output named audit"),
            "a &str converts into a Reject"
        );
    }

    #[test]
    fn record_accessors_see_the_wire_fields() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let r = h.run_one(value("meta").topic("orders").partition(3).offset(41));
        assert_eq!(r.outputs()[0].value_str(), "orders/3/41/5/Some(\"hv\")");
        // Offsets continue from the last one given.
        let r = h.run_one(TestRecord::new().value("meta"));
        assert_eq!(r.outputs()[0].value_str(), "input/0/42/0/None");
    }

    #[test]
    fn missing_or_non_utf8_values_are_rejected_with_a_reason() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        assert_eq!(
            h.run_one(TestRecord::new().key("k")).rejection(),
            Some("record has no value")
        );
        assert_eq!(
            h.run_one(TestRecord::new().value([b'o', b'k', 0xc3]))
                .rejection(),
            Some("value is not UTF-8: invalid byte at offset 2")
        );
    }

    #[test]
    fn state_is_written_once_per_batch_and_survives_a_restart() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let results = h.run([value("count"), value("count"), value("count")]);
        let seen: Vec<&str> = results.iter().map(|r| r.outputs()[0].value_str()).collect();
        assert_eq!(seen, ["1", "2", "3"]);
        assert_eq!(h.host_calls().state_gets, 1);
        assert_eq!(h.host_calls().state_write_batches, 1);
        assert_eq!(h.state("k"), Some(3u64.to_le_bytes().to_vec()));
        h.restart().unwrap();
        assert_eq!(h.run_one(value("count")).outputs()[0].value_str(), "4");
        assert_eq!(
            h.host_calls().state_gets,
            2,
            "a fresh instance starts with an empty cache"
        );
    }

    #[test]
    fn a_batch_of_only_rejections_writes_nothing() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        h.run([value("bogus"), value("bogus")]);
        assert_eq!(h.host_calls().state_write_batches, 0);
    }

    #[test]
    fn init_errors_and_bad_output_names_refuse_the_processor() {
        assert_eq!(
            Harness::<Scripted>::new(&[("fail", "")]).err().unwrap(),
            "config key `fail`: is required but empty"
        );
        assert_eq!(
            Harness::<Scripted>::new(&[("fail", "no way")])
                .err()
                .unwrap(),
            "no way"
        );
        assert_eq!(
            Harness::<Scripted>::new(&[("outputs", "a,b,a")])
                .err()
                .unwrap(),
            "output `a` is declared twice"
        );
    }

    #[test]
    fn timer_outputs_default_to_absent_fields_and_stream_time() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let out = h.timer(1000, 2000);
        assert_eq!(
            out,
            vec![
                Emitted {
                    output: "default".into(),
                    key: None,
                    value: Some(b"tick".to_vec()),
                    headers: vec![],
                    timestamp: 1000
                },
                Emitted {
                    output: "default".into(),
                    key: Some(b"k".to_vec()),
                    value: None,
                    headers: vec![("x".into(), b"y".to_vec())],
                    timestamp: 2000
                },
            ]
        );
        assert_eq!(
            h.state("timer"),
            Some(b"fired".to_vec()),
            "timer writes are flushed"
        );
        let logs = h.logs();
        assert_eq!(logs[0], (Level::Info, "timer 1000 2000".to_string()));
        assert_eq!(
            logs[1],
            (
                Level::Error,
                "on_timer: forward has no input record to send in on_timer; use to(output) and set the fields; that output was dropped"
                    .to_string()
            )
        );
        assert_eq!(logs.len(), 2, "only the first misuse is reported");
    }

    #[test]
    fn unreadable_records_are_rejected_with_the_wire_error() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        let mut batch = BatchWriter::new(&["t"]);
        for v in ["forward", "forward", "forward"] {
            batch.push(0, 0, 0, 0, None, Some(v.as_bytes()), std::iter::empty());
        }
        // Cut the last record's header count (4 bytes) and 2 of its 7 value
        // bytes: its value length ends 5 bytes before the new end.
        let mut bytes = batch.as_bytes().to_vec();
        bytes.truncate(bytes.len() - 6);
        let results = h.run_encoded(&bytes);
        let results = Results::parse(&results, 3, 1).unwrap();
        let reasons: Vec<Option<&str>> = results
            .iter()
            .map(|r| match r {
                RecordResult::Ok(_) => None,
                RecordResult::Rejected(reason) => Some(reason),
            })
            .collect();
        let expected = format!(
            "malformed batch: truncated value at byte {} (item 2)",
            bytes.len() - 5
        );
        assert_eq!(reasons[..2], [None, None]);
        assert_eq!(reasons[2], Some(expected.as_str()));
    }

    #[test]
    #[should_panic(
        expected = "cannot read the batch header the host sent: unsupported layout version at byte 0"
    )]
    fn an_unreadable_batch_header_traps() {
        let mut h = Harness::<Scripted>::new(&[]).unwrap();
        h.run_encoded(&[9, 0, 0, 0, 0]);
    }
}
