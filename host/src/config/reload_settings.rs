//! The hot-reload keys of a `[[stage]]`: `version_header`, `rollback` and
//! `follow` (docs/PIPELINE.md, "Hot reload"; docs/DEPLOY.md).
//!
//! ```toml
//! version_header = true                                    # partita.version on outputs
//! rollback = { max_reject_share = 0.5, first_records = 1000 }
//! follow = "deploy"                                        # new versions from `partita deploy`
//! shadow = { ignore = ["/processed_at"], tolerance = ["/amount=0.5%"] }
//! ```

use partita_compare::diff::Rules;
use toml::de::DeValue;

use super::problems::Problems;
use super::reader::{Span, TableReader};

/// Largest `rollback.first_records`.
const MAX_FIRST_RECORDS: u64 = 100_000_000;

/// A stage's hot-reload settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadConfig {
    /// `version_header`: add a `partita.version` header (the processor
    /// version that produced it) to every output record.
    pub version_header: bool,
    /// `rollback`: go back to the previous version when a new one rejects
    /// too many of its first records.
    pub rollback: Option<Rollback>,
    /// `follow`: where new versions of the processor come from.
    pub follow: Follow,
    /// `shadow`: how a candidate's outputs are compared with the live ones.
    pub shadow: ShadowRules,
}

/// How a candidate's outputs are compared with the live processor's, as
/// `partita validate` compares two topics (docs/DEPLOY.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowRules {
    /// `ignore`: JSON pointers of fields left out of the comparison.
    pub ignore: Vec<String>,
    /// `tolerance`: `VALUE` for every number or `/pointer=VALUE` for one
    /// field, absolute (`0.01`) or relative (`0.5%`).
    pub tolerance: Vec<String>,
}

impl ShadowRules {
    /// The comparison rules (each was checked when the file was read).
    pub fn rules(&self) -> Rules {
        let mut rules = Rules::default();
        for i in &self.ignore {
            let _ = rules.add_ignore(i);
        }
        for t in &self.tolerance {
            let _ = rules.add_tolerance(t);
        }
        rules
    }
}

/// Where a stage's new processor versions come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Follow {
    /// `"file"`: the processor file, watched (and reloaded on SIGHUP).
    #[default]
    File,
    /// `"deploy"`: the pipeline's control topic, written by `partita
    /// deploy`; the file is the version a host starts with when nothing
    /// was deployed yet.
    Deploy,
}

/// When a newly swapped-in version is rolled back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollback {
    /// `max_reject_share`: the share of rejected or failed records (0 to 1)
    /// above which the new version is rolled back.
    pub max_reject_share: f64,
    /// `first_records`: how many records of the new version (over all of
    /// the stage's partitions in this process) are judged.
    pub first_records: u64,
}

impl Rollback {
    /// True when `bad` rejected or failed records out of the first
    /// `first_records` already exceed the allowed share, however the rest
    /// turns out.
    pub fn exceeded(&self, bad: u64) -> bool {
        bad as f64 > self.max_reject_share * self.first_records as f64
    }
}

/// Reads the stage's reload keys, recording every problem.
pub(super) fn read(r: &mut TableReader<'_, '_>, p: &mut Problems<'_>) -> ReloadConfig {
    let version_header = r.boolean("version_header", p).unwrap_or(false);
    let place = r.key_place("rollback");
    let rollback = r.value("rollback").and_then(|v| match v.get_ref() {
        DeValue::Table(t) => {
            let mut inner = TableReader::new(t, v.span(), place);
            let share = share(&mut inner, v.span(), p);
            let first = inner.integer("first_records", 1, MAX_FIRST_RECORDS, p);
            if inner.span_of("first_records").is_none() {
                let place = inner.key_place("first_records");
                p.add(Some(v.span()), place, "missing key `first_records`");
            }
            inner.finish(p);
            Some(Rollback {
                max_reject_share: share?,
                first_records: first?,
            })
        }
        other => {
            let msg = format!(
                "expected a table such as {{ max_reject_share = 0.5, first_records = 1000 }}, found {}",
                other.type_str()
            );
            p.add(Some(v.span()), place, msg);
            None
        }
    });
    let follow = match r.string("follow", p) {
        None => Follow::File,
        Some((s, _)) if s == "file" => Follow::File,
        Some((s, _)) if s == "deploy" => Follow::Deploy,
        Some((other, span)) => {
            let msg = format!("expected \"file\" or \"deploy\", found \"{other}\"");
            p.add(Some(span), r.key_place("follow"), msg);
            Follow::File
        }
    };
    ReloadConfig {
        version_header,
        rollback,
        follow,
        shadow: shadow(r, p),
    }
}

/// `shadow = { ignore = [...], tolerance = [...] }`, each entry checked as
/// `partita validate` checks its `--ignore` and `--tolerance`.
fn shadow(r: &mut TableReader<'_, '_>, p: &mut Problems<'_>) -> ShadowRules {
    let place = r.key_place("shadow");
    let Some(v) = r.value("shadow") else {
        return ShadowRules::default();
    };
    let DeValue::Table(t) = v.get_ref() else {
        let msg = format!(
            "expected a table such as {{ ignore = [\"/processed_at\"], tolerance = [\"/amount=0.5%\"] }}, found {}",
            v.get_ref().type_str()
        );
        p.add(Some(v.span()), place, msg);
        return ShadowRules::default();
    };
    let mut inner = TableReader::new(t, v.span(), place);
    let mut rules = Rules::default();
    let mut out = ShadowRules::default();
    for key in ["ignore", "tolerance"] {
        if inner.span_of(key).is_none() {
            continue;
        }
        for (entry, span) in inner.strings(key, p).unwrap_or_default() {
            let checked = if key == "ignore" {
                rules.add_ignore(&entry)
            } else {
                rules.add_tolerance(&entry)
            };
            match checked {
                Ok(()) if key == "ignore" => out.ignore.push(entry),
                Ok(()) => out.tolerance.push(entry),
                Err(e) => p.add(Some(span), inner.key_place(key), e),
            }
        }
    }
    inner.finish(p);
    out
}

/// `max_reject_share`: a number from 0 to 1 (an integer 0 or 1 too).
fn share(r: &mut TableReader<'_, '_>, table: Span, p: &mut Problems<'_>) -> Option<f64> {
    let place = r.key_place("max_reject_share");
    let Some(v) = r.value("max_reject_share") else {
        p.add(Some(table), place, "missing key `max_reject_share`");
        return None;
    };
    let text = match v.get_ref() {
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Integer(i) => i.as_str().to_string(),
        other => {
            let msg = format!("expected a number from 0 to 1, found {}", other.type_str());
            p.add(Some(v.span()), place, msg);
            return None;
        }
    };
    match text.replace('_', "").parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Some(n),
        _ => {
            let msg = format!("expected a number from 0 to 1, found {text}");
            p.add(Some(v.span()), place, msg);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Pipeline;

    /// A folder with a processor file next to the pipeline file.
    fn dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"not checked here").unwrap();
        let file = dir.path().join("pipeline.toml");
        (dir, file)
    }

    fn text(stage_extra: &str) -> String {
        format!(
            "[kafka]\nbootstrap = \"k:9092\"\ngroup = \"g\"\n\n[[stage]]\nname = \"s\"\n\
             processor = \"p.wasm\"\ninput = \"in\"\noutputs = {{ default = \"out\" }}\n{stage_extra}\n"
        )
    }

    fn problems(stage_extra: &str) -> Vec<String> {
        let (dir, file) = dir();
        let err = Pipeline::parse(&file, &text(stage_extra)).expect_err("refused");
        let shown = dir.path().display().to_string();
        err.problems
            .iter()
            .map(|p| p.to_string().replace(&shown, "DIR"))
            .collect()
    }

    #[test]
    fn defaults_are_no_header_and_no_rollback() {
        let (_dir, file) = dir();
        let p = Pipeline::parse(&file, &text("")).unwrap();
        assert_eq!(p.stages[0].reload, ReloadConfig::default());
    }

    #[test]
    fn the_keys_are_read() {
        let (_dir, file) = dir();
        let extra =
            "version_header = true\nrollback = { max_reject_share = 0.25, first_records = 1_000 }";
        let p = Pipeline::parse(&file, &text(extra)).unwrap();
        assert_eq!(
            p.stages[0].reload,
            ReloadConfig {
                version_header: true,
                rollback: Some(Rollback {
                    max_reject_share: 0.25,
                    first_records: 1000
                }),
                follow: Follow::File,
                shadow: ShadowRules::default(),
            }
        );
        let p = Pipeline::parse(&file, &text("follow = \"deploy\"")).unwrap();
        assert_eq!(p.stages[0].reload.follow, Follow::Deploy);
        let whole = "rollback = { max_reject_share = 1, first_records = 1 }";
        let p = Pipeline::parse(&file, &text(whole)).unwrap();
        assert_eq!(p.stages[0].reload.rollback.unwrap().max_reject_share, 1.0);
    }

    #[test]
    fn shadow_rules_are_read_and_checked_as_validate_checks_them() {
        let (_dir, file) = dir();
        let extra = "shadow = { ignore = [\"/at\"], tolerance = [\"0.01\", \"/amount=0.5%\"] }";
        let p = Pipeline::parse(&file, &text(extra)).unwrap();
        assert_eq!(
            p.stages[0].reload.shadow,
            ShadowRules {
                ignore: vec!["/at".into()],
                tolerance: vec!["0.01".into(), "/amount=0.5%".into()],
            }
        );
        assert_eq!(
            problems("shadow = { ignore = [\"at\"], tolerance = [\"/a=x\"], other = 1 }"),
            [
                "DIR/pipeline.toml:10:22: stage \"s\": shadow: ignore: `at` is not a JSON pointer: \
                 it must start with /",
                "DIR/pipeline.toml:10:42: stage \"s\": shadow: tolerance: /a=x: `x` is not a number \
                 or a percentage",
                "DIR/pipeline.toml:10:51: stage \"s\": shadow: unknown key `other` (expected one of: \
                 ignore, tolerance)"
            ]
        );
        assert_eq!(
            problems("shadow = true"),
            [
                "DIR/pipeline.toml:10:10: stage \"s\": shadow: expected a table such as \
              { ignore = [\"/processed_at\"], tolerance = [\"/amount=0.5%\"] }, found boolean"
            ]
        );
    }

    #[test]
    fn an_unknown_follow_is_refused() {
        assert_eq!(
            problems("follow = \"topic\""),
            [
                "DIR/pipeline.toml:10:10: stage \"s\": follow: expected \"file\" or \"deploy\", found \"topic\""
            ]
        );
    }

    #[test]
    fn a_version_header_that_is_not_a_boolean_is_refused() {
        assert_eq!(
            problems("version_header = \"yes\""),
            [
                "DIR/pipeline.toml:10:18: stage \"s\": version_header: expected true or false, found string"
            ]
        );
    }

    #[test]
    fn a_rollback_that_is_not_a_table_is_refused() {
        assert_eq!(
            problems("rollback = 0.5"),
            [
                "DIR/pipeline.toml:10:12: stage \"s\": rollback: expected a table such as \
              { max_reject_share = 0.5, first_records = 1000 }, found float"
            ]
        );
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused() {
        assert_eq!(
            problems("rollback = { max_reject_share = 1.5, first_records = 10 }"),
            [
                "DIR/pipeline.toml:10:33: stage \"s\": rollback: max_reject_share: \
              expected a number from 0 to 1, found 1.5"
            ]
        );
        assert_eq!(
            problems("rollback = { max_reject_share = \"half\", first_records = 10 }"),
            [
                "DIR/pipeline.toml:10:33: stage \"s\": rollback: max_reject_share: \
              expected a number from 0 to 1, found string"
            ]
        );
    }

    #[test]
    fn first_records_out_of_range_is_refused() {
        assert_eq!(
            problems("rollback = { max_reject_share = 0.5, first_records = 0 }"),
            [
                "DIR/pipeline.toml:10:54: stage \"s\": rollback: first_records: \
              expected an integer from 1 to 100000000, found 0"
            ]
        );
    }

    #[test]
    fn missing_and_unknown_rollback_keys_are_refused() {
        assert_eq!(
            problems("rollback = { first_records = 10 }"),
            [
                "DIR/pipeline.toml:10:12: stage \"s\": rollback: max_reject_share: missing key `max_reject_share`"
            ]
        );
        assert_eq!(
            problems("rollback = { max_reject_share = 0.5 }"),
            [
                "DIR/pipeline.toml:10:12: stage \"s\": rollback: first_records: missing key `first_records`"
            ]
        );
        assert_eq!(
            problems("rollback = { max_reject_share = 0.5, first_records = 9, after = 3 }"),
            [
                "DIR/pipeline.toml:10:57: stage \"s\": rollback: unknown key `after` \
              (expected one of: first_records, max_reject_share)"
            ]
        );
    }

    #[test]
    fn the_allowed_share_is_judged_on_the_first_records() {
        let r = Rollback {
            max_reject_share: 0.5,
            first_records: 100,
        };
        assert!(!r.exceeded(50));
        assert!(r.exceeded(51));
        let none = Rollback {
            max_reject_share: 0.0,
            first_records: 10,
        };
        assert!(!none.exceeded(0));
        assert!(none.exceeded(1));
    }
}
