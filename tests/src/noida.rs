//! noida-db (PyPI, MIT), a single-binary broker that implements Kafka's
//! transactions, for the exactly-once tests: `Noida::start()` runs a
//! private one per test on a free port of 127.0.0.1, keeping its data in
//! memory (and a temporary folder), and waits until it answers metadata
//! requests. The binary comes from `PARTITA_NOIDA`, else from
//! `scripts/install-noida.sh`.
//!
//! What it does and does not do, as checked here, is in docs/TESTING.md.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::broker::{answers, free_port, installed};
use crate::kafka::Kafka;
use crate::process::Child;

/// How long a new broker may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running noida-db; killed when dropped.
#[derive(Debug)]
pub struct Noida {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The noida-db binary, installed once.
pub fn noida_binary() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        installed("PARTITA_NOIDA", "scripts/install-noida.sh").map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow!("{e}"))
}

impl Noida {
    /// Starts noida-db with only its Kafka service, and waits until it
    /// answers.
    pub fn start() -> Result<Noida> {
        let bin = noida_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("partita-noida-")
            .tempdir()
            .context("cannot create a folder for noida-db")?;
        let port = free_port()?;
        let mut command = Command::new(bin);
        command.args([
            "start",
            "--only",
            "kafka",
            "--kafka-port",
            &port.to_string(),
        ]);
        command.arg("--data-dir").arg(dir.path().join("data"));
        let log = dir.path().join("noida.log");
        let mut child = Child::spawn("noida-db", command, &log)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_exit()? {
                bail!(
                    "noida-db on port {port} exited at start ({status}):\n{}",
                    child.log_tail(20)
                );
            }
            if answers(port) {
                return Ok(Noida {
                    child,
                    port,
                    _dir: dir,
                });
            }
            if Instant::now() >= deadline {
                bail!(
                    "noida-db on port {port} did not answer within {READY_TIMEOUT:?}:\n{}",
                    child.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client of the broker.
    pub fn kafka(&self) -> Kafka {
        Kafka::new(&self.bootstrap())
    }

    /// Fails with its log if the broker has exited.
    pub fn assert_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_exit()? {
            bail!("noida-db exited ({status}):\n{}", self.child.log_tail(20));
        }
        Ok(())
    }
}
