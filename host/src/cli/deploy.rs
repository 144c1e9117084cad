//! `partita deploy`: publishes a stage's processor to the pipeline's
//! control topic, which every host running the pipeline follows
//! (docs/DEPLOY.md), and lists what is deployed and which host runs what.
//!
//! Exit status: 0 when every host that reported took the version (or for
//! `--list`), 1 when one refused it or none answered within `--wait`, 2 on
//! bad arguments or an invalid pipeline file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::Pipeline;
use crate::deploy::{self, ControlReader, ControlState, ControlWriter, Deployment, Role};

/// Hosts whose last report is older than this are listed as not seen.
const STALE_AFTER: Duration = Duration::from_secs(120);

/// Arguments of `partita deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The pipeline file (its `[kafka]` settings and stages).
    pub pipeline: PathBuf,
    /// The stage to deploy to.
    #[arg(long, required_unless_present_any = ["list", "status"])]
    pub stage: Option<String>,
    /// The component to deploy.
    #[arg(long, value_name = "FILE.wasm", conflicts_with_all = ["version", "list", "status", "promote", "withdraw"])]
    pub processor: Option<PathBuf>,
    /// Deploy a version already in the control topic again (a content
    /// hash, or its first 8 or more hex digits): how to roll back.
    #[arg(long, value_name = "HASH", conflicts_with_all = ["list", "status", "promote", "withdraw"])]
    pub version: Option<String>,
    /// Which processor of the stage the component becomes: `live`, or
    /// `candidate` (run beside the live one on the same records, its
    /// outputs to shadow topics and compared).
    #[arg(long = "as", value_name = "ROLE", default_value = "live")]
    pub role: Role,
    /// Make the stage's candidate its live processor on every host (it
    /// continues with the live state), and withdraw it as candidate.
    #[arg(long, conflicts_with_all = ["list", "status", "withdraw"])]
    pub promote: bool,
    /// Stop running the stage's candidate.
    #[arg(long, conflicts_with_all = ["list", "status"])]
    pub withdraw: bool,
    /// List each stage's deployments and which host runs which version.
    #[arg(long, conflicts_with = "status")]
    pub list: bool,
    /// Print each candidate's comparison with the live processor, per host.
    #[arg(long)]
    pub status: bool,
    /// Seconds to wait for every host's answer (0: do not wait).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub wait: u64,
}

/// Runs `partita deploy`.
pub fn main(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match Pipeline::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let kafka = &pipeline.kafka;
    let stage = args.stage.as_deref().unwrap_or_default();
    let report_only = args.list || args.status;
    if !report_only && !pipeline.stages.iter().any(|s| s.name == stage) {
        let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: --stage {stage}: {} has no such stage (its stages: {})",
            args.pipeline.display(),
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    }
    let changes_candidate = args.promote || args.withdraw;
    if !report_only && !changes_candidate && args.processor.is_none() && args.version.is_none() {
        eprintln!("error: give --processor FILE.wasm or --version HASH (or --promote, --withdraw)");
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(deploy::ensure_control_topic(kafka))
        .map_err(|e| anyhow::anyhow!("preparing the control topic: {e}"))?;
    let mut reader = ControlReader::new(kafka)?;
    let mut state = ControlState::new();
    reader.catch_up(&mut state)?;
    if args.list {
        print!("{}", list(&state, deploy::now_ms()));
        return Ok(ExitCode::SUCCESS);
    }
    if args.status {
        print!("{}", status(&state, deploy::now_ms()));
        return Ok(ExitCode::SUCCESS);
    }
    let writer = ControlWriter::new(kafka)?;
    let d = if changes_candidate {
        let Some(candidate) = state.current(stage, Role::Candidate).cloned() else {
            eprintln!("error: stage \"{stage}\" has no candidate (see --list)");
            return Ok(ExitCode::from(2));
        };
        let withdrawn = Deployment {
            role: Role::Candidate,
            hash: None,
            by: deployer(),
            at_ms: deploy::now_ms(),
            ..candidate.clone()
        };
        if args.promote {
            // Its chunks are in the topic already: only the deployment.
            let live = Deployment {
                role: Role::Live,
                hash: candidate.hash.clone(),
                ..withdrawn.clone()
            };
            writer.deployment(&live)?;
            writer.deployment(&withdrawn)?;
            writer.flush()?;
            println!(
                "promoted the candidate {} of stage \"{stage}\" to live",
                short(live.hash.as_deref().unwrap_or_default())
            );
            live
        } else {
            writer.deployment(&withdrawn)?;
            writer.flush()?;
            println!("withdrew the candidate of stage \"{stage}\"");
            withdrawn
        }
    } else {
        let (bytes, source) = match (&args.processor, &args.version) {
            (Some(file), None) => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let name = file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into(),
                );
                (bytes, name)
            }
            (None, Some(version)) => {
                let Some(d) = state.find(stage, version) else {
                    eprintln!(
                        "error: --version {version}: no deployment of stage \"{stage}\" has a hash \
                         starting with it (8 hex digits at least; see --list)"
                    );
                    return Ok(ExitCode::from(2));
                };
                let bytes = state.component(d)?;
                (bytes, d.source.clone())
            }
            // clap refuses both; neither was refused above.
            _ => unreachable!("--processor and --version are exclusive"),
        };
        let d = writer.deploy(stage, args.role, &bytes, &source, &deployer())?;
        println!(
            "deployed {source} to stage \"{stage}\" as {}: version {} ({} bytes in {} chunks)",
            d.role.as_str(),
            short(d.hash.as_deref().unwrap_or_default()),
            d.size,
            d.chunks
        );
        d
    };
    if args.wait == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = wait_for_hosts(&mut reader, &mut state, &d, Duration::from_secs(args.wait))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Waits until every host that reported on the stage lately runs `d`'s
/// version or refused it; prints each answer. True when all took it.
fn wait_for_hosts(
    reader: &mut ControlReader,
    state: &mut ControlState,
    d: &Deployment,
    wait: Duration,
) -> anyhow::Result<bool> {
    let hash = d.hash.clone().unwrap_or_default();
    let shown = if hash.is_empty() {
        "no candidate"
    } else {
        short(&hash)
    };
    let deadline = Instant::now() + wait;
    loop {
        reader.poll(state, Duration::from_millis(250))?;
        let now = deploy::now_ms();
        let hosts: Vec<_> = state
            .reports()
            .filter(|r| r.stage == d.stage && now - r.at_ms < STALE_AFTER.as_millis() as i64)
            .collect();
        let runs = |r: &deploy::HostReport| match d.role {
            Role::Live => r.live == hash,
            Role::Candidate => r.candidate == d.hash,
        };
        let refused = |r: &deploy::HostReport| {
            !hash.is_empty() && r.refused.as_ref().is_some_and(|x| x.hash == hash)
        };
        let answered = hosts.iter().all(|r| runs(r) || refused(r));
        if (answered && !hosts.is_empty()) || Instant::now() >= deadline {
            if hosts.is_empty() {
                println!(
                    "no host has reported on stage \"{}\" in the last {} s",
                    d.stage,
                    STALE_AFTER.as_secs()
                );
                return Ok(false);
            }
            let mut all = true;
            for r in hosts {
                if runs(r) {
                    println!("  {}: runs {shown}", r.host);
                } else if let Some(x) = r.refused.as_ref().filter(|x| x.hash == hash) {
                    all = false;
                    println!("  {}: refused it ({}): {}", r.host, x.reason, x.message);
                } else {
                    all = false;
                    println!("  {}: no answer yet (runs {})", r.host, short(&r.live));
                }
            }
            return Ok(all);
        }
    }
}

/// `--list`: per stage, its deployments (newest first) and its hosts.
pub fn list(state: &ControlState, now_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut stages: Vec<&str> = state
        .deployments()
        .iter()
        .map(|d| d.stage.as_str())
        .collect();
    stages.extend(state.reports().map(|r| r.stage.as_str()));
    stages.sort_unstable();
    stages.dedup();
    if stages.is_empty() {
        out.push_str("nothing deployed yet\n");
    }
    for stage in stages {
        let _ = writeln!(out, "stage \"{stage}\"");
        for role in [Role::Live, Role::Candidate] {
            let current = state.current(stage, role);
            let _ = writeln!(
                out,
                "  {:<9}  {}",
                role.as_str(),
                current.map_or("-".to_string(), |d| describe(d, now_ms))
            );
        }
        let _ = writeln!(out, "  history (newest first):");
        for d in state
            .deployments()
            .iter()
            .rev()
            .filter(|d| d.stage == stage)
        {
            let _ = writeln!(out, "    {:<9}  {}", d.role.as_str(), describe(d, now_ms));
        }
        let _ = writeln!(out, "  hosts:");
        for r in state.reports().filter(|r| r.stage == stage) {
            let age = now_ms.saturating_sub(r.at_ms) / 1000;
            let seen = if age * 1000 > STALE_AFTER.as_millis() as i64 {
                format!("not seen for {age} s")
            } else {
                format!("{age} s ago")
            };
            let candidate = r
                .candidate
                .as_deref()
                .map_or(String::new(), |c| format!(", candidate {}", short(c)));
            let refused = r.refused.as_ref().map_or(String::new(), |x| {
                format!(", refused {} ({}: {})", short(&x.hash), x.reason, x.message)
            });
            let _ = writeln!(
                out,
                "    {}: live {}{candidate}{refused} ({seen})",
                r.host,
                short(&r.live)
            );
        }
    }
    out
}

/// `--status`: per stage with a candidate, its comparison with the live
/// processor on each host that reported lately, and over them all.
pub fn status(state: &ControlState, now_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut stages: Vec<&str> = state.reports().map(|r| r.stage.as_str()).collect();
    stages.sort_unstable();
    stages.dedup();
    for stage in stages {
        let Some(candidate) = state.current(stage, Role::Candidate) else {
            continue;
        };
        let hash = candidate.hash.as_deref().unwrap_or_default();
        let _ = writeln!(
            out,
            "stage \"{stage}\": candidate {} ({})",
            short(hash),
            candidate.source
        );
        let mut all = deploy::ShadowCounts::default();
        for r in state.reports().filter(|r| r.stage == stage) {
            let fresh = now_ms.saturating_sub(r.at_ms) <= STALE_AFTER.as_millis() as i64;
            let (Some(c), true) = (&r.shadow, fresh) else {
                continue;
            };
            if r.candidate.as_deref() != Some(hash) {
                let _ = writeln!(out, "  {}: does not run it", r.host);
                continue;
            }
            let _ = writeln!(out, "  {}: {}", r.host, counts(c));
            all.same += c.same;
            all.differ += c.differ;
            all.candidate_failed += c.candidate_failed;
            all.live_failed += c.live_failed;
            all.skipped += c.skipped;
        }
        let _ = writeln!(out, "  all hosts: {}", counts(&all));
    }
    if out.is_empty() {
        out.push_str("no stage has a candidate\n");
    }
    out
}

fn counts(c: &deploy::ShadowCounts) -> String {
    format!(
        "same {}, differ {}, candidate failed {}, live failed {}, skipped {}",
        c.same, c.differ, c.candidate_failed, c.live_failed, c.skipped
    )
}

fn describe(d: &Deployment, now_ms: i64) -> String {
    match &d.hash {
        None => format!("withdrawn by {} {}", d.by, ago(d.at_ms, now_ms)),
        Some(h) => format!(
            "{} {} ({} bytes) by {} {}",
            short(h),
            d.source,
            d.size,
            d.by,
            ago(d.at_ms, now_ms)
        ),
    }
}

fn ago(at_ms: i64, now_ms: i64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

/// The first 12 hex digits of a hash, as versions are shown.
fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// `user@host` of whoever runs the command.
fn deployer() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = deploy::default_host_name();
    let machine = host.rsplit_once(':').map_or(host.as_str(), |(m, _)| m);
    format!("{user}@{machine}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{ControlRecord, HostReport, Refused};

    fn deployment(hash: Option<&str>, at_ms: i64) -> Deployment {
        Deployment {
            stage: "parse".into(),
            role: Role::Live,
            hash: hash.map(String::from),
            size: 10,
            chunks: 1,
            by: "ana@build-1".into(),
            at_ms,
            source: "parse.wasm".into(),
        }
    }

    fn report(host: &str, live: &str, at_ms: i64, refused: Option<Refused>) -> ControlRecord {
        ControlRecord::Report(HostReport {
            host: host.into(),
            stage: "parse".into(),
            live: live.into(),
            candidate: None,
            refused,
            shadow: None,
            at_ms,
        })
    }

    #[test]
    fn the_list_shows_versions_history_and_hosts_with_their_age() {
        let now = 1_000_000_000;
        let mut state = ControlState::new();
        assert_eq!(list(&state, now), "nothing deployed yet\n");
        let (v1, v2) = ("1".repeat(64), "2".repeat(64));
        state.apply(ControlRecord::Deployment(deployment(
            Some(&v1),
            now - 3_600_000,
        )));
        state.apply(ControlRecord::Deployment(deployment(
            Some(&v2),
            now - 5_000,
        )));
        state.apply(report("a", &v2, now - 2_000, None));
        let refused = Refused {
            hash: v2.clone(),
            reason: "init".into(),
            message: "bad config".into(),
        };
        state.apply(report("b", &v1, now - 600_000, Some(refused)));
        let shown = list(&state, now);
        assert_eq!(
            shown,
            "stage \"parse\"\n\
             \x20 live       222222222222 parse.wasm (10 bytes) by ana@build-1 5 s ago\n\
             \x20 candidate  -\n\
             \x20 history (newest first):\n\
             \x20   live       222222222222 parse.wasm (10 bytes) by ana@build-1 5 s ago\n\
             \x20   live       111111111111 parse.wasm (10 bytes) by ana@build-1 60 min ago\n\
             \x20 hosts:\n\
             \x20   a: live 222222222222 (2 s ago)\n\
             \x20   b: live 111111111111, refused 222222222222 (init: bad config) (not seen for 600 s)\n"
        );
    }

    #[test]
    fn the_status_sums_the_comparison_of_every_host_running_the_candidate() {
        let now = 1_000_000_000;
        let mut state = ControlState::new();
        assert_eq!(status(&state, now), "no stage has a candidate\n");
        let (live, candidate) = ("1".repeat(64), "2".repeat(64));
        state.apply(ControlRecord::Deployment(Deployment {
            role: Role::Candidate,
            ..deployment(Some(&candidate), now - 5_000)
        }));
        let counts = |same, differ| deploy::ShadowCounts {
            same,
            differ,
            ..Default::default()
        };
        for (host, runs, c) in [
            ("a", Some(&candidate), counts(10, 2)),
            ("b", Some(&candidate), counts(5, 1)),
            ("c", None, counts(0, 0)),
        ] {
            state.apply(ControlRecord::Report(HostReport {
                host: host.into(),
                stage: "parse".into(),
                live: live.clone(),
                candidate: runs.cloned(),
                refused: None,
                shadow: Some(c),
                at_ms: now - 1_000,
            }));
        }
        assert_eq!(
            status(&state, now),
            "stage \"parse\": candidate 222222222222 (parse.wasm)\n\
             \x20 a: same 10, differ 2, candidate failed 0, live failed 0, skipped 0\n\
             \x20 b: same 5, differ 1, candidate failed 0, live failed 0, skipped 0\n\
             \x20 c: does not run it\n\
             \x20 all hosts: same 15, differ 3, candidate failed 0, live failed 0, skipped 0\n"
        );
    }
}
