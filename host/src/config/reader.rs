//! Typed reads of one TOML table that record every problem instead of
//! stopping at the first: wrong types, out-of-range numbers, missing keys
//! and unknown keys, each with its position and key.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::problems::Problems;

/// A byte range in the pipeline file.
pub(crate) type Span = Range<usize>;

/// Reads the keys of one table; call [`TableReader::finish`] last so that
/// the keys nobody asked for are reported as unknown.
pub(crate) struct TableReader<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Span of the table itself (its header, or the inline table).
    span: Span,
    /// How problems name this table, for example `stage "pass"`.
    place: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> TableReader<'a, 'i> {
    /// Starts reading `table`, whose problems are prefixed with `place`.
    pub(crate) fn new(table: &'a DeTable<'i>, span: Span, place: impl Into<String>) -> Self {
        TableReader {
            table,
            span,
            place: place.into(),
            known: Vec::new(),
        }
    }

    /// Renames the table in later problems (once its name is known).
    pub(crate) fn set_place(&mut self, place: impl Into<String>) {
        self.place = place.into();
    }

    /// `place: key`, as problems about `key` name it.
    pub(crate) fn key_place(&self, key: &str) -> String {
        if self.place.is_empty() {
            key.to_string()
        } else {
            format!("{}: {key}", self.place)
        }
    }

    /// The raw value of `key`, marking it known.
    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.known.push(key);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// The span of `key`'s value, if present.
    pub(crate) fn span_of(&self, key: &str) -> Option<Span> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.span())
    }

    fn missing(&self, key: &'static str, p: &mut Problems<'_>) {
        p.add(
            Some(self.span.clone()),
            self.place.clone(),
            format!("missing key `{key}`"),
        );
    }

    fn wrong_type(
        &self,
        key: &str,
        expected: &str,
        v: &Spanned<DeValue<'_>>,
        p: &mut Problems<'_>,
    ) {
        let found = v.get_ref().type_str();
        p.add(
            Some(v.span()),
            self.key_place(key),
            format!("expected {expected}, found {found}"),
        );
    }

    /// A string; `None` (after recording a problem) when it has another type.
    pub(crate) fn string(
        &mut self,
        key: &'static str,
        p: &mut Problems<'_>,
    ) -> Option<(String, Span)> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.wrong_type(key, "a string", v, p);
                None
            }
        }
    }

    /// A string that must be present and not empty.
    pub(crate) fn required_string(
        &mut self,
        key: &'static str,
        p: &mut Problems<'_>,
    ) -> Option<(String, Span)> {
        if self.span_of(key).is_none() {
            self.known.push(key);
            self.missing(key, p);
            return None;
        }
        let (s, span) = self.string(key, p)?;
        if s.trim().is_empty() {
            p.add(Some(span), self.key_place(key), "must not be empty");
            return None;
        }
        Some((s, span))
    }

    /// A boolean.
    pub(crate) fn boolean(&mut self, key: &'static str, p: &mut Problems<'_>) -> Option<bool> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, "true or false", v, p);
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub(crate) fn integer(
        &mut self,
        key: &'static str,
        min: u64,
        max: u64,
        p: &mut Problems<'_>,
    ) -> Option<u64> {
        let v = self.value(key)?;
        let expected = format!("an integer from {min} to {max}");
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(key, &expected, v, p);
            return None;
        };
        match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= i128::from(min) && n <= i128::from(max) => u64::try_from(n).ok(),
            _ => {
                p.add(
                    Some(v.span()),
                    self.key_place(key),
                    format!("expected {expected}, found {i}"),
                );
                None
            }
        }
    }

    /// A string, or a list of strings.
    pub(crate) fn strings(
        &mut self,
        key: &'static str,
        p: &mut Problems<'_>,
    ) -> Option<Vec<(String, Span)>> {
        if self.span_of(key).is_none() {
            self.known.push(key);
            self.missing(key, p);
            return None;
        }
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![(s.to_string(), v.span())]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push((s.to_string(), item.span())),
                        other => {
                            let place = format!("{}[{i}]", self.key_place(key));
                            p.add(
                                Some(item.span()),
                                place,
                                format!("expected a string, found {}", other.type_str()),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.wrong_type(key, "a string or a list of strings", v, p);
                None
            }
        }
    }

    /// A table of `name = "string"` entries, in file order. With `scalars`,
    /// integers, floats and booleans are accepted too, as their TOML text.
    pub(crate) fn string_map(
        &mut self,
        key: &'static str,
        scalars: bool,
        p: &mut Problems<'_>,
    ) -> Option<Vec<(String, String, Span)>> {
        let v = self.value(key)?;
        let DeValue::Table(t) = v.get_ref() else {
            self.wrong_type(key, "a table", v, p);
            return None;
        };
        let mut entries: Vec<(String, String, Span)> = Vec::new();
        let mut ok = true;
        for (k, v) in t.iter() {
            let name = k.get_ref().to_string();
            let text = match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                DeValue::Integer(i) if scalars => Some(i.to_string()),
                DeValue::Float(f) if scalars => Some(f.to_string()),
                DeValue::Boolean(b) if scalars => Some(b.to_string()),
                _ => None,
            };
            match text {
                Some(text) => entries.push((name, text, v.span())),
                None => {
                    let expected = if scalars {
                        "a string, number or boolean"
                    } else {
                        "a string"
                    };
                    let place = format!("{}.{name}", self.key_place(key));
                    p.add(
                        Some(v.span()),
                        place,
                        format!("expected {expected}, found {}", v.get_ref().type_str()),
                    );
                    ok = false;
                }
            }
        }
        entries.sort_by_key(|(_, _, span)| span.start);
        ok.then_some(entries)
    }

    /// Reports every key that no read asked for.
    pub(crate) fn finish(self, p: &mut Problems<'_>) {
        for (k, _) in self.table.iter() {
            let name = k.get_ref().as_ref();
            if !self.known.contains(&name) {
                let mut expected: Vec<&str> = self.known.clone();
                expected.sort_unstable();
                expected.dedup();
                p.add(
                    Some(k.span()),
                    self.place.clone(),
                    format!(
                        "unknown key `{name}` (expected one of: {})",
                        expected.join(", ")
                    ),
                );
            }
        }
    }
}
