//! `traffic-algo eval LABELS.yaml`: the camera pipeline (detector, one box per vehicle, the
//! scene with its layout and rules) over labelled clips, scored against their labels: per rule
//! true alerts, false alarms and missed events, false alarms per camera-hour, and for
//! calibrated clips the speed error against hand measurements. Clips may be played transformed
//! (faster, a segment reversed, a segment frozen) for metamorphic checks that need no ground
//! truth. Every sample is judged (no alert pause), as fast as the machine allows; the picture
//! watch runs as on a live camera, and the freezes it reports are in the report.

pub mod labels;
pub mod score;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camera::judge::{FrameInput, judge_frame};
use camera::layout::detect_interval;
use camera::result::ModelFacts;
use camera::sampler::{Decision, Sampler};
use camera::source::SourceError;
use camera::source::file::FileSource;
use camera::video::VideoDecoder;
use imaging::RgbFrame;
use protocol::DetectionResult;
use vision::Detector;
use vision::sanity::PictureWatch;
use vision::scene::layout::Layout;
use vision::scene::measure::{Direction, Measure, MeasureKind};
use vision::scene::{Scene, is_vehicle};

use crate::app::model_facts;
use crate::cli::EvalArgs;
use crate::config::{Config, scenes};
use crate::detection::{pipeline_detector_options, scene_config};
use labels::{Clip, Labels};
use score::{ClipReport, score};

/// Runs `eval`.
pub fn run(config: &Config, args: &EvalArgs) -> anyhow::Result<ExitCode> {
    if let Some(i) = args.interval {
        anyhow::ensure!(
            (0.05..=60.0).contains(&i),
            "--interval must be between 0.05 and 60 seconds, got {i}"
        );
    }
    let labels = Labels::load(&args.labels)?;
    let mut detector = Detector::load(&pipeline_detector_options(config))?;
    let facts = model_facts(config);
    let mut reports = Vec::new();
    let clips = labels
        .clips
        .iter()
        .filter(|c| args.clip.as_ref().is_none_or(|n| &c.name == n));
    for clip in clips {
        let layout = match &clip.scene {
            Some(path) => Arc::new(load_scene(path, config.scenes.max_error_px)?),
            None => Arc::default(),
        };
        let interval = args.interval.map_or_else(
            || detect_interval(&layout, config.stream.frame_interval),
            Duration::from_secs_f64,
        );
        let mut run = ClipRun {
            scene: Scene::with_layout(scene_config(config), layout),
            watch: PictureWatch::default(),
            detector: &mut detector,
            facts: &facts,
            results: Vec::new(),
            freezes: Vec::new(),
            crossings: BTreeMap::new(),
        };
        let transform = clip.transform.clone().unwrap_or_default();
        for _ in 0..transform.loops.unwrap_or(1).max(1) {
            run.play(clip, &transform, interval)?;
        }
        for m in run.scene.finish() {
            run.count(&m);
        }
        let mut report = score(clip, &run.results, interval.as_secs_f64(), run.freezes);
        report.counts = score::counts(clip, &run.crossings);
        tracing::info!(clip = %clip.name, frames = report.frames, "clip evaluated");
        reports.push(report);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "clips": reports }))?
        );
    } else {
        print!("{}", table(&reports));
    }
    Ok(ExitCode::SUCCESS)
}

fn load_scene(path: &Path, max_error_px: f64) -> anyhow::Result<Layout> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    scenes::parse(&text, max_error_px).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// One clip being played through the pipeline.
struct ClipRun<'a> {
    scene: Scene,
    watch: PictureWatch,
    detector: &'a mut Detector,
    facts: &'a ModelFacts,
    results: Vec<DetectionResult>,
    /// Stream times the picture was reported frozen.
    freezes: Vec<f64>,
    /// Crossings per count line: (in, out), every class.
    crossings: BTreeMap<String, (u64, u64)>,
}

impl ClipRun<'_> {
    /// Counts a crossing.
    fn count(&mut self, m: &Measure) {
        if let MeasureKind::Crossing { line, direction } = &m.kind {
            let n = self.crossings.entry(line.to_string()).or_default();
            match direction {
                Direction::In => n.0 += 1,
                Direction::Out => n.1 += 1,
            }
        }
    }

    /// Samples the clip every `interval` of stream time, applying `transform` (its `loops`
    /// excepted: one call is one pass, its stream time from 0).
    fn play(
        &mut self,
        clip: &Clip,
        transform: &labels::Transform,
        interval: Duration,
    ) -> anyhow::Result<()> {
        let speed = transform.speed.unwrap_or(1.0);
        anyhow::ensure!(speed > 0.0, "clip {}: speed must be above 0", clip.name);
        let mut source = FileSource::open(&clip.video)
            .map_err(|e| anyhow::anyhow!("{}: {e}", clip.video.display()))?;
        // Faster playback: the same stream-time cadence takes video frames further apart.
        let mut sampler = Sampler::new(interval.mul_f64(speed));
        let mut decoder = VideoDecoder::new()?;
        let mut reversed: Vec<(f64, RgbFrame)> = Vec::new();
        let mut frozen: Option<RgbFrame> = None;
        loop {
            let frame = match source.next_frame() {
                Ok(frame) => frame,
                Err(SourceError::Ended) => break,
                Err(e) => return Err(e.into()),
            };
            let Decision::Decode(job) = sampler.push(frame) else {
                continue;
            };
            // A picture that does not decode is skipped, as a live camera does.
            let picture = match decoder.decode(&job) {
                Ok(Some(picture)) => picture,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(clip = %clip.name, error = %e, "decode failed");
                    continue;
                }
            };
            let t = job.frames.last().map_or(0.0, |f| f.pts.as_secs_f64());
            if clip.until.is_some_and(|u| t > u) {
                break;
            }
            if let Some([a, b]) = transform.reverse {
                if (a..=b).contains(&t) {
                    reversed.push((t, picture));
                    continue;
                }
                self.flush_reversed(&mut reversed, a, b)?;
            }
            if let Some([a, b]) = transform.freeze
                && (a..=b).contains(&t)
            {
                let still = frozen.get_or_insert(picture).clone();
                self.judge(t / speed, &still)?;
                continue;
            }
            self.judge(t / speed, &picture)?;
        }
        if let Some([a, b]) = transform.reverse {
            self.flush_reversed(&mut reversed, a, b)?;
        }
        Ok(())
    }

    /// Plays the buffered `[a, b]` segment backwards in its own place on the timeline.
    fn flush_reversed(
        &mut self,
        frames: &mut Vec<(f64, RgbFrame)>,
        a: f64,
        b: f64,
    ) -> anyhow::Result<()> {
        for (t, picture) in std::mem::take(frames).into_iter().rev() {
            self.judge(a + (b - t), &picture)?;
        }
        Ok(())
    }

    /// Detects and judges one picture at stream time `t`.
    fn judge(&mut self, t: f64, picture: &RgbFrame) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut detections = self.detector.detect(picture.view())?.detections;
        vision::detector::one_box_per_vehicle(&mut detections, is_vehicle);
        let input = FrameInput {
            camera_id: 0,
            frame: picture,
            stream_time: t,
            detections: &detections,
            started,
            with_frame: false,
        };
        let judged = judge_frame(&mut self.scene, &mut self.watch, self.facts, &input)?;
        for m in &judged.scene.measures {
            self.count(m);
        }
        if judged.picture.froze {
            self.freezes.push(t);
        }
        let mut result = judged.result;
        result.group_images.clear(); // Crops are not scored; do not keep them around.
        self.results.push(result);
        Ok(())
    }
}

/// The human-readable report: one block per clip.
pub fn table(reports: &[ClipReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let speed = r.speed.as_ref().filter(|s| s.matched > 0).map_or_else(
            || "-".to_string(),
            |s| {
                format!(
                    "MAE {:.1} km/h, bias {:+.0}% ({}/{})",
                    s.mae_kmh, s.bias_pct, s.matched, s.labels
                )
            },
        );
        out.push_str(&format!(
            "{}: {} frames every {} s over {:.1} min ({:.1} normal); high {}, medium {}; false alarms {:.1}/camera-hour; speed {}; median moving {}\n",
            r.name,
            r.frames,
            r.interval_s,
            r.minutes,
            r.normal_minutes,
            r.high,
            r.medium,
            r.false_alarms_per_hour,
            speed,
            r.moving_median_kmh.map_or_else(|| "-".into(), |v| format!("{v:.0} km/h")),
        ));
        for c in &r.counts {
            let label = c.labelled.map_or_else(
                || "-".to_string(),
                |l| {
                    format!(
                        "{l} by eye, accuracy {:.0}%",
                        100.0 * c.accuracy.unwrap_or(0.0)
                    )
                },
            );
            out.push_str(&format!(
                "  line {:<16} {:<3} counted {:>3}  ({label})\n",
                c.line, c.direction, c.measured
            ));
        }
        for (rule, s) in &r.rules {
            out.push_str(&format!(
                "  {rule:<20} true {:>3}  false {:>3} (high {}, medium {})  unlabeled {:>3}  missed {:>3}\n",
                s.true_alerts, s.false_alarms, s.false_high, s.false_medium, s.unlabeled, s.missed
            ));
        }
    }
    out
}
