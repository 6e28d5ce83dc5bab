//! The traffic-algo service. `main.rs` only parses the command line and hands over to
//! [`commands`]; everything else lives here so black-box tests and benchmarks can reach it.
//!
//! The top layer: it reads the configuration, wires the crates below into the live service
//! and serves HTTP and WebSocket; the cameras, the LLM and streaming mode live in their crates.
//!
//! Layout:
//! - [`config`]: layered configuration (defaults < YAML < environment < flags) and validation;
//!   the one YAML reader.
//! - [`logging`]: the tracing subscriber (text or JSON on stderr).
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`storage`]: analysed frames kept on disk, with their retention.
//! - [`sinks`]: the frame sinks the service plugs into every camera (LLM, saved frames, metrics).
//! - [`detection`]: loading the detector from configuration and shaping its JSON output.
//! - [`backend`]: camera list from and statistics to the Spring Boot backend; [`declared`]:
//!   where declared cameras go (this instance, or the fleet).
//! - [`scenes`]: each camera's scene geometry from its sources, applied live.
//! - [`http`]: router, health, the `/ws` sessions; the only place messages become JSON text.
//! - [`app`]: wiring and shutdown order of the live service (`serve`).
//! - [`reference`]: running the Python reference pipeline (parity tests, benchmarks).
//! - [`cli`]: the command line (subcommands and the flags that override configuration).
//! - [`commands`]: one module per subcommand.

pub mod app;
pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod declared;
pub mod detection;
pub mod http;
pub mod logging;
pub mod measure;
pub mod metrics;
pub mod reference;
pub mod scenes;
pub mod sinks;
pub mod storage;
