//! Command-line interface: argument types and the subcommands.

use clap::{Parser, Subcommand};

pub mod deploy;
pub mod new;
pub mod run;
pub mod test;
pub mod validate;

/// Partita runs WebAssembly stream processors on Kafka partitions.
#[derive(Debug, Parser)]
#[command(name = "partita", version, about)]
pub struct Cli {
    /// Log filter, as in RUST_LOG (for example `info` or `partita=debug`).
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a processor over a file of records, offline: no broker needed.
    Test(test::TestArgs),
    /// Run a pipeline file against Kafka.
    Run(run::RunArgs),
    /// Compare two topics (legacy output, new output) by business key
    /// within a time window; exit 0 when they agree.
    Validate(Box<validate::ValidateArgs>),
    /// Deploy a stage's processor to every host running the pipeline
    /// (through its control topic), or list what is deployed where.
    Deploy(deploy::DeployArgs),
    /// Write a new processor project (Rust, JavaScript or Python) that
    /// builds and passes `partita test` as it is.
    New(new::NewArgs),
}

/// Sets up `tracing` logging to stderr, filtered by `filter`, else by
/// `RUST_LOG`, else at `info`.
pub fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// The per-user folder for compiled components: `$PARTITA_CACHE/compiled`,
/// else `$XDG_CACHE_HOME/partita/compiled`, else
/// `~/.cache/partita/compiled`; none if none of them is set.
pub fn compiled_cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = set("PARTITA_CACHE")
        .map(PathBuf::from)
        .or_else(|| set("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("partita")))
        .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".cache/partita")))?;
    Some(base.join("compiled"))
}
