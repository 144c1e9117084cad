//! Exports Partita's processor interface but imports
//! `partita:processor/state@0.1.0` with a `get` of its own: the host must
//! refuse it at load, naming the import.

// The ABI glue that wit-bindgen generates is unsafe code without docs.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "wit",
    world: "stage",
});

use exports::partita::processor::processor::Guest;
use partita::processor::state;

struct Mismatched;

impl Guest for Mismatched {
    fn init(_config: Vec<(String, String)>) -> Result<Vec<String>, String> {
        Ok(vec!["out".into()])
    }

    fn process(_batch: Vec<u8>) -> Vec<u8> {
        state::get("k").unwrap_or_default().into_bytes()
    }

    fn on_timer(_stream_time: i64, _wall_time: i64) -> Vec<u8> {
        vec![1, 0, 0, 0, 0]
    }
}

export!(Mismatched);
