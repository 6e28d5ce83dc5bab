//! `traffic-algo bench detect`: our detector's latency per stage (decode, preprocess, inference,
//! postprocess) on one image, and the Python onnxruntime reference pipeline on the same model and
//! image measured in the same run, reported as ratios because absolute times on shared machines
//! are noise. Then throughput: frames per second through the inference pool with one session on
//! every core against the service's layout (`model.sessions` x `model.threads`), callers on every
//! session, in the same run.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use vision::Detector;

use crate::cli::BenchDetectArgs;
use crate::config::{Config, available_cores};
use crate::detection::{detector_options, inference_pool_of};
use crate::reference::{REFERENCE_SCRIPT, reference_command};
use imaging::read_rgb;

/// Stage names, in pipeline order; the reference reports the same keys.
pub const STAGES: [&str; 4] = ["decode", "preprocess", "inference", "postprocess"];

/// Per-iteration seconds for each stage.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StageSamples {
    /// Reading and decoding the image file.
    pub decode: Vec<f64>,
    /// Letterbox and tensor fill.
    pub preprocess: Vec<f64>,
    /// Model run.
    pub inference: Vec<f64>,
    /// Decode, NMS, box mapping.
    pub postprocess: Vec<f64>,
}

impl StageSamples {
    fn stage(&self, name: &str) -> &[f64] {
        match name {
            "decode" => &self.decode,
            "preprocess" => &self.preprocess,
            "inference" => &self.inference,
            _ => &self.postprocess,
        }
    }

    /// End-to-end seconds per iteration.
    pub fn totals(&self) -> Vec<f64> {
        (0..self.decode.len())
            .map(|i| {
                STAGES
                    .iter()
                    .map(|s| self.stage(s).get(i).copied().unwrap_or(0.0))
                    .sum()
            })
            .collect()
    }
}

/// The `q` quantile (0-1) of `samples` by nearest rank; 0 for no samples.
pub fn quantile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl StageSamples {
    fn extend(&mut self, other: StageSamples) {
        self.decode.extend(other.decode);
        self.preprocess.extend(other.preprocess);
        self.inference.extend(other.inference);
        self.postprocess.extend(other.postprocess);
    }
}

fn measure_rust(
    detector: &mut Detector,
    args: &BenchDetectArgs,
    iterations: usize,
) -> anyhow::Result<StageSamples> {
    let mut samples = StageSamples::default();
    for i in 0..args.warmup + iterations {
        let t0 = Instant::now();
        let frame = read_rgb(&args.image)?;
        let decode = t0.elapsed();
        let out = detector.detect(frame.view())?;
        if i >= args.warmup {
            samples.decode.push(decode.as_secs_f64());
            samples
                .preprocess
                .push(out.timings.preprocess.as_secs_f64());
            samples.inference.push(out.timings.inference.as_secs_f64());
            samples
                .postprocess
                .push(out.timings.postprocess.as_secs_f64());
        }
    }
    Ok(samples)
}

fn measure_python(
    config: &Config,
    model: &Path,
    args: &BenchDetectArgs,
    iterations: usize,
) -> anyhow::Result<StageSamples> {
    let mut cmd = reference_command(REFERENCE_SCRIPT)
        .context("tests/reference/yolo_reference.py not found")?;
    cmd.arg("--model")
        .arg(model)
        .args(["--conf", &config.model.confidence.to_string()])
        .args(["--iou", &config.model.iou.to_string()])
        .args(["--max-det", &config.model.max_det.to_string()])
        .args(["--classes", &config.model.classes.join(",")])
        .args(["--bench", &iterations.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .arg(&args.image)
        .stderr(Stdio::inherit());
    if config.model.threads > 0 {
        cmd.args(["--threads", &config.model.threads.to_string()]);
    }
    let out = cmd
        .output()
        .context("cannot run python3 (install it, then scripts/setup.sh)")?;
    if !out.status.success() {
        bail!(
            "the Python reference failed ({}); run scripts/setup.sh",
            out.status
        );
    }
    serde_json::from_slice(&out.stdout).context("unreadable output from the Python reference")
}

/// Frames per second through `sessions` sessions of `threads` threads each, fed by one caller
/// per session plus one (so a session never waits for work), `frames` frames in all after one
/// warm-up frame per caller.
fn throughput(
    config: &Config,
    image: &Path,
    (sessions, threads): (usize, usize),
    frames: usize,
) -> anyhow::Result<f64> {
    let pool = inference_pool_of(config, (sessions, threads), sessions)?;
    let frame = Arc::new(read_rgb(image)?);
    let callers = sessions + 1;
    let run = |n: usize| -> anyhow::Result<f64> {
        let start = Instant::now();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..callers)
                .map(|c| {
                    let (pool, frame) = (&pool, Arc::clone(&frame));
                    let share = n / callers + usize::from(c < n % callers);
                    scope.spawn(move || -> anyhow::Result<()> {
                        for _ in 0..share {
                            let frame = Arc::clone(&frame);
                            pool.run(move |d| d.detect(frame.view()).map(|_| ()))??;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("caller panicked"))?)
        })?;
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    run(callers)?;
    run(frames)
}

/// Prints frames per second for one session on every core and for the service's layout.
fn report_throughput(config: &Config, args: &BenchDetectArgs) -> anyhow::Result<()> {
    let cores = available_cores();
    let service = config.model.layout();
    let frames = args.iterations.max(8);
    let lone = throughput(config, &args.image, (1, cores), frames)?;
    let pooled = throughput(config, &args.image, service, frames)?;
    println!(
        "throughput ({frames} frames, {cores} cores): 1 session x {cores} threads {lone:.1} frames/s; \
         service layout {} sessions x {} threads {pooled:.1} frames/s; ratio {:.2}",
        service.0,
        service.1,
        pooled / lone
    );
    println!(
        "{}",
        serde_json::json!({
            "oneSessionFramesPerSecond": lone,
            "serviceFramesPerSecond": pooled,
            "sessions": service.0,
            "threads": service.1,
            "ratio": pooled / lone,
        })
    );
    Ok(())
}

fn ms(s: f64) -> String {
    format!("{:.2}", s * 1000.0)
}

/// Runs `bench detect`.
pub fn run_detect(config: &Config, args: &BenchDetectArgs) -> anyhow::Result<ExitCode> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let probe = read_rgb(&args.image)?;
    let choice = config.model.choice();
    println!(
        "bench detect: {} ({}x{}), model {} ({}), {} iterations in {} alternating rounds, {} warm-up each",
        args.image.display(),
        probe.width,
        probe.height,
        choice.path.display(),
        choice.precision,
        args.iterations,
        args.rounds.clamp(1, args.iterations),
        args.warmup
    );
    // Rounds alternate between the two pipelines so that drift in machine load hits both alike.
    let rounds = args.rounds.clamp(1, args.iterations);
    let mut detector = Detector::load(&detector_options(&config.model, false))?;
    let mut rust = StageSamples::default();
    let mut python = (!args.no_reference).then(StageSamples::default);
    // With the int8 model, Python also runs the fp32 one: what int8 gains over the usual setup.
    let fp32 = config.model.fp32_path();
    let mut python_fp32 =
        (!args.no_reference && choice.precision == "int8").then(StageSamples::default);
    for round in 0..rounds {
        let n = args.iterations / rounds + usize::from(round < args.iterations % rounds);
        rust.extend(measure_rust(&mut detector, args, n)?);
        if let Some(python) = python.as_mut() {
            python.extend(measure_python(config, &choice.path, args, n)?);
        }
        if let Some(python) = python_fp32.as_mut() {
            python.extend(measure_python(config, &fp32, args, n)?);
        }
    }

    println!(
        "{:<12} {:>12} {:>10} {:>14} {:>12} {:>14}",
        "stage", "rust med ms", "rust p95", "python med ms", "python p95", "rust/python"
    );
    let row = |name: &str, r: &[f64], p: Option<&[f64]>| {
        let (rm, rp) = (quantile(r, 0.5), quantile(r, 0.95));
        let (pm, pp, ratio) = match p {
            Some(p) => {
                let pm = quantile(p, 0.5);
                (ms(pm), ms(quantile(p, 0.95)), format!("{:.2}", rm / pm))
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{name:<12} {:>12} {:>10} {pm:>14} {pp:>12} {ratio:>14}",
            ms(rm),
            ms(rp)
        );
    };
    for stage in STAGES {
        row(
            stage,
            rust.stage(stage),
            python.as_ref().map(|p| p.stage(stage)),
        );
    }
    let python_totals = python.as_ref().map(StageSamples::totals);
    row("end-to-end", &rust.totals(), python_totals.as_deref());
    let fp32_median = python_fp32.as_ref().map(|p| quantile(&p.totals(), 0.5));
    if let Some(p) = fp32_median {
        println!(
            "end-to-end against Python fp32 ({:.2} ms): {:.2}",
            p * 1000.0,
            quantile(&rust.totals(), 0.5) / p
        );
    }
    let rust_median = quantile(&rust.totals(), 0.5);
    let python_median = python_totals.as_deref().map(|p| quantile(p, 0.5));
    let overhead = |s: &StageSamples| {
        (quantile(&s.decode, 0.5) + quantile(&s.preprocess, 0.5) + quantile(&s.postprocess, 0.5))
            * 1000.0
    };
    let summary = serde_json::json!({
        "rustOutsideInferenceMs": overhead(&rust),
        "pythonOutsideInferenceMs": python.as_ref().map(overhead),
        "rustEndToEndMedianMs": rust_median * 1000.0,
        "pythonEndToEndMedianMs": python_median.map(|p| p * 1000.0),
        "ratio": python_median.map(|p| rust_median / p),
        "precision": choice.precision,
        "pythonFp32EndToEndMedianMs": fp32_median.map(|p| p * 1000.0),
        "ratioToPythonFp32": fp32_median.map(|p| rust_median / p),
    });
    println!("{summary}");
    report_throughput(config, args)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), 50.0);
        assert_eq!(quantile(&s, 0.95), 95.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn totals_sum_stages_per_iteration() {
        let s = StageSamples {
            decode: vec![1.0, 2.0],
            preprocess: vec![1.0, 1.0],
            inference: vec![10.0, 20.0],
            postprocess: vec![0.5, 0.5],
        };
        assert_eq!(s.totals(), vec![12.5, 23.5]);
    }
}
