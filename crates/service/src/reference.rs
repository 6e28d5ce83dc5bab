//! The Python references under `tests/reference/`: the detector pipeline (Python onnxruntime with
//! OpenCV letterbox and NMS), measured beside our detector in `bench detect`, and Roboflow's
//! ByteTrack, measured beside our tracker in `bench scene`. Both also serve the parity tests.
//! Python packages come from the folder the setup script fills.

use std::path::{Path, PathBuf};
use std::process::Command;

use vision::runtime::DEPS_PYTHON_DIR;

/// The detector reference script, relative to the project root.
pub const REFERENCE_SCRIPT: &str = "tests/reference/yolo_reference.py";
/// The tracker reference script, relative to the project root.
pub const TRACKER_REFERENCE_SCRIPT: &str = "tests/reference/bytetrack_reference.py";

/// The project root: the nearest of the working directory and the executable's ancestors that
/// holds the reference script.
pub fn project_root() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().map(Path::to_path_buf));
    }
    candidates
        .into_iter()
        .find(|root| root.join(REFERENCE_SCRIPT).is_file())
}

/// A `python3` command that runs `script` (one of the constants above) with the setup script's
/// packages on `PYTHONPATH`. `None` when the project root cannot be found.
pub fn reference_command(script: &str) -> Option<Command> {
    let root = project_root()?;
    let python = std::env::var("TRAFFIC_ALGO_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = Command::new(python);
    cmd.arg(root.join(script));
    let deps = root.join(DEPS_PYTHON_DIR);
    if deps.is_dir() {
        cmd.env("PYTHONPATH", deps);
    }
    Some(cmd)
}
