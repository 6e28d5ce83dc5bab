//! Shared helpers for the black-box tests: where the project, the shared test data and the built
//! binary are, and how to run the binary and the Python reference pipeline.

#![allow(dead_code, unreachable_pub)]

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
    let root = repo_root();
    let deps = root.join(".deps/python");
    assert!(
        deps.join("onnxruntime").is_dir(),
        "Python reference packages missing in {}: run scripts/setup.sh",
        deps.display()
    );
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("tests/reference/yolo_reference.py"))
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
