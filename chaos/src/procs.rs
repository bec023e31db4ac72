//! Child processes of the harness: spawned with their output in a log file, killed when
//! their handle is dropped (a failed check too), signalled by pid; and polling with a
//! deadline, the only way the harness waits for a state.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// How long a one-shot command ([`output`]) may take by default.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `command` to its end and returns its output; kills it and fails when it takes
/// longer than `timeout`.
pub async fn output(
    mut command: Command,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<std::process::Output> {
    command.kill_on_drop(true).stdin(Stdio::null());
    match tokio::time::timeout(timeout, command.output()).await {
        Ok(out) => out.with_context(|| format!("running {what}")),
        Err(_) => bail!(
            "{what} did not finish within {}s; killed",
            timeout.as_secs()
        ),
    }
}

/// How long [`poll`] waits between attempts.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A running child process. Dropping it sends SIGKILL (`kill_on_drop`).
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `command` with stdin closed and stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Proc> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = command
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Sends `signal` (a `kill -s` name: TERM, INT, KILL, ...).
    pub async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .with_context(|| format!("{} has already exited", self.name))?;
        let mut kill = Command::new("kill");
        kill.args(["-s", signal, &pid.to_string()]);
        let out = output(kill, Duration::from_secs(10), "kill").await?;
        if !out.status.success() {
            bail!(
                "kill -s {signal} {pid} ({}) failed: {}",
                self.name,
                out.status
            );
        }
        Ok(())
    }

    /// Waits up to `timeout` for the exit, checking with `waitpid(WNOHANG)` (no reliance on
    /// SIGCHLD delivery); `None` if it still runs.
    async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (a crash), then reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child
            .start_kill()
            .with_context(|| format!("killing {}", self.name))?;
        match self.wait_exit(Duration::from_secs(10)).await? {
            Some(_) => Ok(()),
            None => bail!("{} still runs 10 s after SIGKILL", self.name),
        }
    }

    /// Sends `signal` and waits up to `grace` for the exit; SIGKILL after that.
    pub async fn stop(&mut self, signal: &str, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.signal(signal).await?;
        match self.wait_exit(grace).await? {
            Some(status) => Ok(status),
            None => {
                self.kill().await?;
                bail!(
                    "{} did not exit within {grace:?} of SIG{signal}; killed",
                    self.name
                )
            }
        }
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails, with the end of its log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exited() {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 30)
            ),
        }
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Calls `f` every [`POLL_INTERVAL`] until it returns `Some`; fails naming `what` when
/// `timeout` passes first.
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Free loopback ports, all different.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    // Hold every listener until all are chosen, so no port is handed out twice.
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("binding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}
