//! What the cluster says about a stage's consumer group, read from outside
//! the group: the end offsets of every input partition, the group's
//! committed offsets, and its members with the partitions each was
//! assigned (the way `kafka-consumer-groups --describe` and Burrow see a
//! group).
//!
//! [`GroupProbe`] is a consumer that never joins: it only asks
//! (ListOffsets, OffsetFetch, DescribeGroups), so probing does not disturb
//! the group it looks at.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;

use super::client::probe_config;
use crate::config::KafkaConfig;

/// How long one request of a probe may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One input partition as the group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset still in the log.
    pub start: i64,
    /// The end offset (high watermark): the offset the next record gets.
    pub end: i64,
    /// The group's committed offset, if it has one.
    pub committed: Option<i64>,
}

impl PartitionView {
    /// End offset minus the group's committed offset; without a commit,
    /// the whole log counts (the group starts from the earliest offset).
    pub fn lag(&self) -> i64 {
        let from = self.committed.unwrap_or(self.start).max(self.start);
        (self.end - from).max(0)
    }
}

/// A member of the group and what the coordinator assigned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member id the coordinator gave it.
    pub id: String,
    /// Its `client.id`.
    pub client_id: String,
    /// The host it connects from, as the coordinator saw it.
    pub host: String,
    /// Its assigned partitions, by topic.
    pub assigned: Vec<(String, i32)>,
}

/// The group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupView {
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty` or
    /// `Dead` (an empty string if the coordinator said nothing).
    pub state: String,
    /// Its members.
    pub members: Vec<Member>,
}

impl GroupView {
    /// True when the group is not rebalancing: its assignment is final.
    pub fn settled(&self) -> bool {
        matches!(self.state.as_str(), "Stable" | "Empty")
    }

    /// The member each (topic, partition) is assigned to.
    pub fn owners(&self) -> BTreeMap<(&str, i32), &Member> {
        let mut owners = BTreeMap::new();
        for m in &self.members {
            for (topic, partition) in &m.assigned {
                owners.insert((topic.as_str(), *partition), m);
            }
        }
        owners
    }
}

/// One look at a group: its input partitions and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// Every partition of the inputs, in topic then partition order.
    pub partitions: Vec<PartitionView>,
    /// The group, when the coordinator could describe it.
    pub group: Option<GroupView>,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The client could not be created.
    #[error("cannot create the group probe's client: {0}")]
    Client(#[source] KafkaError),
    /// An input topic is not known to the cluster.
    #[error("topic {0} is not known to the cluster")]
    UnknownTopic(String),
    /// A request failed (the cluster is unreachable, a timeout...).
    #[error("{what}: {source}")]
    Request {
        /// Which request.
        what: &'static str,
        /// What the client said.
        #[source]
        source: KafkaError,
    },
}

/// Failed describes, with none successful, after which a probe stops
/// asking (Tansu 0.6 closes the connection on DescribeGroups).
const DESCRIBE_TRIES: u32 = 3;

/// The probe's client context: librdkafka's messages at debug level only,
/// since the stage's own clients already report the cluster's troubles.
struct ProbeContext {
    group: String,
}

impl ClientContext for ProbeContext {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "librdkafka", "group probe {}: {fac}: {message}", self.group);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "group probe {}: {error}: {reason}", self.group);
    }
}

impl ConsumerContext for ProbeContext {}

/// Reads a group's offsets and members without joining it.
pub struct GroupProbe {
    consumer: BaseConsumer<ProbeContext>,
    group: String,
    /// Whether the coordinator has ever described the group, and the
    /// failures in a row before that.
    described: std::cell::Cell<(bool, u32)>,
}

impl GroupProbe {
    /// A probe of group `group` (this does not connect yet).
    pub fn new(kafka: &KafkaConfig, group: &str) -> Result<GroupProbe, ProbeError> {
        let context = ProbeContext {
            group: group.to_string(),
        };
        let consumer = BaseConsumer::from_config_and_context(&probe_config(kafka, group), context)
            .map_err(ProbeError::Client)?;
        Ok(GroupProbe {
            consumer,
            group: group.to_string(),
            described: std::cell::Cell::new((false, 0)),
        })
    }

    /// Looks at the group once: end offsets and committed offsets of every
    /// partition of `inputs`, and the group's members. A group the
    /// coordinator cannot describe gives `group: None` rather than an
    /// error (offsets still say how far behind it is).
    pub fn snapshot(&self, inputs: &[String]) -> Result<GroupSnapshot, ProbeError> {
        let request = |what| move |source| ProbeError::Request { what, source };
        let mut all = TopicPartitionList::new();
        for topic in inputs {
            let md = self
                .consumer
                .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
                .map_err(request("metadata"))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .ok_or_else(|| ProbeError::UnknownTopic(topic.clone()))?;
            for p in t.partitions() {
                all.add_partition(topic, p.id());
            }
        }
        let ends = self.list_offsets(&all, Offset::End)?;
        let starts = self.list_offsets(&all, Offset::Beginning)?;
        let committed = self
            .consumer
            .committed_offsets(all.clone(), REQUEST_TIMEOUT)
            .map_err(request("committed offsets"))?;
        let mut partitions = Vec::new();
        for e in all.elements() {
            let key = (e.topic().to_string(), e.partition());
            let end = ends.get(&key).copied().unwrap_or(0);
            let start = starts.get(&key).copied().unwrap_or(0).min(end);
            let committed =
                committed
                    .find_partition(e.topic(), e.partition())
                    .and_then(|c| match c.offset() {
                        Offset::Offset(o) if o >= 0 => Some(o),
                        _ => None,
                    });
            partitions.push(PartitionView {
                topic: key.0,
                partition: key.1,
                start,
                end,
                committed,
            });
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(GroupSnapshot {
            partitions,
            group: self.describe(),
        })
    }

    /// The offsets at `at` (the start or the end of the log) of every
    /// partition of `tpl`, in one request per leader.
    fn list_offsets(
        &self,
        tpl: &TopicPartitionList,
        at: Offset,
    ) -> Result<BTreeMap<(String, i32), i64>, ProbeError> {
        let mut query = TopicPartitionList::new();
        for e in tpl.elements() {
            // ListOffsets takes a timestamp: -1 means the end, -2 the start.
            query
                .add_partition_offset(e.topic(), e.partition(), at)
                .map_err(|source| ProbeError::Request {
                    what: "list offsets",
                    source,
                })?;
        }
        let found = self
            .consumer
            .offsets_for_times(query, REQUEST_TIMEOUT)
            .map_err(|source| ProbeError::Request {
                what: "list offsets",
                source,
            })?;
        let mut out = BTreeMap::new();
        for e in found.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        Ok(out)
    }

    /// The group's state and members, or `None` when the coordinator does
    /// not answer or does not know the group. A coordinator that has never
    /// described it after [`DESCRIBE_TRIES`] tries is not asked again.
    fn describe(&self) -> Option<GroupView> {
        let (ever, failures) = self.described.get();
        if !ever && failures >= DESCRIBE_TRIES {
            return None;
        }
        let list = match self
            .consumer
            .fetch_group_list(Some(&self.group), REQUEST_TIMEOUT)
        {
            Ok(list) => {
                self.described.set((true, 0));
                list
            }
            Err(e) => {
                tracing::debug!("describing group {}: {e}", self.group);
                self.described.set((ever, failures + 1));
                if !ever && failures + 1 == DESCRIBE_TRIES {
                    tracing::info!(
                        "group {}: the coordinator does not describe groups ({e}); partitions nobody \
                         processes are found by their committed offsets instead",
                        self.group
                    );
                }
                return None;
            }
        };
        let info = list.groups().iter().find(|g| g.name() == self.group)?;
        let members = info
            .members()
            .iter()
            .map(|m| Member {
                id: m.id().to_string(),
                client_id: m.client_id().to_string(),
                host: m.client_host().to_string(),
                assigned: m
                    .assignment()
                    .map(|a| {
                        parse_assignment(a).unwrap_or_else(|e| {
                            tracing::debug!(
                                "group {}: member {}: unreadable assignment: {e}",
                                self.group,
                                m.id()
                            );
                            Vec::new()
                        })
                    })
                    .unwrap_or_default(),
            })
            .collect();
        Some(GroupView {
            state: info.state().to_string(),
            members,
        })
    }
}

/// Why a member's assignment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct AssignmentError {
    what: &'static str,
    at: usize,
}

/// Reads the consumer protocol's assignment of one member (the bytes
/// DescribeGroups returns for a group of protocol type `consumer`):
/// `version: i16`, then `[topic: string(i16 length), [partition: i32]]`
/// with i32 array lengths, then user data, which is ignored.
pub fn parse_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>, AssignmentError> {
    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }
    impl Reader<'_> {
        fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], AssignmentError> {
            let at = self.at;
            let end = at
                .checked_add(n)
                .filter(|&e| e <= self.bytes.len())
                .ok_or(AssignmentError { what, at })?;
            self.at = end;
            Ok(&self.bytes[at..end])
        }
        fn i16(&mut self, what: &'static str) -> Result<i16, AssignmentError> {
            let b = self.take(2, what)?;
            Ok(i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self, what: &'static str) -> Result<i32, AssignmentError> {
            let b = self.take(4, what)?;
            Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn count(&mut self, what: &'static str) -> Result<usize, AssignmentError> {
            let at = self.at;
            let n = self.i32(what)?;
            // A null array (-1) is empty; no count may exceed what is left.
            let n = usize::try_from(n.max(0)).unwrap_or(0);
            if n > self.bytes.len() - self.at {
                return Err(AssignmentError {
                    what: "array longer than the assignment",
                    at,
                });
            }
            Ok(n)
        }
    }
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader { bytes, at: 0 };
    r.i16("version")?;
    let mut out = Vec::new();
    for _ in 0..r.count("topic count")? {
        let len = r.i16("topic name length")?;
        let at = r.at;
        let name = r.take(usize::try_from(len.max(0)).unwrap_or(0), "topic name")?;
        let topic = std::str::from_utf8(name)
            .map_err(|_| AssignmentError {
                what: "topic name is not UTF-8",
                at,
            })?
            .to_string();
        for _ in 0..r.count("partition count")? {
            out.push((topic.clone(), r.i32("partition")?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        // User data: none.
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    #[test]
    fn an_assignment_lists_every_topic_partition() {
        let bytes = assignment(&[("orders", &[0, 2]), ("refunds", &[1])]);
        assert_eq!(
            parse_assignment(&bytes).unwrap(),
            vec![
                ("orders".to_string(), 0),
                ("orders".to_string(), 2),
                ("refunds".to_string(), 1)
            ]
        );
        assert_eq!(parse_assignment(&assignment(&[])).unwrap(), vec![]);
        assert_eq!(parse_assignment(&[]).unwrap(), vec![], "no assignment yet");
    }

    #[test]
    fn a_truncated_or_oversized_assignment_names_the_byte() {
        let bytes = assignment(&[("orders", &[0, 2])]);
        let cut = &bytes[..bytes.len() - 7];
        assert_eq!(
            parse_assignment(cut).unwrap_err().to_string(),
            "partition at byte 22"
        );
        let mut huge = bytes.clone();
        huge[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            parse_assignment(&huge).unwrap_err().to_string(),
            "array longer than the assignment at byte 2"
        );
    }

    #[test]
    fn lag_counts_from_the_commit_or_the_start_of_the_log() {
        let view = |start, end, committed| PartitionView {
            topic: "t".into(),
            partition: 0,
            start,
            end,
            committed,
        };
        assert_eq!(view(0, 100, Some(40)).lag(), 60);
        assert_eq!(view(10, 100, None).lag(), 90, "no commit: all of the log");
        assert_eq!(view(50, 100, Some(20)).lag(), 50, "commit before the start");
        assert_eq!(view(0, 100, Some(100)).lag(), 0);
    }

    #[test]
    fn owners_map_each_partition_to_its_member() {
        let g = GroupView {
            state: "Stable".into(),
            members: vec![Member {
                id: "m1".into(),
                client_id: "partita-pass".into(),
                host: "/127.0.0.1".into(),
                assigned: vec![("t".into(), 1)],
            }],
        };
        assert!(g.settled());
        assert_eq!(g.owners().get(&("t", 1)).map(|m| m.id.as_str()), Some("m1"));
        assert!(!g.owners().contains_key(&("t", 0)));
    }
}
