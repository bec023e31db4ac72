//! A three-node nats-server cluster on loopback: random free ports, a store directory per
//! node, JetStream on, routes to every node. Nodes are killed (SIGKILL), stopped (SIGTERM)
//! and started again on the same ports and stores.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::Command;

use crate::procs::{Proc, free_ports, poll};

/// How long a node (or the whole cluster) gets to report itself healthy.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub http_port: u16,
    config: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    pub nodes: Vec<Node>,
    http: reqwest::Client,
}

impl Cluster {
    /// Writes each node's config under `dir`, starts all three and waits until every node
    /// reports JetStream healthy (a meta leader elected).
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Cluster> {
        let ports = free_ports(9)?;
        let routes: Vec<String> = (0..3)
            .map(|i| format!("\"nats-route://127.0.0.1:{}\"", ports[3 + i]))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name);
            std::fs::create_dir_all(&store)?;
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: \"{name}\"\n\
                     listen: \"127.0.0.1:{client}\"\n\
                     http: \"127.0.0.1:{http}\"\n\
                     jetstream {{ store_dir: \"{store}\" }}\n\
                     cluster {{\n  name: \"onhand-chaos\"\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
                    client = ports[i],
                    http = ports[6 + i],
                    route = ports[3 + i],
                    store = store.display(),
                    routes = routes.join(", "),
                ),
            )?;
            nodes.push(Node {
                log: dir.join(format!("{name}.log")),
                name,
                client_port: ports[i],
                http_port: ports[6 + i],
                config,
                proc: None,
            });
        }
        let mut cluster = Cluster {
            bin: bin.to_owned(),
            nodes,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        };
        for i in 0..3 {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy().await?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated (a `NATS_URL` for all three).
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == server_name)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let mut command = Command::new(&self.bin);
        command.arg("-c").arg(&node.config);
        node.proc = Some(Proc::spawn(
            &format!("nats-server {}", node.name),
            command,
            &node.log,
        )?);
        Ok(())
    }

    /// SIGKILL one node (a crash); its store stays.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut proc) = self.nodes[i].proc.take() {
            proc.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM every node at once and wait for them to exit.
    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        for node in &self.nodes {
            if let Some(proc) = &node.proc {
                proc.signal("TERM").await?;
            }
        }
        for node in &mut self.nodes {
            if let Some(mut proc) = node.proc.take() {
                proc.stop("TERM", Duration::from_secs(30)).await?;
            }
        }
        Ok(())
    }

    /// Starts node `i` again (same ports, same store).
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.spawn(i)
    }

    /// Starts every node that is not running.
    pub async fn start_stopped(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].proc.is_none() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// True when node `i` runs and its `/healthz` says JetStream is healthy.
    pub async fn node_healthy(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        let running = node.proc.as_mut().is_some_and(|p| p.exited().is_none());
        if !running {
            return false;
        }
        let url = format!("http://127.0.0.1:{}/healthz", node.http_port);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// True when every node is healthy.
    pub async fn healthy(&mut self) -> bool {
        for i in 0..self.nodes.len() {
            if !self.node_healthy(i).await {
                return false;
            }
        }
        true
    }

    pub async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if let Some(proc) = self.nodes[i].proc.as_mut() {
                proc.ensure_running()?;
            }
        }
        let this = &mut *self;
        let cell = tokio::sync::Mutex::new(this);
        poll(HEALTHY_TIMEOUT, "every NATS node's /healthz", || async {
            cell.lock().await.healthy().await.then_some(())
        })
        .await
        .context("the NATS cluster did not become healthy (logs: n1.log, n2.log, n3.log)")
    }
}
