//! librdkafka's mock cluster in a child process (the `mock-kafka` binary
//! of this crate), for the exactly-once tests: Tansu has no transactions,
//! the mock cluster accepts them. It listens on a real localhost port, so
//! a `partita` process can be killed and started again against it.
//!
//! What the mock cluster does not do (librdkafka 2.12, checked): it keeps
//! no offsets committed through `send_offsets_to_transaction`, it shows
//! aborted and still-open transactional records to `read_committed`
//! readers, and it does not fence a producer when another registers the
//! same transactional id. docs/TESTING.md says what follows for the tests.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::{Consumed, Kafka};
use crate::process::Child;

/// A running `mock-kafka` process; killed when dropped.
#[derive(Debug)]
pub struct MockKafka {
    child: Child,
    bootstrap: String,
    _dir: tempfile::TempDir,
}

impl MockKafka {
    /// Starts `binary` (the `mock-kafka` executable, which integration
    /// tests find as `env!("CARGO_BIN_EXE_mock-kafka")`) with `topics`
    /// (name, partitions) and waits until it prints its bootstrap servers.
    pub fn start(binary: &Path, topics: &[(&str, i32)]) -> Result<MockKafka> {
        let dir = tempfile::Builder::new()
            .prefix("partita-mock-kafka-")
            .tempdir()
            .context("cannot create a folder for the mock cluster's log")?;
        let log = dir.path().join("mock-kafka.log");
        let mut command = Command::new(binary);
        for (name, partitions) in topics {
            command.arg(format!("{name}:{partitions}"));
        }
        let mut child = Child::spawn("mock-kafka", command, &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(bootstrap) = text.lines().find_map(bootstrap_line) {
                return Ok(MockKafka {
                    child,
                    bootstrap: bootstrap.to_string(),
                    _dir: dir,
                });
            }
            if let Some(status) = child.try_exit()? {
                bail!("mock-kafka exited ({status}) before it was ready:\n{text}");
            }
            if Instant::now() >= deadline {
                bail!("mock-kafka printed no bootstrap servers within 30 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bootstrap servers (`127.0.0.1:PORT[,...]`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// A client of the cluster.
    pub fn kafka(&self) -> Kafka {
        Kafka::new(&self.bootstrap)
    }

    /// Fails with its log if the process has exited.
    pub fn assert_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_exit()? {
            bail!(
                "mock-kafka exited ({status}); its log:\n{}",
                self.child.log_tail(20)
            );
        }
        Ok(())
    }
}

/// The bootstrap servers if `line` is only `host:port[,host:port]`.
fn bootstrap_line(line: &str) -> Option<&str> {
    let line = line.trim();
    let ok = !line.is_empty()
        && line.split(',').all(|server| {
            server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        });
    ok.then_some(line)
}

/// Reads every record of `topic` that a `read_committed` reader sees,
/// from the start to the end each partition has when the read starts
/// (the end of a partition is where the reader reports it, so transaction
/// markers at the end do not keep it waiting). Records come back ordered
/// by partition, then offset.
pub fn consume_committed(kafka: &Kafka, topic: &str) -> Result<Vec<Consumed>> {
    let partitions = kafka.partition_count(topic)?;
    if partitions == 0 {
        bail!("topic {topic} does not exist");
    }
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", "partita-tests-committed-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .context("cannot create a Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .context("cannot build the assignment")?;
    }
    consumer
        .assign(&tpl)
        .with_context(|| format!("cannot assign {topic}"))?;
    let mut open: BTreeSet<i32> = (0..partitions as i32).collect();
    let mut records = Vec::new();
    let deadline = Instant::now() + kafka.timeout();
    while !open.is_empty() {
        if Instant::now() >= deadline {
            bail!(
                "reading {topic} read_committed: {} records read, partitions {open:?} not at their end within {:?}",
                records.len(),
                kafka.timeout()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            Some(Ok(m)) => records.push(Consumed {
                topic: topic.to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis(),
            }),
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_server_list_is_taken_for_the_bootstrap_servers() {
        assert_eq!(bootstrap_line("127.0.0.1:4711"), Some("127.0.0.1:4711"));
        assert_eq!(
            bootstrap_line(" 127.0.0.1:1,127.0.0.1:2 "),
            Some("127.0.0.1:1,127.0.0.1:2")
        );
        assert_eq!(bootstrap_line("%7|1700000000.1|MOCK|x: listening"), None);
        assert_eq!(bootstrap_line("127.0.0.1:notaport"), None);
        assert_eq!(bootstrap_line(""), None);
    }
}
