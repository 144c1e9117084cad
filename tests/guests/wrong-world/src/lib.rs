//! A component of another world (`test:greeter/greeter`): the host must
//! refuse it, naming the processor export it lacks.

// The ABI glue that wit-bindgen generates is unsafe code without docs.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "wit",
    world: "greeter",
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Greeter);
