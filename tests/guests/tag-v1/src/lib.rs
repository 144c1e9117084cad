//! Test processors for hot reload: one source built as several components
//! that differ only in their package name, which is their version tag.
//!
//! For each record, one output to `default` whose value is
//! `PARTITION:OFFSET:TAG` (the input's partition and offset, and the tag of
//! the build that processed it), keeping the input's key, headers and
//! timestamp. A test reads the outputs and knows, per input record, which
//! version handled it.
//!
//! | package         | behaviour                                     |
//! |-----------------|-----------------------------------------------|
//! | `tag-v1`        | tags with `tag-v1`                            |
//! | `tag-v2`        | tags with `tag-v2` (built from this file too) |
//! | `tag-fail-init` | its `init` fails: a version a reload refuses  |
//! | `tag-rejects`   | rejects every record: a version to roll back  |
//!
//! It takes no configuration keys.

use std::io::Write as _;

use partita_sdk::{Config, Emitter, Processor, Record, Reject};

/// The tag: the package this component was built from.
const TAG: &str = env!("CARGO_PKG_NAME");

/// Tags every record with [`TAG`].
pub struct Tagger {
    value: Vec<u8>,
}

impl Processor for Tagger {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&[])?;
        if TAG == "tag-fail-init" {
            return Err("this build refuses to start (tag-fail-init)".into());
        }
        Ok(Tagger {
            value: Vec::with_capacity(64),
        })
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        if TAG == "tag-rejects" {
            return Err(Reject::new("tag-rejects rejects every record"));
        }
        self.value.clear();
        let _ = write!(
            self.value,
            "{}:{}:{TAG}",
            record.partition(),
            record.offset()
        );
        out.value(&self.value);
        Ok(())
    }
}

partita_sdk::export!(Tagger);
