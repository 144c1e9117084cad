//! Reads a running `partita`'s Prometheus metrics (`--metrics-addr`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, such as `partita_records_in_total`.
    pub name: String,
    /// Labels, by name.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// The samples that `GET /metrics` on `addr` (`127.0.0.1:PORT`) returns.
pub fn scrape(addr: &str) -> Result<Vec<Sample>> {
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("cannot connect to metrics at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .with_context(|| format!("cannot send the request to {addr}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("cannot read the answer of {addr}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{addr}: answer without a header end"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        bail!("{addr}: GET /metrics answered {status:?}");
    }
    parse(body)
}

/// Parses the text exposition format (comments skipped).
pub fn parse(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("metrics line {}: cannot parse {line:?}", n + 1);
        let (series, rest) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').with_context(bad)?;
                (&line[..close + 1], &line[close + 1..])
            }
            None => line.split_at(line.find(' ').with_context(bad)?),
        };
        let value = rest.split_whitespace().next().with_context(bad)?;
        let value: f64 = value.parse().with_context(bad)?;
        let (name, labels) = match series.find('{') {
            Some(open) => (
                &series[..open],
                parse_labels(&series[open + 1..series.len() - 1]),
            ),
            None => (series, Some(BTreeMap::new())),
        };
        let labels = labels.with_context(bad)?;
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// `a="x",b="y"` into a map; `None` when malformed.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_string();
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name, value);
        rest = rest[end?..].trim_start_matches(',').trim();
    }
    Some(labels)
}

/// The sum of the samples named `name` whose labels include every
/// `(label, value)` of `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP partita_records_in_total records read
# TYPE partita_records_in_total counter
partita_records_in_total{stage="a",partition="0"} 10
partita_records_in_total{stage="a",partition="1"} 5
partita_records_in_total{stage="b",partition="0"} 7
partita_processor_info{stage="a",version="ab\"c"} 1
partita_up 1
"#;

    #[test]
    fn parses_names_labels_and_values() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(samples.len(), 5);
        assert_eq!(samples[0].name, "partita_records_in_total");
        assert_eq!(samples[0].labels["stage"], "a");
        assert_eq!(samples[0].labels["partition"], "0");
        assert_eq!(samples[0].value, 10.0);
        assert_eq!(samples[3].labels["version"], "ab\"c");
        assert_eq!(samples[4].name, "partita_up");
        assert!(samples[4].labels.is_empty());
    }

    #[test]
    fn sums_by_label_filter() {
        let samples = parse(TEXT).unwrap();
        assert_eq!(sum(&samples, "partita_records_in_total", &[]), 22.0);
        assert_eq!(
            sum(&samples, "partita_records_in_total", &[("stage", "a")]),
            15.0
        );
        let one = [("stage", "a"), ("partition", "1")];
        assert_eq!(sum(&samples, "partita_records_in_total", &one), 5.0);
        assert_eq!(sum(&samples, "nothing", &[]), 0.0);
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let err = parse("ok 1\nbroken{a=\"x\" 1\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse("x notanumber").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
