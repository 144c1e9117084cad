//! A stage's group health: honest lag, a group that leaves partitions
//! without an owner, and partitions that stop advancing.
//!
//! Every `lag_interval`, a thread per stage looks at the stage's consumer
//! group from outside ([`GroupProbe`]): the end and committed offset of
//! every input partition, and the members with their assignments. From
//! that it
//!
//! - reports the group's lag on every input partition (end minus committed,
//!   as `kafka-consumer-groups` does), marked owned by this host or not;
//! - finds **unowned partitions**: in a settled group, partitions with lag
//!   that neither this host nor any member of the group holds (with a
//!   coordinator that does not describe groups, as Tansu: partitions with
//!   lag, not held here, whose committed offset has not moved for
//!   `rejoin_after`). A host that
//!   sees them warns, and once they have stayed so for `rejoin_after` it
//!   leaves and rejoins the group with a new member id (asking again with a
//!   doubling wait, up to [`MAX_REJOIN_BACKOFF`], and warning at each
//!   check, while they stay unowned);
//! - finds **stalled partitions**: owned here, with lag, whose next offset
//!   has not moved for `stalled_after`.
//!
//! [`Health`] is the pure judgement (time passed in); [`watch`] is the
//! thread that probes, judges, logs and fills the metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::StageShared;
use crate::kafka::group::{GroupProbe, GroupSnapshot, GroupView};
use crate::metrics::{GroupStatus, LagRow};

/// The longest wait between two rejoins while partitions stay unowned.
pub(crate) const MAX_REJOIN_BACKOFF: Duration = Duration::from_secs(600);

/// How long the health judgement waits before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthSettings {
    /// Unowned partitions for this long make the host rejoin the group.
    pub rejoin_after: Duration,
    /// An owned partition with lag whose position has not moved for this
    /// long is reported stalled.
    pub stalled_after: Duration,
}

/// An owned partition that does not advance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stalled {
    /// The input topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset it is stuck at (the next one to process).
    pub offset: i64,
    /// Records behind it.
    pub lag: i64,
    /// Since when it has not moved.
    pub for_: Duration,
}

/// What one look at the group found and asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Partitions with lag that nobody owns in a settled group.
    pub unowned: Vec<(String, i32, i64)>,
    /// Stalled partitions owned here.
    pub stalled: Vec<Stalled>,
    /// Warnings to log now.
    pub warnings: Vec<String>,
    /// Things that got better, to log at info level.
    pub recovered: Vec<String>,
    /// Leave and rejoin the group now.
    pub rejoin: bool,
}

/// Unowned partitions seen over consecutive looks.
struct Episode {
    since: Instant,
    sightings: u32,
    next_rejoin: Instant,
    backoff: Duration,
}

/// An owned partition's progress.
struct Progress {
    offset: i64,
    since: Instant,
    warned_at: Option<Instant>,
}

/// The health judgement of one stage across looks at its group.
pub(crate) struct Health {
    stage: String,
    group: String,
    settings: HealthSettings,
    episode: Option<Episode>,
    progress: BTreeMap<(String, i32), Progress>,
    /// Each partition's committed offset and since when it has not moved.
    commits: BTreeMap<(String, i32), (Option<i64>, Instant)>,
}

impl Health {
    /// The judgement of stage `stage`, group `group`.
    pub fn new(stage: &str, group: &str, settings: HealthSettings) -> Self {
        Health {
            stage: stage.to_string(),
            group: group.to_string(),
            settings,
            episode: None,
            progress: BTreeMap::new(),
            commits: BTreeMap::new(),
        }
    }

    /// Judges one snapshot taken at `now`. `owned_here` are the partitions
    /// this host's workers hold; `position` gives an owned partition's next
    /// offset to process, if its worker knows it.
    pub fn observe(
        &mut self,
        now: Instant,
        snapshot: &GroupSnapshot,
        owned_here: &BTreeSet<i32>,
        position: impl Fn(&str, i32) -> Option<i64>,
    ) -> Verdict {
        let mut verdict = Verdict::default();
        self.judge_owners(now, snapshot, owned_here, &mut verdict);
        self.judge_progress(now, snapshot, owned_here, position, &mut verdict);
        verdict
    }

    fn judge_owners(
        &mut self,
        now: Instant,
        snapshot: &GroupSnapshot,
        owned_here: &BTreeSet<i32>,
        verdict: &mut Verdict,
    ) {
        self.note_commits(now, snapshot);
        let candidates = snapshot
            .partitions
            .iter()
            .filter(|p| p.lag() > 0)
            .filter(|p| !owned_here.contains(&p.partition));
        verdict.unowned = match &snapshot.group {
            // Mid-rebalance, nobody's assignment is final: keep what was
            // seen, decide nothing.
            Some(group) if !group.settled() => return,
            Some(group) => {
                let owners = group.owners();
                candidates
                    .filter(|p| !owners.contains_key(&(p.topic.as_str(), p.partition)))
                    .map(|p| (p.topic.clone(), p.partition, p.lag()))
                    .collect()
            }
            // A coordinator that does not describe its groups: a partition
            // whose commit has not moved for `rejoin_after` while it has
            // lag is processed by nobody, whoever may hold it.
            None => candidates
                .filter(|p| {
                    self.commits
                        .get(&(p.topic.clone(), p.partition))
                        .is_some_and(|(_, since)| {
                            now.duration_since(*since) >= self.settings.rejoin_after
                        })
                })
                .map(|p| (p.topic.clone(), p.partition, p.lag()))
                .collect(),
        };
        if verdict.unowned.is_empty() {
            if self.episode.take().is_some_and(|e| e.sightings >= 2) {
                verdict.recovered.push(format!(
                    "stage \"{}\": every partition with lag has an owner again (group {})",
                    self.stage, self.group
                ));
            }
            return;
        }
        let settings = self.settings;
        let episode = self.episode.get_or_insert_with(|| Episode {
            since: now,
            sightings: 0,
            next_rejoin: now + settings.rejoin_after,
            backoff: settings.rejoin_after,
        });
        episode.sightings += 1;
        // One sighting may be a race between the offsets and the
        // describe; two in a row are not.
        if episode.sightings < 2 {
            return;
        }
        let lag: i64 = verdict.unowned.iter().map(|u| u.2).sum();
        let mut message = format!(
            "stage \"{}\": group {} leaves {} with lag {lag} unowned for {}s: this host owns {}; members: {}",
            self.stage,
            self.group,
            list_partitions(&verdict.unowned),
            now.duration_since(episode.since).as_secs(),
            if owned_here.is_empty() {
                "nothing".to_string()
            } else {
                format!("{owned_here:?}")
            },
            snapshot.group.as_ref().map_or_else(
                || "unknown (the coordinator does not describe groups; their commits have not moved)"
                    .to_string(),
                describe_members
            ),
        );
        if now >= episode.next_rejoin {
            verdict.rejoin = true;
            message.push_str("; leaving and rejoining the group");
            episode.next_rejoin = now + episode.backoff;
            episode.backoff = (episode.backoff * 2).min(MAX_REJOIN_BACKOFF);
        } else {
            let wait = episode.next_rejoin.duration_since(now).as_secs();
            message.push_str(&format!("; rejoining in {wait}s if it stays so"));
        }
        verdict.warnings.push(message);
    }

    /// Remembers since when each partition's committed offset is what it
    /// is.
    fn note_commits(&mut self, now: Instant, snapshot: &GroupSnapshot) {
        for p in &snapshot.partitions {
            let key = (p.topic.clone(), p.partition);
            match self.commits.get_mut(&key) {
                Some((committed, _)) if *committed == p.committed => {}
                Some(entry) => *entry = (p.committed, now),
                None => {
                    self.commits.insert(key, (p.committed, now));
                }
            }
        }
    }

    fn judge_progress(
        &mut self,
        now: Instant,
        snapshot: &GroupSnapshot,
        owned_here: &BTreeSet<i32>,
        position: impl Fn(&str, i32) -> Option<i64>,
        verdict: &mut Verdict,
    ) {
        let mut seen = BTreeSet::new();
        for p in &snapshot.partitions {
            if !owned_here.contains(&p.partition) {
                continue;
            }
            let Some(at) = position(&p.topic, p.partition).or(p.committed) else {
                continue;
            };
            let lag = p.end - at;
            if lag <= 0 {
                continue;
            }
            let key = (p.topic.clone(), p.partition);
            seen.insert(key.clone());
            let progress = self.progress.entry(key).or_insert(Progress {
                offset: at,
                since: now,
                warned_at: None,
            });
            if progress.offset != at {
                if progress.warned_at.is_some() {
                    verdict.recovered.push(format!(
                        "stage \"{}\": {}/{} advanced again, to offset {at}",
                        self.stage, p.topic, p.partition
                    ));
                }
                *progress = Progress {
                    offset: at,
                    since: now,
                    warned_at: None,
                };
                continue;
            }
            let still = now.duration_since(progress.since);
            if still < self.settings.stalled_after {
                continue;
            }
            verdict.stalled.push(Stalled {
                topic: p.topic.clone(),
                partition: p.partition,
                offset: at,
                lag,
                for_: still,
            });
            let due = progress
                .warned_at
                .is_none_or(|w| now.duration_since(w) >= self.settings.stalled_after);
            if due {
                progress.warned_at = Some(now);
                verdict.warnings.push(format!(
                    "stage \"{}\": partition {}/{} has not advanced from offset {at} for {}s with lag {lag}; \
                     likely causes: a record larger than the consumer's fetch limits or the broker's \
                     fetch answer (raise fetch.max.bytes / max.partition.fetch.bytes in [kafka.consumer], \
                     or the broker's limits), an unreachable partition leader, or a processor stuck \
                     on a batch",
                    self.stage, p.topic, p.partition, still.as_secs()
                ));
            }
        }
        self.progress.retain(|k, _| seen.contains(k));
    }
}

fn list_partitions(partitions: &[(String, i32, i64)]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p, _) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let parts: Vec<String> = by_topic
        .iter()
        .map(|(t, ps)| format!("{t} partitions {ps:?}"))
        .collect();
    parts.join(", ")
}

fn describe_members(group: &GroupView) -> String {
    if group.members.is_empty() {
        return "none".to_string();
    }
    let parts: Vec<String> = group
        .members
        .iter()
        .map(|m| {
            let mut owned: Vec<String> =
                m.assigned.iter().map(|(t, p)| format!("{t}/{p}")).collect();
            if owned.is_empty() {
                owned.push("nothing".into());
            }
            format!(
                "{} ({} at {}) owns {}",
                m.id,
                m.client_id,
                m.host,
                owned.join(" ")
            )
        })
        .collect();
    parts.join("; ")
}

/// The status the metrics show, from a snapshot and its verdict.
fn status(snapshot: &GroupSnapshot, owned_here: &BTreeSet<i32>, verdict: &Verdict) -> GroupStatus {
    let stalled: BTreeSet<(&str, i32)> = verdict
        .stalled
        .iter()
        .map(|s| (s.topic.as_str(), s.partition))
        .collect();
    GroupStatus {
        rows: snapshot
            .partitions
            .iter()
            .map(|p| LagRow {
                topic: p.topic.clone(),
                partition: p.partition,
                lag: p.lag(),
                owned: owned_here.contains(&p.partition),
                stalled: stalled.contains(&(p.topic.as_str(), p.partition)),
            })
            .collect(),
        unowned: verdict.unowned.len(),
    }
}

/// Probes stage `shared`'s group every `lag_interval` until the run
/// stops: fills the stage's group metrics, logs warnings, and asks the
/// stage's consumer to rejoin when its verdict says so.
pub(crate) fn watch(shared: Arc<StageShared>) {
    let stage = shared.config.name.clone();
    let group = shared.kafka.group_id(&stage);
    let probe = match GroupProbe::new(&shared.kafka, &group) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("stage \"{stage}\": group lag and health are not watched: {e}");
            return;
        }
    };
    let mut health = Health::new(
        &stage,
        &group,
        HealthSettings {
            rejoin_after: shared.kafka.rejoin_after,
            stalled_after: shared.kafka.stalled_after,
        },
    );
    let mut failing = false;
    while !shared.control.stopping() {
        match probe.snapshot(&shared.config.inputs) {
            Ok(snapshot) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("stage \"{stage}\": group {group} can be probed again");
                }
                let owned_here = shared.all_metrics.owned_partitions(&stage);
                let metrics = &shared.all_metrics;
                let position = |topic: &str, partition| {
                    let index = shared.config.inputs.iter().position(|t| t == topic)?;
                    metrics.partition(&stage, partition).position(index)
                };
                let verdict = health.observe(Instant::now(), &snapshot, &owned_here, position);
                for w in &verdict.warnings {
                    tracing::warn!("{w}");
                }
                for r in &verdict.recovered {
                    tracing::info!("{r}");
                }
                shared
                    .metrics
                    .set_group_status(status(&snapshot, &owned_here, &verdict));
                if verdict.rejoin {
                    shared.metrics.rejoins.fetch_add(1, Relaxed);
                    shared.rejoin.store(true, Relaxed);
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        "stage \"{stage}\": cannot read the lag of group {group}: {e}; trying again every {}s",
                        shared.kafka.lag_interval.as_secs_f64()
                    );
                }
                shared.metrics.clear_group_status();
            }
        }
        let until = Instant::now() + shared.kafka.lag_interval;
        while Instant::now() < until && !shared.control.stopping() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests;
