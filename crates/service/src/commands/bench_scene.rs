//! `traffic-algo bench scene`: the per-frame cost of judging a frame (tracker, histories, flow
//! field, grouping, rules, alert book; everything but pixels) on synthetic traffic of 50 and 300
//! objects, median and p99. The tracker alone is also run beside Roboflow's Python ByteTrack
//! (tests/reference/bytetrack_reference.py) on the same detections, reported as a ratio.

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use vision::scene::Scene;
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
        let mut scene = Scene::new(cfg);
        let mut scene_times = Vec::with_capacity(args.frames);
        let mut groups = 0usize;
        let mut alerts = 0usize;
        for (k, dets) in frames.iter().enumerate() {
            let started = Instant::now();
            let out = scene.update(k as f64 * interval, WIDTH, HEIGHT, dets);
            let elapsed = started.elapsed().as_secs_f64();
            if k >= args.warmup {
                scene_times.push(elapsed);
                groups += out.groups.len();
                alerts += out.alerts.len();
            }
        }
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
            "{:>8} (per frame: {:.1} groups, {:.1} alerts)",
            "",
            groups as f64 / args.frames as f64,
            alerts as f64 / args.frames as f64
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
}
