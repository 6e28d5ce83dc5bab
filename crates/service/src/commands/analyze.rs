//! `traffic-algo analyze VIDEO`: the camera pipeline over a file, as fast as the machine allows
//! (sampling by the video's own clock at `stream.frame_interval`), one `detection_result` JSON
//! line per analysed frame.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use vision::Detector;

use crate::camera::decode::{VideoDecoder, encode_jpeg};
use crate::camera::file::FileSource;
use crate::camera::pipeline::JPEG_QUALITY;
use crate::camera::result::{FrameResult, ModelFacts, detection_result};
use crate::camera::sampler::{Decision, Sampler};
use crate::camera::source::SourceError;
use crate::cli::AnalyzeArgs;
use crate::config::Config;
use crate::detection::detector_options;

/// Runs `analyze`.
pub fn run(config: &Config, args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let mut detector = Detector::load(&detector_options(&config.model, false))?;
    let facts = ModelFacts::new(&config.model);
    let mut source = FileSource::open(&args.video)?;
    let mut sampler = Sampler::new(config.stream.frame_interval);
    let mut decoder = VideoDecoder::new()?;
    let stdout = std::io::stdout();
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
        let detections = detector.detect(picture.view())?.detections;
        let process_time = started.elapsed().as_secs_f64();
        let jpeg = if args.frames {
            Some(encode_jpeg(&picture, JPEG_QUALITY)?)
        } else {
            None
        };
        let line = detection_result(
            &FrameResult {
                camera_id: args.camera_id,
                timestamp: chrono::Utc::now(),
                jpeg: jpeg.as_deref(),
                stream_time: job.frames.last().map_or(0.0, |f| f.pts.as_secs_f64()),
                width: picture.width,
                height: picture.height,
                detections: &detections,
                process_time,
            },
            &facts,
        );
        let mut out = stdout.lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tracing::info!(decoded = decoder.frames_decoded(), "analysis finished");
    Ok(ExitCode::SUCCESS)
}
