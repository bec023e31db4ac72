//! A real `nats-server` per test: free port, private JetStream store, killed on drop,
//! restartable on the same port and store (for fault tests).

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server gets to accept clients after it is spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Fresh ports tried by [`NatsServer::start`] when the chosen one is taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// The `nats-server` binary tests run: `$ONHAND_NATS_SERVER_BIN`, else the pinned one
/// that `scripts/setup` installs into `<workspace>/.tools/bin/nats-server`.
///
/// Panics when neither exists (the system `nats-server`, if any, is deliberately not
/// used: versions before 2.10 break async-nats key-value creation).
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ONHAND_NATS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "ONHAND_NATS_SERVER_BIN={} does not exist",
            bin.display()
        );
        return bin;
    }
    let bin = workspace_root().join(".tools/bin/nats-server");
    assert!(
        bin.is_file(),
        "{} not found: run `scripts/setup` (installs the pinned nats-server) \
         or set ONHAND_NATS_SERVER_BIN",
        bin.display()
    );
    bin
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A running `nats-server -js` on 127.0.0.1 with its own store directory.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Extra server configuration (nats-server config file syntax), if any.
    config: String,
}

enum Startup {
    Ready,
    PortTaken,
}

impl NatsServer {
    /// Starts a server on a free port and returns once a client can connect and
    /// JetStream answers. Panics (with the server log) if it cannot.
    pub async fn start() -> NatsServer {
        Self::start_with_config("").await
    }

    /// Like [`start`](Self::start), with extra server configuration in nats-server's config
    /// syntax (e.g. `max_payload: 4MB`).
    pub async fn start_with_config(config: &str) -> NatsServer {
        let bin = nats_server_bin();
        let dir = tempfile::Builder::new()
            .prefix("onhand-nats-")
            .tempdir()
            .expect("create a temp dir for nats-server");
        let mut server = NatsServer {
            bin,
            port: 0,
            dir,
            child: None,
            config: config.to_owned(),
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait().await {
                Startup::Ready => return server,
                Startup::PortTaken => continue,
            }
        }
        panic!(
            "nats-server: no free port after {PORT_ATTEMPTS} attempts\n{}",
            server.log()
        );
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (`-sd`); it survives [`stop`](Self::stop).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Everything the server has logged so far (all runs), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A new client connected to this server (default reconnect behaviour).
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connect to nats-server at {}: {e}", self.url()))
    }

    /// A JetStream context on a new client.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit. The store
    /// directory is kept. Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // kill fails only if the process already exited; wait reaps it either way
            if let Err(e) = child.kill() {
                eprintln!("testkit: kill nats-server: {e}");
            }
            if let Err(e) = child.wait() {
                eprintln!("testkit: wait for nats-server: {e}");
            }
        }
    }

    /// Starts the server again on the same port with the same store directory, so
    /// JetStream streams, consumers and messages survive. Stops it first if running.
    pub async fn start_again(&mut self) {
        self.stop();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Startup::Ready => return,
                // the old listener may linger for a moment; the port is ours to wait for
                Startup::PortTaken if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Startup::PortTaken => panic!(
                    "nats-server: port {} still taken after {STARTUP_TIMEOUT:?}\n{}",
                    self.port,
                    self.log()
                ),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    async fn spawn_and_wait(&mut self) -> Startup {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open nats-server log file");
        let mut command = Command::new(&self.bin);
        if !self.config.is_empty() {
            let path = self.dir.path().join("nats-server.conf");
            std::fs::write(&path, &self.config).expect("write the nats-server config");
            command.arg("-c").arg(path);
        }
        let child = command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.store_dir())
            .stdin(Stdio::null())
            .stdout(clone_file(&log))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Startup {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = self.log();
                if log.contains("address already in use") {
                    return Startup::PortTaken;
                }
                panic!("nats-server exited during startup ({status})\n{log}");
            }
            if self.accepts_jetstream_clients().await {
                return Startup::Ready;
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "nats-server on port {} not ready after {STARTUP_TIMEOUT:?}\n{}",
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn accepts_jetstream_clients(&self) -> bool {
        let connected = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(500))
            .connect(self.url())
            .await;
        match connected {
            Ok(client) => async_nats::jetstream::new(client)
                .query_account()
                .await
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago (bind port 0, read it, release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to pick a free port")
}

fn clone_file(file: &File) -> File {
    file.try_clone().expect("duplicate nats-server log handle")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reachable(url: &str) -> bool {
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(500))
            .connect(url)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn stops_restarts_on_the_same_port_and_dies_with_its_handle() {
        let mut nats = NatsServer::start().await;
        let other = NatsServer::start().await;
        assert_ne!(nats.port(), other.port());
        let port = nats.port();

        nats.stop();
        assert!(!nats.is_running());
        assert!(
            !reachable(&nats.url()).await,
            "stopped server still answers"
        );

        nats.start_again().await;
        assert_eq!(nats.port(), port);
        assert!(nats.is_running());
        nats.client()
            .await
            .flush()
            .await
            .expect("flush after restart");

        let url = nats.url();
        drop(nats);
        assert!(!reachable(&url).await, "dropped server still answers");
    }
}
