//! `partita run`: runs a pipeline file against Kafka until SIGINT or
//! SIGTERM (docs/PIPELINE.md). SIGHUP reloads every stage's processor.
//!
//! Exit status: 0 after a clean stop, 1 when a stage stopped the run, 2
//! when the pipeline could not start, 130 on a second signal at least a
//! second after the first (exit at once, nothing more committed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Pipeline;
use crate::pipeline::{self, RunOptions};

/// Arguments of `partita run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics, for example
    /// 127.0.0.1:9898.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// This host's name in its reports on deployments (`partita deploy
    /// --list`); the default is the machine's host name and the process id.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
}

/// Runs `partita run`.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let pipeline = match Pipeline::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("partita-runtime")
        .enable_all()
        .build()?;
    let options = RunOptions {
        metrics_addr: args.metrics_addr,
        cache_dir: super::compiled_cache_dir(),
        host_name: args.host_name,
        ..RunOptions::default()
    };
    let reload = options.reload.clone();
    let result = runtime.block_on(async move {
        tokio::spawn(signals::reload_on_hangup(reload));
        let shutdown = async {
            let first = signals::next().await;
            tracing::info!("{first}: stopping (a second signal exits at once)");
            let first_at = std::time::Instant::now();
            tokio::spawn(async move {
                loop {
                    let second = signals::next().await;
                    // `timeout` and some supervisors signal the process and
                    // its group: the same stop request arrives twice at once.
                    if first_at.elapsed() < std::time::Duration::from_secs(1) {
                        continue;
                    }
                    eprintln!("{second} again: exiting at once; nothing more is committed");
                    std::process::exit(130);
                }
            });
        };
        pipeline::run(pipeline, options, shutdown).await
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            match &e {
                // One problem per line, each naming file, line and key.
                pipeline::RunError::Invalid(problems) => eprintln!("{problems}"),
                other => eprintln!("error: {}", other.chain()),
            }
            Ok(ExitCode::from(exit_status(&e)))
        }
    }
}

/// The exit status of a run that ended with `error`: 2 when starting
/// again would meet the same problem (an invalid pipeline, missing topics,
/// a port in use), 1 when it failed while running or the cluster failed a
/// setup step (a supervisor may start it again).
fn exit_status(error: &pipeline::RunError) -> u8 {
    if error.while_running() || error.retryable() {
        1
    } else {
        2
    }
}

/// Waiting for SIGINT or SIGTERM.
mod signals {
    /// The name of the next SIGINT or SIGTERM received.
    #[cfg(unix)]
    pub async fn next() -> &'static str {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }

    /// The name of the next Ctrl-C received.
    #[cfg(not(unix))]
    pub async fn next() -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }

    /// Reloads every stage's processor on each SIGHUP.
    #[cfg(unix)]
    pub async fn reload_on_hangup(trigger: crate::pipeline::reload::ReloadTrigger) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot listen to SIGHUP ({e}): processors reload on file changes only"
                );
                return;
            }
        };
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading every stage's processor");
            trigger.reload_all();
        }
    }

    /// No SIGHUP here: processors reload on file changes only.
    #[cfg(not(unix))]
    pub async fn reload_on_hangup(_trigger: crate::pipeline::reload::ReloadTrigger) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{RunError, SetupError};

    #[test]
    fn only_what_would_fail_again_exits_2() {
        let missing = RunError::Setup(SetupError {
            what: "missing topic: in".into(),
            retryable: false,
            source: None,
        });
        assert_eq!(exit_status(&missing), 2);
        let unreachable = RunError::Setup(SetupError {
            what: "the changelog topics are not ready".into(),
            retryable: true,
            source: None,
        });
        assert_eq!(exit_status(&unreachable), 1);
    }
}
