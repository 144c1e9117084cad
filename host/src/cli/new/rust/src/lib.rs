//! `{{name}}`: a Partita processor. It upper-cases each record's value and
//! appends the stage's `suffix` (default `!`); a record with an empty value
//! is rejected (the host sends it to the stage's dead-letter topic).
//!
//! Build: `cargo build --release --target wasm32-wasip2`; try it:
//! `partita test target/wasm32-wasip2/release/{{crate}}.wasm --input records.jsonl`.

use partita_sdk::{Config, Emitter, Processor, Record, Reject};

/// One instance per partition, made from the stage's configuration.
pub struct Shout {
    suffix: String,
}

impl Processor for Shout {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&["suffix"])?;
        let suffix = config.get("suffix").unwrap_or("!").to_string();
        Ok(Shout { suffix })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        let text = record.value_str()?;
        if text.is_empty() {
            return Err(Reject::new("empty value"));
        }
        // To output `default`, keeping the record's key, headers and
        // timestamp.
        out.value((text.to_uppercase() + &self.suffix).as_bytes());
        Ok(())
    }
}

partita_sdk::export!(Shout);

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Harness, TestRecord};

    #[test]
    fn shouts_and_rejects_empty_values() {
        let mut h = Harness::<Shout>::new(&[("suffix", "?")]).unwrap();
        let shouted = h.run_one(TestRecord::new().key("a").value("hi"));
        assert_eq!(shouted.outputs()[0].value_str(), "HI?");
        let empty = h.run_one(TestRecord::new().key("b").value(""));
        assert_eq!(empty.rejection(), Some("empty value"));
    }
}
