//! One stage's consumer: a member of the group `<group>.<stage>` whose
//! rebalance callbacks start and stop the partition workers, driven by a
//! thread that polls it.
//!
//! On assignment, each partition's queue is split off the consumer before
//! the assignment takes effect, so its records go straight to its worker;
//! partition p of every input goes to the same worker. On revocation, the
//! callback stops the workers and waits until each has finished its batch,
//! seen its outputs acknowledged and committed, before the group moves on.
//!
//! When the stage's group watcher (`health`) finds partitions with lag that
//! nobody owns, it asks for a rejoin: the driver stops its workers (they
//! commit), closes the consumer (which leaves the group) and joins again
//! with a new consumer, so with a new member id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;

use super::pool::{Pool, Ticket};
use super::worker::WorkerSetup;
use super::{StageFailure, StageShared};
use crate::kafka::client::{self, consumer_config};

/// The consumer context of a stage: logging, commits and the
/// rebalance callbacks that own the workers.
pub(crate) struct StageContext {
    shared: Arc<StageShared>,
    consumer: OnceLock<Weak<BaseConsumer<StageContext>>>,
    workers: Mutex<BTreeMap<i32, Ticket>>,
    /// The threads the workers run on.
    pool: Pool<StageContext>,
    errors: client::ErrorLog,
}

impl StageContext {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Starts a worker per partition of `tpl`, splitting off the queues of
    /// all its input topics first.
    fn start_workers(&self, tpl: &TopicPartitionList) {
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            self.shared.control.fail(
                self.name(),
                None,
                StageFailure::Consumer {
                    what: "the consumer is gone during an assignment".into(),
                    source: None,
                },
            );
            return;
        };
        let mut by_partition: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for e in tpl.elements() {
            match self
                .shared
                .config
                .inputs
                .iter()
                .position(|t| t == e.topic())
            {
                Some(i) => by_partition
                    .entry(e.partition())
                    .or_default()
                    .push(i as u32),
                None => tracing::warn!(
                    "stage \"{}\": assigned {} which it does not read",
                    self.name(),
                    e.topic()
                ),
            }
        }
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (partition, inputs) in by_partition {
            if let Some(old) = workers.remove(&partition) {
                old.stop();
                old.wait();
            }
            let mut queues = Vec::new();
            for input in inputs {
                let topic = &self.shared.config.inputs[input as usize];
                match consumer.split_partition_queue(topic, partition) {
                    Some(q) => queues.push((input, q)),
                    None => {
                        self.shared.control.fail(
                            self.name(),
                            Some(partition),
                            StageFailure::Consumer {
                                what: format!(
                                    "cannot read partition {partition} of {topic} on its own queue"
                                ),
                                source: None,
                            },
                        );
                        return;
                    }
                }
            }
            let stop = Arc::new(AtomicBool::new(false));
            let setup = WorkerSetup {
                shared: self.shared.clone(),
                partition,
                queues,
                consumer: consumer.clone(),
                stop: stop.clone(),
            };
            match self.pool.run(setup) {
                Ok(ticket) => {
                    workers.insert(partition, ticket);
                }
                Err(e) => {
                    self.shared
                        .control
                        .fail(self.name(), Some(partition), StageFailure::Thread(e));
                    return;
                }
            }
        }
        let partitions: Vec<i32> = workers.keys().copied().collect();
        tracing::info!(
            "stage \"{}\": assigned partitions {partitions:?}",
            self.name()
        );
    }

    /// Stops the workers of the partitions in `tpl` (all when `None`) and
    /// waits until each has committed.
    fn stop_workers(&self, tpl: Option<&TopicPartitionList>) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let partitions: Vec<i32> = match tpl {
            Some(tpl) => {
                let mut p: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                p.sort_unstable();
                p.dedup();
                p
            }
            None => workers.keys().copied().collect(),
        };
        let stopping: Vec<(i32, Ticket)> = partitions
            .iter()
            .filter_map(|p| workers.remove(p).map(|w| (*p, w)))
            .collect();
        if stopping.is_empty() {
            return;
        }
        // Ask all first, then wait: the workers drain concurrently.
        for (_, w) in &stopping {
            w.stop();
        }
        let list: Vec<i32> = stopping.iter().map(|(p, _)| *p).collect();
        for (_, w) in stopping {
            w.wait();
        }
        tracing::info!("stage \"{}\": released partitions {list:?}", self.name());
    }
}

impl ClientContext for StageContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::log(
            &format!("stage \"{}\" consumer", self.name()),
            level,
            fac,
            log_message,
        );
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let client = format!("stage \"{}\" consumer", self.name());
        self.errors.error(&client, &error, reason);
        // A fatal error leaves the consumer unusable (for example a static
        // member fenced by another with the same `group.instance.id`): the
        // run stops rather than hold partitions it no longer owns.
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::FencedInstanceId)
        ) {
            self.shared.control.fail(
                self.name(),
                None,
                StageFailure::Consumer {
                    what: format!("the consumer failed for good: {reason}"),
                    source: Some(error),
                },
            );
        }
    }
}

impl ConsumerContext for StageContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.start_workers(tpl),
            Rebalance::Revoke(tpl) => self.stop_workers(Some(tpl)),
            Rebalance::Error(e) => {
                tracing::warn!("stage \"{}\": rebalance error: {e}", self.name())
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.shared.metrics.commit_failures.fetch_add(1, Relaxed);
            let parts: Vec<String> = offsets
                .elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            tracing::warn!(
                "stage \"{}\": commit of {} failed: {e}; it is made again later",
                self.name(),
                parts.join(", ")
            );
        }
    }
}

/// Runs stage `shared`'s consumer on the current thread until the run
/// stops, then stops its workers and leaves the group. A rejoin request
/// (from the group watcher) closes the consumer and joins again with a new
/// one.
pub(crate) fn drive(shared: Arc<StageShared>) {
    let name = shared.config.name.clone();
    while !shared.control.stopping() {
        let Some(consumer) = join(&shared) else {
            return;
        };
        poll(&shared, &consumer);
        consumer.context().stop_workers(None);
        // Leaving the group: closing the consumer revokes (nothing left)
        // and sends LeaveGroup so the partitions move at once.
        drop(consumer);
        if shared.rejoin.swap(false, Relaxed) && !shared.control.stopping() {
            tracing::info!(
                "stage \"{name}\": left group {}; joining again as a new member",
                shared.kafka.group_id(&name)
            );
        }
    }
    tracing::info!("stage \"{name}\": stopped");
}

/// A new consumer of the stage, subscribed to its inputs; `None` (the run
/// failed) if it cannot be created or subscribed.
fn join(shared: &Arc<StageShared>) -> Option<Arc<BaseConsumer<StageContext>>> {
    let name = &shared.config.name;
    let context = StageContext {
        shared: shared.clone(),
        consumer: OnceLock::new(),
        workers: Mutex::default(),
        // One thread per core: more would only take turns with each other.
        pool: Pool::new(
            name,
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
        errors: client::ErrorLog::default(),
    };
    let config = consumer_config(&shared.kafka, name);
    let consumer = match BaseConsumer::from_config_and_context(&config, context) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            shared.control.fail(
                name,
                None,
                StageFailure::Consumer {
                    what: "cannot create its consumer".into(),
                    source: Some(e),
                },
            );
            return None;
        }
    };
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let inputs: Vec<&str> = shared.config.inputs.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&inputs) {
        shared.control.fail(
            name,
            None,
            StageFailure::Consumer {
                what: format!("cannot subscribe to {}", inputs.join(", ")),
                source: Some(e),
            },
        );
        return None;
    }
    tracing::info!(
        "stage \"{name}\": joining group {} on {}",
        shared.kafka.group_id(name),
        inputs.join(", ")
    );
    Some(consumer)
}

/// Polls `consumer` (which serves its rebalance callbacks) until the run
/// stops or a rejoin is asked for.
fn poll(shared: &StageShared, consumer: &BaseConsumer<StageContext>) {
    let name = &shared.config.name;
    while !shared.control.stopping() && !shared.rejoin.load(Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                // Every partition's queue is split off to its worker before
                // the partition is assigned, so records never come here; if
                // one did, its partition's order could not be kept.
                use rdkafka::message::Message;
                shared.control.fail(
                    name,
                    Some(m.partition()),
                    StageFailure::Consumer {
                        what: format!(
                            "record {}/{} offset {} reached the group queue instead of its worker",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        ),
                        source: None,
                    },
                );
            }
            // Already logged by the context's error callback.
            Some(Err(e)) => tracing::debug!("stage \"{name}\": {e}"),
        }
    }
}
