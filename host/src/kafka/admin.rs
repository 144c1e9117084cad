//! Before a run starts: wait for the cluster to answer (retrying with a
//! backoff while it is unreachable), check that every topic the pipeline
//! uses exists, and create the missing ones when the file asks for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::types::RDKafkaErrorCode;

use super::client::{LogContext, admin_config};
use crate::config::KafkaConfig;

/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts to reach the cluster.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Partition count per topic, as the cluster reports it.
pub type TopicPartitions = BTreeMap<String, i32>;

/// Why the topics are not ready.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// Topics that do not exist (and `create_topics` is off).
    #[error(
        "missing topic{}: {} (create {}, or set create_topics = true in [kafka])",
        if .0.len() > 1 { "s" } else { "" },
        .0.join(", "),
        if .0.len() > 1 { "them" } else { "it" }
    )]
    Missing(Vec<String>),
    /// Topic creation failed.
    #[error("cannot create topic {topic}: {reason}")]
    Create {
        /// The topic.
        topic: String,
        /// What the cluster said.
        reason: String,
    },
    /// The client could not be built or a request failed for good.
    #[error("{0}")]
    Client(String),
}

/// The admin client of a run.
pub struct Admin {
    client: Arc<AdminClient<LogContext>>,
    bootstrap: String,
}

impl Admin {
    /// Builds the admin client (this does not connect yet).
    pub fn new(kafka: &KafkaConfig) -> Result<Admin, TopicsError> {
        let context = LogContext::new("admin");
        let client =
            AdminClient::from_config_and_context(&admin_config(kafka), context).map_err(|e| {
                TopicsError::Client(format!("cannot create the Kafka admin client: {e}"))
            })?;
        Ok(Admin {
            client: Arc::new(client),
            bootstrap: kafka.bootstrap.clone(),
        })
    }

    /// The topics of the cluster, or the error of one attempt.
    async fn topics_once(&self) -> Result<TopicPartitions, String> {
        let client = self.client.clone();
        let md = tokio::task::spawn_blocking(move || {
            client.inner().fetch_metadata(None, METADATA_TIMEOUT)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(md
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    /// The topics of the cluster, retrying with a growing backoff (logged
    /// at warn level) until the cluster answers. Never gives up: drop the
    /// future to stop waiting.
    pub async fn wait_for_cluster(&self) -> TopicPartitions {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.topics_once().await {
                Ok(t) => return t,
                Err(e) => {
                    tracing::warn!(
                        "cannot reach Kafka at {}: {e}; retrying in {}s",
                        self.bootstrap,
                        backoff.as_secs()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Checks that every topic in `needed` exists, creating the missing
    /// ones when `kafka.create_topics` is set, and those of `own` (topics
    /// Partita names itself) in any case. Returns the partition count of
    /// every topic of the cluster.
    pub async fn ensure_topics(
        &self,
        kafka: &KafkaConfig,
        needed: &[String],
        own: &[String],
    ) -> Result<TopicPartitions, TopicsError> {
        let topics = self.wait_for_cluster().await;
        let missing: Vec<String> = needed
            .iter()
            .filter(|t| !topics.contains_key(*t))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(topics);
        }
        if !kafka.create_topics {
            let required: Vec<String> = missing
                .iter()
                .filter(|t| !own.contains(t))
                .cloned()
                .collect();
            if !required.is_empty() {
                return Err(TopicsError::Missing(required));
            }
        }
        let (partitions, replication) = (kafka.new_topic_partitions, kafka.new_topic_replication);
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = self.client.create_topics(&new, &opts).await.map_err(|e| {
            TopicsError::Client(format!("cannot create topics {}: {e}", missing.join(", ")))
        })?;
        for r in results {
            match r {
                Ok(topic) => tracing::info!(
                    "created topic {topic} ({} partitions, replication {})",
                    kafka.new_topic_partitions,
                    kafka.new_topic_replication
                ),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(TopicsError::Create {
                        topic,
                        reason: code.to_string(),
                    });
                }
            }
        }
        // Creation is asynchronous on the broker: wait until the metadata
        // shows every topic.
        for _ in 0..150 {
            let topics = self.wait_for_cluster().await;
            if needed.iter().all(|t| topics.contains_key(t)) {
                return Ok(topics);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let topics = self.wait_for_cluster().await;
        let still: Vec<String> = needed
            .iter()
            .filter(|t| !topics.contains_key(*t))
            .cloned()
            .collect();
        Err(TopicsError::Client(format!(
            "created topics do not appear in the metadata: {}",
            still.join(", ")
        )))
    }
}

/// Creates `missing` (topic, partitions) as compacted topics and waits
/// until the metadata shows each with its partitions. `what` names them in
/// messages ("changelog", "control").
pub async fn create_compacted(
    kafka: &KafkaConfig,
    missing: &[(String, i32)],
    what: &str,
) -> Result<(), String> {
    let admin: AdminClient<LogContext> =
        AdminClient::from_config_and_context(&admin_config(kafka), LogContext::new("admin"))
            .map_err(|e| format!("cannot create the Kafka admin client: {e}"))?;
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|(t, n)| {
            NewTopic::new(t, *n, TopicReplication::Fixed(kafka.new_topic_replication))
                .set("cleanup.policy", "compact")
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|e| format!("cannot create the {what} topics: {e}"))?;
    for r in results {
        match r {
            Ok(t) => tracing::info!("created {what} topic {t} (compacted)"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("cannot create {what} topic {t}: {code}")),
        }
    }
    // Creation is asynchronous on the broker: wait until the metadata
    // shows each topic with its partitions.
    let admin = Arc::new(admin);
    for (topic, partitions) in missing.iter().cloned() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (client, t) = (admin.clone(), topic.clone());
            let seen = tokio::task::spawn_blocking(move || {
                client
                    .inner()
                    .fetch_metadata(Some(&t), Duration::from_secs(5))
                    .map(|md| {
                        md.topics()
                            .iter()
                            .find(|x| x.name() == t && x.error().is_none())
                            .map_or(0, |x| x.partitions().len())
                    })
                    .unwrap_or(0)
            })
            .await
            .unwrap_or(0);
            if seen == usize::try_from(partitions).unwrap_or(0) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the created {what} topic {topic} does not appear in the metadata"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    fn kafka(bootstrap: String, create: bool) -> KafkaConfig {
        KafkaConfig {
            create_topics: create,
            new_topic_partitions: 3,
            ..KafkaConfig::new(bootstrap, "g")
        }
    }

    #[test]
    fn missing_topics_are_listed_in_one_error() {
        let e = TopicsError::Missing(vec!["a".into(), "b".into()]);
        assert_eq!(
            e.to_string(),
            "missing topics: a, b (create them, or set create_topics = true in [kafka])"
        );
        let e = TopicsError::Missing(vec!["a".into()]);
        assert_eq!(
            e.to_string(),
            "missing topic: a (create it, or set create_topics = true in [kafka])"
        );
    }

    // Creation is not covered here: librdkafka's mock cluster has no
    // CreateTopics API. The broker tests create topics through it.
    #[tokio::test]
    async fn missing_topics_are_an_error_without_create_topics() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("present", 2, 1).unwrap();
        let needed = vec!["present".to_string(), "absent".to_string()];

        let k = kafka(cluster.bootstrap_servers(), false);
        let err = Admin::new(&k)
            .unwrap()
            .ensure_topics(&k, &needed, &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TopicsError::Missing(m) if m == &["absent".to_string()]),
            "{err}"
        );
    }
}
