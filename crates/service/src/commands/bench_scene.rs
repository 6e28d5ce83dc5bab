//! `traffic-algo bench scene`: the per-frame cost of judging a frame (tracker, histories, flow
//! field, grouping, rules, alert book; everything but pixels) on synthetic traffic of 50 and 300
//! objects, median and p99, without a scene and with a calibrated one (six lanes with
//! directions, a crosswalk, ground Kalman filters, every rule at 0.3 s), and that calibrated
//! scene again with traffic measurement (three count lines, two approach zones) to show what
//! measuring costs. The tracker alone is
//! also run beside Roboflow's Python ByteTrack (tests/reference/bytetrack_reference.py) on the
//! same detections, reported as a ratio.

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use std::sync::Arc;

use vision::scene::layout::{
    CalibrationSpec, LaneSpec, Layout, LineSpec, SceneSpec, ZoneKind, ZoneSpec,
};
use vision::scene::{Scene, SceneFrame};
use vision::tracker::byte_track::{ByteTracker, TrackInput};
use vision::{BBox, Detection};

use super::bench::quantile;
use crate::cli::BenchSceneArgs;
use crate::config::Config;
use crate::detection::scene_config;
use crate::reference::{TRACKER_REFERENCE_SCRIPT, reference_command};

/// Frame size of the synthetic traffic.
const WIDTH: u32 = 1280;
/// Frame size of the synthetic traffic.
const HEIGHT: u32 = 720;

/// `n` objects at analysed frame `k` (every `interval` seconds): four out of five are vehicles
/// on six lanes, both ways, at varied speeds; the rest are people on the pavements. Objects that
/// leave the frame come back on the other side (as new tracks).
pub fn synthetic_traffic(n: usize, k: usize, interval: f64) -> Vec<Detection> {
    let t = k as f64 * interval;
    (0..n)
        .map(|i| {
            let seed = (i as f64 * 0.618_034).fract();
            let person = i % 5 == 4;
            let (lane, w, h, speed, label, class_id) = if person {
                ((i / 5) % 2 * 7, 30.0, 75.0, 20.0 + 30.0 * seed, "person", 0)
            } else {
                (1 + i % 6, 110.0, 60.0, 60.0 + 140.0 * seed, "car", 2)
            };
            let dir = if lane % 2 == 0 { 1.0 } else { -1.0 };
            let span = f64::from(WIDTH) + 200.0;
            let x = (seed * span + dir * speed * t).rem_euclid(span) - 100.0;
            let y = 40.0 + lane as f64 * 85.0 + 10.0 * (i as f64 * 1.7).sin();
            Detection {
                label: label.into(),
                class_id,
                confidence: 0.5 + 0.45 * seed as f32,
                bbox: BBox::new(x as f32, y as f32, x as f32 + w, y as f32 + h),
            }
        })
        .collect()
}

/// [`synthetic_layout`] with measurement: three count lines across every lane (vehicles cross
/// them both ways) and approach zones at both ends (every vehicle makes a movement).
pub fn measured_layout() -> Layout {
    let mut spec = synthetic_layout().spec;
    spec.lines = [320.0, 640.0, 960.0]
        .iter()
        .enumerate()
        .map(|(i, &x)| LineSpec {
            name: format!("count-{i}"),
            points: [[x, 40.0], [x, 720.0]],
        })
        .collect();
    for (name, x0, x1) in [("west", -200.0, 200.0), ("east", 1080.0, 1480.0)] {
        spec.zones.push(ZoneSpec {
            name: name.into(),
            kind: ZoneKind::Approach,
            polygon: vec![[x0, 40.0], [x1, 40.0], [x1, 720.0], [x0, 720.0]],
        });
    }
    spec.compile(1000.0).expect("the measured scene is valid")
}

/// The scene of the synthetic traffic: a perspective calibration (the frame is 30 m wide at the
/// bottom, 120 m deep), the six lanes with their directions, a crosswalk across them, at 0.3 s.
pub fn synthetic_layout() -> Layout {
    let lanes = (1..=6)
        .map(|lane| {
            let y0 = 40.0 + f64::from(lane) * 85.0;
            let dir = if lane % 2 == 0 { 1.0 } else { -1.0 };
            LaneSpec {
                name: format!("lane-{lane}"),
                polygon: vec![
                    [-200.0, y0],
                    [1480.0, y0],
                    [1480.0, y0 + 85.0],
                    [-200.0, y0 + 85.0],
                ],
                direction: Some([
                    [640.0 - dir * 100.0, y0 + 60.0],
                    [640.0 + dir * 100.0, y0 + 60.0],
                ]),
                speed_limit_kmh: Some(50.0),
            }
        })
        .collect();
    let spec = SceneSpec {
        calibration: Some(CalibrationSpec {
            image: vec![
                [0.0, 720.0],
                [1280.0, 720.0],
                [1280.0, 60.0],
                [0.0, 60.0],
                [640.0, 400.0],
            ],
            ground: vec![
                [0.0, 0.0],
                [30.0, 0.0],
                [40.0, 120.0],
                [-10.0, 120.0],
                [15.0, 18.2],
            ],
        }),
        detect_interval: Some(0.3),
        lanes,
        zones: vec![ZoneSpec {
            name: "crossing".into(),
            kind: ZoneKind::Crosswalk,
            polygon: vec![
                [600.0, 100.0],
                [680.0, 100.0],
                [680.0, 720.0],
                [600.0, 720.0],
            ],
        }],
        lines: Vec::new(),
    };
    spec.compile(1000.0).expect("the synthetic scene is valid")
}

/// Judges `frames` (every `interval` s) with `scene`: the times after `warmup`, and the groups
/// and alerts per frame.
fn time_scene(
    scene: &mut Scene,
    frames: &[Vec<Detection>],
    interval: f64,
    warmup: usize,
) -> (Vec<f64>, f64, f64) {
    let mut times = Vec::new();
    let (mut groups, mut alerts) = (0usize, 0usize);
    for (k, dets) in frames.iter().enumerate() {
        let started = Instant::now();
        let out = scene.update(k as f64 * interval, WIDTH, HEIGHT, dets);
        let elapsed = started.elapsed().as_secs_f64();
        if k >= warmup {
            times.push(elapsed);
            groups += out.groups.len();
            alerts += out.alerts.len();
        }
    }
    let n = times.len().max(1) as f64;
    (times, groups as f64 / n, alerts as f64 / n)
}

/// Judges one frame at stream time `t`: its time and what the scene made of it.
fn time_at(scene: &mut Scene, t: f64, dets: &[Detection]) -> (f64, SceneFrame) {
    let started = Instant::now();
    let out = scene.update(t, WIDTH, HEIGHT, dets);
    (started.elapsed().as_secs_f64(), out)
}

fn millis(samples: &[f64], q: f64) -> f64 {
    quantile(samples, q) * 1000.0
}

fn python_tracker(config: &Config, frames: &[Vec<Detection>]) -> anyhow::Result<Vec<f64>> {
    let tracker = scene_config(config).tracker;
    let request = json!({
        "params": {
            "track_thresh": tracker.track_thresh,
            "match_thresh": tracker.match_thresh,
            "max_lost_frames": tracker.max_lost_frames,
        },
        "frames": frames.iter().map(|f| f.iter().map(|d| {
            json!([d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2, d.confidence])
        }).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let mut child = reference_command(TRACKER_REFERENCE_SCRIPT)
        .context("tests/reference/bytetrack_reference.py not found")?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run python3")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(request.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "the Python tracker reference failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(serde_json::from_value(v["seconds"].clone())?)
}

/// Runs `bench scene`.
pub fn run(config: &Config, args: &BenchSceneArgs) -> anyhow::Result<ExitCode> {
    let cfg = scene_config(config);
    let interval = config.stream.frame_interval.as_secs_f64();
    println!(
        "bench scene: {} frames per size after {} warm-up, frame {WIDTH}x{HEIGHT}, interval {interval} s",
        args.frames, args.warmup
    );
    println!(
        "{:>8} {:>12} {:>12} {:>14} {:>14} {:>14}",
        "objects", "scene p50", "scene p99", "tracker p50", "python p50", "ours/python"
    );
    for &n in &args.objects {
        let frames: Vec<Vec<Detection>> = (0..args.warmup + args.frames)
            .map(|k| synthetic_traffic(n, k, interval))
            .collect();
        let (scene_times, groups, alerts) =
            time_scene(&mut Scene::new(cfg), &frames, interval, args.warmup);
        let calibrated_frames: Vec<Vec<Detection>> = (0..args.warmup + args.frames)
            .map(|k| synthetic_traffic(n, k, 0.3))
            .collect();
        // The calibrated scene without and with measurement, frame by frame in turn: the
        // machine's drift falls on both alike.
        let mut calibrated = Scene::with_layout(cfg, Arc::new(synthetic_layout()));
        let mut measured = Scene::with_layout(cfg, Arc::new(measured_layout()));
        let (mut calibrated_times, mut measured_times) = (Vec::new(), Vec::new());
        let (mut calibrated_groups, mut calibrated_alerts, mut measures) = (0, 0, 0);
        for (k, dets) in calibrated_frames.iter().enumerate() {
            let t = k as f64 * 0.3;
            let (a, plain) = time_at(&mut calibrated, t, dets);
            let (b, with_measures) = time_at(&mut measured, t, dets);
            if k >= args.warmup {
                calibrated_times.push(a);
                measured_times.push(b);
                calibrated_groups += plain.groups.len();
                calibrated_alerts += plain.alerts.len();
                measures += with_measures.measures.len();
            }
        }
        let measured_frames = calibrated_times.len().max(1) as f64;
        let calibrated_groups = calibrated_groups as f64 / measured_frames;
        let calibrated_alerts = calibrated_alerts as f64 / measured_frames;
        let mut tracker = ByteTracker::new(cfg.tracker);
        let mut tracker_times = Vec::with_capacity(args.frames);
        for (k, dets) in frames.iter().enumerate() {
            let started = Instant::now();
            let inputs: Vec<TrackInput> = dets
                .iter()
                .map(|d| TrackInput {
                    bbox: d.bbox,
                    score: d.confidence,
                    class_id: d.class_id,
                })
                .collect();
            std::hint::black_box(tracker.update(&inputs));
            if k >= args.warmup {
                tracker_times.push(started.elapsed().as_secs_f64());
            }
        }
        let python = if args.no_reference {
            None
        } else {
            let all = python_tracker(config, &frames)?;
            Some(all[args.warmup.min(all.len())..].to_vec())
        };
        let ours = millis(&tracker_times, 0.5);
        let (py, ratio) = python.as_ref().map_or(("-".into(), "-".into()), |p| {
            let py = millis(p, 0.5);
            (format!("{py:.3} ms"), format!("{:.3}", ours / py))
        });
        println!(
            "{n:>8} {:>9.3} ms {:>9.3} ms {:>11.3} ms {py:>14} {ratio:>14}",
            millis(&scene_times, 0.5),
            millis(&scene_times, 0.99),
            ours,
        );
        println!(
            "{:>8} (per frame: {groups:.1} groups, {alerts:.1} alerts)",
            ""
        );
        println!(
            "{:>8} calibrated scene, 0.3 s: p50 {:.3} ms, p99 {:.3} ms (per frame: {calibrated_groups:.1} groups, {calibrated_alerts:.1} alerts)",
            "",
            millis(&calibrated_times, 0.5),
            millis(&calibrated_times, 0.99),
        );
        let (p50, p50_base) = (millis(&measured_times, 0.5), millis(&calibrated_times, 0.5));
        println!(
            "{:>8} measured (3 lines, 2 approaches): p50 {p50:.3} ms, p99 {:.3} ms, measuring {:+.3} ms per frame ({measures} measures)",
            "",
            millis(&measured_times, 0.99),
            p50 - p50_base,
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_traffic_is_deterministic_and_on_the_road() {
        let a = synthetic_traffic(50, 3, 1.8);
        assert_eq!(a, synthetic_traffic(50, 3, 1.8));
        assert_eq!(a.len(), 50);
        assert_eq!(a.iter().filter(|d| d.label == "person").count(), 10);
        assert!(
            a.iter()
                .all(|d| d.bbox.y2 <= HEIGHT as f32 && d.bbox.x1 >= -100.0)
        );
        assert_ne!(a, synthetic_traffic(50, 4, 1.8), "things move");
    }

    #[test]
    fn the_synthetic_scene_holds_the_synthetic_vehicles_in_its_lanes() {
        let layout = synthetic_layout();
        assert!(layout.calibrated() && layout.lanes.len() == 6);
        let on_screen = synthetic_traffic(50, 3, 0.3)
            .into_iter()
            .filter(|d| d.label == "car" && d.bbox.x1 >= 0.0 && d.bbox.x2 <= WIDTH as f32)
            .collect::<Vec<_>>();
        assert!(!on_screen.is_empty());
        for d in on_screen {
            let foot = vision::scene::kinematics::foot(&d.bbox);
            assert!(layout.lane_at(foot).is_some(), "{d:?}");
            assert!(layout.ground(foot).is_some(), "{d:?}");
        }
    }
}
