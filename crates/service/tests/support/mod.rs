//! Shared helpers for the black-box tests: where the project, the shared test data and the built
//! binary are, how to run the binary and the Python reference pipeline, the service on a
//! loopback port and plain HTTP requests to it. The servers the tests stand up live beside:
//! `rtsp` (a real RTSP server), `mjpeg` (an HTTP MJPEG camera), `fake_llm`, `services` (Kafka
//! and Redis for streaming mode), `kafka_cluster` (real Apache Kafka KRaft brokers), `tls` (a
//! TLS front for `rtsps://`); `ws` is the WebSocket client and `live_camera` the usual start of
//! a test: an RTSP server, the service and a client watching the camera.
//!
//! Each test binary compiles this module and uses only part of it, hence `dead_code`.

#![allow(dead_code, unreachable_pub)]

pub mod fake_llm;
pub mod kafka_cluster;
pub mod live_camera;
pub mod mjpeg;
pub mod rtsp;
pub mod services;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use rtsp::RtspServer;

/// Seconds, short to write in timeouts: `SECS(5)`.
pub const SECS: fn(u64) -> Duration = Duration::from_secs;

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

/// The static int8 twin of the fp32 model that scripts/setup.sh makes (scripts/quantize.py),
/// beside the fp32 copy in `weights/`; returns that fp32 copy.
pub fn model_with_int8() -> PathBuf {
    let fp32 = repo_root().join("weights/yolov8n.onnx");
    let int8 = repo_root().join("weights/yolov8n.int8.onnx");
    assert!(
        fp32.is_file() && int8.is_file(),
        "{} or {} missing: run scripts/setup.sh",
        fp32.display(),
        int8.display()
    );
    fp32
}

/// A `file://` URL of a file under `../shared/media`, played in a loop (`?loop=1`).
pub fn looping(name: &str) -> String {
    format!("file://{}?loop=1", media(name).display())
}

/// A temporary directory holding one file, `name`, with `contents` (a configuration file).
pub fn dir_with(name: &str, contents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(name), contents).expect("write the file");
    dir
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

    /// Sends SIGTERM and waits for the process to end; fails the test if it still runs `within`
    /// after the signal. Returns the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let signalled = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                signalled.elapsed() < within,
                "still running {} s after SIGTERM",
                within.as_secs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Crossings of camera `id` counted so far: its `traffic_line_crossings_total` series,
    /// every line and class, of `direction` (`in`, `out`) or both.
    pub fn counted_crossings(&self, id: i64, direction: Option<&str>) -> u64 {
        let (_, _, text) = http(&self.addr, "GET", "/metrics", &[]);
        let camera = format!("camera=\"{id}\"");
        let direction = direction.map(|d| format!("direction=\"{d}\""));
        metric_samples(&text)
            .iter()
            .filter(|(s, _)| {
                s.starts_with("traffic_line_crossings_total{")
                    && s.contains(&camera)
                    && direction.as_ref().is_none_or(|d| s.contains(d.as_str()))
            })
            .map(|(_, v)| *v as u64)
            .sum()
    }

    /// Crossings of camera `id` in the measurement database, read through the counts API
    /// (daily bins: every bin, line, direction and class).
    pub fn stored_crossings(&self, id: i64) -> u64 {
        let path = format!("/api/cameras/{id}/counts?bin=86400");
        let (status, _, body) = http(&self.addr, "GET", &path, &[]);
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON from /counts");
        v["data"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| row["count"].as_u64().expect("count"))
            .sum()
    }

    /// The `/api/cameras` answer (status 200 asserted).
    pub fn cameras(&self) -> Value {
        let (status, _, body) = http(&self.addr, "GET", "/api/cameras", &[]);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON from /api/cameras")
    }

    /// The value of one `series` (name with labels) on `/metrics`; 0 when it is not there.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, _, text) = http(&self.addr, "GET", "/metrics", &[]);
        metric_samples(&text).get(series).copied().unwrap_or(0.0)
    }
}

/// A minimal HTTP/1.1 request over loopback: returns the status, lower-cased headers and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_with_body(addr, method, path, headers, "")
}

/// [`http`] with a request body.
pub fn http_with_body(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
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
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
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

/// Serves `app` on a free loopback port in the background; returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
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
