//! A test processor that misbehaves on request, built on the raw WIT
//! bindings (not the SDK) so that it can break every rule of the contract.
//!
//! The record value chooses what happens to the record:
//!
//! | value             | behaviour                                              |
//! |-------------------|--------------------------------------------------------|
//! | `loop`            | spins forever (stopped by the CPU deadline)            |
//! | `alloc`           | allocates without bound (stopped by the memory cap)    |
//! | `panic`           | panics (a trap)                                        |
//! | `recurse`         | calls itself without end (the stack runs out: a trap)  |
//! | `read-file`       | reads `/etc/hostname`; rejected with the error         |
//! | `connect`         | opens a TCP connection to 127.0.0.1:9; rejected with the error |
//! | `reject`          | rejected with the reason `rejected on request`         |
//! | `state`           | adds 1 to the counter `count:KEY`, outputs the count   |
//! | `put-panic`       | sets `count:KEY` to 1000, then panics                  |
//! | `state-bomb`      | writes 512 KiB values under new keys without end       |
//! | `flood`           | sets `count:KEY` to 1, then emits 10,001 outputs       |
//! | `big-output`      | sets `count:KEY` to 1, then one output of a 2 MB value |
//! | `big-state`       | writes a 2 MB value under `big:KEY` (a put)            |
//! | `big-write-batch` | the same in a write-batch                              |
//! | `write-batch`     | sets `wb:KEY` and deletes `count:KEY` in one write-batch |
//! | `bad-write-batch` | sends a malformed write-batch, rejected with the error |
//! | `scan`            | outputs every `count:` entry as `k=v;…`                 |
//! | `table`           | outputs the value of KEY in table `names`, else rejects |
//! | `log`             | logs the key at info level, then as identity           |
//! | `count`           | adds 1 to the processor counter `calls` labelled KEY   |
//! | `count-panic`     | adds 1 to that counter, then panics                    |
//! | `bad-counter`     | adds to a counter named `Bad-Name`, rejected with the error |
//! | `malformed`       | the whole batch returns a malformed result buffer      |
//! | `second-output`   | one output to output index 1                           |
//! | `arm-init-failure`| stores `fail-init`, so that later `init` calls fail    |
//! | anything else     | identity: one output to index 0, everything kept       |
//!
//! Besides the stage world it exports `test:misbehave/probe`, an interface
//! the host does not know, as some toolchains add one.
//!
//! Configuration: `fail_init` makes `init` fail, and so does the state key
//! `fail-init`; `init` = `loop`, `alloc` or `panic` misbehaves in `init`;
//! `outputs` is a comma-separated list of output names (default `out`);
//! `timer` = `emit` makes `on-timer` count its calls in the state key
//! `count:timer` and output `stream=S wall=W calls=N` under the key `timer`;
//! `timer` = `panic` (or `loop`) makes it panic (or spin) after that write.
//! Without `timer`, `on-timer` does nothing.

// The ABI glue that wit-bindgen generates is unsafe code without docs.
#![allow(unsafe_code, missing_docs)]

use std::cell::RefCell;

use partita_wire::{Batch, OutputSpec, ResultWriter, WritesWriter};

// The stage world plus an export of its own, as some toolchains add (for
// example componentize-py): the host must accept extra exports.
wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:misbehave;

        interface probe {
            ping: func() -> u32;
        }

        world misbehave {
            include partita:processor/stage@0.1.0;
            export probe;
        }
    ",
    world: "test:misbehave/misbehave",
    generate_all,
});

use exports::partita::processor::processor::Guest;
use partita::processor::{log, metrics, state, tables, types};

thread_local! {
    static CONFIG: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

fn config(key: &str) -> Option<String> {
    CONFIG.with(|c| {
        c.borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    })
}

/// Misbehaves in the way the caller asks.
fn misbehave(what: &str) {
    match what {
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        "panic" => panic!("panic requested"),
        "recurse" => {
            std::hint::black_box(recurse(0));
        }
        _ => {}
    }
}

/// Calls itself without end: the guest's stack runs out.
#[allow(unconditional_recursion)] // the point: the host must stop it
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    recurse(depth + 1).wrapping_add(frame[depth as usize % 16])
}

struct Misbehave;

impl Guest for Misbehave {
    fn init(settings: types::Config) -> Result<Vec<String>, String> {
        CONFIG.with(|c| *c.borrow_mut() = settings);
        if config_has("fail_init") {
            return Err("init failed as configured".into());
        }
        if state::get(b"fail-init").is_some() {
            return Err("init failed: the state holds fail-init".into());
        }
        if let Some(what) = config("init") {
            misbehave(&what);
        }
        let outputs = config("outputs").unwrap_or_else(|| "out".into());
        Ok(outputs.split(',').map(str::to_string).collect())
    }

    fn process(batch: Vec<u8>) -> Vec<u8> {
        let batch = Batch::parse(&batch).expect("the host sends a valid batch");
        let mut out = ResultWriter::with_capacity(64 * batch.len());
        for record in batch.records() {
            let record = record.expect("the host sends valid records");
            let key = record.key.unwrap_or_default();
            let value = record.value.unwrap_or_default();
            out.begin();
            match value {
                b"read-file" => match std::fs::read("/etc/hostname") {
                    Ok(_) => out.output(&value_output(b"read a host file")),
                    Err(e) => out.reject(&format!("no file: {e}")),
                },
                b"connect" => match std::net::TcpStream::connect("127.0.0.1:9") {
                    Ok(_) => out.output(&value_output(b"connected to the host")),
                    Err(e) => out.reject(&format!("no network: {e}")),
                },
                b"loop" | b"alloc" | b"panic" | b"recurse" => {
                    misbehave(std::str::from_utf8(value).unwrap_or_default())
                }
                b"malformed" => return vec![1, 0xff, 0xff],
                b"reject" => out.reject("rejected on request"),
                b"state" => {
                    let n = counter(key) + 1;
                    state::put(&counter_key(key), n.to_string().as_bytes());
                    out.output(&value_output(n.to_string().as_bytes()));
                }
                b"flood" => {
                    state::put(&counter_key(key), b"1");
                    for _ in 0..10_001 {
                        out.output(&OutputSpec::default());
                    }
                }
                b"big-output" => {
                    state::put(&counter_key(key), b"1");
                    out.output(&value_output(&vec![b'x'; 2_000_000]));
                }
                b"big-state" => {
                    state::put(&[b"big:", key].concat(), &vec![b'x'; 2_000_000]);
                    out.output(&OutputSpec::default());
                }
                b"big-write-batch" => {
                    let mut w = WritesWriter::default();
                    w.put(&[b"big:", key].concat(), &vec![b'x'; 2_000_000]);
                    match state::write_batch(&w.finish()) {
                        Ok(()) => out.output(&OutputSpec::default()),
                        Err(e) => out.reject(&e),
                    }
                }
                b"state-bomb" => {
                    let big = vec![7u8; 512 << 10];
                    for i in 0u64.. {
                        state::put(&[b"bomb:".as_slice(), &i.to_le_bytes()].concat(), &big);
                    }
                }
                b"put-panic" => {
                    state::put(&counter_key(key), b"1000");
                    panic!("panic after a state write");
                }
                b"write-batch" => {
                    let mut w = WritesWriter::default();
                    w.put(&[b"wb:", key].concat(), b"1");
                    w.delete(&counter_key(key));
                    match state::write_batch(&w.finish()) {
                        Ok(()) => out.output(&value_output(b"written")),
                        Err(e) => out.reject(&e),
                    }
                }
                b"bad-write-batch" => match state::write_batch(&[1, 9, 0, 0, 0]) {
                    Ok(()) => out.output(&value_output(b"accepted a malformed write-batch")),
                    Err(e) => out.reject(&e),
                },
                b"scan" => {
                    let mut text = String::new();
                    for (k, v) in state::scan(b"count:", Some(b"count;"), 1000) {
                        text.push_str(&format!(
                            "{}={};",
                            String::from_utf8_lossy(&k),
                            String::from_utf8_lossy(&v)
                        ));
                    }
                    out.output(&value_output(text.as_bytes()));
                }
                b"table" => match tables::lookup("names", key) {
                    Some(v) => out.output(&value_output(&v)),
                    None => out.reject("not in table names"),
                },
                b"log" => {
                    log::log(
                        log::Level::Info,
                        &format!("record {}", String::from_utf8_lossy(key)),
                    );
                    out.output(&OutputSpec::default());
                }
                b"count" => match metrics::add("calls", &String::from_utf8_lossy(key), 1) {
                    Ok(()) => out.output(&OutputSpec::default()),
                    Err(e) => out.reject(&e),
                },
                b"count-panic" => {
                    let _ = metrics::add("calls", &String::from_utf8_lossy(key), 1);
                    panic!("panic after a count");
                }
                b"bad-counter" => match metrics::add("Bad-Name", "", 1) {
                    Ok(()) => out.output(&value_output(b"accepted a bad counter name")),
                    Err(e) => out.reject(&e),
                },
                b"arm-init-failure" => {
                    state::put(b"fail-init", b"1");
                    out.output(&OutputSpec::default());
                }
                b"second-output" => out.output(&OutputSpec {
                    output: 1,
                    ..OutputSpec::default()
                }),
                _ => out.output(&OutputSpec::default()),
            }
        }
        out.finish()
    }

    fn on_timer(stream_time: i64, wall_time: i64) -> Vec<u8> {
        // Without `timer` configured, timers are a no-op, as for most
        // processors run by a pipeline.
        let Some(what) = config("timer") else {
            return ResultWriter::timer_outputs(&[]);
        };
        let calls = counter(b"timer") + 1;
        state::put(&counter_key(b"timer"), calls.to_string().as_bytes());
        // After the write, so that a failing timer shows it is dropped.
        if what != "emit" {
            misbehave(&what);
        }
        let value = format!("stream={stream_time} wall={wall_time} calls={calls}");
        ResultWriter::timer_outputs(&[OutputSpec {
            key: Some(Some(b"timer")),
            value: Some(Some(value.as_bytes())),
            ..OutputSpec::default()
        }])
    }
}

fn config_has(key: &str) -> bool {
    config(key).is_some()
}

fn counter_key(key: &[u8]) -> Vec<u8> {
    [b"count:", key].concat()
}

fn counter(key: &[u8]) -> u64 {
    state::get(&counter_key(key))
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// One output to index 0 with this value, keeping key, headers, timestamp.
fn value_output(value: &[u8]) -> OutputSpec<'_> {
    OutputSpec {
        value: Some(Some(value)),
        ..OutputSpec::default()
    }
}

impl exports::test::misbehave::probe::Guest for Misbehave {
    fn ping() -> u32 {
        7
    }
}

export!(Misbehave);
