//! The harness's own Postgres: `initdb` into a directory of its own, `postgres` on a free
//! loopback port as a child process (as the `postgres` user when the harness runs as
//! root, which Postgres refuses), restarted with a fast shutdown. Never the machine's
//! shared server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;

use crate::procs::{COMMAND_TIMEOUT, Proc, free_ports, output, poll};

/// The database the ledger uses.
pub const DATABASE: &str = "onhand";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Postgres {
    bin_dir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    pub port: u16,
    log: PathBuf,
    /// Run the server binaries as this user (when the harness is root).
    user: Option<String>,
    proc: Option<Proc>,
    /// The data and socket directory when it is not the run directory (removed on drop).
    _scratch: Option<tempfile::TempDir>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with a `postgres` binary.
pub fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("listing /usr/lib/postgresql (is Postgres installed? scripts/setup)")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .context("no /usr/lib/postgresql/<version>/bin/postgres found")
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Postgres {
    /// initdb (trust auth for loopback), start, create the ledger's database.
    pub async fn start(bin_dir: &Path, dir: &Path) -> anyhow::Result<Postgres> {
        std::fs::create_dir_all(dir)?;
        let user = running_as_root().then(|| "postgres".to_owned());
        // As root the server runs as `postgres`, which may not be allowed to reach the run
        // directory (a checkout in a private home, or under a 0700 mktemp directory): its
        // data and socket then live in a directory of their own under the system temp dir.
        let scratch = match &user {
            Some(_) => Some(
                tempfile::Builder::new()
                    .prefix("onhand-chaos-pg-")
                    .tempdir()
                    .context("creating Postgres's directory under the temp dir")?,
            ),
            None => None,
        };
        let home = scratch
            .as_ref()
            .map_or_else(|| dir.to_owned(), |t| t.path().to_owned());
        let mut pg = Postgres {
            bin_dir: bin_dir.to_owned(),
            data: home.join("data"),
            socket_dir: home.clone(),
            port: free_ports(1)?[0],
            log: dir.join("postgres.log"),
            user,
            proc: None,
            _scratch: scratch,
        };
        if let Some(user) = &pg.user {
            let mut chown = Command::new("chown");
            chown.args(["-R", &format!("{user}:{user}")]).arg(&home);
            let status = output(chown, COMMAND_TIMEOUT, "chown").await?.status;
            if !status.success() {
                bail!("chown {} to {user} failed", home.display());
            }
        }
        let mut initdb = pg.command("initdb");
        initdb.arg("-D").arg(&pg.data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ]);
        let out = output(initdb, COMMAND_TIMEOUT, "initdb").await?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        pg.spawn()?;
        pg.wait_ready().await?;
        let out = pg
            .command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(DATABASE)
            .output()
            .await
            .context("running createdb")?;
        if !out.status.success() {
            bail!("createdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(pg)
    }

    /// Where the cluster's files are.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// A command for one of the server's binaries, as the server's user.
    fn command(&self, program: &str) -> Command {
        let bin = self.bin_dir.join(program);
        match &self.user {
            Some(user) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={user}"))
                    .arg(format!("--regid={user}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(bin)
                    // Its own working directory may be closed to it too.
                    .current_dir("/");
                command
            }
            None => Command::new(bin),
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.socket_dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
                "-c",
                "shared_buffers=64MB",
            ]);
        self.proc = Some(Proc::spawn("postgres", command, &self.log)?);
        Ok(())
    }

    async fn accepts_connections(&self) -> bool {
        let mut isready = Command::new(self.bin_dir.join("pg_isready"));
        isready.args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()]);
        matches!(output(isready, Duration::from_secs(10), "pg_isready").await, Ok(o) if o.status.success())
    }

    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        if let Some(proc) = self.proc.as_mut() {
            proc.ensure_running()?;
        }
        let this = &*self;
        poll(READY_TIMEOUT, "Postgres to accept connections", || async {
            this.accepts_connections().await.then_some(())
        })
        .await
        .with_context(|| format!("see {}", self.log.display()))
    }

    /// Fast shutdown (SIGINT: disconnect every client, checkpoint, exit), then wait.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut proc) = self.proc.take() {
            let status = proc.stop("INT", Duration::from_secs(30)).await?;
            if !status.success() {
                bail!("postgres exited with {status} on a fast shutdown");
            }
        }
        Ok(())
    }

    /// Starts the server again on the same port and data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_ready().await
    }
}
