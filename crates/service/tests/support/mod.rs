//! Shared helpers for the black-box tests: where the project, the shared test data and the built
//! binary are, and how to run the binary and the Python reference pipeline.

#![allow(dead_code, unreachable_pub)]

pub mod fake_llm;
pub mod services;
pub mod ws;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `../shared` beside the repository: test media and models.
pub fn shared() -> PathBuf {
    let dir = repo_root().join("../shared");
    assert!(
        dir.is_dir(),
        "test data missing: {} (see README, Tests)",
        dir.display()
    );
    dir
}

/// A file under `../shared/media`.
pub fn media(name: &str) -> PathBuf {
    shared().join("media").join(name)
}

/// The fp32 YOLOv8n test model.
pub fn model() -> PathBuf {
    shared().join("models/yolov8n.onnx")
}

/// A command for the built `traffic-algo` binary, run in a directory without a
/// `model_config.yaml` and with no `ALGO_*` variables inherited.
pub fn traffic_algo(workdir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_traffic-algo"));
    cmd.current_dir(workdir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("ALGO_") || key == "DASHSCOPE_API_KEY" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A command running `tests/reference/yolo_reference.py` with the setup script's packages.
pub fn reference() -> Command {
    python_reference("yolo_reference.py")
}

/// `python3 tests/reference/SCRIPT` with the packages of `.deps/python`.
pub fn python_reference(script: &str) -> Command {
    let root = repo_root();
    let deps = root.join(".deps/python");
    assert!(
        deps.join("onnxruntime").is_dir(),
        "Python reference packages missing in {}: run scripts/setup.sh",
        deps.display()
    );
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("tests/reference").join(script))
        .env("PYTHONPATH", deps);
    cmd
}

/// Runs `cmd`, asserting success, and returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `cmd` and returns its output whatever the status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

/// A child process killed (by PID) when dropped.
pub struct Proc {
    pub child: std::process::Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines from `reader` until one starts with `prefix`; returns the rest of that line.
fn wait_for_line(reader: impl std::io::Read + Send + 'static, prefix: &str) -> String {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(reader).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with(prefix) => {
                // Keep draining so the child never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return line[prefix.len()..].trim().to_string();
            }
            Some(Ok(_)) => {}
            other => panic!("process ended before printing {prefix:?}: {other:?}"),
        }
    }
}

/// A real RTSP server (GStreamer gst-rtsp-server) serving `files` as /cam0, /cam1, ...
pub struct RtspServer {
    pub port: u16,
    _proc: Proc,
}

impl RtspServer {
    /// Starts on a free port.
    pub fn start(files: &[PathBuf]) -> Self {
        Self::start_on(0, files)
    }

    /// Starts on `port` (0 = any free port).
    pub fn start_on(port: u16, files: &[PathBuf]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args(files)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "start the RTSP server (/usr/bin/python3 with python3-gi; see scripts/setup.sh)",
            );
        let stdout = child.stdout.take().expect("stdout");
        let proc = Proc { child };
        let port = wait_for_line(stdout, "PORT ").parse().expect("port number");
        Self { port, _proc: proc }
    }

    /// The URL of stream `i`.
    pub fn url(&self, i: usize) -> String {
        format!("rtsp://127.0.0.1:{}/cam{i}", self.port)
    }
}

/// The service (`traffic-algo serve`) on a free loopback port.
pub struct Service {
    pub addr: String,
    pub dir: tempfile::TempDir,
    _proc: Proc,
}

impl Service {
    /// Starts the service with the test model and extra environment.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with(&[], env)
    }

    /// Starts the service with extra arguments and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(args, env, false)
    }

    /// Starts the service with its log (stderr) going to a file; see [`Service::log`].
    pub fn start_logging(env: &[(&str, &str)]) -> Self {
        Self::launch(&[], env, true)
    }

    /// What the service logged so far (only after [`Service::start_logging`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    fn launch(args: &[&str], env: &[(&str, &str)], log_to_file: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = traffic_algo(dir.path());
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--model"])
            .arg(model())
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped());
        if log_to_file {
            let file = std::fs::File::create(dir.path().join("service.log")).expect("log file");
            cmd.stderr(file);
        }
        let mut child = cmd.spawn().expect("start traffic-algo serve");
        let stdout = child.stdout.take().expect("stdout");
        let proc = Proc { child };
        let line = wait_for_line(stdout, "traffic-algo listening on http://");
        let addr = line.split_whitespace().next().expect("address").to_string();
        Self {
            addr,
            dir,
            _proc: proc,
        }
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self._proc.child.id()
    }

    /// The child process.
    pub fn child_mut(&mut self) -> &mut std::process::Child {
        &mut self._proc.child
    }
}

/// A minimal HTTP/1.1 request over loopback: returns the status, lower-cased headers and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Prometheus's `promtool`: the one scripts/setup.sh unpacked, else the one on `PATH`.
pub fn promtool() -> std::process::Command {
    let unpacked = repo_root().join(".deps/prometheus/usr/bin/promtool");
    if unpacked.is_file() {
        std::process::Command::new(unpacked)
    } else {
        std::process::Command::new("promtool")
    }
}

/// Runs `promtool check metrics` on `text`; returns its complaints, empty when clean.
pub fn promtool_check(text: &str) -> String {
    let mut child = promtool()
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; see scripts/setup.sh)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        said
    }
}

/// Samples of a Prometheus text exposition: series (name with labels) -> value.
pub fn metric_samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}
