//! A processor of the stage world that also imports `test:foreign/clock`,
//! which the host does not provide: loading it must fail and name that
//! import.

// The ABI glue that wit-bindgen generates is unsafe code without docs.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:foreign;

        interface clock {
            now: func() -> u64;
        }

        world stage-plus {
            include partita:processor/stage@0.1.0;
            import clock;
        }
    ",
    world: "test:foreign/stage-plus",
    generate_all,
});

use exports::partita::processor::processor::Guest;
use partita_wire::{Batch, OutputSpec, ResultWriter};

struct Foreign;

impl Guest for Foreign {
    fn init(_config: Vec<(String, String)>) -> Result<Vec<String>, String> {
        Ok(vec!["out".into()])
    }

    fn process(batch: Vec<u8>) -> Vec<u8> {
        let batch = Batch::parse(&batch).expect("valid batch");
        let mut out = ResultWriter::default();
        let now = test::foreign::clock::now();
        let now = now.to_string();
        for _ in batch.records() {
            out.begin();
            out.output(&OutputSpec {
                value: Some(Some(now.as_bytes())),
                ..OutputSpec::default()
            });
        }
        out.finish()
    }

    fn on_timer(_stream_time: i64, _wall_time: i64) -> Vec<u8> {
        ResultWriter::timer_outputs(&[])
    }
}

export!(Foreign);
