//! Runs the `partita` binary as a child process, as a user would.
//!
//! The binary is built once per test run with `cargo build -p partita`
//! (cargo reports where it wrote it), unless `PARTITA_BIN` names one.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::process::Child;
use crate::wasm::repo_root;

/// Path of the `partita` binary, building it the first time it is asked for.
pub fn partita_binary() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("{e}"))
}

fn build() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PARTITA_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("PARTITA_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "-p",
            "partita",
            "--bin",
            "partita",
            "--message-format=json",
        ])
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo build -p partita")?;
    if !out.status.success() {
        bail!(
            "cargo build -p partita failed ({}); its errors are above",
            out.status
        );
    }
    // One JSON message per line; the artifact of the binary names its path.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "partita"
            && message["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
            && let Some(exe) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build -p partita reported no executable")
}

/// A `partita` process running in the background; killed when dropped.
#[derive(Debug)]
pub struct Partita {
    child: Child,
}

impl Partita {
    /// Starts `partita ARGS...` with its output in `log`; `name` names it in
    /// errors ("host 1").
    pub fn start(name: &str, args: &[&str], log: &Path) -> Result<Partita> {
        let mut command = Command::new(partita_binary()?);
        command
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        Ok(Partita {
            child: Child::spawn(name, command, log)?,
        })
    }

    /// Starts `partita run PIPELINE` with its output in `log`.
    pub fn run(name: &str, pipeline: &Path, log: &Path) -> Result<Partita> {
        let pipeline = pipeline.to_str().context("pipeline path is not UTF-8")?;
        Partita::start(name, &["run", pipeline], log)
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        self.child.kill9()
    }

    /// Asks it to stop with SIGTERM and waits up to `timeout` for the exit.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.child.stop(timeout)
    }

    /// Fails with its log if it has exited; for checks while it should run.
    pub fn assert_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_exit()? {
            bail!(
                "partita exited early ({status}); last log lines:\n{}",
                self.log_tail(40)
            );
        }
        Ok(())
    }
}

/// The outcome of a `partita` run that is expected to end by itself.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout and stderr.
    pub output: String,
}

/// Runs `partita ARGS...` to its end, killing it and failing after
/// `timeout`.
pub fn run_to_end(args: &[&str], timeout: Duration) -> Result<Finished> {
    let dir = tempfile::tempdir().context("cannot create a folder for the log")?;
    let log = dir.path().join("partita.log");
    let mut partita = Partita::start("partita", args, &log)?;
    let status = match partita.child().wait_exit(timeout) {
        Ok(status) => status,
        Err(e) => {
            partita.kill9()?;
            return Err(e.context(format!("partita {}", args.join(" "))));
        }
    };
    let output =
        std::fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
    Ok(Finished { status, output })
}
