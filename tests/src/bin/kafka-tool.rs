//! `kafka-tool`: a small Kafka client for the project's scripts and for
//! looking at topics by hand (Debian's kcat is too old for the broker).
//!
//! ```text
//! kafka-tool [--bootstrap HOST:PORT] create-topic NAME [--partitions N] [--config K=V]... [--if-not-exists]
//! kafka-tool [--bootstrap HOST:PORT] produce TOPIC [--key-column N] [--input FILE]
//! kafka-tool [--bootstrap HOST:PORT] consume TOPIC [--values]
//! kafka-tool [--bootstrap HOST:PORT] offsets TOPIC [--group GROUP]
//! kafka-tool [--bootstrap HOST:PORT] produce-orders TOPIC --count N [--seed S] [--customers N] [--malformed-every N]
//! kafka-tool gen-orders --count N [--seed S] [--customers N] [--malformed-every N]
//! ```
//!
//! The bootstrap servers default to `PARTITA_BOOTSTRAP`, else
//! `127.0.0.1:PARTITA_BROKER_PORT` (9092 when unset).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use partita_tests::kafka::{Consumed, Kafka, Record};
use partita_tests::orders::Orders;

/// A small Kafka client for Partita's scripts.
#[derive(Debug, Parser)]
#[command(name = "kafka-tool")]
struct Cli {
    /// Bootstrap servers (default: PARTITA_BOOTSTRAP, else
    /// 127.0.0.1:PARTITA_BROKER_PORT, else 127.0.0.1:9092).
    #[arg(long, global = true)]
    bootstrap: Option<String>,
    /// Timeout of each broker operation, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Creates a topic.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Topic configuration entry, such as cleanup.policy=compact.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Succeed without change when the topic exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Produces one record per input line (the line is the value), and
    /// prints how many were acknowledged.
    Produce {
        /// Topic to produce to.
        topic: String,
        /// Use the N-th comma-separated column (from 0) of each line as the
        /// key; no key when absent.
        #[arg(long, value_name = "N", conflicts_with = "tab_key")]
        key_column: Option<usize>,
        /// Each line is the key, a tab, then the value (for keys and values
        /// that hold commas, such as Kafka Connect JSON envelopes).
        #[arg(long)]
        tab_key: bool,
        /// Read lines from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Prints every record of a topic up to its current end, one JSON object
    /// per line (partition, offset, key, value, headers, timestamp).
    Consume {
        /// Topic to read.
        topic: String,
        /// Print only the values, one per line.
        #[arg(long)]
        values: bool,
    },
    /// Prints each partition's watermarks, and a group's committed offsets
    /// and lag when --group is given.
    Offsets {
        /// Topic.
        topic: String,
        /// Consumer group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Produces sample legacy orders (as gen-orders prints them) keyed by
    /// customer, and prints how many were acknowledged.
    ProduceOrders {
        /// Topic to produce to.
        topic: String,
        /// The orders.
        #[command(flatten)]
        orders: OrderArgs,
    },
    /// Prints sample legacy orders as CSV lines `id,customer,amount,country`.
    GenOrders {
        /// The orders.
        #[command(flatten)]
        orders: OrderArgs,
    },
}

/// Settings of the sample orders.
#[derive(Debug, clap::Args)]
struct OrderArgs {
    /// How many orders.
    #[arg(long)]
    count: u64,
    /// Seed of the pseudo-random data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of distinct customers.
    #[arg(long, default_value_t = 100)]
    customers: u64,
    /// Write every N-th line with `;` separators (malformed).
    #[arg(long, value_name = "N")]
    malformed_every: Option<u64>,
}

impl OrderArgs {
    fn settings(&self) -> Result<Orders> {
        if self.customers == 0 {
            bail!("--customers must be at least 1");
        }
        Ok(Orders {
            seed: self.seed,
            customers: self.customers,
            malformed_every: self.malformed_every,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`kafka-tool consume T | head`): not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bootstrap(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("PARTITA_BOOTSTRAP").ok())
        .unwrap_or_else(|| {
            let port = std::env::var("PARTITA_BROKER_PORT").unwrap_or_else(|_| "9092".into());
            format!("127.0.0.1:{port}")
        })
}

fn run(cli: Cli) -> Result<()> {
    let kafka =
        Kafka::new(&bootstrap(cli.bootstrap)).with_timeout(Duration::from_secs(cli.timeout));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match cli.command {
        Cmd::CreateTopic {
            name,
            partitions,
            config,
            if_not_exists,
        } => {
            let config = config
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .with_context(|| format!("--config {kv}: expected KEY=VALUE"))
                })
                .collect::<Result<Vec<_>>>()?;
            if if_not_exists && kafka.partition_count(&name)? > 0 {
                writeln!(out, "topic {name} exists")?;
            } else {
                kafka.create_topic_with(&name, partitions, &config)?;
                writeln!(out, "created topic {name} with {partitions} partitions")?;
            }
        }
        Cmd::Produce {
            topic,
            key_column,
            tab_key,
            input,
        } => {
            let reader: Box<dyn BufRead> = match &input {
                Some(path) => Box::new(BufReader::new(
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
                )),
                None => Box::new(std::io::stdin().lock()),
            };
            let source = input
                .as_ref()
                .map_or("stdin".to_string(), |p| p.display().to_string());
            let mut records = Vec::new();
            for (n, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("{source}: cannot read line {}", n + 1))?;
                let record = if tab_key {
                    tab_record(&line)
                } else {
                    line_record(&line, key_column)
                };
                records.push(record.with_context(|| format!("{source}, line {}", n + 1))?);
            }
            let positions = kafka.produce(&topic, records)?;
            writeln!(out, "produced {} records to {topic}", positions.len())?;
        }
        Cmd::Consume { topic, values } => {
            for record in kafka.consume_all(&topic)? {
                if values {
                    writeln!(out, "{}", record.value_str())?;
                } else {
                    writeln!(out, "{}", to_json(&record))?;
                }
            }
        }
        Cmd::Offsets { topic, group } => {
            let marks = kafka.watermarks(&topic)?;
            let committed = match &group {
                Some(g) => Some(kafka.committed(g, &topic)?),
                None => None,
            };
            for (p, w) in marks.iter().enumerate() {
                write!(out, "{topic}/{p} low {} high {}", w.low, w.high)?;
                if let Some(c) = &committed {
                    match c[p] {
                        Some(o) => write!(out, " committed {o} lag {}", w.high - o.max(w.low))?,
                        None => write!(out, " committed none lag {}", w.high - w.low)?,
                    }
                }
                writeln!(out)?;
            }
        }
        Cmd::ProduceOrders { topic, orders } => {
            let records = orders
                .settings()?
                .generate(orders.count)
                .map(|o| o.record());
            let positions = kafka.produce(&topic, records)?;
            writeln!(out, "produced {} orders to {topic}", positions.len())?;
        }
        Cmd::GenOrders { orders } => {
            for order in orders.settings()?.generate(orders.count) {
                writeln!(out, "{}", order.line())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The record for one input line: the line as value, the key column as key.
fn line_record(line: &str, key_column: Option<usize>) -> Result<Record> {
    let key = match key_column {
        Some(n) => Some(
            line.split(',')
                .nth(n)
                .with_context(|| format!("no column {n} (from 0) in {line:?}"))?
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    Ok(Record {
        key,
        value: Some(line.as_bytes().to_vec()),
        ..Record::default()
    })
}

/// The record for one `KEY<TAB>VALUE` line.
fn tab_record(line: &str) -> Result<Record> {
    let (key, value) = line
        .split_once('\t')
        .with_context(|| format!("no tab between key and value in {line:?}"))?;
    Ok(Record {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        ..Record::default()
    })
}

/// One JSON object for a consumed record; key, value and header values as
/// text, or base64 under `*_base64` when they are not UTF-8.
fn to_json(r: &Consumed) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    fn put(map: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
        match bytes.map(std::str::from_utf8) {
            None => {}
            Some(Ok(text)) => {
                map.insert(name.into(), text.into());
            }
            Some(Err(_)) => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or(&[]));
                map.insert(format!("{name}_base64"), b64.into());
            }
        }
    }
    let mut map = Map::new();
    map.insert("partition".into(), json!(r.partition));
    map.insert("offset".into(), json!(r.offset));
    put(&mut map, "key", r.key.as_deref());
    put(&mut map, "value", r.value.as_deref());
    if !r.headers.is_empty() {
        let mut headers = Map::new();
        for (name, value) in &r.headers {
            put(&mut headers, name, Some(value));
        }
        map.insert("headers".into(), Value::Object(headers));
    }
    if let Some(ts) = r.timestamp {
        map.insert("timestamp".into(), json!(ts));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_column_picks_the_field() {
        let r = line_record("1,c0002,3.00,FR", Some(1)).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"c0002"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"1,c0002,3.00,FR"[..]));
        assert_eq!(line_record("a,b", None).unwrap().key, None);
    }

    #[test]
    fn tab_key_splits_at_the_first_tab() {
        let r = tab_record("{\"payload\":\"c1\"}\t{\"a\":1,\"b\":\"x\ty\"}").unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"{\"payload\":\"c1\"}"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"{\"a\":1,\"b\":\"x\ty\"}"[..]));
        let err = tab_record("k v").unwrap_err().to_string();
        assert!(err.contains("no tab between key and value"), "{err}");
    }

    #[test]
    fn missing_key_column_is_an_error() {
        let err = line_record("a,b", Some(5)).unwrap_err().to_string();
        assert!(err.contains("no column 5"), "{err}");
    }

    #[test]
    fn json_uses_base64_for_binary() {
        let r = Consumed {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            key: Some(vec![0xff, 0x00]),
            value: Some(b"v".to_vec()),
            headers: vec![("h".into(), b"x".to_vec())],
            timestamp: Some(5),
        };
        assert_eq!(
            to_json(&r).to_string(),
            r#"{"headers":{"h":"x"},"key_base64":"/wA=","offset":7,"partition":1,"timestamp":5,"value":"v"}"#
        );
    }
}
