//! Comparing two values field by field: JSON values as JSON (numbers as
//! numbers, object key order ignored, fields under `--ignore` skipped,
//! numeric tolerances absolute or relative, globally or per field), any
//! other value as bytes (the first differing offset).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// How far apart two numbers may be and still be equal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// `|a - b| <= t`.
    Absolute(f64),
    /// `|a - b| <= t * max(|a|, |b|)` (written `0.5%` for 0.005).
    Relative(f64),
}

impl Tolerance {
    fn allows(self, a: f64, b: f64) -> bool {
        let d = (a - b).abs();
        match self {
            Tolerance::Absolute(t) => d <= t,
            Tolerance::Relative(r) => d <= r * a.abs().max(b.abs()),
        }
    }
}

impl FromStr for Tolerance {
    type Err = String;

    /// `0.01` (absolute) or `0.5%` (relative).
    fn from_str(s: &str) -> Result<Self, String> {
        let (number, relative) = match s.strip_suffix('%') {
            Some(n) => (n, true),
            None => (s, false),
        };
        let v: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number or a percentage"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("`{s}` must be a finite number, 0 or more"));
        }
        Ok(if relative {
            Tolerance::Relative(v / 100.0)
        } else {
            Tolerance::Absolute(v)
        })
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Absolute(t) => write!(f, "{t}"),
            Tolerance::Relative(r) => write!(f, "{}%", r * 100.0),
        }
    }
}

/// Checks that `p` is a JSON pointer (RFC 6901): empty, or `/` then
/// tokens with `~` only in `~0` and `~1`.
pub fn check_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!("`{p}` is not a JSON pointer: it must start with /"));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{p}` is not a JSON pointer: `~` must be followed by 0 or 1"
            ));
        }
    }
    Ok(())
}

/// What counts as equal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// JSON pointers whose values (and everything under them) are not
    /// compared.
    pub ignore: Vec<String>,
    /// The tolerance of every number without one of its own.
    pub tolerance: Option<Tolerance>,
    /// Tolerances of single fields, by JSON pointer.
    pub field_tolerances: Vec<(String, Tolerance)>,
}

impl Rules {
    /// Adds a field not to compare: a JSON pointer; the error says why it
    /// is not one.
    pub fn add_ignore(&mut self, pointer: &str) -> Result<(), String> {
        check_pointer(pointer)?;
        self.ignore.push(pointer.to_string());
        Ok(())
    }

    /// Adds a tolerance: `VALUE` for every number, or `/pointer=VALUE` for
    /// one field, where `VALUE` is absolute (`0.01`) or relative (`0.5%`).
    /// The error is `ARG: what is wrong`.
    pub fn add_tolerance(&mut self, arg: &str) -> Result<(), String> {
        let parsed = match arg.split_once('=') {
            Some((pointer, value)) => check_pointer(pointer).and_then(|()| {
                let tolerance: Tolerance = value.parse()?;
                self.field_tolerances.push((pointer.to_string(), tolerance));
                Ok(())
            }),
            None => arg.parse().map(|t| self.tolerance = Some(t)),
        };
        parsed.map_err(|e| format!("{arg}: {e}"))
    }

    fn ignored(&self, pointer: &str) -> bool {
        self.ignore.iter().any(|i| i == pointer)
    }

    fn tolerance(&self, pointer: &str) -> Option<Tolerance> {
        self.field_tolerances
            .iter()
            .find(|(p, _)| p == pointer)
            .map(|(_, t)| *t)
            .or(self.tolerance)
    }
}

/// One field whose values differ; `None` where a side lacks the field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDiff {
    /// The field, as a JSON pointer (`""` for the whole value).
    pub pointer: String,
    /// The left value.
    pub left: Option<Value>,
    /// The right value.
    pub right: Option<Value>,
}

/// How two values differ.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// Both JSON: the fields that differ, in pointer order.
    Fields(Vec<FieldDiff>),
    /// Not both JSON: the first byte offset where they differ, and both
    /// lengths.
    Bytes {
        /// The first differing offset.
        offset: usize,
        /// The left value's length (`None`: no value).
        left_len: Option<usize>,
        /// The right value's length.
        right_len: Option<usize>,
    },
}

impl Difference {
    /// The pointers of the fields that differ (`""` for a byte
    /// difference), for per-field counts.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Difference::Fields(f) => f.iter().map(|d| d.pointer.as_str()).collect(),
            Difference::Bytes { .. } => vec![""],
        }
    }

    /// The difference as JSON, for reports.
    pub fn to_json(&self) -> Value {
        match self {
            Difference::Fields(fields) => Value::Array(
                fields
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "field": d.pointer,
                            "left": d.left,
                            "right": d.right,
                        })
                    })
                    .collect(),
            ),
            Difference::Bytes {
                offset,
                left_len,
                right_len,
            } => serde_json::json!({
                "first_differing_byte": offset,
                "left_len": left_len,
                "right_len": right_len,
            }),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Fields(fields) => {
                for (i, d) in fields.iter().enumerate() {
                    let show = |v: &Option<Value>| {
                        v.as_ref()
                            .map_or_else(|| "(missing)".to_string(), Value::to_string)
                    };
                    let name = if d.pointer.is_empty() {
                        "(value)"
                    } else {
                        &d.pointer
                    };
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {} ≠ {}", show(&d.left), show(&d.right))?;
                }
                Ok(())
            }
            Difference::Bytes {
                offset,
                left_len,
                right_len,
            } => {
                let len =
                    |l: &Option<usize>| l.map_or("null".to_string(), |l| format!("{l} bytes"));
                write!(
                    f,
                    "bytes differ from offset {offset} ({} ≠ {})",
                    len(left_len),
                    len(right_len)
                )
            }
        }
    }
}

/// A value parsed once for comparing: JSON when it parses as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// No value (a tombstone).
    Null,
    /// A JSON value.
    Json(Value),
    /// Anything else.
    Bytes(Vec<u8>),
}

impl Parsed {
    /// Parses `value`.
    pub fn new(value: Option<&[u8]>) -> Parsed {
        match value {
            None => Parsed::Null,
            Some(v) => match serde_json::from_slice::<Value>(v) {
                Ok(json) => Parsed::Json(json),
                Err(_) => Parsed::Bytes(v.to_vec()),
            },
        }
    }
}

/// Compares `left` with `right` under `rules`: `None` when they are equal.
pub fn compare(left: &Parsed, right: &Parsed, rules: &Rules) -> Option<Difference> {
    match (left, right) {
        (Parsed::Json(l), Parsed::Json(r)) => {
            let mut out = Vec::new();
            let mut pointer = String::new();
            walk(l, r, &mut pointer, rules, &mut out);
            (!out.is_empty()).then_some(Difference::Fields(out))
        }
        (Parsed::Null, Parsed::Null) => None,
        _ => {
            let bytes = |p: &Parsed| match p {
                Parsed::Null => None,
                Parsed::Json(v) => Some(serde_json::to_vec(v).unwrap_or_default()),
                Parsed::Bytes(b) => Some(b.clone()),
            };
            let (l, r) = (bytes(left), bytes(right));
            if l == r {
                return None;
            }
            let (ls, rs) = (l.as_deref().unwrap_or(&[]), r.as_deref().unwrap_or(&[]));
            let offset = ls
                .iter()
                .zip(rs)
                .position(|(a, b)| a != b)
                .unwrap_or(ls.len().min(rs.len()));
            Some(Difference::Bytes {
                offset,
                left_len: l.as_ref().map(Vec::len),
                right_len: r.as_ref().map(Vec::len),
            })
        }
    }
}

fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

fn walk(l: &Value, r: &Value, pointer: &mut String, rules: &Rules, out: &mut Vec<FieldDiff>) {
    if rules.ignored(pointer) {
        return;
    }
    match (l, r) {
        (Value::Object(lo), Value::Object(ro)) => {
            let mut keys: Vec<&String> = lo.keys().chain(ro.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                let len = pointer.len();
                push_token(pointer, k);
                match (lo.get(k), ro.get(k)) {
                    (Some(a), Some(b)) => walk(a, b, pointer, rules, out),
                    (a, b) => {
                        if !rules.ignored(pointer) {
                            out.push(FieldDiff {
                                pointer: pointer.clone(),
                                left: a.cloned(),
                                right: b.cloned(),
                            });
                        }
                    }
                }
                pointer.truncate(len);
            }
        }
        (Value::Array(la), Value::Array(ra)) if la.len() == ra.len() => {
            for (i, (a, b)) in la.iter().zip(ra).enumerate() {
                let len = pointer.len();
                push_token(pointer, &i.to_string());
                walk(a, b, pointer, rules, out);
                pointer.truncate(len);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let equal = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || rules.tolerance(pointer).is_some_and(|t| t.allows(x, y))
                }
                _ => a == b,
            };
            if !equal {
                out.push(FieldDiff {
                    pointer: pointer.clone(),
                    left: Some(l.clone()),
                    right: Some(r.clone()),
                });
            }
        }
        _ if l == r => {}
        _ => out.push(FieldDiff {
            pointer: pointer.clone(),
            left: Some(l.clone()),
            right: Some(r.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(v: Value) -> Parsed {
        Parsed::Json(v)
    }

    #[test]
    fn rules_are_built_from_arguments_and_bad_ones_say_why() {
        let mut rules = Rules::default();
        rules.add_ignore("/processed_at").unwrap();
        rules.add_tolerance("0.01").unwrap();
        rules.add_tolerance("/amount=0.5%").unwrap();
        assert_eq!(rules.ignore, ["/processed_at"]);
        assert_eq!(rules.tolerance, Some(Tolerance::Absolute(0.01)));
        assert_eq!(
            rules.field_tolerances,
            [("/amount".to_string(), Tolerance::Relative(0.005))]
        );
        assert_eq!(
            rules.add_ignore("a").unwrap_err(),
            "`a` is not a JSON pointer: it must start with /"
        );
        assert_eq!(
            rules.add_tolerance("/a=x").unwrap_err(),
            "/a=x: `x` is not a number or a percentage"
        );
        assert_eq!(
            rules.add_tolerance("a=1").unwrap_err(),
            "a=1: `a` is not a JSON pointer: it must start with /"
        );
        assert_eq!(
            rules.add_tolerance("-1").unwrap_err(),
            "-1: `-1` must be a finite number, 0 or more"
        );
    }

    #[test]
    fn numbers_compare_as_numbers_and_key_order_does_not_matter() {
        let rules = Rules::default();
        let l = json(json!({"a": 1.0, "b": {"x": [1, 2]}, "c": "s"}));
        let r = json(json!({"c": "s", "b": {"x": [1, 2.0]}, "a": 1}));
        assert_eq!(compare(&l, &r, &rules), None);
    }

    #[test]
    fn differing_missing_and_extra_fields_are_listed_with_both_values() {
        let l = json(json!({"id": 1, "amount": 10.5, "gone": true, "items": [1, 2]}));
        let r = json(json!({"id": 1, "amount": 10.0, "new": "x", "items": [1, 2, 3]}));
        let d = compare(&l, &r, &Rules::default()).unwrap();
        assert_eq!(d.fields(), ["/amount", "/gone", "/items", "/new"]);
        assert_eq!(
            d.to_string(),
            "/amount: 10.5 ≠ 10.0, /gone: true ≠ (missing), /items: [1,2] ≠ [1,2,3], /new: (missing) ≠ \"x\""
        );
    }

    #[test]
    fn ignored_fields_and_their_subtrees_are_skipped() {
        let rules = Rules {
            ignore: vec!["/processed_at".into(), "/meta".into()],
            ..Rules::default()
        };
        let l = json(json!({"id": 1, "processed_at": 100, "meta": {"host": "a"}}));
        let r = json(json!({"id": 1, "processed_at": 200, "meta": {"host": "b"}}));
        assert_eq!(compare(&l, &r, &rules), None);
        let only_left = json(json!({"id": 1, "processed_at": 5}));
        let without = json(json!({"id": 1}));
        assert_eq!(compare(&only_left, &without, &rules), None);
    }

    #[test]
    fn tolerances_apply_globally_and_per_field() {
        let rules = Rules {
            tolerance: Some("0.01".parse().unwrap()),
            field_tolerances: vec![("/total".into(), "0.5%".parse().unwrap())],
            ..Rules::default()
        };
        let l = json(json!({"amount": 10.004, "total": 1000.0, "n": 3}));
        let r = json(json!({"amount": 10.0, "total": 1004.0, "n": 3}));
        assert_eq!(compare(&l, &r, &rules), None);
        let far = json(json!({"amount": 10.02, "total": 1010.0, "n": 3}));
        let d = compare(&far, &r, &rules).unwrap();
        assert_eq!(d.fields(), ["/amount", "/total"]);
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        let rules = Rules {
            ignore: vec!["/a~1b".into()],
            ..Rules::default()
        };
        let l = json(json!({"a/b": 1, "c~d": 1}));
        let r = json(json!({"a/b": 2, "c~d": 2}));
        assert_eq!(compare(&l, &r, &rules).unwrap().fields(), ["/c~0d"]);
    }

    #[test]
    fn non_json_values_are_compared_as_bytes() {
        let l = Parsed::new(Some(b"1,c0001,10.50,FR"));
        let r = Parsed::new(Some(b"1,c0001,10.00,FR"));
        assert_eq!(
            compare(&l, &r, &Rules::default()),
            Some(Difference::Bytes {
                offset: 11,
                left_len: Some(16),
                right_len: Some(16)
            })
        );
        assert_eq!(compare(&l, &l.clone(), &Rules::default()), None);
        let tombstone = Parsed::new(None);
        assert_eq!(
            compare(&l, &tombstone, &Rules::default())
                .unwrap()
                .to_string(),
            "bytes differ from offset 0 (16 bytes ≠ null)"
        );
        assert_eq!(compare(&tombstone, &Parsed::Null, &Rules::default()), None);
    }

    #[test]
    fn tolerances_and_pointers_are_checked() {
        assert_eq!("0.5%".parse(), Ok(Tolerance::Relative(0.005)));
        assert_eq!("2".parse(), Ok(Tolerance::Absolute(2.0)));
        assert_eq!(
            "x".parse::<Tolerance>(),
            Err("`x` is not a number or a percentage".into())
        );
        assert_eq!(
            "-1".parse::<Tolerance>(),
            Err("`-1` must be a finite number, 0 or more".into())
        );
        assert!(check_pointer("/a/b~0").is_ok());
        assert_eq!(
            check_pointer("amount"),
            Err("`amount` is not a JSON pointer: it must start with /".into())
        );
        assert_eq!(
            check_pointer("/a~2"),
            Err("`/a~2` is not a JSON pointer: `~` must be followed by 0 or 1".into())
        );
    }
}
