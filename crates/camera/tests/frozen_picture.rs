//! A real street clip with a frozen segment, through the real decoder, detector, scene and
//! camera pipeline: the picture stops for 6 s (the encoder sends its last keyframe again and
//! again, as a stuck camera does) and then goes on. The rules, which read a stopped picture as
//! every car stopping dead, raise nothing over the freeze; the watchers hear `picture frozen`
//! once and `picture moving again` once, and the sinks (which the service's metrics are) get
//! one freeze and its end. The same frames through the bare scene do raise alerts over the
//! freeze, so the test can fail.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera::broadcast::Broadcast;
use camera::judge::{FrameInput, judge_frame};
use camera::layout::LayoutSlot;
use camera::pipeline::{CameraTask, Pipeline, run};
use camera::result::ModelFacts;
use camera::sampler::{Decision, EncodedFrame, Sampler};
use camera::sink::{CameraEvent, FrameReport, FrameSink, PictureEvent, SinkError};
use camera::source::file::FileSource;
use camera::source::{FrameSource, SourceError, SourceFuture, SourceOpener};
use camera::video::VideoDecoder;
use imaging::RgbFrame;
use protocol::api::CameraInfo;
use protocol::{CameraId, DetectionResult, ServerMessage};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use url::Url;
use vision::Detection;
use vision::sanity::PictureWatch;
use vision::scene::layout::{CalibrationSpec, Layout, SceneSpec, ZoneKind, ZoneSpec};
use vision::scene::rules::{RuleKind, RulesConfig};
use vision::scene::{Scene, SceneConfig, is_vehicle};

mod support;
use support::{detector, shared};

const CLIP: &str = "traffic-street-h264.mp4";
/// The picture freezes on the keyframe at 12 s of the clip (keyframes every 2 s)...
const FREEZE_AT: f64 = 12.0;
/// ...for this long, then the clip goes on from where it stopped.
const FREEZE_FOR: f64 = 6.0;
/// Stream time the clip ends at (20 s of it).
const END: f64 = 26.0;

/// Hair-trigger rules, so that they fire on this ordinary street when its picture stops and
/// every car seems to stand: congestion from one vehicle, an illegal stop after 2 s anywhere
/// (the whole frame is a no-stopping zone), hard braking at 0.5 m/s^2 from any speed.
fn scene_config() -> SceneConfig {
    SceneConfig {
        rules: RulesConfig {
            hard_braking_decel: 0.5,
            hard_braking_min_kmh: 0.0,
            congestion_min_vehicles: 1,
            dwell_seconds: 2.0,
            moving_speed: 0.3,
            ..RulesConfig::default()
        },
        frame_interval: 0.3,
        ..SceneConfig::default()
    }
}

/// A calibration of the 640x360 street at 10 px per metre (a plain scale: the rules only have
/// to run in metres), all of it a no-stopping zone.
fn layout() -> Arc<Layout> {
    let spec = SceneSpec {
        zones: vec![ZoneSpec {
            name: "street".into(),
            kind: ZoneKind::NoStopping,
            polygon: vec![[0.0, 0.0], [640.0, 0.0], [640.0, 360.0], [0.0, 360.0]],
        }],
        calibration: Some(CalibrationSpec {
            image: vec![
                [0.0, 0.0],
                [640.0, 0.0],
                [640.0, 360.0],
                [0.0, 360.0],
                [320.0, 180.0],
            ],
            ground: vec![
                [0.0, 0.0],
                [64.0, 0.0],
                [64.0, 36.0],
                [0.0, 36.0],
                [32.0, 18.0],
            ],
        }),
        ..SceneSpec::default()
    };
    Arc::new(spec.compile(1.0).unwrap())
}

fn facts() -> ModelFacts {
    ModelFacts {
        model_type: "yolov8n".into(),
        supported_classes: vec![],
        tracking_enabled: true,
    }
}

/// Whether stream time `t` falls in the freeze or the settle after it, when alerts are held.
fn in_freeze(t: f64) -> bool {
    (FREEZE_AT..=FREEZE_AT + FREEZE_FOR + 1.6).contains(&t)
}

/// The clip as a stuck encoder sends it: at `FREEZE_AT` its keyframe is sent again every
/// 40 ms for `FREEZE_FOR`, then the frames after it follow, later by `FREEZE_FOR`.
struct FrozenClip {
    file: FileSource,
    /// The keyframe being repeated and how many times it was sent again.
    repeating: Option<(EncodedFrame, u32)>,
    froze: bool,
    offset: Duration,
    /// Real time between frames (the clip runs faster than real time).
    pace: Duration,
}

impl FrozenClip {
    fn open(pace: Duration) -> Self {
        Self {
            file: FileSource::open(&shared("media").join(CLIP)).unwrap(),
            repeating: None,
            froze: false,
            offset: Duration::ZERO,
            pace,
        }
    }

    fn next(&mut self) -> Result<EncodedFrame, SourceError> {
        let step = Duration::from_millis(40);
        if let Some((key, sent)) = &mut self.repeating {
            if step * (*sent + 1) <= Duration::from_secs_f64(FREEZE_FOR) {
                *sent += 1;
                return Ok(EncodedFrame {
                    pts: key.pts + step * *sent,
                    ..key.clone()
                });
            }
            self.repeating = None;
            self.offset = Duration::from_secs_f64(FREEZE_FOR);
        }
        let mut frame = self.file.next_frame()?;
        if frame.pts.as_secs_f64() > END - FREEZE_FOR {
            return Err(SourceError::Ended);
        }
        if frame.keyframe && !self.froze && frame.pts.as_secs_f64() >= FREEZE_AT {
            self.froze = true;
            self.repeating = Some((frame.clone(), 0));
        }
        frame.pts += self.offset;
        Ok(frame)
    }
}

impl FrameSource for FrozenClip {
    fn next_frame(&mut self) -> SourceFuture<'_, EncodedFrame> {
        Box::pin(async move {
            tokio::time::sleep(self.pace).await;
            self.next()
        })
    }

    fn is_finite(&self) -> bool {
        true
    }
}

struct Opener;

impl SourceOpener for Opener {
    fn open<'a>(&'a self, _url: &'a Url, _guard: bool) -> SourceFuture<'a, Box<dyn FrameSource>> {
        Box::pin(async {
            Ok(Box::new(FrozenClip::open(Duration::from_millis(20))) as Box<dyn FrameSource>)
        })
    }
}

/// What the sinks heard: each analysed frame's stream time, fresh rule alerts and fastest
/// vehicle (box heights a second), and the picture events in order.
#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<(f64, Vec<RuleKind>, f32)>>,
    picture: Mutex<Vec<(usize, PictureEvent)>>,
}

impl FrameSink for Recorder {
    fn frame(&self, report: &FrameReport<'_>, _: &mut DetectionResult) -> Result<(), SinkError> {
        let fresh = report
            .scene
            .alerts
            .iter()
            .filter(|a| !a.stale)
            .map(|a| a.hit.kind)
            .collect();
        let fastest = report
            .scene
            .detections
            .iter()
            .zip(&report.scene.motion)
            .filter(|(d, _)| is_vehicle(&d.label))
            .filter_map(|(_, m)| m.map(|m| m.speed))
            .fold(0.0, f32::max);
        self.frames
            .lock()
            .unwrap()
            .push((report.stream_time, fresh, fastest));
        Ok(())
    }

    fn event(&self, _: CameraId, event: CameraEvent) {
        if let CameraEvent::Picture(p) = event {
            // Events of a frame come before the frame itself: tag them with its position.
            let at = self.frames.lock().unwrap().len();
            self.picture.lock().unwrap().push((at, p));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_camera_raises_no_alert_and_tells_its_watchers() {
    let recorder = Arc::new(Recorder::default());
    let pipeline = Pipeline {
        worker: vision::worker::InferenceWorker::spawn(detector(), 1).unwrap(),
        facts: facts(),
        scene: scene_config(),
        alert_pause: Duration::ZERO,
        sinks: vec![Arc::clone(&recorder) as Arc<dyn FrameSink>],
        sources: Arc::new(Opener),
    };
    let (events, mut rx) = broadcast::channel::<Broadcast>(1024);
    let url = "rtsp://camera.test/stuck";
    let task = CameraTask {
        id: 3,
        url: Url::parse(url).unwrap(),
        guard_resolution: false,
        interval: Duration::from_millis(300),
        layout: Arc::new(LayoutSlot::new(layout())),
        info: Arc::new(Mutex::new(CameraInfo::new(3, url.into()))),
        events,
        cancel: CancellationToken::new(),
        pipeline: Arc::new(pipeline),
        ended: Arc::default(),
    };
    let info = Arc::clone(&task.info);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(120), run(task))
        .await
        .expect("the 20 s clip plays within 2 minutes");

    // What the watchers heard, in order: statuses and the stream time of each result.
    let mut heard = Vec::new();
    while let Ok(b) = rx.try_recv() {
        match &*b.message {
            ServerMessage::CameraStatus(s) => {
                heard.push(format!("{}: {}", s.state.as_str(), s.message));
            }
            ServerMessage::DetectionResult(r) => heard.push(format!("result {:.2}", r.stream_time)),
            other => heard.push(other.kind().to_string()),
        }
    }
    let statuses: Vec<&String> = heard.iter().filter(|h| !h.starts_with("result")).collect();
    assert_eq!(
        statuses,
        [
            "online: streaming",
            "online: picture frozen",
            "online: picture moving again",
            "offline: Source ended",
            "stream_stopped"
        ],
        "{heard:?}"
    );
    // The freeze is told 3 s into it, its end on the first result after it.
    let result_before = |status: &str| {
        let i = heard.iter().position(|h| h.ends_with(status)).unwrap();
        let next: f64 = heard[i + 1]
            .strip_prefix("result ")
            .unwrap()
            .parse()
            .unwrap();
        next
    };
    let froze = result_before("picture frozen");
    let thawed = result_before("picture moving again");
    // Judged on the results the analysis actually produced: a loaded machine samples fewer
    // frames (the sampler drops what the analysis cannot take), which moves these moments by
    // the gap between results, never by more.
    let times: Vec<f64> = heard
        .iter()
        .filter_map(|h| h.strip_prefix("result ")?.parse().ok())
        .collect();
    let widest_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.3, f64::max);
    assert!(
        (FREEZE_AT + 3.0..=FREEZE_AT + 3.6 + 2.0 * widest_gap).contains(&froze),
        "frozen at {froze}: {heard:?}"
    );
    // Told on the first or second result after the freeze.
    let after: Vec<f64> = times
        .iter()
        .copied()
        .filter(|&t| t >= FREEZE_AT + FREEZE_FOR)
        .take(2)
        .collect();
    assert!(
        after.contains(&thawed),
        "moving at {thawed}, first results after the freeze {after:?}: {heard:?}"
    );

    // No rule fires over the freeze, though the frozen picture stops every vehicle dead.
    let frames = recorder.frames.lock().unwrap().clone();
    eprintln!(
        "{} frames in {:.1} s: {frames:?}",
        frames.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        frames.iter().any(|f| f.0 < FREEZE_AT) && frames.iter().any(|f| f.0 > thawed),
        "frames before and after the freeze: {frames:?}"
    );
    // Traffic moves before the freeze (which vehicle is fastest on the last frame before it
    // depends on which frames a busy machine samples), and nothing moves in the frozen
    // picture: every moving vehicle seems to stop dead, the sudden-stop rule's very trigger.
    assert!(
        frames.iter().any(|f| f.0 < FREEZE_AT && f.2 >= 1.0),
        "no moving traffic before the freeze: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .filter(|f| f.0 > FREEZE_AT + 0.3 && f.0 < FREEZE_AT + FREEZE_FOR)
            .all(|f| f.2 < 0.3),
        "motion in the frozen picture: {frames:?}"
    );
    let during: Vec<_> = frames
        .iter()
        .filter(|(t, a, _)| in_freeze(*t) && !a.is_empty())
        .collect();
    assert!(during.is_empty(), "alerts over the freeze: {during:?}");

    // The sinks (the service's metrics) heard one freeze and its end, and every frame of the
    // freeze held.
    let picture = recorder.picture.lock().unwrap().clone();
    let count = |e: PictureEvent| picture.iter().filter(|(_, p)| *p == e).count();
    assert_eq!(
        (count(PictureEvent::Froze), count(PictureEvent::Thawed)),
        (1, 1),
        "{picture:?}"
    );
    assert_eq!(count(PictureEvent::Cut) + count(PictureEvent::Moved), 0);
    let held: Vec<f64> = picture
        .iter()
        .filter(|(_, p)| *p == PictureEvent::AlertsHeld)
        .map(|(i, _)| frames[*i].0)
        .collect();
    let frozen_frames = frames
        .iter()
        .filter(|(t, _, _)| (froze..thawed).contains(t))
        .count();
    let held_in_freeze = held.iter().filter(|t| in_freeze(**t)).count();
    assert!(held_in_freeze >= frozen_frames + 2, "held {held:?}");
    // Elsewhere only where the clip itself repeats a picture (it does, from 10.0 to 10.6 s).
    assert!(held.len() - held_in_freeze <= 2, "held {held:?}");
    assert_eq!(info.lock().unwrap().message, "Source ended");
}

/// Every sampled picture of the clip (one per 0.3 s) up to `until`, with its stream time.
fn pictures(until: f64) -> Vec<(f64, RgbFrame)> {
    let mut file = FileSource::open(&shared("media").join(CLIP)).unwrap();
    let mut sampler = Sampler::new(Duration::from_millis(300));
    let mut decoder = VideoDecoder::new().unwrap();
    let mut out = Vec::new();
    loop {
        let frame = match file.next_frame() {
            Ok(frame) if frame.pts.as_secs_f64() <= until => frame,
            Ok(_) | Err(SourceError::Ended) => return out,
            Err(e) => panic!("{e}"),
        };
        if let Decision::Decode(job) = sampler.push(frame) {
            let t = job.frames.last().unwrap().pts.as_secs_f64();
            if let Some(p) = decoder.decode(&job).unwrap() {
                out.push((t, p));
            }
        }
    }
}

#[test]
fn judging_with_the_watch_holds_what_the_bare_scene_raises() {
    // The clip at 0.3 s, with the picture at 12 s shown again until 18 s (a frozen picture),
    // then the rest 6 s later. The detector sees the same picture, so the same boxes.
    let mut detector = detector();
    let mut frames: Vec<(f64, Arc<RgbFrame>, Arc<Vec<Detection>>)> = Vec::new();
    for (t, picture) in pictures(END - FREEZE_FOR) {
        let dets = Arc::new(detector.detect(picture.view()).unwrap().detections);
        let picture = Arc::new(picture);
        if t < FREEZE_AT {
            frames.push((t, picture, dets));
            continue;
        }
        if frames.last().unwrap().0 < FREEZE_AT {
            let mut s = t;
            while s < FREEZE_AT + FREEZE_FOR {
                frames.push((s, Arc::clone(&picture), Arc::clone(&dets)));
                s += 0.3;
            }
            continue;
        }
        frames.push((t + FREEZE_FOR, picture, dets));
    }

    let mut bare = Scene::with_layout(scene_config(), layout());
    let mut scene = Scene::with_layout(scene_config(), layout());
    let mut watch = PictureWatch::default();
    let (mut bare_alerts, mut judged_alerts, mut froze, mut thawed) =
        (vec![], vec![], vec![], vec![]);
    for (t, picture, dets) in &frames {
        let f = bare.update(*t, picture.width, picture.height, dets);
        if in_freeze(*t) {
            bare_alerts.extend(
                f.alerts
                    .iter()
                    .filter(|a| !a.stale)
                    .map(|a| (*t, a.hit.kind)),
            );
        }
        let input = FrameInput {
            camera_id: 1,
            frame: picture,
            stream_time: *t,
            detections: dets,
            started: Instant::now(),
            with_frame: false,
        };
        let judged = judge_frame(&mut scene, &mut watch, &facts(), &input).unwrap();
        if in_freeze(*t) {
            judged_alerts.extend(
                judged
                    .result
                    .dangerous_driving_results
                    .iter()
                    .filter(|a| !a.is_stale)
                    .map(|a| (*t, a.kind.clone())),
            );
        }
        if judged.picture.froze {
            froze.push(*t);
        }
        if judged.picture.thawed {
            thawed.push(*t);
        }
    }
    eprintln!("bare scene over the freeze: {bare_alerts:?}");
    assert!(
        !bare_alerts.is_empty(),
        "the bare scene raised nothing: the test proves nothing"
    );
    assert!(judged_alerts.is_empty(), "{judged_alerts:?}");
    assert_eq!(froze.len(), 1, "{froze:?}");
    assert!(
        (FREEZE_AT + 3.0..FREEZE_AT + 3.6).contains(&froze[0]),
        "{froze:?}"
    );
    assert_eq!(thawed.len(), 1, "{thawed:?}");
    assert!(
        (FREEZE_AT + FREEZE_FOR..FREEZE_AT + FREEZE_FOR + 0.4).contains(&thawed[0]),
        "{thawed:?}"
    );
}
