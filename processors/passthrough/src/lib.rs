//! `passthrough`: the identity stage. Every record goes to output `default`
//! unchanged (key, value, headers and timestamp all kept).
//!
//! It takes no configuration keys (any key is refused, to catch a wrong
//! processor file in a pipeline). Forwarding writes only "keep the input's"
//! markers, so no record byte is copied in the guest; the benchmarks use it
//! to measure the host's own cost per record.

use partita_sdk::{Config, Emitter, Processor, Record, Reject};

/// Forwards every record unchanged.
pub struct Passthrough;

impl Processor for Passthrough {
    fn init(config: &Config) -> Result<Self, String> {
        config.check_keys(&[])?;
        Ok(Passthrough)
    }

    #[inline]
    fn process(&mut self, _record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
        out.forward();
        Ok(())
    }
}

partita_sdk::export!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;
    use partita_sdk::testing::{Emitted, Harness, TestRecord};

    #[test]
    fn forwards_every_field_unchanged() {
        let mut h = Harness::<Passthrough>::new(&[]).unwrap();
        assert_eq!(h.outputs(), ["default"]);
        let results = h.run([
            TestRecord::new()
                .key("k1")
                .value("v1")
                .header("trace", "abc")
                .timestamp(1_700_000_000_000),
            TestRecord::new().value([0xff, 0x00]),
            TestRecord::new().key("deleted"),
        ]);
        let expected = [
            Emitted {
                output: "default".into(),
                key: Some(b"k1".to_vec()),
                value: Some(b"v1".to_vec()),
                headers: vec![("trace".into(), b"abc".to_vec())],
                timestamp: 1_700_000_000_000,
            },
            Emitted {
                output: "default".into(),
                key: None,
                value: Some(vec![0xff, 0]),
                headers: vec![],
                timestamp: 0,
            },
            Emitted {
                output: "default".into(),
                key: Some(b"deleted".to_vec()),
                value: None,
                headers: vec![],
                timestamp: 0,
            },
        ];
        for (r, e) in results.iter().zip(&expected) {
            assert_eq!(r.outputs(), std::slice::from_ref(e));
        }
    }

    #[test]
    fn refuses_configuration_keys() {
        let err = Harness::<Passthrough>::new(&[("columns", "a")])
            .err()
            .unwrap();
        assert_eq!(
            err,
            "config key `columns`: unknown key (this processor takes no configuration)"
        );
    }
}
