//! `traffic-algo detect IMAGE...`: one JSON line per image on stdout. A file that cannot be read
//! is reported on stderr and the others still run; the exit code is non-zero if any failed.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use vision::Detector;
use vision::worker::InferenceWorker;

use crate::cli::DetectArgs;
use crate::config::Config;
use crate::detection::{ImageDetections, detector_options};
use imaging::read_rgb;

/// Runs `detect`.
pub fn run(config: &Config, args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let detector = Detector::load(&detector_options(&config.model, args.all_classes))?;
    let worker =
        InferenceWorker::spawn(detector, 2).context("cannot start the inference thread")?;
    let mut failed = 0usize;
    let stdout = std::io::stdout();
    for path in &args.images {
        let frame = match read_rgb(path) {
            Ok(frame) => frame,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let (width, height) = (frame.width, frame.height);
        let output = worker.run(move |d| d.detect(frame.view()))??;
        let line = ImageDetections {
            image: &path.to_string_lossy(),
            width,
            height,
            detected_objects: &output.detections,
            process_time: output.timings.total().as_secs_f64(),
        };
        let mut out = stdout.lock();
        serde_json::to_writer(&mut out, &line)?;
        writeln!(out)?;
        out.flush()?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
