//! A real PostgreSQL server for the tests, from Debian's binaries (`scripts/setup.sh` installs
//! the `postgresql` package; `$PG_BIN` may point at another `bin` folder): `initdb` into a
//! temporary folder, then `postgres` on 127.0.0.1 at a free port with its socket in that folder
//! and `fsync=off`. PostgreSQL refuses to run as root, so as root both run as the `postgres`
//! user (the folder is given to it).
//!
//! No server outlives its test binary, even one killed: beside each server runs a watchdog (a
//! shell loop) that, once the test process is gone, stops the server (fast shutdown) and removes
//! its folder. Dropping a [`PgServer`] stops it at once. [`shared`] is the one server the cases of
//! a binary share (each in a database of its own): started by the first, stopped by the watchdog
//! when the binary exits.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A PostgreSQL server of the tests' own.
pub(crate) struct PgServer {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    owner: Option<(u32, u32)>,
    /// The server and its watchdog, while running.
    running: Option<(Child, Child)>,
}

/// The server the tests of this binary share (see the module's documentation).
pub(crate) fn shared() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(|| PgServer::start_on(free_port()))
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The folder of PostgreSQL's server binaries: `$PG_BIN`, else Debian's newest.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql: run scripts/setup.sh")
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/postgres")
        .1
}

/// The `postgres` user's uid and gid when this process is root (PostgreSQL will not run as
/// root), else `None`.
fn owner() -> Option<(u32, u32)> {
    let euid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (Debian's postgresql package creates it)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    ))
}

impl PgServer {
    /// Creates a cluster and starts its server on `port`, waiting until it accepts clients.
    pub(crate) fn start_on(port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("store-pg-")
            .tempdir()
            .expect("temporary folder");
        let owner = owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let mut server = Self {
            port,
            dir,
            owner,
            running: None,
        };
        let initdb = server
            .command("initdb")
            .args(["-D", "data", "-U", "postgres", "-A", "trust", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        server.start();
        server
    }

    /// A command for one of the server's binaries, run in its folder and, as root, as the
    /// `postgres` user.
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(bin_dir().join(binary));
        command.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the server on the existing cluster and waits until it accepts clients.
    pub(crate) fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid)).expect("chown log");
        }
        let socket_dir = self.dir.path().to_str().expect("UTF-8 path").to_string();
        let child = self
            .command("postgres")
            .args([
                "-D",
                "data",
                "-p",
                &self.port.to_string(),
                "-k",
                &socket_dir,
            ])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let watchdog = self.watchdog(child.id());
        self.running = Some((child, watchdog));
        self.wait_ready();
    }

    /// A shell loop that waits while both this process and the server `pid` live; if this
    /// process goes first, it stops the server, waits up to 15 s for it and removes the folder.
    fn watchdog(&self, pid: u32) -> Child {
        let script = format!(
            "while kill -0 {me} && kill -0 {pid}; do sleep 0.2; done 2>/dev/null
             kill -0 {me} 2>/dev/null && exit 0
             kill -INT {pid} 2>/dev/null
             for _ in $(seq 150); do kill -0 {pid} 2>/dev/null || break; sleep 0.1; done
             rm -rf '{dir}'",
            me = std::process::id(),
            dir = self.dir.path().display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog shell")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if postgres::Client::connect(&self.url("postgres"), postgres::NoTls).is_ok() {
                return;
            }
            let exited = self
                .running
                .as_mut()
                .and_then(|(c, _)| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "postgres did not start on port {} ({exited:?}): {}",
                    self.port,
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected); the cluster stays.
    pub(crate) fn stop(&mut self) {
        let Some((mut child, mut watchdog)) = self.running.take() else {
            return;
        };
        // SIGINT is PostgreSQL's fast shutdown; a kill would leave shared memory behind.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // It sees the server gone within 0.2 s and ends.
        let _ = watchdog.wait();
    }

    /// The URL of `database` on this server.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database.
    pub(crate) fn create_database(&self, name: &str) {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to postgres");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
