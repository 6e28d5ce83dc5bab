//! The command line. Global flags override configuration (the highest layer); subcommands say
//! what to run.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigError, Overrides};

/// traffic-algo: traffic monitoring on road cameras (YOLO detection, tracking, danger analysis).
#[derive(Debug, Parser)]
#[command(name = "traffic-algo", version, about)]
pub struct Cli {
    /// Configuration overrides, applied over model_config.yaml and ALGO_* variables.
    #[command(flatten)]
    pub flags: ConfigFlags,
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that set configuration keys.
#[derive(Debug, Args)]
pub struct ConfigFlags {
    /// YAML configuration file [env: ALGO_MODEL_CONFIG_PATH] [default: model_config.yaml].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Listen host (server.host).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Listen port (server.port).
    #[arg(long, global = true)]
    pub port: Option<String>,
    /// Model file name in the weights folder, or a path (model.name).
    #[arg(long, global = true)]
    pub model: Option<String>,
    /// Minimum detection confidence (model.confidence_threshold).
    #[arg(long, global = true)]
    pub confidence: Option<String>,
    /// NMS IoU threshold (model.iou_threshold).
    #[arg(long, global = true)]
    pub iou: Option<String>,
    /// Classes to keep, comma list (classes.include).
    #[arg(long, global = true)]
    pub classes: Option<String>,
    /// ONNX Runtime threads, 0 = automatic (model.threads).
    #[arg(long, global = true)]
    pub threads: Option<String>,
    /// Log level or tracing filter (log.level).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Streaming-mode roles, comma list of detector, tasks, llm-worker, aggregator
    /// (kafka.roles).
    #[arg(long, global = true)]
    pub roles: Option<String>,
    /// A camera started with the service, `ID=URL` (repeatable), beside cameras.yaml.
    #[arg(
        long = "camera",
        id = "declared_camera",
        global = true,
        value_name = "ID=URL"
    )]
    pub cameras: Vec<String>,
    /// Any setting by its key, e.g. `--set llm.model=qwen-vl-max` (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigFlags {
    /// The overrides these flags make.
    pub fn overrides(&self) -> Result<Overrides, ConfigError> {
        let mut o = Overrides::default();
        if let Some(path) = &self.config {
            o.set_config_path(path.clone());
        }
        for pair in &self.set {
            o.set_pair(pair)?;
        }
        for camera in &self.cameras {
            o.add_camera(camera.clone());
        }
        let named = [
            ("server.host", &self.host, "--host"),
            ("server.port", &self.port, "--port"),
            ("model.name", &self.model, "--model"),
            (
                "model.confidence_threshold",
                &self.confidence,
                "--confidence",
            ),
            ("model.iou_threshold", &self.iou, "--iou"),
            ("classes.include", &self.classes, "--classes"),
            ("model.threads", &self.threads, "--threads"),
            ("log.level", &self.log_level, "--log-level"),
            ("kafka.roles", &self.roles, "--roles"),
        ];
        for (key, value, flag) in named {
            if let Some(value) = value {
                o.set(key, value.clone(), flag);
            }
        }
        Ok(o)
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP + WebSocket service.
    Serve,
    /// Detect objects in images; prints one JSON line per image.
    Detect(DetectArgs),
    /// Run the camera pipeline over a video file; prints `detection_result` JSON lines.
    Analyze(AnalyzeArgs),
    /// Run the pipeline over labelled clips and score it against the labels.
    Eval(EvalArgs),
    /// Print the effective configuration (secrets redacted) and where each value came from.
    CheckConfig,
    /// Measure performance.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Arguments of `detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Image files (JPEG or PNG).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Keep every class the model knows, ignoring classes.include.
    #[arg(long)]
    pub all_classes: bool,
}

/// Arguments of `analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// An H.264 MP4 file.
    #[arg(value_name = "VIDEO")]
    pub video: PathBuf,
    /// Inline each analysed frame as a JPEG data URI (otherwise `frame` is null).
    #[arg(long)]
    pub frames: bool,
    /// The `cameraId` written in each result; its scene (scenes folder, `cameras.yaml`)
    /// applies.
    #[arg(long, default_value_t = 0)]
    pub camera_id: i64,
    /// A scene file to judge with instead (YAML or JSON, the shape of `scenes/<id>.yaml`).
    #[arg(long, value_name = "FILE")]
    pub scene: Option<PathBuf>,
}

/// Arguments of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The labels file (clips, scenes, normal spans, events, speeds, transforms).
    #[arg(value_name = "LABELS")]
    pub labels: PathBuf,
    /// Seconds between analysed frames, instead of each clip scene's `detect_interval`.
    #[arg(long)]
    pub interval: Option<f64>,
    /// Only the clip of this name.
    #[arg(long)]
    pub clip: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Detector latency per stage, against the Python onnxruntime reference in the same run.
    Detect(BenchDetectArgs),
    /// Camera pipeline capacity: decode cost against decode-everything, and how many cameras
    /// one process sustains at `stream.frame_interval`.
    Pipeline(BenchPipelineArgs),
    /// Capture-to-WebSocket latency (p50, p95) of the real service with N cameras started by a
    /// WebSocket client.
    Latency(BenchLatencyArgs),
    /// Per-frame cost of tracking, grouping and rules at 50 and 300 objects, and the tracker
    /// against the Python ByteTrack reference in the same run.
    Scene(BenchSceneArgs),
    /// The API-key pool against a local fake LLM server: throughput at the keys' nominal
    /// capacity, the busiest second of any key, and the scheduler's overhead per request.
    LlmPool(BenchLlmArgs),
    /// Streaming mode's tasks -> llm-worker -> aggregator on a real broker and Redis:
    /// throughput at zero LLM latency and end-to-end latency at 1.3 s, for 1 and 2 workers;
    /// with `--fleet-url`, the cameras a fleet of 1, 2 and 3 instances sustains.
    Streaming(BenchStreamingArgs),
}

/// Arguments of `bench streaming`.
#[derive(Debug, Args)]
pub struct BenchStreamingArgs {
    /// Kafka-protocol broker, HOST:PORT.
    #[arg(long)]
    pub bootstrap: String,
    /// Redis URL.
    #[arg(long)]
    pub redis: String,
    /// Tasks for the throughput run (two per detection).
    #[arg(long, default_value_t = 2000)]
    pub tasks: usize,
    /// llm-worker counts to try, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Seconds the fake LLM takes in the latency run.
    #[arg(long, default_value_t = 1.3)]
    pub latency: f64,
    /// Detections per second in the latency run (50 cameras every 1.8 s = 27.8).
    #[arg(long, default_value_t = 27.8)]
    pub rate: f64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Also measure a fleet: cameras sustained by 1, 2, 3 instances of this binary on this
    /// machine, every camera opening this URL (e.g. a clip served by a local RTSP server).
    #[arg(long)]
    pub fleet_url: Option<String>,
    /// The clip `--fleet-url` serves (its keyframe spacing sets the results expected).
    #[arg(long)]
    pub fleet_clip: Option<std::path::PathBuf>,
    /// Instance counts of the fleet run, comma separated.
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    pub instances: Vec<usize>,
    /// Camera counts tried for each instance count, ascending, comma separated (the first
    /// not sustained ends the series).
    #[arg(long, default_value = "8,16,24,32,40,48", value_delimiter = ',')]
    pub fleet_cameras: Vec<usize>,
    /// Measured seconds of each fleet step.
    #[arg(long, default_value_t = 20)]
    pub fleet_seconds: u64,
    /// Only the fleet run (skip the LLM pipeline's throughput and latency).
    #[arg(long)]
    pub fleet_only: bool,
}

/// Arguments of `bench llm-pool`.
#[derive(Debug, Args)]
pub struct BenchLlmArgs {
    /// API keys in the pool.
    #[arg(long, default_value_t = 10)]
    pub keys: usize,
    /// QPS limit of each key.
    #[arg(long, default_value_t = 5.0)]
    pub qps: f64,
    /// Seconds the fake server takes to answer.
    #[arg(long, default_value_t = 1.3)]
    pub latency: f64,
    /// Seconds of offered load.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Requests for the overhead comparison (half bare client, half through the pool).
    #[arg(long, default_value_t = 2000)]
    pub overhead_requests: usize,
}

/// Arguments of `bench scene`.
#[derive(Debug, Args)]
pub struct BenchSceneArgs {
    /// Objects per frame to try, comma separated.
    #[arg(long, default_value = "50,300", value_delimiter = ',')]
    pub objects: Vec<usize>,
    /// Measured frames per size.
    #[arg(long, default_value_t = 1000)]
    pub frames: usize,
    /// Unmeasured frames at the start.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Skip the Python reference.
    #[arg(long)]
    pub no_reference: bool,
}

/// Arguments of `bench latency`.
#[derive(Debug, Args)]
pub struct BenchLatencyArgs {
    /// Camera URL every camera opens (e.g. a clip served by a local RTSP server).
    #[arg(long)]
    pub url: String,
    /// Cameras started.
    #[arg(long, default_value_t = 16)]
    pub cameras: usize,
    /// Seconds before the measured window (cameras connect, sessions warm up).
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Starts every camera at once, so that cameras serving the same clip send their keyframes
    /// together (the worst case: one burst of N frames every keyframe interval). By default the
    /// starts are spread evenly over one frame interval, as independent cameras' keyframes are.
    #[arg(long)]
    pub aligned: bool,
}

/// Arguments of `bench pipeline`.
#[derive(Debug, Args)]
pub struct BenchPipelineArgs {
    /// H.264 MP4 clip (25 fps, keyframe every 2 s is what IP cameras send).
    #[arg(long)]
    pub clip: PathBuf,
    /// Camera URL to open N times (e.g. the clip served by a local RTSP server); default: the
    /// clip itself as a looping file camera.
    #[arg(long)]
    pub url: Option<String>,
    /// Camera counts to try, comma separated.
    #[arg(long, default_value = "4,8,16", value_delimiter = ',')]
    pub cameras: Vec<usize>,
    /// Measured seconds per camera count (after a warm-up).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
}

/// Arguments of `bench detect`.
#[derive(Debug, Args)]
pub struct BenchDetectArgs {
    /// The image to detect on, repeatedly.
    #[arg(long, default_value = "../shared/media/bus.jpg")]
    pub image: PathBuf,
    /// Measured iterations.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Unmeasured iterations at the start of each round.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Rounds alternating between our pipeline and the Python reference.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Skip the Python reference.
    #[arg(long)]
    pub no_reference: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_and_subcommand_flags_do_not_collide() {
        let cli = Cli::try_parse_from([
            "traffic-algo",
            "--camera",
            "1=rtsp://a",
            "bench",
            "pipeline",
            "--clip",
            "x.mp4",
            "--cameras",
            "2,4",
        ])
        .unwrap();
        assert_eq!(cli.flags.cameras, ["1=rtsp://a"]);
        let Some(Command::Bench(BenchCommand::Pipeline(args))) = cli.command else {
            panic!("not bench pipeline")
        };
        assert_eq!(args.cameras, [2, 4]);
        let cli = Cli::try_parse_from(["traffic-algo"]).unwrap();
        assert!(cli.command.is_none(), "serve is the default");
    }
}
