//! Child processes that never outlive the tests that start them.
//!
//! A [`Child`] wraps a spawned process. Dropping it kills the process (and
//! reaps it). Should the test process die without running destructors
//! (`kill -9`, an abort), a small watchdog shell started next to each child
//! notices that its standard input closed and kills the child then.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running child process whose stdout and stderr go to a log file.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    watchdog: Option<std::process::Child>,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Child {
    /// Spawns `command` with its output appended to `log` and stdin closed.
    /// `name` names the process in errors ("broker", "host 1").
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Child> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {}", log.display()))?;
        let err = out
            .try_clone()
            .context("cannot duplicate the log file handle")?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}: {command:?}"))?;
        // The watchdog blocks reading its stdin, a pipe whose only writer is
        // this process (std opens pipes close-on-exec, so no other child
        // inherits it). When this process dies the read returns and the
        // watchdog kills the child, if that pid is still the same process
        // (same start time, field 22 of /proc/PID/stat).
        let pid = child.id();
        let start_time = format!("sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f20");
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "started=$({start_time}); read _ignored; \
                 if [ -n \"$started\" ] && [ \"$({start_time})\" = \"$started\" ]; then \
                 kill -9 {pid} 2>/dev/null; fi"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Ok(Child {
            name: name.to_string(),
            child,
            watchdog,
            log: log.to_path_buf(),
            exit: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file holding the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the child's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .with_context(|| format!("cannot poll {}", self.name))?;
        }
        Ok(self.exit)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_exit(), Ok(None))
    }

    /// Sends SIGKILL (`kill -9`) and reaps the process.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_exit()? {
            return Ok(status);
        }
        self.child
            .kill()
            .with_context(|| format!("cannot kill {}", self.name))?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("cannot reap {}", self.name))?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Sends SIGTERM (a clean stop request) without waiting.
    pub fn terminate(&mut self) -> Result<()> {
        if self.try_exit()?.is_some() {
            return Ok(());
        }
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() && self.try_exit()?.is_none() {
            bail!(
                "kill -s TERM {} ({}) failed: {status}",
                self.pid(),
                self.name
            );
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} (pid {}) did not exit within {timeout:?}; last log lines:\n{}",
                    self.name,
                    self.pid(),
                    self.log_tail(30)
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; kills the
    /// process with SIGKILL and fails if it does not exit in time.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.terminate()?;
        match self.wait_exit(timeout) {
            Ok(status) => Ok(status),
            Err(e) => {
                let _ = self.kill9();
                Err(e)
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill9();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// The last `lines` lines of the file at `path` (lossy UTF-8), or a note
/// saying why it could not be read.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = Vec::new();
    match File::open(path).and_then(|mut f| f.read_to_end(&mut text)) {
        Ok(_) => {
            let text = String::from_utf8_lossy(&text);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path) -> Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        Child::spawn("sleeper", cmd, &dir.join("sleep.log")).unwrap()
    }

    fn alive(pid: u32) -> bool {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn drop_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let child = sleeper(dir.path());
        let pid = child.pid();
        assert!(alive(pid));
        drop(child);
        assert!(!alive(pid), "pid {pid} still alive after drop");
    }

    /// Run as a child of the test below: starts a sleeper, writes its pid
    /// to the file named by the variable, then waits to be killed.
    #[test]
    fn watchdog_kills_the_child_when_the_parent_dies() {
        const PID_FILE: &str = "PARTITA_TESTS_WATCHDOG_PID_FILE";
        if let Some(file) = std::env::var_os(PID_FILE) {
            let dir = tempfile::tempdir().unwrap();
            let child = sleeper(dir.path());
            std::fs::write(&file, child.pid().to_string()).unwrap();
            sleep(Duration::from_secs(600));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut parent = Command::new(std::env::current_exe().unwrap());
        parent
            .args([
                "--exact",
                "process::tests::watchdog_kills_the_child_when_the_parent_dies",
            ])
            .env(PID_FILE, &pid_file);
        let mut parent = Child::spawn("parent", parent, &dir.path().join("parent.log")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file)
                && let Ok(pid) = text.parse::<u32>()
            {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "no pid file: {}",
                parent.log_tail(20)
            );
            sleep(Duration::from_millis(20));
        };
        assert!(alive(pid));
        // The parent dies without running destructors.
        parent.kill9().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "pid {pid} outlived its parent by 10 s"
            );
            sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn stop_sends_sigterm_and_reports_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let mut child = sleeper(dir.path());
        let status = child.stop(Duration::from_secs(10)).unwrap();
        assert_eq!(status.signal(), Some(15), "{status:?}");
        assert!(!child.is_running());
    }

    #[test]
    fn kill9_reports_sigkill() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let mut child = sleeper(dir.path());
        assert!(child.is_running());
        assert_eq!(child.kill9().unwrap().signal(), Some(9));
    }

    #[test]
    fn wait_exit_times_out_with_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first; echo second; exec sleep 600"]);
        let mut child = Child::spawn("talker", cmd, &dir.path().join("t.log")).unwrap();
        // Wait for the two lines to be written before asking for the tail.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !child.log_tail(5).contains("second") && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        let err = child
            .wait_exit(Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("talker"), "{err}");
        assert!(err.contains("did not exit"), "{err}");
        assert!(err.contains("first\nsecond"), "{err}");
    }

    #[test]
    fn spawn_of_a_missing_program_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = Command::new("/nonexistent/program");
        let err = Child::spawn("ghost", cmd, &dir.path().join("g.log")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot start ghost"), "{err:#}");
    }

    #[test]
    fn tail_of_a_missing_file_says_so() {
        let t = tail(Path::new("/nonexistent/log"), 3);
        assert!(t.starts_with("(cannot read /nonexistent/log"), "{t}");
    }
}
