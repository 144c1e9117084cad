//! The rules a pipeline obeys, whether it comes from a file or from code:
//! each check returns the problem's message, in the same words for both
//! (the file adds the line and column).

/// Stage names and the group id become consumer group ids, metric labels
/// and header values: letters, digits, `.`, `_` and `-` only. `what` names
/// it in the message (`stage name`, `group`).
pub(super) fn name_problem(name: &str, what: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (!ok).then(|| format!("{what} \"{name}\" may only use letters, digits, '.', '_' and '-'"))
}

/// Kafka's rule for topic names.
pub(super) fn topic_problem(topic: &str) -> Option<String> {
    let legal = topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let why = if topic.is_empty() {
        "a topic name must not be empty"
    } else if topic.len() > 249 {
        "a topic name has at most 249 characters"
    } else if topic == "." || topic == ".." {
        "a topic cannot be named \".\" or \"..\""
    } else if !legal {
        "a topic name may only use letters, digits, '.', '_' and '-'"
    } else {
        return None;
    };
    Some(format!("invalid topic \"{topic}\": {why}"))
}

/// A stage with no input topic.
pub(super) const NO_INPUT: &str = "no topic: name at least one input topic";

/// An input topic named twice.
pub(super) fn listed_twice(topic: &str) -> String {
    format!("topic {topic} is listed twice")
}

/// A stage writing to one of its own inputs.
pub(super) fn a_loop(topic: &str) -> String {
    format!("topic {topic} is also an input of this stage (a loop)")
}

/// A dead-letter topic under `on_error = "skip"` or `"stop"`.
pub(super) const DLQ_NEEDS_POLICY: &str =
    "a dead-letter topic needs on_error = \"dlq\" (the default)";

/// Two stages with one name.
pub(super) const SAME_NAME: &str = "another stage has the same name";
