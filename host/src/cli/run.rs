//! `partita run`: runs a pipeline file against Kafka.

use std::process::ExitCode;

/// Arguments of `partita run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Runs `partita run`.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not built yet")
}
