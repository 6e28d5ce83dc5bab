//! Command dispatch: parse the command line, load and validate the configuration (exit 64 on any
//! error, before anything else happens), set up logging, run the subcommand.

pub mod analyze;
pub mod bench;
pub mod bench_fleet;
pub mod bench_latency;
pub mod bench_llm;
pub mod bench_pipeline;
pub mod bench_scene;
pub mod bench_streaming;
pub mod check_config;
pub mod detect;
pub mod eval;

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BenchCommand, Cli, Command};
use crate::config::{Config, EXIT_CONFIG};

/// The process environment as a map; variables that are not valid UTF-8 are skipped.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Runs the live service on a multi-threaded runtime.
fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("traffic-algo")
        .build()?;
    runtime.block_on(crate::app::serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the binary and returns its exit code.
pub fn main() -> ExitCode {
    // HTTPS (LLM, backend, MJPEG cameras) uses rustls with the ring provider.
    llm::client::install_tls();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors are configuration errors.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let loaded = cli
        .flags
        .overrides()
        .and_then(|o| Config::load(&process_env(), &o));
    let (config, layers) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    crate::logging::init(&config.log);
    let result = match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Serve => serve(&config),
        Command::Detect(args) => detect::run(&config, args),
        Command::Analyze(args) => analyze::run(&config, args),
        Command::Eval(args) => eval::run(&config, args),
        Command::CheckConfig => check_config::run(&config, &layers),
        Command::Bench(BenchCommand::Detect(args)) => bench::run_detect(&config, args),
        Command::Bench(BenchCommand::Pipeline(args)) => bench_pipeline::run(&config, args),
        Command::Bench(BenchCommand::Latency(args)) => bench_latency::run(&config, args),
        Command::Bench(BenchCommand::Scene(args)) => bench_scene::run(&config, args),
        Command::Bench(BenchCommand::LlmPool(args)) => bench_llm::run(args),
        Command::Bench(BenchCommand::Streaming(args)) => bench_streaming::run_bench(&config, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
