//! Checks that a file is a component of the `stage` world, with errors that
//! name what is wrong: not Wasm at all, a core module, a missing export, an
//! import the host does not provide.

use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, Linker};

/// The interface every processor exports.
pub(crate) const PROCESSOR_EXPORT: &str = "partita:processor/processor@0.1.0";
/// The functions that interface must hold, with their types in WIT syntax.
const PROCESSOR_FUNCS: [(&str, &str); 3] = [
    (
        "init",
        "func(list<tuple<string, string>>) -> result<list<string>, string>",
    ),
    ("process", "func(list<u8>) -> list<u8>"),
    ("on-timer", "func(s64, s64) -> list<u8>"),
];
/// The package of the host's own imports.
const OWN_PACKAGE: &str = "partita:processor/";

/// Why `bytes` cannot be a component, judged from its header alone.
pub(crate) fn header_problem(bytes: &[u8]) -> Option<String> {
    const CORE: [u8; 4] = [1, 0, 0, 0];
    const COMPONENT_LAYER: [u8; 2] = [1, 0];
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Some("not a WebAssembly binary (it does not start with the \\0asm header)".into());
    }
    if bytes[4..8] == CORE {
        return Some(
            "it is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target \
             (or wrap it with `wasm-tools component new`)"
                .into(),
        );
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Some(format!(
            "unknown WebAssembly layer {:?} in the header",
            &bytes[6..8]
        ));
    }
    None
}

/// Checks that `component` exports the processor interface with all of its
/// functions. Extra exports are fine (some toolchains add their own).
pub(crate) fn check_exports(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<(), String> {
    let ty = component.component_type();
    let Some(export) = ty.get_export(engine, PROCESSOR_EXPORT) else {
        let found: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
        return Err(if found.is_empty() {
            format!("missing export {PROCESSOR_EXPORT} (the component exports nothing)")
        } else {
            format!(
                "missing export {PROCESSOR_EXPORT} (it exports {})",
                found.join(", ")
            )
        });
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        return Err(format!("export {PROCESSOR_EXPORT} is not an interface"));
    };
    let mut missing = Vec::new();
    for (name, expected) in PROCESSOR_FUNCS {
        match instance.get_export(engine, name).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(f)) => {
                let found = signature(&f);
                if found != expected {
                    return Err(format!(
                        "export {PROCESSOR_EXPORT}#{name} has type {found}, expected {expected}"
                    ));
                }
            }
            _ => missing.push(name),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing export {PROCESSOR_EXPORT}#{}",
            missing.join(", ")
        ))
    }
}

/// A function's type in WIT syntax, without parameter names.
fn signature(f: &ComponentFunc) -> String {
    let params: Vec<String> = f.params().map(|(_, t)| wit_type(&t)).collect();
    let results: Vec<String> = f.results().map(|t| wit_type(&t)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [one] => format!("func({}) -> {one}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

/// A value type in WIT syntax, for the types the contract uses; others are
/// named by kind.
fn wit_type(t: &Type) -> String {
    let name = match t {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(l) => return format!("list<{}>", wit_type(&l.ty())),
        Type::Tuple(t) => {
            let items: Vec<String> = t.types().map(|t| wit_type(&t)).collect();
            return format!("tuple<{}>", items.join(", "));
        }
        Type::Option(o) => return format!("option<{}>", wit_type(&o.ty())),
        Type::Result(r) => {
            let part = |t: Option<Type>| t.map_or_else(|| "_".to_string(), |t| wit_type(&t));
            return format!("result<{}, {}>", part(r.ok()), part(r.err()));
        }
        Type::Map(_) => "a map",
        Type::Record(_) => "a record",
        Type::Variant(_) => "a variant",
        Type::Enum(_) => "an enum",
        Type::Flags(_) => "flags",
        Type::Own(_) | Type::Borrow(_) => "a resource",
        Type::Future(_) => "a future",
        Type::Stream(_) => "a stream",
        Type::ErrorContext => "an error-context",
        Type::FixedLengthList(_) => "a fixed-length list",
    };
    name.to_string()
}

/// The first import of `component` that `linker` cannot satisfy, described.
pub(crate) fn check_imports<T>(
    engine: &wasmtime::Engine,
    linker: &Linker<T>,
    component: &Component,
) -> Result<(), String> {
    let Err(e) = linker.substituted_component_type(component) else {
        return Ok(());
    };
    // wasmtime names the import in the outermost message, in backquotes.
    let outer = e.to_string();
    let name = outer.split('`').nth(1).map(str::to_string);
    let name = name.or_else(|| {
        component
            .component_type()
            .imports(engine)
            .map(|(n, _)| n.to_string())
            .find(|n| outer.contains(n.as_str()))
    });
    match name {
        Some(name) if name.starts_with(OWN_PACKAGE) || name.starts_with("wasi:") => {
            let detail: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
            Err(format!(
                "import {name} does not match what the host provides: {}",
                detail.join(": ")
            ))
        }
        Some(name) => Err(format!(
            "unsupported import {name} (the host provides only {OWN_PACKAGE}* and wasi:*)"
        )),
        None => Err(format!("unsupported import: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert!(
            header_problem(b"")
                .unwrap()
                .contains("not a WebAssembly binary")
        );
        assert!(
            header_problem(b"hello world!")
                .unwrap()
                .contains("not a WebAssembly binary")
        );
        assert!(
            header_problem(b"\0asm\x01\0\0\0")
                .unwrap()
                .contains("core WebAssembly module")
        );
        assert!(
            header_problem(b"\0asm\x0d\0\x07\0")
                .unwrap()
                .contains("unknown WebAssembly layer")
        );
        assert_eq!(header_problem(b"\0asm\x0d\0\x01\0"), None);
    }
}
