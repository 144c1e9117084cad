//! Emitting outputs: forward the input unchanged, or build an output whose
//! unset fields keep the input record's.
//!
//! Outputs are written straight into the result buffer the host reads. A
//! field left unset is encoded as "keep the input's", which costs no copy:
//! [`Emitter::forward`] writes 22 bytes whatever the record's size.

use partita_wire::{OutputSpec, ResultWriter};

/// One of the processor's outputs, by its position in
/// [`crate::Processor::outputs`].
///
/// Resolve names to `Output`s once, in `init`, and keep them in the
/// processor: `Output::at(i)` for the `i`-th name returned by `outputs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Output(u32);

impl Output {
    /// The first output (index 0), `default` unless the processor renamed
    /// it.
    pub const DEFAULT: Output = Output(0);

    /// The output at position `index` of the declared outputs.
    pub const fn at(index: u32) -> Output {
        Output(index)
    }

    /// Its position in the declared outputs.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// An output emitted by `on-timer`, held until the call ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerOutput {
    pub output: u32,
    pub key: Option<Option<Vec<u8>>>,
    pub value: Option<Option<Vec<u8>>>,
    pub headers: Option<Vec<(String, Vec<u8>)>>,
    pub timestamp: Option<i64>,
}

enum Sink<'a> {
    Record(&'a mut ResultWriter),
    Timer(&'a mut Vec<TimerOutput>),
}

/// Where a processor sends its outputs for the current record (or timer
/// call).
pub struct Emitter<'a> {
    sink: Sink<'a>,
    names: &'a [String],
    error: Option<String>,
}

impl<'a> Emitter<'a> {
    /// An emitter writing the current record's outputs into `writer`.
    pub(crate) fn for_record(writer: &'a mut ResultWriter, names: &'a [String]) -> Self {
        Emitter {
            sink: Sink::Record(writer),
            names,
            error: None,
        }
    }

    /// An emitter collecting a timer call's outputs.
    pub(crate) fn for_timer(outputs: &'a mut Vec<TimerOutput>, names: &'a [String]) -> Self {
        Emitter {
            sink: Sink::Timer(outputs),
            names,
            error: None,
        }
    }

    /// The first misuse seen (an output index out of range, a forward in a
    /// timer), which fails the record.
    pub(crate) fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// Sends the input record unchanged to the first output.
    #[inline]
    pub fn forward(&mut self) {
        self.forward_to(Output::DEFAULT);
    }

    /// Sends the input record unchanged to `output`.
    #[inline]
    pub fn forward_to(&mut self, output: Output) {
        if matches!(self.sink, Sink::Timer(_)) {
            self.fail(|| {
                "forward has no input record to send in on_timer; use to(output) and set the fields"
                    .into()
            });
            return;
        }
        self.push(&OutputSpec {
            output: output.0,
            ..OutputSpec::default()
        });
    }

    /// Sends the input record to the first output with `value` as its value,
    /// keeping its key, headers and timestamp.
    #[inline]
    pub fn value(&mut self, value: &[u8]) {
        self.push(&OutputSpec {
            output: 0,
            value: Some(Some(value)),
            ..OutputSpec::default()
        });
    }

    /// Starts an output to `output`; every field not set on the builder
    /// keeps the input record's. Finish with [`Emit::send`].
    #[inline]
    pub fn to<'d>(&mut self, output: Output) -> Emit<'_, 'a, 'd> {
        Emit {
            emitter: self,
            spec: OutputSpec {
                output: output.0,
                ..OutputSpec::default()
            },
        }
    }

    /// The output declared under `name`, if any.
    pub fn output_named(&self, name: &str) -> Option<Output> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| Output(i as u32))
    }

    /// The declared output names.
    pub fn outputs(&self) -> &[String] {
        self.names
    }

    #[inline]
    fn push(&mut self, spec: &OutputSpec<'_>) {
        if spec.output as usize >= self.names.len() {
            let (index, names) = (spec.output, self.names);
            self.fail(|| {
                format!(
                    "output index {index} is out of range: the processor declared {} output(s) ({})",
                    names.len(),
                    names.join(", ")
                )
            });
            return;
        }
        match &mut self.sink {
            Sink::Record(w) => w.output(spec),
            Sink::Timer(list) => list.push(TimerOutput {
                output: spec.output,
                key: spec.key.map(|k| k.map(<[u8]>::to_vec)),
                value: spec.value.map(|v| v.map(<[u8]>::to_vec)),
                headers: spec.headers.map(|hs| {
                    hs.iter()
                        .map(|(k, v)| (k.to_string(), v.to_vec()))
                        .collect()
                }),
                timestamp: spec.timestamp,
            }),
        }
    }

    #[cold]
    fn fail(&mut self, message: impl FnOnce() -> String) {
        if self.error.is_none() {
            self.error = Some(message());
        }
    }
}

/// An output being built; fields not set keep the input record's (in a
/// timer call, where there is no input: absent, and the timestamp is the
/// stream time).
#[must_use = "an output is emitted only by .send()"]
pub struct Emit<'e, 'a, 'd> {
    emitter: &'e mut Emitter<'a>,
    spec: OutputSpec<'d>,
}

impl<'d> Emit<'_, '_, 'd> {
    /// Sets the key.
    pub fn key(mut self, key: &'d [u8]) -> Self {
        self.spec.key = Some(Some(key));
        self
    }

    /// Produces the output without a key.
    pub fn no_key(mut self) -> Self {
        self.spec.key = Some(None);
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: &'d [u8]) -> Self {
        self.spec.value = Some(Some(value));
        self
    }

    /// Produces the output without a value (a tombstone).
    pub fn no_value(mut self) -> Self {
        self.spec.value = Some(None);
        self
    }

    /// Sets exactly these headers (an empty slice removes them all).
    pub fn headers(mut self, headers: &'d [(&'d str, &'d [u8])]) -> Self {
        self.spec.headers = Some(headers);
        self
    }

    /// Sets the timestamp, milliseconds since the Unix epoch.
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.spec.timestamp = Some(timestamp);
        self
    }

    /// Emits the output.
    #[inline]
    pub fn send(self) {
        self.emitter.push(&self.spec);
    }
}
