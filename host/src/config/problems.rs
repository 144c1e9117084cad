//! Problems found in a pipeline file, each naming the file, the position
//! and the key, and the error that gathers all of them.

use std::fmt;
use std::ops::Range;

/// A line and column in the pipeline file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Location {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The pipeline file, as the user named it.
    pub file: String,
    /// Where in the file, when the problem has a place.
    pub at: Option<Location>,
    /// Which part of the pipeline, for example `stage "pass": outputs`.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(at) = self.at {
            write!(f, ":{at}")?;
        }
        if !self.place.is_empty() {
            write!(f, ": {}", self.place)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a pipeline file; nothing starts while there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in the order of the file.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems for one file, turning byte spans into line and column.
pub(crate) struct Problems<'t> {
    file: String,
    text: &'t str,
    list: Vec<(usize, Problem)>,
}

impl<'t> Problems<'t> {
    /// Starts an empty list for `file` whose content is `text`.
    pub(crate) fn new(file: impl Into<String>, text: &'t str) -> Self {
        Problems {
            file: file.into(),
            text,
            list: Vec::new(),
        }
    }

    /// The location of byte `offset` of the file.
    pub(crate) fn locate(&self, offset: usize) -> Location {
        Location::of(self.text, offset)
    }

    /// Records a problem at `span` (none: the problem has no single place).
    pub(crate) fn add(
        &mut self,
        span: Option<Range<usize>>,
        place: impl Into<String>,
        message: impl Into<String>,
    ) {
        let at = span.as_ref().map(|s| self.locate(s.start));
        let order = span.map_or(usize::MAX, |s| s.start);
        let problem = Problem {
            file: self.file.clone(),
            at,
            place: place.into(),
            message: message.into(),
        };
        self.list.push((order, problem));
    }

    /// How many problems were recorded so far.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The problems in file order (problems without a place last, in the
    /// order they were found), or `Ok` when there are none.
    pub(crate) fn finish(mut self) -> Result<(), ConfigError> {
        if self.list.is_empty() {
            return Ok(());
        }
        self.list.sort_by_key(|(order, _)| *order);
        Err(ConfigError {
            problems: self.list.into_iter().map(|(_, p)| p).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(text, 6), Location { line: 2, column: 1 });
        // "bé" is 3 bytes: the space after it (byte 9) is the 3rd character.
        assert_eq!(Location::of(text, 9), Location { line: 2, column: 3 });
        // A byte inside "é" counts as "é".
        assert_eq!(Location::of(text, 8), Location { line: 2, column: 2 });
        assert_eq!(Location::of(text, 1000), Location { line: 3, column: 1 });
    }

    #[test]
    fn problems_are_sorted_by_position_and_rendered_with_file_and_place() {
        let text = "x = 1\ny = 2\n";
        let mut p = Problems::new("p.toml", text);
        p.add(Some(6..7), "y", "second");
        p.add(None, "stage \"a\"", "no place");
        p.add(Some(0..1), "x", "first");
        let err = p.finish().unwrap_err();
        let lines: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            lines,
            [
                "p.toml:1:1: x: first",
                "p.toml:2:1: y: second",
                "p.toml: stage \"a\": no place"
            ]
        );
        assert_eq!(err.to_string(), lines.join("\n"));
    }
}
