//! Run a processor natively over records, in unit tests (native builds
//! only).
//!
//! A [`Harness`] plays the host: it encodes records into a batch exactly as
//! the host does, runs them through the same code the component exports,
//! checks and decodes the results, and resolves every "keep the input's"
//! field, so a test sees what would be produced. It also holds the host's
//! side of state, tables and logs, which tests can set and inspect.
//!
//! The stand-in host is per thread (each `#[test]` runs on its own thread)
//! and [`Harness::new`] resets it: use one harness at a time per test.
//!
//! ```
//! use partita_sdk::testing::{Harness, TestRecord};
//! # use partita_sdk::{Config, Emitter, Processor, Record, Reject};
//! # struct Identity;
//! # impl Processor for Identity {
//! #     fn init(_: &Config) -> Result<Self, String> { Ok(Identity) }
//! #     fn process(&mut self, _: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
//! #         out.forward();
//! #         Ok(())
//! #     }
//! # }
//!
//! let mut h = Harness::<Identity>::new(&[]).unwrap();
//! let out = h.run_one(TestRecord::new().key("k").value("v").header("h", "1"));
//! let o = &out.outputs()[0];
//! assert_eq!((o.output.as_str(), o.key_str(), o.value_str()), ("default", "k", "v"));
//! assert_eq!(o.headers, vec![("h".to_string(), b"1".to_vec())]);
//! ```

use partita_wire::{BatchWriter, Field, Outputs, RecordResult, Results};

use crate::Processor;
use crate::driver::Driver;
pub use crate::host::HostCalls;
use crate::host::{FAKE, FakeHost};
pub use crate::log::Level;
use crate::state;

/// An input record for a test, built field by field.
///
/// Defaults: no key, no value, no headers, timestamp 0, topic `input`,
/// partition 0, and the harness's next offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
    topic: String,
    partition: i32,
    offset: Option<i64>,
}

impl Default for TestRecord {
    fn default() -> Self {
        TestRecord {
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: 0,
            topic: "input".to_string(),
            partition: 0,
            offset: None,
        }
    }
}

impl TestRecord {
    /// A record with no key and no value.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the key.
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl AsRef<[u8]>) -> Self {
        self.value = Some(value.as_ref().to_vec());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = topic.to_string();
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = partition;
        self
    }

    /// Sets the offset.
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// An output as it would be produced: every kept field resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// Name of the output it goes to.
    pub output: String,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Timestamp (ms since the Unix epoch).
    pub timestamp: i64,
}

impl Emitted {
    /// The key as text; panics if there is none or it is not UTF-8.
    pub fn key_str(&self) -> &str {
        text(&self.key, "key")
    }

    /// The value as text; panics if there is none or it is not UTF-8.
    pub fn value_str(&self) -> &str {
        text(&self.value, "value")
    }
}

fn text<'a>(b: &'a Option<Vec<u8>>, what: &str) -> &'a str {
    let b = b
        .as_deref()
        .unwrap_or_else(|| panic!("the output has no {what}"));
    std::str::from_utf8(b).unwrap_or_else(|e| panic!("the output's {what} is not UTF-8: {e}"))
}

/// What became of one input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, with these outputs.
    Ok(Vec<Emitted>),
    /// Rejected, with this reason.
    Rejected(String),
}

impl Outcome {
    /// The outputs; panics (showing the reason) if the record was rejected.
    pub fn outputs(&self) -> &[Emitted] {
        match self {
            Outcome::Ok(o) => o,
            Outcome::Rejected(r) => panic!("the record was rejected: {r}"),
        }
    }

    /// The rejection reason, if the record was rejected.
    pub fn rejection(&self) -> Option<&str> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Rejected(r) => Some(r),
        }
    }
}

/// A processor instance with a stand-in host around it.
pub struct Harness<P: Processor> {
    driver: Driver<P>,
    config: Vec<(String, String)>,
    next_offset: i64,
}

impl<P: Processor> Harness<P> {
    /// Resets this thread's stand-in host (empty state, tables and logs)
    /// and starts an instance with `config`; `Err` is the processor's
    /// refusal from `init`.
    pub fn new(config: &[(&str, &str)]) -> Result<Self, String> {
        FAKE.with_borrow_mut(|h| *h = FakeHost::default());
        state::reset();
        crate::metrics::reset();
        let config: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let driver = Driver::init(config.clone())?;
        Ok(Harness {
            driver,
            config,
            next_offset: 0,
        })
    }

    /// Replaces the instance by a fresh one with the same configuration, as
    /// the host does after a failure or a hot swap: state, tables and logs
    /// stay, the processor's memory (and the state cache) does not.
    pub fn restart(&mut self) -> Result<(), String> {
        state::reset();
        crate::metrics::reset();
        self.driver = Driver::init(self.config.clone())?;
        Ok(())
    }

    /// The output names the processor declared.
    pub fn outputs(&self) -> &[String] {
        self.driver.outputs()
    }

    /// Runs `records` as one batch; one [`Outcome`] per record, in order.
    pub fn run(&mut self, records: impl IntoIterator<Item = TestRecord>) -> Vec<Outcome> {
        let records: Vec<TestRecord> = records.into_iter().collect();
        let mut topics: Vec<&str> = Vec::new();
        for r in &records {
            if !topics.contains(&r.topic.as_str()) {
                topics.push(&r.topic);
            }
        }
        let mut batch = BatchWriter::new(&topics);
        for r in &records {
            let offset = r.offset.unwrap_or(self.next_offset);
            self.next_offset = offset + 1;
            let topic = topics.iter().position(|t| *t == r.topic).unwrap_or(0) as u32;
            let headers = r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_slice()));
            batch.push(
                topic,
                r.partition,
                offset,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                headers,
            );
        }
        let encoded = self.driver.process(batch.as_bytes());
        let names = self.driver.outputs();
        let results = Results::parse(&encoded, records.len(), names.len() as u32)
            .unwrap_or_else(|e| panic!("the SDK wrote a malformed result buffer: {e}"));
        results
            .iter()
            .zip(&records)
            .map(|(result, input)| match result {
                RecordResult::Rejected(reason) => Outcome::Rejected(reason.to_string()),
                RecordResult::Ok(outputs) => {
                    Outcome::Ok(resolve(outputs, names, Some(input), input.timestamp))
                }
            })
            .collect()
    }

    /// Runs one record as a batch of one.
    pub fn run_one(&mut self, record: TestRecord) -> Outcome {
        self.run([record]).remove(0)
    }

    /// Runs an already encoded batch and returns the encoded results, for
    /// tests of malformed input.
    pub fn run_encoded(&mut self, batch: &[u8]) -> Vec<u8> {
        self.driver.process(batch)
    }

    /// Calls `on_timer` and returns its outputs (absent fields resolved to
    /// none, the timestamp defaulting to `stream_time`).
    pub fn timer(&mut self, stream_time: i64, wall_time: i64) -> Vec<Emitted> {
        let encoded = self.driver.on_timer(stream_time, wall_time);
        let names = self.driver.outputs();
        let outputs = Outputs::parse(&encoded, names.len() as u32)
            .unwrap_or_else(|e| panic!("the SDK wrote a malformed timer buffer: {e}"));
        resolve(outputs, names, None, stream_time)
    }

    /// Sets `key` to `value` in reference table `table`.
    pub fn set_table(&mut self, table: &str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        FAKE.with_borrow_mut(|h| {
            h.tables
                .entry(table.to_string())
                .or_default()
                .insert(key.as_ref().to_vec(), value.as_ref().to_vec())
        });
    }

    /// The value of the host's counter `name` with `label` (what the
    /// processor has handed over at the end of its calls; 0 if none).
    pub fn counter(&self, name: &str, label: &str) -> u64 {
        FAKE.with_borrow(|h| {
            h.counters
                .get(&(name.to_string(), label.to_string()))
                .copied()
                .unwrap_or(0)
        })
    }

    /// The value the host stores under `key` (what the processor has sent,
    /// not its cache).
    pub fn state(&self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        FAKE.with_borrow(|h| h.state.get(key.as_ref()).cloned())
    }

    /// Every entry the host stores, in key order.
    pub fn state_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        FAKE.with_borrow(|h| {
            h.state
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// Stores `value` under `key` on the host's side (as restored state).
    pub fn set_state(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        FAKE.with_borrow_mut(|h| {
            h.state
                .insert(key.as_ref().to_vec(), value.as_ref().to_vec())
        });
    }

    /// The lines the processor logged, in order.
    pub fn logs(&self) -> Vec<(Level, String)> {
        FAKE.with_borrow(|h| h.logs.clone())
    }

    /// The calls the processor made into the host so far.
    pub fn host_calls(&self) -> HostCalls {
        FAKE.with_borrow(|h| h.calls)
    }
}

/// Resolves kept fields against `input` (or to absent, for timers).
fn resolve(
    outputs: Outputs<'_>,
    names: &[String],
    input: Option<&TestRecord>,
    timestamp: i64,
) -> Vec<Emitted> {
    let field = |f: Field<'_>, kept: Option<&Vec<u8>>| match f {
        Field::Keep => kept.cloned(),
        Field::Null => None,
        Field::Bytes(b) => Some(b.to_vec()),
    };
    outputs
        .iter()
        .map(|o| Emitted {
            output: names[o.output as usize].clone(),
            key: field(o.key, input.and_then(|r| r.key.as_ref())),
            value: field(o.value, input.and_then(|r| r.value.as_ref())),
            headers: match o.headers {
                Some(hs) => hs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect(),
                None => input.map(|r| r.headers.clone()).unwrap_or_default(),
            },
            timestamp: o.timestamp.unwrap_or(timestamp),
        })
        .collect()
}
