//! `traffic-algo analyze VIDEO`: the camera pipeline over a file, as fast as the machine allows
//! (sampling by the video's own clock at the scene's `detect_interval` or
//! `stream.frame_interval`, with the alert pause after a fresh `high` alert), one
//! `detection_result` JSON line per analysed frame, and a `camera_status` line (`picture
//! frozen`, `picture moving again`) where a watcher of the live camera would get one. The scene
//! is `--scene FILE`, else camera `--camera-id`'s from the configuration (scenes folder,
//! `cameras.yaml`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use camera::judge::{FrameInput, PICTURE_FROZEN, PICTURE_MOVING, fresh_high, judge_frame};
use camera::layout::detect_interval;
use camera::sampler::{Decision, Sampler};
use camera::source::SourceError;
use camera::source::file::FileSource;
use camera::video::VideoDecoder;
use protocol::ServerMessage;
use protocol::server::{CameraState, CameraStatus};
use vision::Detector;
use vision::sanity::PictureWatch;
use vision::scene::layout::Layout;
use vision::scene::{Scene, is_vehicle};

use crate::app::model_facts;
use crate::cli::AnalyzeArgs;
use crate::config::{Config, scenes};
use crate::detection::{pipeline_detector_options, scene_config};
use crate::measure::tally::Tally;

/// The scene to judge with: `--scene`, else the camera's from the configuration, else none.
pub fn layout(config: &Config, args: &AnalyzeArgs) -> anyhow::Result<Arc<Layout>> {
    if let Some(path) = &args.scene {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let layout = scenes::parse(&text, config.scenes.max_error_px)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(Arc::new(layout));
    }
    let from_yaml = config
        .cameras
        .iter()
        .find(|c| c.id == args.camera_id)
        .and_then(|c| c.layout.clone());
    let from_file = config
        .scenes
        .files
        .iter()
        .find(|(id, _)| *id == args.camera_id)
        .map(|(_, f)| Arc::clone(&f.layout));
    Ok(from_yaml.or(from_file).unwrap_or_default())
}

/// Runs `analyze`.
pub fn run(config: &Config, args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let mut detector = Detector::load(&pipeline_detector_options(config))?;
    let facts = model_facts(config);
    let layout = layout(config, args)?;
    let interval = detect_interval(&layout, config.stream.frame_interval);
    let mut watch = PictureWatch::default();
    let mut source = FileSource::open(&args.video)?;
    let mut scene = Scene::with_layout(scene_config(config), layout);
    for reason in scene.rules_off() {
        tracing::info!(reason = %reason, "rule off");
    }
    let mut sampler = Sampler::new(interval);
    let mut decoder = VideoDecoder::new()?;
    let stdout = std::io::stdout();
    // The whole file is one bin: `trafficStats.lines` and `.lanes` count from its start.
    let mut tally = Tally::new(86_400);
    loop {
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(SourceError::Ended) => break,
            Err(e) => return Err(e.into()),
        };
        let Decision::Decode(job) = sampler.push(frame) else {
            continue;
        };
        let started = Instant::now();
        let Some(picture) = decoder.decode(&job)? else {
            continue;
        };
        let mut detections = detector.detect(picture.view())?.detections;
        vision::detector::one_box_per_vehicle(&mut detections, is_vehicle);
        let stream_time = job.frames.last().map_or(0.0, |f| f.pts.as_secs_f64());
        let input = FrameInput {
            camera_id: args.camera_id,
            frame: &picture,
            stream_time,
            detections: &detections,
            started,
            with_frame: args.frames,
        };
        let mut judged = judge_frame(&mut scene, &mut watch, &facts, &input)?;
        for m in &judged.scene.measures {
            tally.add(m.t, stream_time, m);
        }
        (
            judged.result.traffic_stats.lines,
            judged.result.traffic_stats.lanes,
        ) = tally.current(stream_time, &judged.scene.layout, &judged.scene.lanes);
        if fresh_high(&judged.result) {
            sampler.pause_until(Duration::from_secs_f64(stream_time) + config.stream.alert_pause);
        }
        let mut messages = Vec::new();
        for (said, status) in [
            (judged.picture.thawed, PICTURE_MOVING),
            (judged.picture.froze, PICTURE_FROZEN),
        ] {
            if said {
                let status = CameraStatus::new(args.camera_id, CameraState::Online, status);
                messages.push(ServerMessage::CameraStatus(status));
            }
        }
        messages.push(ServerMessage::DetectionResult(Box::new(judged.result)));
        let mut out = stdout.lock();
        for message in &messages {
            writeln!(out, "{}", crate::http::ws::message_text(message))?;
        }
        out.flush()?;
    }
    for m in scene.finish() {
        tally.add(m.t, m.t, &m);
    }
    for ((line, direction, class), n) in tally.crossings() {
        tracing::info!(%line, direction = direction.as_str(), %class, crossings = n, "count");
    }
    tracing::info!(decoded = decoder.frames_decoded(), "analysis finished");
    Ok(ExitCode::SUCCESS)
}
