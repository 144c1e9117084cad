//! Leveled logging into the host's structured log, where each line is tagged
//! with the stage and partition.
//!
//! Each line is one call into the host (about 140 ns); log per batch or per
//! problem, not per record on the hot path.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Fine-grained detail.
    Trace,
    /// Detail useful when debugging a processor.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the processor handled.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line at `level`.
pub fn log(level: Level, message: &str) {
    crate::host::log(level, message);
}

/// Writes one line at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes one line at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes one line at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes one line at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes one line at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{FAKE, FakeHost};

    #[test]
    fn each_helper_logs_at_its_level() {
        FAKE.with_borrow_mut(|h| *h = FakeHost::default());
        trace("t");
        debug("d");
        info("i");
        warn("w");
        error("e");
        log(Level::Info, "direct");
        let logs = FAKE.with_borrow(|h| h.logs.clone());
        let expected: Vec<(Level, String)> = [
            (Level::Trace, "t"),
            (Level::Debug, "d"),
            (Level::Info, "i"),
            (Level::Warn, "w"),
            (Level::Error, "e"),
            (Level::Info, "direct"),
        ]
        .into_iter()
        .map(|(l, m)| (l, m.to_string()))
        .collect();
        assert_eq!(logs, expected);
    }
}
