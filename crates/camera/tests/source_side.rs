//! The source side of a camera's pipeline on tokio's paused clock, with scripted sources: the
//! watchdog notices a stream that stops sending after 10 s, reconnects back off 1 s, 2 s, 4 s
//! (up to 20% more), a healthy connection resets the backoff, a finite source that ends is not
//! reopened, and cancellation stops the camera at once, even in the middle of a backoff wait.
//! No sleeps: the test's minutes of camera time pass in milliseconds.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camera::broadcast::Broadcast;
use camera::pipeline::{CameraTask, Pipeline, run};
use camera::result::ModelFacts;
use camera::sampler::EncodedFrame;
use camera::source::{FrameSource, SourceError, SourceFuture, SourceOpener};
use protocol::ServerMessage;
use protocol::api::CameraInfo;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

mod support;

/// What one connection does.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Opening fails.
    Refused,
    /// `n` frames 40 ms apart, then silence (a stalled stream).
    Stalls(u32),
    /// `n` frames 40 ms apart, then the end of a finite source.
    Ends(u32),
}

struct Scripted {
    frames: u32,
    sent: u32,
    ends: bool,
}

impl FrameSource for Scripted {
    fn next_frame(&mut self) -> SourceFuture<'_, EncodedFrame> {
        Box::pin(async move {
            if self.sent == self.frames {
                if self.ends {
                    return Err(SourceError::Ended);
                }
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            self.sent += 1;
            Ok(EncodedFrame {
                // Never a keyframe: the sampler has nothing to decode, this is about the source.
                data: Arc::from(vec![0u8, 0, 0, 1, 0x41]),
                keyframe: false,
                pts: Duration::from_millis(40 * u64::from(self.sent)),
            })
        })
    }

    fn is_finite(&self) -> bool {
        self.ends
    }
}

/// Opens connections by script and notes when each open happened.
#[derive(Default)]
struct Opener {
    script: Mutex<VecDeque<Script>>,
    opened: Mutex<Vec<Instant>>,
}

impl SourceOpener for Opener {
    fn open<'a>(&'a self, _url: &'a Url, _guard: bool) -> SourceFuture<'a, Box<dyn FrameSource>> {
        self.opened.lock().unwrap().push(Instant::now());
        let next = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Script::Refused);
        Box::pin(async move {
            match next {
                Script::Refused => Err(SourceError::Connect("connection refused".into())),
                Script::Stalls(frames) | Script::Ends(frames) => Ok(Box::new(Scripted {
                    frames,
                    sent: 0,
                    ends: matches!(next, Script::Ends(_)),
                })
                    as Box<dyn FrameSource>),
            }
        })
    }
}

/// A camera whose sources follow `script`, with its broadcast and the opener.
fn camera(script: &[Script]) -> (CameraTask, broadcast::Receiver<Broadcast>, Arc<Opener>) {
    let opener = Arc::new(Opener {
        script: Mutex::new(script.iter().copied().collect()),
        ..Opener::default()
    });
    let pipeline = Pipeline {
        worker: vision::worker::InferenceWorker::spawn(support::detector(), 1).unwrap(),
        facts: ModelFacts {
            model_type: "yolov8n".into(),
            supported_classes: vec![],
            tracking_enabled: true,
        },
        scene: vision::scene::SceneConfig::default(),
        alert_pause: Duration::from_secs(3),
        sinks: vec![],
        sources: Arc::clone(&opener) as Arc<dyn SourceOpener>,
    };
    let (events, rx) = broadcast::channel(64);
    let task = CameraTask {
        id: 7,
        url: Url::parse("rtsp://camera.test/stream").unwrap(),
        guard_resolution: false,
        interval: Duration::from_millis(500),
        layout: Arc::default(),
        info: Arc::new(Mutex::new(CameraInfo::new(
            7,
            "rtsp://camera.test/stream".into(),
        ))),
        events,
        cancel: CancellationToken::new(),
        pipeline: Arc::new(pipeline),
        ended: Arc::default(),
    };
    (task, rx, opener)
}

/// The states and stops heard so far, with when they were heard.
fn heard(rx: &mut broadcast::Receiver<Broadcast>, log: &mut Vec<(Instant, String)>) {
    while let Ok(b) = rx.try_recv() {
        let what = match &*b.message {
            ServerMessage::CameraStatus(s) => format!("{}: {}", s.state.as_str(), s.message),
            ServerMessage::StreamStopped(s) => format!("stopped: {}", s.reason),
            other => other.kind().to_string(),
        };
        log.push((Instant::now(), what));
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_and_the_backoff_run_on_camera_time() {
    use Script::{Refused, Stalls};
    let (task, mut rx, opener) = camera(&[Stalls(5), Refused, Refused, Refused, Stalls(2)]);
    let cancel = task.cancel.clone();
    let start = Instant::now();
    let camera = tokio::spawn(run(task));
    let mut log = Vec::new();
    // Until the fifth connection is open and streaming.
    while opener.opened.lock().unwrap().len() < 5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        heard(&mut rx, &mut log);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    heard(&mut rx, &mut log);
    let opened: Vec<f64> = opener
        .opened
        .lock()
        .unwrap()
        .iter()
        .map(|t| secs(*t - start))
        .collect();
    // Five frames (0.2 s), then 10 s of silence: the watchdog. Then 1 s of backoff (the
    // connection had been healthy), and 2 s and 4 s after the refusals.
    let gaps: Vec<f64> = opened.windows(2).map(|w| w[1] - w[0]).collect();
    let fixed = [0.2 + 10.0, 0.0, 0.0, 0.0];
    let backoff = [1.0, 2.0, 4.0, 8.0];
    assert_eq!(gaps.len(), 4, "{opened:?}");
    for ((gap, fixed), backoff) in gaps.iter().zip(fixed).zip(backoff) {
        assert!(
            *gap >= fixed + backoff - 0.01 && *gap <= fixed + backoff * 1.2 + 0.01,
            "gaps {gaps:?}, opened at {opened:?}"
        );
    }
    // (A new camera's state is already `connecting`: watchers get it when they subscribe.)
    let states: Vec<&str> = log.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states[0], "online: streaming", "{states:?}");
    assert_eq!(
        states[1], "reconnecting: timed out waiting for video (no frame for 10 s)",
        "{states:?}"
    );
    let stalled_at = log[1].0 - start;
    assert!((secs(stalled_at) - 10.2).abs() < 0.15, "{stalled_at:?}");
    assert!(
        states[2].starts_with("reconnecting: connect failed"),
        "{states:?}"
    );
    assert_eq!(*states.last().unwrap(), "online: streaming", "{states:?}");

    // Cancelled during a stall: the camera stops at once, without an `offline` to anyone.
    cancel.cancel();
    let stopped = Instant::now();
    camera.await.unwrap();
    assert!(stopped.elapsed() < Duration::from_millis(1));
    heard(&mut rx, &mut log);
    assert!(
        !log.iter().any(|(_, s)| s.starts_with("offline")),
        "{log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_finite_source_that_ends_is_not_reopened_and_cancel_ends_a_backoff() {
    let (task, mut rx, opener) = camera(&[Script::Ends(3)]);
    let ended = Arc::clone(&task.ended);
    run(task).await;
    let mut log = Vec::new();
    heard(&mut rx, &mut log);
    let states: Vec<&str> = log.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        states,
        [
            "online: streaming",
            "offline: Source ended",
            "stopped: Source ended"
        ]
    );
    assert_eq!(opener.opened.lock().unwrap().len(), 1);
    assert!(ended.load(std::sync::atomic::Ordering::SeqCst));

    // A camera that cannot connect, cancelled 5 s into a backoff of 16 s.
    let (task, _rx, opener) = camera(&[Script::Refused; 8]);
    let cancel = task.cancel.clone();
    let start = Instant::now();
    let camera = tokio::spawn(run(task));
    while opener.opened.lock().unwrap().len() < 5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Opens at about 0, 1, 3, 7 and 15 s; now waiting 16 s.
    let fifth = opener.opened.lock().unwrap()[4] - start;
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    camera.await.unwrap();
    let took = start.elapsed();
    assert!(
        took < fifth + Duration::from_secs(6),
        "{took:?} (fifth open at {fifth:?})"
    );
    assert_eq!(opener.opened.lock().unwrap().len(), 5);
}
