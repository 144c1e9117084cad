//! The rules of the `metrics` import, checked alike by the host and by the
//! SDK's stand-in host in native tests.

use alloc::format;
use alloc::string::String;

/// Counters (name and label pairs) one partition of a stage may keep; an
/// add that would create one more fails.
pub const MAX_COUNTERS: usize = 1000;
/// The longest counter name, in bytes.
pub const MAX_NAME: usize = 64;
/// The longest label value, in bytes.
pub const MAX_LABEL: usize = 256;

/// Checks a counter's name (1 to [`MAX_NAME`] bytes of `a-z`, `0-9` and
/// `_`, starting with a letter) and label (at most [`MAX_LABEL`] bytes);
/// the error says which is wrong and why.
pub fn check_counter(name: &str, label: &str) -> Result<(), String> {
    let valid = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(format!(
            "counter name {name:?}: use 1 to {MAX_NAME} characters of a-z, 0-9 and _, starting with a letter"
        ));
    }
    if label.len() > MAX_LABEL {
        return Err(format!(
            "counter {name}: a label of {} bytes (at most {MAX_LABEL})",
            label.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_checked() {
        assert!(check_counter("records", "").is_ok());
        assert!(check_counter("field_mismatches_2", "/amount").is_ok());
        for bad in ["", "Records", "2x", "a-b", "é", &"a".repeat(65)] {
            let e = check_counter(bad, "").unwrap_err();
            assert!(e.contains("a-z, 0-9 and _"), "{e}");
        }
        let e = check_counter("ok", &"x".repeat(257)).unwrap_err();
        assert_eq!(e, "counter ok: a label of 257 bytes (at most 256)");
    }
}
