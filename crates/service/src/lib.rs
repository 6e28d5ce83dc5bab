//! The traffic-algo service. `main.rs` only parses the command line and hands over to
//! [`commands`]; everything else lives here so black-box tests and benchmarks can reach it.
//!
//! Layout:
//! - [`app`]: wiring and shutdown order of the live service (`serve`).
//! - [`backend`]: camera list from and statistics to the Spring Boot backend.
//! - [`camera`]: sources, decode policy, per-camera pipeline, the hub of shared cameras.
//! - [`http`]: router, health, the `/ws` protocol and sessions.
//! - [`cli`]: the command line (subcommands and the flags that override configuration).
//! - [`config`]: layered configuration (defaults < YAML < environment < flags) and validation.
//! - [`logging`]: the tracing subscriber (text or JSON on stderr).
//! - [`imageio`]: reading image files into RGB frames.
//! - [`llm`]: the multimodal LLM: request, client, answer parsing, per-camera use, key pool.
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`detection`]: loading the detector from configuration and shaping its JSON output.
//! - [`streaming`]: streaming mode: topic messages, broker client, offsets.
//! - [`reference`]: running the Python reference pipeline (parity tests, benchmarks).
//! - [`commands`]: one module per subcommand.

pub mod app;
pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detection;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod reference;
pub mod sinks;
pub mod storage;
