//! `partita test`: runs one processor over a JSONL file of records, offline.

use std::process::ExitCode;

/// Arguments of `partita test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {}

/// Runs `partita test`.
pub fn main(args: TestArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not built yet")
}
