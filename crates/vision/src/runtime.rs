//! Finding and loading ONNX Runtime. ONNX Runtime's prebuilt downloads cannot be reached from
//! every machine, so `ort` is built with `load-dynamic` and we locate `libonnxruntime.so`
//! ourselves: an explicit path (`ORT_DYLIB_PATH`) wins, then the copy the setup script installs
//! from the PyPI `onnxruntime` wheel (`.deps/python/onnxruntime/capi/`) beside the executable or
//! the working directory, then the usual system locations.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

/// Where the setup script installs Python packages, relative to the project root.
pub const DEPS_PYTHON_DIR: &str = ".deps/python";

/// Why ONNX Runtime could not be brought up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No library file was found in any searched place.
    #[error(
        "ONNX Runtime library not found (looked in {searched}); run scripts/setup.sh or set ORT_DYLIB_PATH"
    )]
    NotFound {
        /// The places searched, comma separated.
        searched: String,
    },
    /// A library file was found but could not be loaded or initialised.
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Load {
        /// The library path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
}

/// The directories searched for a wheel-installed or copied library, in order.
fn search_dirs() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/release/traffic-algo -> the project root is a few levels up.
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    let mut dirs = Vec::new();
    for root in roots {
        dirs.push(root.join(DEPS_PYTHON_DIR).join("onnxruntime/capi"));
        dirs.push(root.join("lib"));
    }
    dirs.extend(["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"].map(PathBuf::from));
    dirs.dedup();
    dirs
}

/// The first `libonnxruntime.so*` file in `dir` (the wheel names it `libonnxruntime.so.1.x.y`).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Resolves the library path: `explicit` if given, else the first found in [`search_dirs`].
pub fn locate_library(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let dirs = search_dirs();
    dirs.iter()
        .find_map(|d| library_in(d))
        .ok_or_else(|| RuntimeError::NotFound {
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

static ENVIRONMENT: OnceLock<Result<Environment, RuntimeError>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library on first use. Later calls
/// return the first outcome whatever `explicit` says: a process holds one runtime.
pub fn environment(explicit: Option<&Path>) -> Result<&'static Environment, RuntimeError> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = locate_library(explicit)?;
            if !path.is_file() {
                return Err(RuntimeError::Load {
                    path,
                    reason: "no such file".into(),
                });
            }
            let load_err = |e: &dyn std::fmt::Display| RuntimeError::Load {
                path: path.clone(),
                reason: e.to_string(),
            };
            let builder = ort::init_from(&path).map_err(|e| load_err(&e))?;
            let env = builder
                .with_name("traffic-algo")
                .build()
                .map_err(|e| load_err(&e))?;
            tracing::debug!(path = %path.display(), "ONNX Runtime loaded");
            Ok(env)
        })
        .as_ref()
        .map_err(Clone::clone)
}
