//! The fleet part of `traffic-algo bench streaming` (with `--fleet-url`): how many cameras a
//! fleet of 1, 2 and 3 instances on this machine sustains, each camera analysed by exactly one
//! instance. For each instance count and camera count it starts the instances as child
//! processes of this binary (`serve`, detector role, the cameras declared in a `cameras.yaml`,
//! topics of their own so no step sees another's cameras, the inference sessions shared out so
//! that together they have one per core), waits until they own every camera between them, and
//! reads every instance's analysed and dropped frames over the window. A step is sustained when
//! no sample was dropped, every camera was analysed by exactly one instance, and the fleet
//! analysed at least 90% of the frames the clip's keyframe spacing allows.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::BenchStreamingArgs;
use camera::source::file::FileSource;

/// Waiting for the instances to own every camera.
const SETTLE: Duration = Duration::from_secs(90);
/// After they do, before the window (cameras connect, sessions warm up).
const WARMUP: Duration = Duration::from_secs(10);

/// One instance: its process and address.
struct Instance {
    child: Child,
    addr: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Per camera running on one instance: frames analysed and dropped.
type Counts = BTreeMap<i64, (u64, u64)>;

/// The seconds between samples a camera of `clip` gives at `interval`: its keyframe spacing
/// when that is within the sampler's 20% slack, else the interval.
fn effective_interval(clip: &Path, interval: Duration) -> anyhow::Result<Duration> {
    let mut source = FileSource::open(clip)?;
    let mut keyframes = Vec::new();
    while keyframes.len() < 2 {
        match source.next_frame() {
            Ok(f) if f.keyframe => keyframes.push(f.pts),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(match keyframes.as_slice() {
        [a, b] if (*b - *a).as_secs_f64() <= interval.as_secs_f64() * 1.2 => {
            (*b - *a).max(interval)
        }
        _ => interval,
    })
}

/// Starts instance `i` of a fleet with the configuration in `dir`.
fn start(
    args: &BenchStreamingArgs,
    dir: &Path,
    i: usize,
    (sessions, cameras): (usize, usize),
) -> anyhow::Result<Instance> {
    let exe = std::env::current_exe().context("this program's path")?;
    let log = dir.join(format!("instance-{i}.log"));
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "error",
        ])
        .env("ALGO_ENABLE_KAFKA_STREAMING", "true")
        .env("ALGO_KAFKA_BOOTSTRAP_SERVERS", &args.bootstrap)
        .env("ALGO_KAFKA_CONFIG_FILE", dir.join("kafka.yaml"))
        .env("ALGO_REDIS_URL", &args.redis)
        .env("ALGO_STREAMING_ROLES", "detector")
        .env("ALGO_CAMERAS_FILE", dir.join("cameras.yaml"))
        .env("ALGO_INSTANCE_ID", format!("bench-{i}"))
        .env("ALGO_INFERENCE_SESSIONS", sessions.to_string())
        .env("ALGO_MAX_CONCURRENT_STREAMS", cameras.to_string())
        .env_remove("ALGO_BACKEND_BASE_URL")
        .env("ALGO_MEASUREMENT_ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("cannot start an instance")?;
    let stdout = child.stdout.take().context("the instance's output")?;
    let mut instance = Instance {
        child,
        addr: String::new(),
    };
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("traffic-algo listening on http://") {
            instance.addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            break;
        }
    }
    if instance.addr.is_empty() {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let last = said.lines().last().unwrap_or("(nothing)");
        bail!("instance {i} did not start: {last}");
    }
    // Keep draining, so the instance never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(instance)
}

async fn get(client: &reqwest::Client, addr: &str, path: &str) -> anyhow::Result<String> {
    Ok(client
        .get(format!("http://{addr}{path}"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// Cameras owned by the fleet (the sum of `fleet_cameras_owned`).
async fn owned(client: &reqwest::Client, fleet: &[Instance]) -> f64 {
    let mut sum = 0.0;
    for i in fleet {
        let Ok(text) = get(client, &i.addr, "/metrics").await else {
            continue;
        };
        sum += text
            .lines()
            .find_map(|l| l.strip_prefix("fleet_cameras_owned "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    sum
}

/// Every instance's cameras with their analysed and dropped frames.
async fn counts(client: &reqwest::Client, fleet: &[Instance]) -> anyhow::Result<Vec<Counts>> {
    let mut all = Vec::new();
    for i in fleet {
        let v: serde_json::Value =
            serde_json::from_str(&get(client, &i.addr, "/api/cameras").await?)?;
        let cams = v["data"].as_array().context("an /api/cameras answer")?;
        all.push(
            cams.iter()
                .filter_map(|c| {
                    Some((
                        c["cameraId"].as_i64()?,
                        (c["framesAnalysed"].as_u64()?, c["framesDropped"].as_u64()?),
                    ))
                })
                .collect(),
        );
    }
    Ok(all)
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    analysed_per_second: f64,
    dropped: u64,
    /// Cameras analysed by more than one instance.
    twice: usize,
    /// Cameras analysed by none.
    missing: usize,
}

/// Compares two readings of the fleet over `seconds`.
fn compare(before: &[Counts], after: &[Counts], cameras: usize, seconds: f64) -> Step {
    let mut by: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
    let (mut analysed, mut dropped) = (0, 0);
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        for (camera, (frames, drops)) in a {
            let (f0, d0) = b.get(camera).copied().unwrap_or((0, 0));
            // A camera that (re)started here in between counts from zero.
            let (f0, d0) = if *frames < f0 { (0, 0) } else { (f0, d0) };
            if *frames > f0 {
                by.entry(*camera).or_default().insert(i);
                analysed += frames - f0;
            }
            dropped += drops.saturating_sub(d0);
        }
    }
    Step {
        analysed_per_second: analysed as f64 / seconds,
        dropped,
        twice: by.values().filter(|i| i.len() > 1).count(),
        missing: cameras.saturating_sub(by.len()),
    }
}

/// Runs the fleet part of `bench streaming`.
pub async fn run(args: &BenchStreamingArgs, url: &str, interval: Duration) -> anyhow::Result<()> {
    let clip = args
        .fleet_clip
        .as_deref()
        .context("--fleet-clip: the clip the camera URL serves (for its keyframe spacing)")?;
    let effective = effective_interval(clip, interval)?;
    let cores = crate::config::available_cores();
    println!(
        "fleet: cameras of {url}, one result every {:.2} s each, instances {:?}, cameras {:?}, {} s windows",
        effective.as_secs_f64(),
        args.instances,
        args.fleet_cameras,
        args.fleet_seconds
    );
    println!(
        "{:>9} {:>7} {:>11} {:>12} {:>11} {:>8} {:>6} {:>8} {:>10}",
        "instances",
        "cameras",
        "per inst.",
        "analysed/s",
        "expected/s",
        "dropped",
        "twice",
        "missing",
        "sustained"
    );
    let client = reqwest::Client::new();
    let run_id = std::process::id();
    for &n in &args.instances {
        let mut best = 0;
        for &m in &args.fleet_cameras {
            let tag = format!("{run_id}-{n}-{m}");
            let dir = std::env::temp_dir().join(format!("traffic-algo-bench-fleet-{tag}"));
            std::fs::create_dir_all(&dir)?;
            let mut cameras = String::from("cameras:\n");
            for id in 1..=m {
                cameras.push_str(&format!("  - {{id: {id}, url: \"{url}\"}}\n"));
            }
            std::fs::write(dir.join("cameras.yaml"), cameras)?;
            std::fs::write(
                dir.join("kafka.yaml"),
                format!(
                    "group_prefix: bench-fleet-{tag}\ntopics:\n  camera_definitions: {{name: bench-cameras-{tag}, partitions: 32, compacted: true}}\n  live_results: {{name: bench-live-{tag}, partitions: 6, retention_ms: 60000}}\n"
                ),
            )?;
            let sessions = (cores / n).max(1);
            let fleet = (0..n)
                .map(|i| start(args, &dir, i, (sessions, m)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let settled = Instant::now();
            while owned(&client, &fleet).await < m as f64 {
                if settled.elapsed() > SETTLE {
                    bail!(
                        "{n} instances did not take {m} cameras in {} s",
                        SETTLE.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tokio::time::sleep(WARMUP).await;
            let before = counts(&client, &fleet).await?;
            tokio::time::sleep(Duration::from_secs(args.fleet_seconds)).await;
            let after = counts(&client, &fleet).await?;
            drop(fleet);
            let _ = std::fs::remove_dir_all(&dir);
            let step = compare(&before, &after, m, args.fleet_seconds as f64);
            let expected = m as f64 / effective.as_secs_f64();
            let sustained = step.dropped == 0
                && step.twice == 0
                && step.missing == 0
                && step.analysed_per_second >= 0.9 * expected;
            if sustained {
                best = best.max(m);
            }
            println!(
                "{n:>9} {m:>7} {:>11.1} {:>12.2} {expected:>11.2} {:>8} {:>6} {:>8} {:>10}",
                m as f64 / n as f64,
                step.analysed_per_second,
                step.dropped,
                step.twice,
                step.missing,
                if sustained { "yes" } else { "no" }
            );
            if !sustained {
                break;
            }
        }
        println!(
            "{n} instance(s): {best} cameras sustained, {:.1} per instance",
            best as f64 / n as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_counts_each_cameras_instances_and_the_frames_between_readings() {
        let before = vec![
            Counts::from([(1, (10, 0)), (2, (10, 0))]),
            Counts::from([(3, (5, 1))]),
        ];
        let after = vec![
            // Camera 2 stopped here and started on the other instance.
            Counts::from([(1, (20, 0)), (2, (10, 0))]),
            Counts::from([(3, (15, 3)), (2, (4, 0))]),
        ];
        let step = compare(&before, &after, 4, 2.0);
        assert_eq!(step.analysed_per_second, (10.0 + 10.0 + 4.0) / 2.0);
        assert_eq!((step.dropped, step.twice, step.missing), (2, 0, 1));
        // The same camera gaining frames on two instances is analysed twice.
        let both = vec![Counts::from([(1, (20, 0))]), Counts::from([(1, (3, 0))])];
        let twice = compare(&[Counts::new(), Counts::new()], &both, 1, 1.0);
        assert_eq!((twice.twice, twice.missing), (1, 0));
    }
}
