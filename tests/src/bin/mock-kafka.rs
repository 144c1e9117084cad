//! `mock-kafka`: librdkafka's mock cluster (rdkafka's `MockCluster`) in a
//! process of its own, listening on real localhost ports, so that a host
//! process can be killed and started again against the same cluster.
//!
//! ```text
//! mock-kafka [--brokers N] TOPIC:PARTITIONS...
//! ```
//!
//! It creates each topic with its partition count, prints the bootstrap
//! servers alone on the first line of stdout, and runs until it is killed.
//! Tansu has no transactions; the mock cluster accepts the transactional
//! calls (docs/TESTING.md says what it does not do).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rdkafka::mocking::MockCluster;

/// librdkafka's mock cluster as a process.
#[derive(Debug, Parser)]
#[command(name = "mock-kafka")]
struct Cli {
    /// Number of brokers.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Topics to create, as NAME:PARTITIONS.
    #[arg(value_name = "TOPIC:PARTITIONS")]
    topics: Vec<String>,
}

/// `NAME:PARTITIONS` as a name and a partition count.
fn topic_spec(spec: &str) -> Result<(&str, i32)> {
    let Some((name, count)) = spec.rsplit_once(':') else {
        bail!("topic {spec:?}: expected NAME:PARTITIONS");
    };
    if name.is_empty() {
        bail!("topic {spec:?}: the name is empty");
    }
    let partitions: i32 =
        count.parse().ok().filter(|n| *n > 0).with_context(|| {
            format!("topic {spec:?}: {count:?} is not a positive partition count")
        })?;
    Ok((name, partitions))
}

fn run(cli: Cli) -> Result<()> {
    let topics = cli
        .topics
        .iter()
        .map(|t| topic_spec(t))
        .collect::<Result<Vec<_>>>()?;
    if cli.brokers < 1 {
        bail!("--brokers {}: at least one broker", cli.brokers);
    }
    let cluster = MockCluster::new(cli.brokers).context("cannot start the mock cluster")?;
    for (name, partitions) in topics {
        cluster
            .create_topic(name, partitions, cli.brokers.min(3))
            .with_context(|| format!("cannot create topic {name}"))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cluster.bootstrap_servers()).context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    drop(out);
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-kafka: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs_are_name_and_partition_count() {
        assert_eq!(topic_spec("orders:4").unwrap(), ("orders", 4));
        assert_eq!(topic_spec("a:b:2").unwrap(), ("a:b", 2));
        assert_eq!(
            topic_spec("orders").unwrap_err().to_string(),
            "topic \"orders\": expected NAME:PARTITIONS"
        );
        assert_eq!(
            topic_spec(":3").unwrap_err().to_string(),
            "topic \":3\": the name is empty"
        );
        assert_eq!(
            topic_spec("orders:0").unwrap_err().to_string(),
            "topic \"orders:0\": \"0\" is not a positive partition count"
        );
    }
}
