//! A real Apache Kafka cluster for the fleet tests: KRaft nodes, each a broker and a controller
//! in one JVM (`kafka.Kafka` from the jars `scripts/setup.sh` fetched from Maven Central into
//! `.deps/kafka/libs`), on free loopback ports, formatted with one cluster id and static
//! controller voters, with replication defaults of a production cluster (3 replicas,
//! `min.insync.replicas` 2 when there are three nodes). Nodes can be stopped (killed) and started
//! again on the same ports and data; all are killed by PID when the cluster is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::services::free_port;
use super::{Proc, repo_root, run_ok};

/// One node: its ports, folder and process (none while stopped).
struct Node {
    port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

/// A KRaft cluster of real Kafka brokers.
pub struct KafkaCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// `.deps/kafka/libs`, where setup put the broker's jars.
fn libs() -> PathBuf {
    let dir = repo_root().join(".deps/kafka/libs");
    assert!(
        dir.is_dir(),
        "Kafka broker jars missing at {}: run scripts/setup.sh",
        dir.display()
    );
    dir
}

/// Runs a Kafka tool class to completion; returns its standard output.
fn tool(class: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!("{}/*", libs().display()))
        .arg(class)
        .args(args);
    run_ok(&mut cmd).trim().to_string()
}

impl KafkaCluster {
    /// Formats and starts `n` nodes and waits until each accepts connections.
    pub fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster_id = tool("kafka.tools.StorageTool", &["random-uuid"]);
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let replicas = n.min(3);
        let min_isr = if replicas >= 3 { 2 } else { 1 };
        let mut nodes = Vec::new();
        for (i, (port, controller)) in ports.into_iter().enumerate() {
            let node_dir = dir.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(node_dir.join("logs")).expect("node folder");
            let config = format!(
                "process.roles=broker,controller\n\
                 node.id={id}\n\
                 controller.quorum.voters={voters}\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={data}\n\
                 num.partitions=3\n\
                 default.replication.factor={replicas}\n\
                 min.insync.replicas={min_isr}\n\
                 offsets.topic.replication.factor={replicas}\n\
                 offsets.topic.num.partitions=10\n\
                 transaction.state.log.replication.factor={replicas}\n\
                 transaction.state.log.min.isr={min_isr}\n\
                 share.coordinator.state.topic.replication.factor={replicas}\n\
                 share.coordinator.state.topic.min.isr={min_isr}\n\
                 group.initial.rebalance.delay.ms=0\n\
                 unclean.leader.election.enable=false\n",
                id = i + 1,
                voters = voters.join(","),
                data = node_dir.join("data").display(),
            );
            let properties = node_dir.join("server.properties");
            std::fs::write(&properties, config).expect("write server.properties");
            tool(
                "kafka.tools.StorageTool",
                &[
                    "format",
                    "-t",
                    &cluster_id,
                    "-c",
                    properties.to_str().expect("UTF-8 path"),
                ],
            );
            nodes.push(Node {
                port,
                dir: node_dir,
                proc: None,
            });
        }
        let mut cluster = Self { nodes, _dir: dir };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_listening(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log4j = repo_root().join("tests/kafka/log4j2.properties");
        let child = Command::new("java")
            .args([
                "-Xms64m",
                "-Xmx384m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg(format!(
                "-Dkafka.logs.dir={}",
                node.dir.join("logs").display()
            ))
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg("-cp")
            .arg(format!("{}/*", libs().display()))
            .arg("kafka.Kafka")
            .arg(node.dir.join("server.properties"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a Kafka broker (java)");
        node.proc = Some(Proc { child });
    }

    fn wait_listening(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = self.nodes[i].port;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(status))) = self.nodes[i].proc.as_mut().map(|p| p.child.try_wait())
            {
                panic!("Kafka node {} exited with {status}: {}", i + 1, self.log(i));
            }
            assert!(
                Instant::now() < deadline,
                "Kafka node {} not listening: {}",
                i + 1,
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        let text =
            std::fs::read_to_string(self.nodes[i].dir.join("logs/server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `bootstrap.servers` naming every node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `i` (SIGKILL: no controlled shutdown).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].proc = None;
    }

    /// Starts node `i` again on its ports and data, and waits until it listens.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_listening(i);
    }

    /// Folder of node `i` (its `server.properties`, `data/`, `logs/`).
    pub fn dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }
}
