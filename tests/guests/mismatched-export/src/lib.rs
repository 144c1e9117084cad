//! Exports `partita:processor/processor@0.1.0` with every function named
//! as in the contract but `process` returning a string: the host must
//! refuse it at load, naming the interface.

// The ABI glue that wit-bindgen generates is unsafe code without docs.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "wit",
    world: "stage",
});

use exports::partita::processor::processor::Guest;

struct Mismatched;

impl Guest for Mismatched {
    fn init(_config: Vec<(String, String)>) -> Result<Vec<String>, String> {
        Ok(vec!["out".into()])
    }

    fn process(batch: Vec<u8>) -> String {
        batch.len().to_string()
    }

    fn on_timer(_stream_time: i64, _wall_time: i64) -> Vec<u8> {
        vec![1, 0, 0, 0, 0]
    }
}

export!(Mismatched);
