//! The system under test, every part a child process of the harness: the NATS cluster
//! (streams at R3), Postgres, the ledger, the sandbox and one projector per channel, all
//! given the three NATS URLs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use onhand_sandbox::Channel;
use tokio::process::Command;

use crate::cluster::Cluster;
use crate::pg::Postgres;
use crate::procs::{COMMAND_TIMEOUT, Proc, free_ports, output, poll};

pub const WMS_TOKEN: &str = "chaos-wms-token-0001";
pub const SHOP_TOKEN: &str = "chaos-shop-token-0001";
pub const READ_TOKEN: &str = "chaos-read-token-0001";
pub const WAREHOUSES: [&str; 2] = ["ams-1", "nyc-1"];
/// The channels with a projector. Each has a policy of its own.
pub const CHANNELS: [Channel; 3] = [Channel::Shopify, Channel::Woocommerce, Channel::Bigcommerce];
/// Per channel: extra `ONHAND_CHANNEL__<NAME>__*` policy settings.
const POLICIES: [(&str, &str, &str); 3] = [
    ("SHOPIFY", "ALLOCATION_PCT", "80"),
    ("SHOPIFY", "BUFFER", "1"),
    ("BIGCOMMERCE", "BUFFER", "2"),
];
const READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug)]
pub struct Projector {
    pub channel: Channel,
    pub url: String,
    pub proc: Proc,
}

#[derive(Debug)]
pub struct World {
    pub onhand: PathBuf,
    pub dir: PathBuf,
    pub cluster: Cluster,
    pub pg: Postgres,
    pub ledger: Proc,
    pub ledger_url: String,
    pub sandbox: Proc,
    pub sandbox_url: String,
    pub projectors: Vec<Projector>,
    pub skus: Vec<String>,
    pub http: reqwest::Client,
    env: BTreeMap<String, String>,
}

/// Paths the harness is given.
#[derive(Debug, Clone)]
pub struct Tools {
    pub onhand: PathBuf,
    pub nats_server: PathBuf,
    pub pg_bin_dir: PathBuf,
}

impl World {
    /// Starts everything and waits until every part is ready.
    pub async fn start(tools: &Tools, dir: &Path, skus: usize) -> anyhow::Result<World> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        say!("starting a 3-node NATS cluster");
        let cluster = Cluster::start(&tools.nats_server, &dir.join("nats")).await?;
        say!("  {}", cluster.urls());
        say!("starting Postgres (its own: initdb, a free port)");
        let pg = Postgres::start(&tools.pg_bin_dir, &dir.join("pg")).await?;
        say!("  {} (data in {})", pg.url(), pg.data_dir().display());

        let ports = free_ports(2 + CHANNELS.len())?;
        let ledger_url = format!("http://127.0.0.1:{}", ports[0]);
        let sandbox_url = format!("http://127.0.0.1:{}", ports[1]);
        let env = environment(&cluster.urls(), &pg.url(), ports[0], &sandbox_url);
        let skus: Vec<String> = (0..skus).map(|i| format!("CHAOS-{i:04}")).collect();

        let defs = r3_definitions(dir)?;
        let mut apply = onhand_command(&tools.onhand, &env);
        apply
            .args(["streams", "apply", "--dir"])
            .arg(&defs)
            .args(["--nats-url", &cluster.urls()]);
        let out = output(apply, COMMAND_TIMEOUT, "onhand streams apply").await?;
        if !out.status.success() {
            bail!(
                "onhand streams apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        say!(
            "streams applied at R3 (definitions with num_replicas 3: {})",
            defs.display()
        );
        let mut migrate = onhand_command(&tools.onhand, &env);
        migrate.args(["ledger", "migrate"]);
        let out = output(migrate, COMMAND_TIMEOUT, "onhand ledger migrate").await?;
        if !out.status.success() {
            bail!(
                "onhand ledger migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let mut ledger_cmd = onhand_command(&tools.onhand, &env);
        ledger_cmd.arg("ledger");
        let ledger = Proc::spawn("ledger", ledger_cmd, &dir.join("ledger.log"))?;

        let catalog = dir.join("catalog.json");
        let items: Vec<_> = skus
            .iter()
            .map(|s| serde_json::json!({"sku": s, "quantity": 0}))
            .collect();
        let catalog_json: serde_json::Map<String, serde_json::Value> = CHANNELS
            .iter()
            .map(|c| {
                (
                    c.as_str().to_owned(),
                    serde_json::Value::from(items.clone()),
                )
            })
            .collect();
        std::fs::write(&catalog, serde_json::to_vec(&catalog_json)?)?;
        let mut sandbox_cmd = onhand_command(&tools.onhand, &env);
        sandbox_cmd
            .args(["sandbox", "--seed", "7", "--listen-addr"])
            .arg(sandbox_url.trim_start_matches("http://"))
            .arg("--catalog")
            .arg(&catalog);
        let sandbox = Proc::spawn("sandbox", sandbox_cmd, &dir.join("sandbox.log"))?;

        let mut projectors = Vec::new();
        for (i, channel) in CHANNELS.iter().enumerate() {
            let port = ports[2 + i];
            let mut command = onhand_command(&tools.onhand, &env);
            command
                .args(["projector", "--channel", channel.as_str()])
                .env("ONHAND_PROJECTOR__LISTEN_ADDR", format!("127.0.0.1:{port}"));
            let name = format!("projector {}", channel.as_str());
            let log = dir.join(format!("projector-{}.log", channel.as_str()));
            projectors.push(Projector {
                channel: *channel,
                url: format!("http://127.0.0.1:{port}"),
                proc: Proc::spawn(&name, command, &log)?,
            });
        }
        let mut world = World {
            onhand: tools.onhand.clone(),
            dir: dir.to_owned(),
            cluster,
            pg,
            ledger,
            ledger_url,
            sandbox,
            sandbox_url,
            projectors,
            skus,
            http,
            env,
        };
        world.wait_all_ready(READY_TIMEOUT).await?;
        Ok(world)
    }

    /// `onhand <args>` with the system's environment.
    pub fn onhand(&self) -> Command {
        onhand_command(&self.onhand, &self.env)
    }

    /// Fails if a child the harness did not stop on purpose has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.ledger.ensure_running()?;
        self.sandbox.ensure_running()?;
        for p in &mut self.projectors {
            p.proc.ensure_running()?;
        }
        Ok(())
    }

    async fn answers(&self, url: &str) -> bool {
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// The ledger, the sandbox and every projector answer their readiness checks.
    pub async fn services_ready(&self) -> bool {
        if !self.answers(&format!("{}/readyz", self.ledger_url)).await
            || !self
                .answers(&format!("{}/admin/shopify/knobs", self.sandbox_url))
                .await
        {
            return false;
        }
        for p in &self.projectors {
            if !self.answers(&format!("{}/readyz", p.url)).await {
                return false;
            }
        }
        true
    }

    pub async fn wait_all_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.ensure_running()?;
        self.cluster.wait_healthy().await?;
        let this = &*self;
        poll(
            timeout,
            "the ledger, sandbox and projectors to be ready",
            || async { this.services_ready().await.then_some(()) },
        )
        .await
        .with_context(|| format!("logs in {}", self.dir.display()))
    }

    /// Stops the services (SIGTERM), then Postgres (fast shutdown) and NATS.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let grace = Duration::from_secs(20);
        for p in &mut self.projectors {
            p.proc.stop("TERM", grace).await?;
        }
        self.ledger.stop("TERM", grace).await?;
        self.sandbox.stop("TERM", grace).await?;
        self.pg.stop().await?;
        self.cluster.stop_all().await
    }
}

fn onhand_command(bin: &Path, env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(bin);
    command.env_clear().envs(env);
    command
}

/// Every variable the parts need; nothing is inherited from the harness's environment
/// but `PATH` and `HOME`.
fn environment(
    nats_urls: &str,
    database_url: &str,
    ledger_port: u16,
    sandbox_url: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            set(k, v);
        }
    }
    set("RUST_LOG", "info".to_owned());
    set("NATS_URL", nats_urls.to_owned());
    set("DATABASE_URL", database_url.to_owned());
    set(
        "ONHAND_LEDGER__LISTEN_ADDR",
        format!("127.0.0.1:{ledger_port}"),
    );
    set("ONHAND_LEDGER__WAREHOUSES", WAREHOUSES.join(","));
    set(
        "ONHAND_LEDGER__TOKENS",
        serde_json::json!([
            {"name": "wms", "scopes": ["stock:write", "read"], "token": WMS_TOKEN},
            {"name": "shop", "scopes": ["orders:write", "read"], "token": SHOP_TOKEN},
            {"name": "reader", "scopes": ["read"], "token": READ_TOKEN},
        ])
        .to_string(),
    );
    set("ONHAND_LEDGER__SWEEP_INTERVAL_MS", "500".to_owned());
    for channel in CHANNELS {
        let upper = channel.as_str().to_uppercase();
        set(
            &format!("ONHAND_CHANNEL__{upper}__BASE_URL"),
            format!("{sandbox_url}/{}", channel.as_str()),
        );
        for (k, v) in onhand_sandbox::credentials::adapter_settings(channel) {
            set(&format!("ONHAND_CHANNEL__{upper}__{k}"), v);
        }
    }
    for (channel, k, v) in POLICIES {
        set(&format!("ONHAND_CHANNEL__{channel}__{k}"), v.to_owned());
    }
    env
}

/// The repository's stream definitions with every `num_replicas` set to 3, written under
/// `dir` for `onhand streams apply --dir` (the files say 1, for one dev/CI server).
fn r3_definitions(dir: &Path) -> anyhow::Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../streams/definitions");
    let target = dir.join("definitions");
    copy_with_replicas(&source, &target, 3)?;
    Ok(target)
}

fn copy_with_replicas(from: &Path, to: &Path, replicas: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let dest = to.join(path.file_name().context("a file name")?);
        if path.is_dir() {
            copy_with_replicas(&path, &dest, replicas)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("parsing {}", path.display()))?;
            if let Some(map) = config.as_object_mut()
                && map.contains_key("num_replicas")
            {
                map.insert("num_replicas".to_owned(), replicas.into());
            }
            std::fs::write(&dest, serde_json::to_vec_pretty(&config)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `num_replicas` in the copies is 3, and nothing else changed.
    #[test]
    fn r3_definitions_set_every_replica_count_to_three() {
        let dir = tempfile::tempdir().expect("tempdir");
        let copied = r3_definitions(dir.path()).expect("copy");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../streams/definitions");
        let mut files = 0;
        for sub in ["streams", "kv"] {
            for entry in std::fs::read_dir(source.join(sub)).expect("read") {
                let path = entry.expect("entry").path();
                let read = |p: &Path| -> serde_json::Value {
                    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
                };
                let mut original = read(&path);
                let copy = read(&copied.join(sub).join(path.file_name().expect("name")));
                assert_eq!(copy["num_replicas"], 3, "{}", path.display());
                original["num_replicas"] = 3.into();
                assert_eq!(copy, original, "{}", path.display());
                files += 1;
            }
        }
        assert!(files >= 5, "only {files} definitions found");
    }
}
