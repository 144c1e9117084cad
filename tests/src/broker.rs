//! A private Tansu broker per test: a free port on 127.0.0.1, its own
//! temporary folder with SQLite storage, killed when dropped.
//!
//! The tansu binary comes from `PARTITA_TANSU` when set (scripts/test.sh sets
//! it), else from `scripts/install-broker.sh`, which installs it once into a
//! cache folder (about 12 minutes the first time) and prints its path.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::kafka::Kafka;
use crate::process::Child;
use crate::wasm::repo_root;

/// How long a broker may take to answer after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many fresh ports to try when a start fails because the port was taken.
const PORT_ATTEMPTS: usize = 3;

/// A Tansu broker running for one test.
#[derive(Debug)]
pub struct Broker {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker on a free port of 127.0.0.1 with SQLite storage in a
    /// new temporary folder, and waits until it answers metadata requests.
    pub fn start() -> Result<Broker> {
        let bin = tansu_binary()?;
        let mut dir = tempfile::Builder::new()
            .prefix("partita-broker-")
            .tempdir()
            .context("cannot create the broker's folder")?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut broker = Broker {
                bin: bin.clone(),
                dir,
                port,
                child: None,
            };
            match broker.launch() {
                Ok(()) => return Ok(broker),
                Err(e) => {
                    last_error = Some(e);
                    dir = broker.take_dir();
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client of this broker.
    pub fn kafka(&self) -> Kafka {
        Kafka::new(&self.bootstrap())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding its storage and its log (`broker.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::tail(&self.dir.path().join("broker.log"), lines)
    }

    /// True while the broker process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(Child::is_running)
    }

    /// Kills the broker with SIGKILL, as a crash would. Its storage stays.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill9()?;
        }
        Ok(())
    }

    /// Stops the broker with SIGTERM (SIGKILL after 10 s). Its storage stays.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.stop(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Starts the broker again on the same port and storage after
    /// [`Broker::kill`] or [`Broker::stop`], and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            bail!(
                "broker on port {} is still running: stop it before restarting",
                self.port
            );
        }
        // The old listening socket may linger for a moment after a kill.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            if Instant::now() >= deadline {
                bail!(
                    "port {} is still taken 10 s after the broker stopped",
                    self.port
                );
            }
            sleep(Duration::from_millis(100));
        }
        self.launch()
    }

    /// Starts the process and waits until it answers a metadata request.
    fn launch(&mut self) -> Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(&self.bin);
        command
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // Relative to the working directory, the broker's own folder.
            .args(["--storage-engine", "sqlite://tansu.db"]);
        for var in [
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ] {
            command.env_remove(var);
        }
        let log = self.dir.path().join("broker.log");
        let mut child = Child::spawn("broker", command, &log)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_exit()? {
                bail!(
                    "the broker on port {} exited at start ({status}); last log lines:\n{}",
                    self.port,
                    child.log_tail(20)
                );
            }
            if answers(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the broker on port {} did not answer within {READY_TIMEOUT:?}; \
                     last log lines:\n{}",
                    self.port,
                    child.log_tail(20)
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Gives the folder back after a failed launch, for the next attempt.
    fn take_dir(self) -> tempfile::TempDir {
        let Broker { dir, child, .. } = self;
        drop(child);
        dir
    }
}

/// True when a broker on `port` accepts connections and answers metadata.
pub(crate) fn answers(port: u16) -> bool {
    if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_err()
    {
        return false;
    }
    let consumer: Result<BaseConsumer, _> =
        Kafka::new(&format!("127.0.0.1:{port}")).config().create();
    consumer.is_ok_and(|c| c.fetch_metadata(None, Duration::from_secs(2)).is_ok())
}

/// A port of 127.0.0.1 that was free a moment ago and that this process has
/// not handed out before (for brokers, and for other servers of a test such
/// as `partita run --metrics-addr`).
pub fn free_port() -> Result<u16> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context("cannot bind a port of 127.0.0.1")?;
        let port = listener
            .local_addr()
            .context("cannot read the bound address")?
            .port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    bail!("found no free port of 127.0.0.1 not already used by this test run")
}

/// Path of the tansu binary: `PARTITA_TANSU`, else what
/// `scripts/install-broker.sh` prints (installing it the first time).
pub fn tansu_binary() -> Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| locate_tansu().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("{e}"))
}

fn locate_tansu() -> Result<PathBuf> {
    installed("PARTITA_TANSU", "scripts/install-broker.sh")
}

/// The binary named by environment variable `var`, else the path that
/// `script` prints (it installs the binary once).
pub(crate) fn installed(var: &str, script: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{var}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let script = repo_root().join(script);
    eprintln!(
        "locating a binary with {} (installs it once)",
        script.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_file() {
        bail!(
            "{} printed {}, which is not a file",
            script.display(),
            path.display()
        );
    }
    Ok(path)
}
