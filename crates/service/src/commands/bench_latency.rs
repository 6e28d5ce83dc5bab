//! `traffic-algo bench latency`: how long a frame takes from its capture to its
//! `detection_result` leaving the WebSocket, with N cameras running. The real service runs in
//! this process on a loopback port (no database, backend or Kafka); a WebSocket client starts
//! the cameras as a dashboard would and reads every result; the figures are the service's own
//! `end_to_end_latency_seconds` histogram over the measured window (the time is taken when the
//! socket has accepted the message), read through `/metrics` before and after it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::cli::BenchLatencyArgs;
use crate::config::Config;
use crate::metrics::FRAME_STAGES;

/// The histogram the service keeps of capture-to-socket time.
const FAMILY: &str = "end_to_end_latency_seconds";
/// The histograms of that time's stages, one series per stage.
const STAGES: &str = "frame_stage_seconds";

/// Cumulative counts of one Prometheus histogram: `(upper bound, count)` in bound order, the
/// last bound infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Buckets {
    /// The `family` histogram's buckets in a Prometheus text exposition.
    pub fn parse(text: &str, family: &str) -> Self {
        Self::parse_series(text, family, "")
    }

    /// The buckets of the `family` series whose labels after `le` are `labels` (e.g.
    /// `stage="decode"`; empty for a histogram without labels).
    pub fn parse_series(text: &str, family: &str, labels: &str) -> Self {
        let prefix = format!("{family}_bucket{{le=\"");
        let suffix = if labels.is_empty() {
            "}".to_string()
        } else {
            format!(",{labels}}}")
        };
        let mut buckets: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| {
                let (le, rest) = l.split_once('"')?;
                let count = rest.strip_prefix(&suffix)?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.trim().parse().ok()?))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self(buckets)
    }

    /// What was counted between `earlier` and `self` (same bounds).
    pub fn since(&self, earlier: &Self) -> Self {
        let before: HashMap<u64, f64> = earlier.0.iter().map(|(b, n)| (b.to_bits(), *n)).collect();
        Self(
            self.0
                .iter()
                .map(|(b, n)| (*b, n - before.get(&b.to_bits()).copied().unwrap_or(0.0)))
                .collect(),
        )
    }

    /// Observations in all.
    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, n)| *n)
    }

    /// Share of observations at or below `bound` (a bucket bound).
    pub fn share_within(&self, bound: f64) -> f64 {
        let total = self.count();
        let within = self
            .0
            .iter()
            .find(|(b, _)| (*b - bound).abs() < 1e-9)
            .map_or(0.0, |(_, n)| *n);
        if total > 0.0 { within / total } else { 0.0 }
    }

    /// The `q` quantile, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does (the last finite bound when it falls in `+Inf`).
    pub fn quantile(&self, q: f64) -> f64 {
        let rank = q * self.count();
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, count) in &self.0 {
            if count >= rank && count > below {
                if bound.is_infinite() {
                    return lower;
                }
                return lower + (bound - lower) * (rank - below) / (count - below);
            }
            if bound.is_finite() {
                lower = bound;
            }
            below = count;
        }
        lower
    }
}

/// The latency histogram and the stage histograms, as read at one instant.
struct Reading {
    latency: Buckets,
    stages: Vec<Buckets>,
}

impl Reading {
    /// What was counted between `earlier` and `self`.
    fn since(&self, earlier: &Self) -> Self {
        Self {
            latency: self.latency.since(&earlier.latency),
            stages: (self.stages.iter().zip(&earlier.stages))
                .map(|(now, then)| now.since(then))
                .collect(),
        }
    }
}

/// Reads the latency histograms from the service.
async fn read_histograms(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: Option<&str>,
) -> anyhow::Result<Reading> {
    let mut request = client.get(format!("http://{addr}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let text = request.send().await?.error_for_status()?.text().await?;
    let latency = Buckets::parse(&text, FAMILY);
    if latency.0.is_empty() {
        bail!("/metrics has no {FAMILY} histogram");
    }
    let stages = FRAME_STAGES
        .iter()
        .map(|stage| Buckets::parse_series(&text, STAGES, &format!("stage=\"{stage}\"")))
        .collect();
    Ok(Reading { latency, stages })
}

/// The configuration the measured service runs with: the user's, on a free loopback port, with
/// none of the cameras, backend, database or Kafka it may name, room for `cameras` streams.
fn bench_config(config: &Config, cameras: usize) -> Config {
    let mut c = config.clone();
    c.server.host = "127.0.0.1".into();
    c.server.port = 0;
    c.cameras.clear();
    c.backend.active = false;
    c.kafka.enabled = false;
    c.measurement.enabled = false;
    c.storage.save_raw_frames = false;
    c.stream.max_concurrent_streams = c.stream.max_concurrent_streams.max(cameras);
    c
}

/// Runs `bench latency`.
pub fn run(config: &Config, args: &BenchLatencyArgs) -> anyhow::Result<ExitCode> {
    if args.cameras == 0 || args.seconds == 0 {
        bail!("--cameras and --seconds must be at least 1");
    }
    let config = bench_config(config, args.cameras);
    let token = config
        .security
        .auth_token
        .as_ref()
        .map(|t| t.expose().to_string());
    let (sessions, threads) = config.model.layout();
    println!(
        "bench latency: {} cameras of {}, interval {:.1} s, started {}, {} s warm-up, {} s measured, model {} ({sessions} sessions x {threads} threads)",
        args.cameras,
        args.url,
        config.stream.frame_interval.as_secs_f64(),
        if args.aligned {
            "all at once"
        } else {
            "spread over one interval"
        },
        args.warmup,
        args.seconds,
        config.model.choice().precision,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let service_config = config.clone();
        let service_stop = stop.clone();
        let service = tokio::spawn(async move {
            crate::app::serve_until(&service_config, service_stop, move |addr| {
                let _ = tx.send(addr);
            })
            .await
        });
        let Ok(addr) = rx.await else {
            return match service.await? {
                Err(e) => Err(e.context("the service did not start")),
                Ok(()) => bail!("the service stopped before listening"),
            };
        };
        let measured = measure(addr, token.as_deref(), args, &config).await;
        stop.cancel();
        service.await??;
        measured
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Starts the cameras over a WebSocket, reads results through the warm-up and the measured
/// window, and prints the window's latency figures.
async fn measure(
    addr: SocketAddr,
    token: Option<&str>,
    args: &BenchLatencyArgs,
    config: &Config,
) -> anyhow::Result<()> {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws{query}"))
        .await
        .context("WebSocket connect")?;
    let (mut write, mut read) = ws.split();
    // Every message is read as it comes (a slow reader would be measured, not the service).
    let results = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&results);
    let reader = tokio::spawn(async move {
        while let Some(message) = read.next().await {
            let Message::Text(text) = message? else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(&text)?;
            match value["type"].as_str() {
                Some("detection_result") => {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Some("error") => bail!("the service answered an error: {}", value["data"]),
                _ => {}
            }
        }
        anyhow::Ok(())
    });
    let spacing = if args.aligned {
        Duration::ZERO
    } else {
        config.stream.frame_interval / args.cameras as u32
    };
    for id in 1..=args.cameras {
        let start = serde_json::json!({
            "type": "start_stream",
            "data": {"cameraId": id, "rtspUrl": args.url},
        });
        write.send(Message::Text(start.to_string().into())).await?;
        tokio::time::sleep(spacing).await;
    }
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let (before, results_before) = (
        read_histograms(&client, addr, token).await?,
        results.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (after, results_after) = (
        read_histograms(&client, addr, token).await?,
        results.load(Ordering::Relaxed),
    );
    if reader.is_finished() {
        reader.await??;
        bail!("the WebSocket closed during the run");
    }
    reader.abort();
    let _ = write.close().await;

    let reading = after.since(&before);
    let window = &reading.latency;
    let seconds = args.seconds as f64;
    let received = (results_after - results_before) as f64 / seconds;
    let expected = args.cameras as f64 / config.stream.frame_interval.as_secs_f64();
    let (p50, p95) = (window.quantile(0.5), window.quantile(0.95));
    let within = window.share_within(0.15);
    println!(
        "results: {received:.2}/s received of {expected:.2}/s at the frame interval (one every {:.2} s per camera; a source whose keyframes come up to 20% later than the interval is sampled at its keyframes); {} sent in the window",
        args.cameras as f64 / received.max(f64::MIN_POSITIVE),
        window.count()
    );
    println!(
        "capture to WebSocket: p50 {:.0} ms, p95 {:.0} ms; {:.1}% within 150 ms",
        p50 * 1000.0,
        p95 * 1000.0,
        within * 100.0
    );
    let stages: Vec<(&str, f64, f64)> = FRAME_STAGES
        .iter()
        .zip(&reading.stages)
        .map(|(stage, b)| (*stage, b.quantile(0.5) * 1000.0, b.quantile(0.95) * 1000.0))
        .collect();
    let shown: Vec<String> = stages
        .iter()
        .map(|(stage, p50, p95)| format!("{stage} {p50:.0}/{p95:.0}"))
        .collect();
    println!("stages, p50/p95 ms: {}", shown.join(", "));
    let stages: serde_json::Map<String, serde_json::Value> = stages
        .iter()
        .map(|(stage, p50, p95)| {
            (
                (*stage).to_string(),
                serde_json::json!({"p50Ms": p50, "p95Ms": p95}),
            )
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "aligned": args.aligned,
            "stages": stages,
            "cameras": args.cameras,
            "resultsPerSecond": received,
            "expectedPerSecond": expected,
            "p50Ms": p50 * 1000.0,
            "p95Ms": p95 * 1000.0,
            "shareWithin150Ms": within,
            "sent": window.count(),
        })
    );
    if window.count() == 0.0 {
        bail!("no result reached the WebSocket in the window: are the cameras reachable?");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE end_to_end_latency_seconds histogram\n\
        end_to_end_latency_seconds_sum 9.5\n\
        end_to_end_latency_seconds_count 100\n\
        end_to_end_latency_seconds_bucket{le=\"0.05\"} 10\n\
        end_to_end_latency_seconds_bucket{le=\"0.1\"} 60\n\
        end_to_end_latency_seconds_bucket{le=\"0.15\"} 96\n\
        end_to_end_latency_seconds_bucket{le=\"+Inf\"} 100\n\
        detection_latency_seconds_bucket{le=\"0.05\"} 7\n\
        frame_stage_seconds_bucket{le=\"0.05\",stage=\"decode\"} 3\n\
        frame_stage_seconds_bucket{le=\"+Inf\",stage=\"decode\"} 4\n\
        frame_stage_seconds_bucket{le=\"0.05\",stage=\"queue\"} 1\n";

    #[test]
    fn a_labelled_series_is_read_apart_from_the_others() {
        let decode = Buckets::parse_series(TEXT, STAGES, "stage=\"decode\"");
        assert_eq!(decode, Buckets(vec![(0.05, 3.0), (f64::INFINITY, 4.0)]));
        assert_eq!(
            Buckets::parse_series(TEXT, STAGES, "stage=\"judge\"").count(),
            0.0
        );
        // Without labels, no labelled series is taken.
        assert!(Buckets::parse(TEXT, STAGES).0.is_empty());
    }

    #[test]
    fn histogram_quantiles_interpolate_inside_buckets() {
        let b = Buckets::parse(TEXT, FAMILY);
        assert_eq!(b.0.len(), 4);
        assert_eq!(b.count(), 100.0);
        // Rank 50 is the 40th of 50 observations between 0.05 and 0.1.
        assert!((b.quantile(0.5) - 0.09).abs() < 1e-9);
        // Rank 95 is the 35th of 36 between 0.1 and 0.15.
        assert!((b.quantile(0.95) - (0.1 + 0.05 * 35.0 / 36.0)).abs() < 1e-9);
        // In the +Inf bucket: the last finite bound.
        assert_eq!(b.quantile(0.99), 0.15);
        assert!((b.share_within(0.15) - 0.96).abs() < 1e-9);
        assert!((b.quantile(0.05) - 0.025).abs() < 1e-9);
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let earlier = Buckets(vec![(0.05, 5.0), (0.1, 20.0), (f64::INFINITY, 30.0)]);
        let later = Buckets(vec![(0.05, 15.0), (0.1, 60.0), (f64::INFINITY, 70.0)]);
        let window = later.since(&earlier);
        assert_eq!(
            window,
            Buckets(vec![(0.05, 10.0), (0.1, 40.0), (f64::INFINITY, 40.0)])
        );
        assert_eq!(window.share_within(0.1), 1.0);
        assert_eq!(Buckets(Vec::new()).quantile(0.5), 0.0);
    }
}
