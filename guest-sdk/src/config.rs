//! The stage configuration a processor receives at `init`, with typed
//! helpers whose errors name the key (and the value) at fault.

use std::fmt;
use std::str::FromStr;

/// Key/value configuration of a stage: the `config` table of the pipeline
/// file, or the `--config key=value` arguments of `partita test`.
///
/// When a key is given more than once, the last value wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    problem: String,
}

impl ConfigError {
    /// A problem with the value of `key`, described by `problem` (for
    /// example "must be a single character").
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The key at fault.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

impl Config {
    /// A configuration holding these pairs.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Config {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`; an error if it is missing or blank.
    pub fn require(&self, key: &str) -> Result<&str, ConfigError> {
        match self.get(key) {
            None => Err(ConfigError::new(key, "is required but missing")),
            Some(v) if v.trim().is_empty() => Err(ConfigError::new(key, "is required but empty")),
            Some(v) => Ok(v),
        }
    }

    /// The value of `key` parsed as `T`, or `None` if the key is missing.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| ConfigError::new(key, format!("cannot parse `{v}`: {e}"))),
        }
    }

    /// The value of `key` parsed as `T`, or `default` if the key is missing.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// The value of `key` split at commas, each item trimmed, empty items
    /// dropped; `None` if the key is missing.
    pub fn list(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
    }

    /// An error naming the first key that is not in `known`, so that a
    /// misspelt key is reported instead of silently ignored.
    pub fn check_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) if known.is_empty() => Err(ConfigError::new(
                k,
                "unknown key (this processor takes no configuration)",
            )),
            Some((k, _)) => Err(ConfigError::new(
                k,
                format!("unknown key (known keys: {})", known.join(", ")),
            )),
        }
    }

    /// All pairs, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::new([
            ("columns", "id, name,,amount"),
            ("limit", "12"),
            ("limit", "15"),
            ("blank", "  "),
        ])
    }

    #[test]
    fn get_takes_the_last_value() {
        assert_eq!(cfg().get("limit"), Some("15"));
        assert_eq!(cfg().get("nope"), None);
    }

    #[test]
    fn require_names_the_missing_or_blank_key() {
        let c = cfg();
        assert_eq!(c.require("limit"), Ok("15"));
        assert_eq!(
            c.require("table").unwrap_err().to_string(),
            "config key `table`: is required but missing"
        );
        assert_eq!(
            c.require("blank").unwrap_err().to_string(),
            "config key `blank`: is required but empty"
        );
    }

    #[test]
    fn parse_names_key_and_value() {
        let c = Config::new([("n", "12"), ("bad", "x1")]);
        assert_eq!(c.parse::<u32>("n"), Ok(Some(12)));
        assert_eq!(c.parse::<u32>("missing"), Ok(None));
        assert_eq!(c.parse_or::<u32>("missing", 7), Ok(7));
        let e = c.parse::<u32>("bad").unwrap_err();
        assert_eq!(e.key(), "bad");
        assert_eq!(
            e.to_string(),
            "config key `bad`: cannot parse `x1`: invalid digit found in string"
        );
    }

    #[test]
    fn list_trims_and_drops_empty_items() {
        assert_eq!(cfg().list("columns"), Some(vec!["id", "name", "amount"]));
        assert_eq!(cfg().list("nope"), None);
    }

    #[test]
    fn check_keys_names_the_unknown_key() {
        let c = Config::new([("table", "t"), ("feild", "x")]);
        assert_eq!(
            c.check_keys(&["table", "field"]).unwrap_err().to_string(),
            "config key `feild`: unknown key (known keys: table, field)"
        );
        assert!(c.check_keys(&["table", "feild"]).is_ok());
        assert_eq!(
            c.check_keys(&[]).unwrap_err().to_string(),
            "config key `table`: unknown key (this processor takes no configuration)"
        );
        let s: String = ConfigError::new("a", "b").into();
        assert_eq!(s, "config key `a`: b");
    }
}
