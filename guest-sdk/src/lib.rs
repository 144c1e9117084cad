//! Write Partita stream processors in Rust.
//!
//! A processor is a type that implements [`Processor`]: it is built once per
//! instance from the stage's [`Config`], declares its named outputs, and then
//! sees one [`Record`] at a time, borrowed straight from the batch buffer the
//! host sent, and emits outputs through an [`Emitter`] or rejects the record
//! with a [`Reject`]. One macro call, [`export!`], turns it into the
//! component the host loads. The batch, its byte layout and the WIT bindings
//! stay hidden.
//!
//! ```
//! use partita_sdk::{Config, Emitter, Processor, Record, Reject, state};
//!
//! /// Upper-cases each value and counts records per key in state.
//! struct Shout {
//!     suffix: String,
//! }
//!
//! impl Processor for Shout {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         config.check_keys(&["suffix"])?;
//!         Ok(Shout { suffix: config.get("suffix").unwrap_or("!").to_string() })
//!     }
//!
//!     fn process(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
//!         let text = record.value_str()?;
//!         if text.is_empty() {
//!             return Err(Reject::new("empty value"));
//!         }
//!         let key = record.key().ok_or_else(|| Reject::new("record has no key"))?;
//!         let seen = state::get_as::<u64>(key)?.unwrap_or(0) + 1;
//!         state::put_as(key, &seen);
//!         let shouted = format!("{}{}", text.to_uppercase(), self.suffix);
//!         out.value(shouted.as_bytes());
//!         Ok(())
//!     }
//! }
//!
//! partita_sdk::export!(Shout);
//!
//! // Natively, the same processor runs in a test harness.
//! use partita_sdk::testing::{Harness, TestRecord};
//!
//! let mut h = Harness::<Shout>::new(&[("suffix", "?")]).unwrap();
//! let results = h.run([
//!     TestRecord::new().key("a").value("hi"),
//!     TestRecord::new().key("a").value(""),
//!     TestRecord::new().key("a").value("yo"),
//! ]);
//! assert_eq!(results[0].outputs()[0].value_str(), "HI?");
//! assert_eq!(results[1].rejection(), Some("empty value"));
//! assert_eq!(results[2].outputs()[0].key_str(), "a");
//! assert_eq!(h.state(b"a"), Some(2u64.to_le_bytes().to_vec()));
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` on a crate
//! with `crate-type = ["cdylib"]`: the result is the component.
//!
//! # What the host calls and what the SDK does
//!
//! - `init(config)` once per instance: [`Processor::init`], then
//!   [`Processor::outputs`] gives the output names (an output's index is its
//!   position in that list; see [`Output`]).
//! - `process(batch)` once per batch of one partition, in offset order: the
//!   SDK reads the records in place and calls [`Processor::process`] for
//!   each. An `Err(Reject)` rejects that record only, discarding whatever it
//!   had emitted; the host sends it to the stage's dead-letter topic. At the
//!   end of the batch the state writes are flushed to the host in one call.
//! - `on-timer(stream-time, wall-time)` when time passes:
//!   [`Processor::on_timer`].
//!
//! A panic traps the instance: the host fails the batch, starts a fresh
//! instance and retries the records one by one, so a panic is for bugs, not
//! for bad records (reject those).
//!
//! A batch whose header the SDK cannot read (wrong layout version,
//! truncated) traps with a message naming the byte offset, since no valid
//! answer can be written without the record count; a batch whose header is
//! fine but whose records are malformed has every unreadable record
//! rejected with the wire error (for example `truncated key at byte 57
//! (item 3)`).
//!
//! # Capabilities
//!
//! - [`state`]: keyed bytes scoped to this stage and partition, owned by the
//!   host, read through a per-instance cache and written back once per call.
//! - [`tables`]: read-only reference tables by name and key.
//! - [`log`]: leveled lines into the host's log.
//!
//! Nothing else is granted: no files, no network, no environment.
//!
//! # Testing natively
//!
//! The WIT imports exist only in a Wasm build. In a native build (`cargo
//! test`) the [`state`], [`tables`] and [`log`] helpers talk to an in-memory
//! stand-in of the host, one per thread, and [`testing`] runs a processor
//! over records through the same batch encoding the host uses.
#![deny(missing_docs)]

extern crate self as partita_sdk;

mod config;
mod driver;
mod emit;
mod host;
mod processor;
mod record;

pub mod log;
pub mod metrics;
pub mod state;
pub mod tables;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use config::{Config, ConfigError};
pub use emit::{Emit, Emitter, Output};
pub use processor::{Processor, Reject};
pub use record::Record;

/// The WIT bindings of the `stage` world, generated once for the SDK.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit/processor.wit",
        world: "stage",
        pub_export_macro: true,
        default_bindings_module: "partita_sdk::wit",
        runtime_path: "partita_sdk::__private::wit_bindgen::rt",
    });
}

/// Items used by [`export!`]'s expansion; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::driver::Runner;
    pub use wit_bindgen;
}

/// Exports a [`Processor`] as the component's `processor` interface.
///
/// Call it once, at the top level of the processor crate:
///
/// ```
/// # use partita_sdk::{Config, Emitter, Processor, Record, Reject};
/// struct MyProcessor;
///
/// impl Processor for MyProcessor {
///     fn init(_config: &Config) -> Result<Self, String> {
///         Ok(MyProcessor)
///     }
///
///     fn process(&mut self, _record: &Record<'_>, out: &mut Emitter<'_>) -> Result<(), Reject> {
///         out.forward();
///         Ok(())
///     }
/// }
///
/// partita_sdk::export!(MyProcessor);
/// ```
///
/// In a native build it only checks that the type implements
/// [`Processor`], so the same crate compiles for `cargo test`.
#[macro_export]
macro_rules! export {
    ($processor:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type PartitaExportedProcessor = $crate::__private::Runner<$processor>;
    $crate::wit::export!(PartitaExportedProcessor with_types_in $crate::wit);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn assert_processor<P: $crate::Processor>() {}
            let _ = assert_processor::<$processor>;
        };
    };
}
