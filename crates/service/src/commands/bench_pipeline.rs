//! `traffic-algo bench pipeline`: what ingest costs and how many cameras one process carries.
//!
//! 1. Decode cost: the clip's packets through our sampler and decoder, against decoding every
//!    frame (what the Python original did), as thread CPU time in the same run.
//! 2. Capacity: for each camera count, that many cameras (the clip looping, or `--url`) run the
//!    real pipeline (sampler, decoder, shared detector, JPEG, results) at
//!    `stream.frame_interval`; a count is sustained when no sample is dropped and every camera
//!    analyses at least 90% of the frames its keyframe spacing allows.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::BenchPipelineArgs;
use crate::config::Config;
use camera::hub::CameraHub;
use camera::sampler::{Decision, EncodedFrame, Sampler};
use camera::source::SourceError;
use camera::source::file::FileSource;
use camera::video::VideoDecoder;
use protocol::api::CameraInfo;

/// CPU seconds (user + system) from a `/proc/.../stat` file; 0 where unavailable.
fn cpu_seconds(stat: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn thread_cpu() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

fn process_cpu() -> f64 {
    cpu_seconds("/proc/self/stat")
}

/// Decodes `frames` as sampled at `interval`; returns (thread CPU seconds, frames decoded,
/// samples, keyframe interval).
fn decode_cost(
    frames: &[EncodedFrame],
    interval: Duration,
) -> anyhow::Result<(f64, u64, usize, Option<Duration>)> {
    let mut sampler = Sampler::new(interval);
    let mut decoder = VideoDecoder::new()?;
    let mut samples = 0;
    let start = thread_cpu();
    for frame in frames {
        if let Decision::Decode(job) = sampler.push(frame.clone())
            && decoder.decode(&job)?.is_some()
        {
            samples += 1;
        }
    }
    Ok((
        thread_cpu() - start,
        decoder.frames_decoded(),
        samples,
        sampler.keyframe_interval(),
    ))
}

fn totals(cams: &[CameraInfo]) -> (u64, u64, u64, u64) {
    cams.iter().fold((0, 0, 0, 0), |t, c| {
        (
            t.0 + c.frames_received,
            t.1 + c.frames_decoded,
            t.2 + c.frames_analysed,
            t.3 + c.frames_dropped,
        )
    })
}

/// Runs `bench pipeline`.
pub fn run(config: &Config, args: &BenchPipelineArgs) -> anyhow::Result<ExitCode> {
    let mut source = FileSource::open(&args.clip)?;
    let (w, h) = source.dimensions;
    let mut frames = Vec::new();
    loop {
        match source.next_frame() {
            Ok(f) => frames.push(f),
            Err(SourceError::Ended) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let clip_secs = frames.last().map_or(0.0, |f| f.pts.as_secs_f64());
    let interval = config.stream.frame_interval;
    println!(
        "bench pipeline: {} ({w}x{h}, {} frames, {clip_secs:.1} s), interval {:.1} s",
        args.clip.display(),
        frames.len(),
        interval.as_secs_f64()
    );

    // 1. Decode cost against decode-everything (interval 0: every frame is a sample).
    let (all_cpu, all_frames, _, _) = decode_cost(&frames, Duration::ZERO)?;
    let (our_cpu, our_frames, samples, keyframe_interval) = decode_cost(&frames, interval)?;
    println!(
        "decode: everything {all_frames} frames {all_cpu:.2} s CPU; sampled {our_frames} frames for {samples} samples {our_cpu:.2} s CPU; ratio {:.3}",
        our_cpu / all_cpu.max(1e-9)
    );
    println!(
        "decode CPU per camera: everything {:.1}%, sampled {:.1}% of one core",
        100.0 * all_cpu / clip_secs,
        100.0 * our_cpu / clip_secs
    );

    // 2. Capacity.
    let effective = match keyframe_interval {
        Some(k) if k.as_secs_f64() <= interval.as_secs_f64() * 1.2 => k.max(interval),
        _ => interval,
    };
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let path = args.clip.canonicalize().context("clip path")?;
            format!("file://{}?loop=1", path.display())
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let pipeline = crate::app::parts(config, &tasks, &stop)?.pipeline;
    println!(
        "{:>7} {:>12} {:>12} {:>9} {:>10} {:>12} {:>10}",
        "cameras", "analysed/s", "expected/s", "dropped", "decoded/s", "CPU %/cam", "sustained"
    );
    let mut best = 0;
    for &n in &args.cameras {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let hub = CameraHub::new(
            Arc::clone(&pipeline),
            interval,
            n.max(1),
            config.security.sources.clone(),
            shutdown.clone(),
            tracker.clone(),
        );
        let (before, after, cpu) = runtime.block_on(async {
            for id in 0..n {
                hub.pin(id as i64, &url).map_err(anyhow::Error::msg)?;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            let before = totals(&hub.cameras());
            let cpu0 = process_cpu();
            tokio::time::sleep(Duration::from_secs(args.seconds)).await;
            let after = totals(&hub.cameras());
            let cpu = process_cpu() - cpu0;
            hub.stop_all();
            tracker.close();
            tracker.wait().await;
            anyhow::Ok((before, after, cpu))
        })?;
        let secs = args.seconds as f64;
        let analysed = (after.2 - before.2) as f64 / secs;
        let expected = n as f64 / effective.as_secs_f64();
        let dropped = after.3 - before.3;
        let decoded = (after.1 - before.1) as f64 / secs;
        let sustained = dropped == 0 && analysed >= 0.9 * expected;
        if sustained {
            best = best.max(n);
        }
        println!(
            "{n:>7} {analysed:>12.2} {expected:>12.2} {dropped:>9} {decoded:>10.2} {:>12.1} {:>10}",
            100.0 * cpu / secs / n.max(1) as f64,
            if sustained { "yes" } else { "no" }
        );
    }
    println!("largest camera count sustained: {best}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_cpu_fields_are_read_after_the_command_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        // pid (comm with ) space) state ppid ... utime=250 stime=50 ticks
        let fields = "S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0";
        std::fs::write(&path, format!("42 (a b) c) {fields}")).unwrap();
        assert!((cpu_seconds(path.to_str().unwrap()) - 3.0).abs() < 1e-9);
        assert_eq!(cpu_seconds("/nonexistent"), 0.0);
        assert!(thread_cpu() >= 0.0);
    }
}
