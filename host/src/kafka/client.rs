//! librdkafka client settings: Partita's defaults, then the pipeline
//! file's properties on top; and the logging of librdkafka's own messages
//! and errors through `tracing`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use crate::config::{Guarantee, KafkaConfig};

fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap);
    c.set_log_level(RDKafkaLogLevel::Info);
    c
}

fn apply(c: &mut ClientConfig, props: &[(String, String)]) {
    for (k, v) in props {
        c.set(k, v);
    }
}

/// Settings of stage `stage`'s consumer: group `<group>.<stage>`, no
/// automatic commit or offset store, range assignment, earliest reset;
/// under exactly-once, `read_committed` whatever the file says.
pub fn consumer_config(kafka: &KafkaConfig, stage: &str) -> ClientConfig {
    let mut c = base(kafka);
    c.set("group.id", kafka.group_id(stage))
        .set("client.id", format!("partita-{stage}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range");
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.consumer);
    if kafka.guarantee == Guarantee::ExactlyOnce {
        c.set("isolation.level", "read_committed");
    }
    c
}

/// Settings of a consumer that looks at group `group` from outside (its
/// committed offsets, its members) and never joins it or commits.
pub fn probe_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = base(kafka);
    c.set("client.id", "partita-probe");
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.consumer);
    // Set last: the probe reads the stage's group and must never commit.
    c.set("group.id", group).set("enable.auto.commit", "false");
    c
}

/// Settings of a consumer without a group that reads a table topic from
/// its beginning to its end.
pub fn table_reader_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("client.id", "partita-tables")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.consumer);
    // Set last: a table is read to its end and never committed.
    c.set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("group.id", format!("{}.tables", kafka.group));
    c
}

/// Settings of the producer shared by every stage: acknowledged by all
/// in-sync replicas, idempotent, Java-compatible key partitioning.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("client.id", "partita")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5");
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.producer);
    c
}

/// Settings of a worker's transactional producer under exactly-once: the
/// shared producer's settings with `transactional.id` set to
/// `transactional_id`.
pub fn transactional_producer_config(kafka: &KafkaConfig, transactional_id: &str) -> ClientConfig {
    let mut c = producer_config(kafka);
    c.set("client.id", format!("partita-{transactional_id}"))
        .set("transactional.id", transactional_id);
    c
}

/// Settings of the admin client (topic checks and creation).
pub fn admin_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("client.id", "partita-admin");
    apply(&mut c, &kafka.properties);
    c
}

/// Logs librdkafka's messages and errors through `tracing`, under the
/// `librdkafka` target, naming the client.
pub fn log(client: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", "{client}: {facility}: {message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", "{client}: {facility}: {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{client}: {facility}: {message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", "{client}: {facility}: {message}")
        }
    }
}

/// Logs client-wide errors once: rdkafka hands some error events to the
/// context twice in a row, which would double every line.
#[derive(Default)]
pub struct ErrorLog {
    last: Mutex<Option<(String, Instant)>>,
}

impl ErrorLog {
    /// Logs a client-wide error (for example "all brokers are down") at
    /// warn level: the client reconnects by itself, so it is not a failure.
    /// The same line within 100 ms of the last is dropped.
    pub fn error(&self, client: &str, e: &KafkaError, reason: &str) {
        let line = format!("{e}: {reason}");
        if self.first_time(&line) {
            tracing::warn!(target: "librdkafka", "{client}: {line}");
        }
    }

    fn first_time(&self, line: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let repeat = last.as_ref().is_some_and(|(previous, at)| {
            previous == line && at.elapsed() < Duration::from_millis(100)
        });
        *last = Some((line.to_string(), Instant::now()));
        !repeat
    }
}

/// A client context that only logs, for the admin client and table readers.
pub struct LogContext {
    /// Names the client in log lines.
    pub name: String,
    /// Error lines, once each.
    pub errors: ErrorLog,
}

impl LogContext {
    /// A context naming its client `name`.
    pub fn new(name: impl Into<String>) -> Self {
        LogContext {
            name: name.into(),
            errors: ErrorLog::default(),
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(&self.name, level, fac, log_message);
    }

    fn error(&self, e: KafkaError, reason: &str) {
        self.errors.error(&self.name, &e, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka() -> KafkaConfig {
        KafkaConfig {
            properties: vec![
                ("security.protocol".into(), "ssl".into()),
                ("linger.ms".into(), "1".into()),
            ],
            consumer: vec![("auto.offset.reset".into(), "latest".into())],
            producer: vec![("linger.ms".into(), "20".into())],
            ..KafkaConfig::new("b:9092", "orders")
        }
    }

    #[test]
    fn an_error_repeated_at_once_is_logged_once() {
        let log = ErrorLog::default();
        assert!(log.first_time("AllBrokersDown: 1/1 brokers are down"));
        assert!(!log.first_time("AllBrokersDown: 1/1 brokers are down"));
        assert!(log.first_time("BrokerTransportFailure: refused"));
        assert!(
            log.first_time("AllBrokersDown: 1/1 brokers are down"),
            "not the line just before"
        );
    }

    #[test]
    fn consumer_defaults_then_file_properties() {
        let c = consumer_config(&kafka(), "pass");
        assert_eq!(c.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(c.get("group.id"), Some("orders.pass"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("partition.assignment.strategy"), Some("range"));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(
            c.get("auto.offset.reset"),
            Some("latest"),
            "consumer properties come last"
        );
    }

    #[test]
    fn producer_defaults_then_file_properties() {
        let c = producer_config(&kafka());
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("partitioner"), Some("murmur2_random"));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(
            c.get("linger.ms"),
            Some("20"),
            "producer properties override shared ones"
        );
        assert_eq!(c.get("group.id"), None);
    }

    #[test]
    fn exactly_once_reads_committed_records_and_names_each_transactional_producer() {
        let mut k = kafka();
        k.consumer
            .push(("isolation.level".into(), "read_uncommitted".into()));
        assert_eq!(
            consumer_config(&k, "pass").get("isolation.level"),
            Some("read_uncommitted"),
            "at-least-once leaves it to the file"
        );
        k.guarantee = Guarantee::ExactlyOnce;
        assert_eq!(
            consumer_config(&k, "pass").get("isolation.level"),
            Some("read_committed")
        );
        let c = transactional_producer_config(&k, "orders.pass.3");
        assert_eq!(c.get("transactional.id"), Some("orders.pass.3"));
        assert_eq!(c.get("client.id"), Some("partita-orders.pass.3"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("linger.ms"), Some("20"), "producer properties apply");
        assert_eq!(producer_config(&k).get("transactional.id"), None);
    }

    #[test]
    fn tls_and_sasl_properties_are_supported_by_the_built_client() {
        let mut k = kafka();
        k.properties = vec![
            ("security.protocol".into(), "sasl_ssl".into()),
            ("sasl.mechanisms".into(), "SCRAM-SHA-512".into()),
            ("sasl.username".into(), "u".into()),
            ("sasl.password".into(), "p".into()),
        ];
        let consumer: Result<rdkafka::consumer::BaseConsumer, _> =
            consumer_config(&k, "s").create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }

    #[test]
    fn table_readers_never_commit_and_stop_at_the_end() {
        let mut k = kafka();
        k.consumer
            .push(("enable.partition.eof".into(), "false".into()));
        let c = table_reader_config(&k);
        assert_eq!(c.get("group.id"), Some("orders.tables"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.partition.eof"), Some("true"));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
    }
}
