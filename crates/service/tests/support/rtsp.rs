//! A real RTSP server for the tests: GStreamer's gst-rtsp-server, driven by `rtsp_server.py`
//! through Debian's python3-gi, on a loopback port and killed by PID when dropped. Most tests
//! stream `vtest-h264.mp4` (768x576 pedestrians, 10 fps) from it: [`RtspServer::vtest`].

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Proc, media, wait_for_line};

/// A real RTSP server (GStreamer gst-rtsp-server) serving `files` as /cam0, /cam1, ...
pub struct RtspServer {
    /// Its port.
    pub port: u16,
    _proc: Proc,
}

impl RtspServer {
    /// Starts on a free port.
    pub fn start(files: &[PathBuf]) -> Self {
        Self::start_on(0, files)
    }

    /// Starts on a free port serving `vtest-h264.mp4` as /cam0.
    pub fn vtest() -> Self {
        Self::start(&[media("vtest-h264.mp4")])
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
