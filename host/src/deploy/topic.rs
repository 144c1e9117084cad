//! Reading and writing a pipeline's control topic, `<group>.deploy` (one
//! partition, compacted).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::control::ControlState;
use super::record::{self, Deployment, HostReport, Role};
use crate::config::KafkaConfig;
use crate::kafka::admin::{self, Admin};
use crate::kafka::client::{LogContext, producer_config, table_reader_config};

/// How long a read of the control topic may take before it fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The control topic of a pipeline whose `[kafka] group` is `group`.
pub fn control_topic(kafka: &KafkaConfig) -> String {
    format!("{}.deploy", kafka.group)
}

/// A failure to read or write the control topic.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The Kafka client failed.
    #[error("control topic {topic}: {what}: {source}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What was being done.
        what: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// Reading did not reach the end in time.
    #[error("control topic {topic}: read {read} of its {end} records in {secs} s")]
    Timeout {
        /// The topic.
        topic: String,
        /// Offset reached.
        read: i64,
        /// The end offset at the start of the read.
        end: i64,
        /// The time allowed.
        secs: u64,
    },
}

/// A reader of the control topic from its beginning: catches up with
/// [`ControlReader::catch_up`], then follows with [`ControlReader::poll`].
pub struct ControlReader {
    topic: String,
    consumer: BaseConsumer<LogContext>,
    /// The next offset to read.
    next: i64,
}

impl ControlReader {
    /// A reader of `kafka`'s control topic, from its first record.
    pub fn new(kafka: &KafkaConfig) -> Result<ControlReader, TopicError> {
        let topic = control_topic(kafka);
        let fail = |what, source| TopicError::Kafka {
            topic: topic.clone(),
            what,
            source,
        };
        let mut config = table_reader_config(kafka);
        // Reads up to the end offset it asked for: no end-of-partition
        // events needed.
        config
            .set("client.id", "partita-deploy")
            .set("enable.partition.eof", "false")
            .set("group.id", format!("{}.deploy-reader", kafka.group));
        let consumer: BaseConsumer<LogContext> =
            BaseConsumer::from_config_and_context(&config, LogContext::new("deploy"))
                .map_err(|e| fail("cannot create a consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .map_err(|e| fail("cannot assign its partition", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| fail("cannot assign its partition", e))?;
        Ok(ControlReader {
            topic,
            consumer,
            next: 0,
        })
    }

    /// Reads every record up to the topic's end as of now into `state`.
    pub fn catch_up(&mut self, state: &mut ControlState) -> Result<(), TopicError> {
        let (_, end) = self
            .consumer
            .fetch_watermarks(&self.topic, 0, Duration::from_secs(10))
            .map_err(|source| TopicError::Kafka {
                topic: self.topic.clone(),
                what: "cannot read its end offset",
                source,
            })?;
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.next < end {
            if Instant::now() >= deadline {
                return Err(TopicError::Timeout {
                    topic: self.topic.clone(),
                    read: self.next,
                    end,
                    secs: READ_TIMEOUT.as_secs(),
                });
            }
            self.poll(state, Duration::from_millis(200))?;
        }
        Ok(())
    }

    /// Reads what arrives within `wait` into `state`; returns how many
    /// records were applied.
    pub fn poll(&mut self, state: &mut ControlState, wait: Duration) -> Result<usize, TopicError> {
        let mut applied = 0;
        let mut wait = wait;
        while let Some(result) = self.consumer.poll(wait) {
            wait = Duration::ZERO;
            let message = match result {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(_)) => break,
                Err(source) => {
                    return Err(TopicError::Kafka {
                        topic: self.topic.clone(),
                        what: "cannot read it",
                        source,
                    });
                }
            };
            self.next = message.offset() + 1;
            match record::decode(message.key().unwrap_or_default(), message.payload()) {
                Ok(Some(r)) => {
                    state.apply(r);
                    applied += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("{} offset {}: skipped: {e}", self.topic, message.offset())
                }
            }
        }
        Ok(applied)
    }
}

/// Creates the control topic (one partition, compacted) if it is missing.
pub async fn ensure_control_topic(kafka: &KafkaConfig) -> Result<(), String> {
    let admin = Admin::new(kafka).map_err(|e| e.to_string())?;
    let topics = admin.wait_for_cluster().await;
    let topic = control_topic(kafka);
    if topics.contains_key(&topic) {
        return Ok(());
    }
    admin::create_compacted(kafka, &[(topic, 1)], "control").await
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads the whole control topic as of now.
pub fn read(kafka: &KafkaConfig) -> Result<ControlState, TopicError> {
    let mut state = ControlState::new();
    ControlReader::new(kafka)?.catch_up(&mut state)?;
    Ok(state)
}

/// Keeps the first delivery error of a producer.
#[derive(Default)]
struct Deliveries {
    log: Option<LogContext>,
    error: Mutex<Option<KafkaError>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if let Some(l) = &self.log {
            l.log(level, fac, message);
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e.clone());
        }
    }
}

/// Writes components, deployments and host reports to the control topic.
pub struct ControlWriter {
    topic: String,
    producer: BaseProducer<Deliveries>,
}

impl ControlWriter {
    /// A writer to `kafka`'s control topic.
    pub fn new(kafka: &KafkaConfig) -> Result<ControlWriter, TopicError> {
        let topic = control_topic(kafka);
        let mut config: ClientConfig = producer_config(kafka);
        // A chunk is at most half a megabyte; librdkafka's default request
        // limit (1 MB) holds one with its key.
        config.set("client.id", "partita-deploy");
        let producer = BaseProducer::from_config_and_context(
            &config,
            Deliveries {
                log: Some(LogContext::new("deploy")),
                ..Deliveries::default()
            },
        )
        .map_err(|source| TopicError::Kafka {
            topic: topic.clone(),
            what: "cannot create a producer",
            source,
        })?;
        Ok(ControlWriter { topic, producer })
    }

    fn send(&self, key: &str, value: &[u8]) -> Result<(), TopicError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(value);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(100));
                    record = r;
                }
                Err((source, _)) => {
                    return Err(TopicError::Kafka {
                        topic: self.topic.clone(),
                        what: "cannot produce to it",
                        source,
                    });
                }
            }
        }
    }

    /// Waits until everything sent is acknowledged; fails with the first
    /// delivery error.
    pub fn flush(&self) -> Result<(), TopicError> {
        self.flush_for(Duration::from_secs(60))
    }

    /// [`ControlWriter::flush`], waiting at most `timeout`.
    pub fn flush_for(&self, timeout: Duration) -> Result<(), TopicError> {
        let fail = |source| TopicError::Kafka {
            topic: self.topic.clone(),
            what: "cannot write to it",
            source,
        };
        self.producer.flush(timeout).map_err(fail)?;
        let error = self
            .producer
            .context()
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        error.map_or(Ok(()), |e| Err(fail(e)))
    }

    /// Serves delivery reports without waiting (a writer that does not
    /// flush calls it now and then).
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Writes a component's chunks (keyed by its hash, so writing the
    /// same component again changes nothing a reader sees).
    pub fn component(&self, hash: &str, bytes: &[u8]) -> Result<(), TopicError> {
        for (key, chunk) in record::chunks(hash, bytes) {
            self.send(&key, chunk)?;
        }
        Ok(())
    }

    /// Deploys `component` (from the file `source`) as stage `stage`'s
    /// `role` processor: writes its chunks, then the deployment, and
    /// waits until the broker has them all.
    pub fn deploy(
        &self,
        stage: &str,
        role: Role,
        component: &[u8],
        source: &str,
        by: &str,
    ) -> Result<Deployment, TopicError> {
        let hash = blake3::hash(component).to_hex().to_string();
        let d = Deployment {
            stage: stage.to_string(),
            role,
            hash: Some(hash.clone()),
            size: component.len() as u64,
            chunks: record::chunk_count(component.len()),
            by: by.to_string(),
            at_ms: now_ms(),
            source: source.to_string(),
        };
        self.component(&hash, component)?;
        // One partition, one producer: the deployment lands after its
        // chunks, so a reader has them all when it reads it.
        self.deployment(&d)?;
        self.flush()?;
        Ok(d)
    }

    /// Writes a deployment (after its component).
    pub fn deployment(&self, d: &Deployment) -> Result<(), TopicError> {
        self.send(&record::deployment_key(d), &record::encode(d))
    }

    /// Writes a host's report.
    pub fn report(&self, r: &HostReport) -> Result<(), TopicError> {
        self.send(&record::report_key(&r.host, &r.stage), &record::encode(r))
    }
}
