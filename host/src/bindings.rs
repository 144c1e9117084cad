//! The host side of the WIT contract: the one `bindgen!` of `wit/`.
//!
//! Every other module takes the generated types from here: [`Stage`] and
//! [`StagePre`] (the `stage` world), the import traits under
//! `partita::processor` and the export under `exports::partita::processor`.
//! State imports are trappable so that a failing state store stops the call
//! (it is then reported as a state failure, not as a processor bug).
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stage",
    imports: {
        "partita:processor/state": trappable,
    },
});
