//! One camera's pipeline. An async task owns the source: [`run`] is a retry loop (capped
//! exponential backoff with jitter) around `run_once`, which connects, watches for a stalled
//! stream and feeds packets to the [`Sampler`]. Decode jobs go through a channel of capacity 1
//! (latest sample only; a busy analysis drops and counts) to the camera's analysis thread, which
//! decodes, runs detection on one of the shared inference sessions, judges the frame with the
//! camera's [`Scene`] (tracks, groups, rules), encodes the evidence, hands the frame (with the
//! time each stage took) to every [`FrameSink`] and broadcasts the `detection_result`. A fresh `high` alert asks the source side
//! to hold the next sample back by the alert pause. A frozen picture is told to the watchers as
//! the camera's status message (and its end too); freezes, cuts, camera moves and frames with
//! held alerts go to the sinks as events. Every wait races the camera's cancellation token.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use url::Url;
use vision::scene::{Scene, SceneConfig};
use vision::worker::InferenceWorker;

use imaging::RgbFrame;
use protocol::api::CameraInfo;
use protocol::server::{CameraState as State, CameraStatus};
use protocol::{CameraId, ServerMessage};
use retry::{Backoff, sleep_or_cancelled};
use vision::Detection;
use vision::sanity::{PictureState, PictureVerdict, PictureWatch};
use vision::scene::is_vehicle;

use crate::broadcast::Broadcast;
use crate::judge::{FrameInput, PICTURE_FROZEN, PICTURE_MOVING, fresh_high, judge_frame};
use crate::layout::{LayoutSlot, detect_interval};
use crate::result::ModelFacts;
use crate::sampler::{Decision, DecodeJob, Sampler};
use crate::sink::{CameraEvent, FrameReport, FrameSink, PictureEvent, Stage, StageTimes};
use crate::source::{FrameSource, SourceError, SourceOpener};
use crate::video::VideoDecoder;

/// No frame for this long means the stream is dead, even with the socket open.
pub const WATCHDOG: Duration = Duration::from_secs(10);
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What every camera's pipeline shares: the inference sessions, the facts put in each result, how
/// each camera's scene is set up, and the sinks every analysed frame goes to.
pub struct Pipeline {
    /// The inference sessions (one thread each, one queue).
    pub worker: InferenceWorker,
    /// Model facts for `detection_result`.
    pub facts: ModelFacts,
    /// Tracker, grouping and rules of every camera's scene.
    pub scene: SceneConfig,
    /// After a fresh `high` alert, the next sample waits this long.
    pub alert_pause: Duration,
    /// Where analysed frames and camera events go, in this order (a sink sees what the ones
    /// before it added to the result).
    pub sinks: Vec<Arc<dyn FrameSink>>,
    /// How camera URLs are opened ([`crate::source::Sources`] but in tests).
    pub sources: Arc<dyn SourceOpener>,
}

impl Pipeline {
    /// Tells every sink about `event` of camera `id`.
    pub fn event(&self, id: CameraId, event: CameraEvent) {
        for sink in &self.sinks {
            sink.event(id, event);
        }
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("facts", &self.facts)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// A sampled decode job, when its last frame arrived, and the connection it came from.
type Sampled = (DecodeJob, Instant, u64);

/// The alert pause handed from the analysis thread to the source side. Stream time restarts
/// with every connection, so a pause is kept with the connection whose stream time it names
/// and ignored by any other.
#[derive(Debug, Default)]
pub struct AlertPause(Mutex<Option<(u64, Duration)>>);

impl AlertPause {
    /// Asks connection `connection` to take no sample before its stream time `until`.
    pub fn request(&self, connection: u64, until: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((connection, until));
    }

    /// The pause asked of `connection`, once; a pause of an earlier connection is dropped.
    pub fn take(&self, connection: u64) -> Option<Duration> {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        (taken.0 == connection).then_some(taken.1)
    }
}

/// Everything one camera task needs.
#[derive(Clone)]
pub struct CameraTask {
    /// Camera id.
    pub id: CameraId,
    /// Source URL (policy-checked).
    pub url: Url,
    /// Whether the URL's host name must not resolve to a link-local or metadata address
    /// (a client's camera on an unlisted host; see `source::guards_resolution`).
    pub guard_resolution: bool,
    /// Time between analysed frames, unless the scene sets its `detect_interval`.
    pub interval: Duration,
    /// The camera's scene geometry, changed live.
    pub layout: Arc<LayoutSlot>,
    /// Shared state for `/api/cameras`.
    pub info: Arc<Mutex<CameraInfo>>,
    /// Messages to the camera's watchers.
    pub events: broadcast::Sender<Broadcast>,
    /// Stops this camera.
    pub cancel: CancellationToken,
    /// What every camera shares.
    pub pipeline: Arc<Pipeline>,
    /// Set when the task ends on its own (not cancelled): the hub may restart or drop it.
    pub ended: Arc<std::sync::atomic::AtomicBool>,
}

impl CameraTask {
    fn event(&self, event: CameraEvent) {
        self.pipeline.event(self.id, event);
    }

    fn update(&self, f: impl FnOnce(&mut CameraInfo)) {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut info);
    }

    /// Moves to `state` and tells the watchers, unless nothing changed.
    fn set_state(&self, state: State, message: &str) {
        self.set_state_if(state, message, |_| true);
    }

    /// Changes the message of an `online` camera and tells the watchers; with `replacing`,
    /// only while that is the message shown (a freeze's end answers the freeze, not a
    /// reconnect that came between).
    fn set_online_message(&self, message: &str, replacing: Option<&str>) {
        self.set_state_if(State::Online, message, |info| {
            info.state == State::Online && replacing.is_none_or(|m| info.message == m)
        });
    }

    /// [`CameraTask::set_state`] when `allowed` says so of the current state (checked under
    /// the same lock).
    fn set_state_if(&self, state: State, message: &str, allowed: impl FnOnce(&CameraInfo) -> bool) {
        let msg = {
            let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
            if (info.state == state && info.message == message) || !allowed(&info) {
                return;
            }
            info.state = state;
            info.message = message.to_string();
            ServerMessage::CameraStatus(CameraStatus::new(self.id, state, message))
        };
        tracing::info!(
            camera = self.id,
            state = state.as_str(),
            reason = message,
            "camera state"
        );
        let _ = self.events.send(Broadcast::new(msg));
    }
}

/// The source's reconnect delays: 1 s doubling to 30 s, with up to 20% jitter.
fn reconnect_backoff() -> Backoff {
    Backoff::new(BACKOFF_MIN, BACKOFF_MAX).with_jitter(0.2)
}

/// Runs the camera until its token is cancelled, reconnecting forever, unless its source ends
/// (a file without `loop`) or its analysis cannot run: then it goes `offline` and tells its
/// watchers with a `stream_stopped`.
pub async fn run(task: CameraTask) {
    let (job_tx, job_rx) = mpsc::sync_channel::<Sampled>(1);
    let pause = Arc::new(AlertPause::default());
    let analysis = {
        let task = task.clone();
        let pause = Arc::clone(&pause);
        std::thread::Builder::new()
            .name(format!("camera-{}", task.id))
            .spawn(move || analysis_loop(&task, &job_rx, &pause))
    };
    let analysis = match analysis {
        Ok(handle) => handle,
        Err(e) => {
            task.set_state(
                State::Offline,
                &format!("cannot start analysis thread: {e}"),
            );
            return;
        }
    };
    task.set_state(State::Connecting, "connecting");
    let ending = connect_loop(&task, &job_tx, &pause, &analysis).await;
    drop(job_tx);
    let outcome = tokio::task::spawn_blocking(move || analysis.join()).await;
    finish(&task, ending, outcome);
}

/// Reconnects with backoff until the camera is cancelled, its source ends for good or its
/// analysis thread is gone; returns why it ended on its own (`None`: cancelled).
async fn connect_loop(
    task: &CameraTask,
    job_tx: &SyncSender<Sampled>,
    pause: &AlertPause,
    analysis: &std::thread::JoinHandle<Result<(), String>>,
) -> Option<Ending> {
    let mut backoff = reconnect_backoff();
    let mut connection = 0;
    loop {
        if analysis.is_finished() {
            return Some(Ending::AnalysisStopped(analysis_stopped().to_string()));
        }
        connection += 1;
        let (err, finite) = tokio::select! {
            biased;
            _ = task.cancel.cancelled() => return None,
            ended = run_once(task, job_tx, pause, connection, &mut backoff) => ended,
        };
        if task.cancel.is_cancelled() {
            return None;
        }
        if err == analysis_stopped() || analysis.is_finished() {
            return Some(Ending::AnalysisStopped(err.to_string()));
        }
        if finite && err == SourceError::Ended {
            // A file without `loop` is done: do not reconnect.
            return Some(Ending::SourceEnded);
        }
        tracing::warn!(camera = task.id, error = %err, "camera source failed");
        task.event(CameraEvent::Failed(Stage::Source));
        task.event(CameraEvent::Reconnecting);
        task.update(|i| {
            i.reconnects += 1;
            i.last_error = Some(err.to_string());
        });
        task.set_state(State::Reconnecting, &err.to_string());
        if !sleep_or_cancelled(backoff.next_delay(), &task.cancel).await {
            return None;
        }
    }
}

/// The camera's last words: nothing when it was stopped by the hub, else `offline` with the
/// reason and a `stream_stopped`, after which the hub may give its place up.
fn finish(
    task: &CameraTask,
    ending: Option<Ending>,
    outcome: Result<std::thread::Result<Result<(), String>>, tokio::task::JoinError>,
) {
    let ending = match ending {
        Some(ending) if !task.cancel.is_cancelled() => ending,
        _ => {
            // Stopped by the hub (last watcher gone, restart with a new URL, shutdown): nobody
            // should hear an `offline` from this task, which a restarted camera would
            // contradict.
            task.update(|i| {
                i.state = State::Offline;
                i.message = "stopped".into();
            });
            return;
        }
    };
    let reason = match ending {
        Ending::SourceEnded => "Source ended".to_string(),
        Ending::AnalysisStopped(err) => {
            let reason = match outcome {
                Ok(Ok(Err(reason))) => reason,
                _ => err,
            };
            tracing::error!(camera = task.id, %reason, "camera analysis stopped");
            task.event(CameraEvent::Failed(Stage::Analysis));
            task.update(|i| i.last_error = Some(reason.clone()));
            format!("analysis stopped: {reason}")
        }
    };
    task.set_state(State::Offline, &reason);
    // From here on the hub may give the place up or start the camera again: the watchers
    // hear nothing more from this task after the `stream_stopped`.
    task.ended.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = task
        .events
        .send(Broadcast::new(ServerMessage::stream_stopped(
            task.id, &reason,
        )));
}

/// Why a camera's task ended on its own.
#[derive(Debug)]
enum Ending {
    /// A file without `loop` played out.
    SourceEnded,
    /// The analysis thread ended (with the source side's view of it).
    AnalysisStopped(String),
}

/// Connects and streams until something fails; returns why, and whether the source was finite.
async fn run_once(
    task: &CameraTask,
    jobs: &SyncSender<Sampled>,
    pause: &AlertPause,
    connection: u64,
    backoff: &mut Backoff,
) -> (SourceError, bool) {
    let opened = task
        .pipeline
        .sources
        .open(&task.url, task.guard_resolution)
        .await;
    let mut source = match opened {
        Ok(s) => s,
        Err(e) => return (e, false),
    };
    let finite = source.is_finite();
    (
        stream(task, &mut source, jobs, pause, connection, backoff).await,
        finite,
    )
}

/// Feeds an open source's frames to the sampler until it fails.
async fn stream(
    task: &CameraTask,
    source: &mut Box<dyn FrameSource>,
    jobs: &SyncSender<Sampled>,
    pause: &AlertPause,
    connection: u64,
    backoff: &mut Backoff,
) -> SourceError {
    let (mut seen, layout) = task.layout.get();
    let mut sampler = Sampler::new(detect_interval(&layout, task.interval));
    let mut online = false;
    loop {
        if let Some((generation, layout)) = task.layout.changed(seen) {
            seen = generation;
            sampler.set_interval(detect_interval(&layout, task.interval));
        }
        let frame = match tokio::time::timeout(WATCHDOG, source.next_frame()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return e,
            Err(_) => return SourceError::Timeout("waiting for video (no frame for 10 s)"),
        };
        if !online {
            online = true;
            backoff.reset();
            task.set_state(State::Online, "streaming");
        }
        task.update(|i| i.frames_received += 1);
        task.event(CameraEvent::FramesReceived(1));
        if let Some(until) = pause.take(connection) {
            sampler.pause_until(until);
        }
        match sampler.push(frame) {
            Decision::Wait => {}
            Decision::Decode(job) => match jobs.try_send((job, Instant::now(), connection)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => dropped(task, 1),
                Err(TrySendError::Disconnected(_)) => return analysis_stopped(),
            },
            Decision::Overflow(n) => dropped(task, n as u64),
        }
    }
}

/// What the source side sees when the analysis thread has ended on its own.
fn analysis_stopped() -> SourceError {
    SourceError::Stream("analysis thread stopped".into())
}

fn dropped(task: &CameraTask, n: u64) {
    task.update(|i| i.frames_dropped += n);
    task.event(CameraEvent::FramesDropped(n));
}

/// The camera's analysis thread: decode, detect, judge, hand to the sinks, broadcast. Ends when
/// its channel closes, or with the reason the camera cannot be analysed at all.
fn analysis_loop(
    task: &CameraTask,
    jobs: &Receiver<Sampled>,
    pause: &AlertPause,
) -> Result<(), String> {
    let mut analysis = Analysis::new(task)?;
    for (job, captured, connection) in jobs {
        if task.cancel.is_cancelled() {
            break;
        }
        let started = Instant::now();
        let Some(frame) = analysis.decode(&job) else {
            continue;
        };
        let decoded = Instant::now();
        let Some((detections, (queue, inference))) = analysis.detect(&frame)? else {
            continue;
        };
        let times = StageTimes {
            decode: decoded - captured,
            queue,
            inference,
            judge: Duration::ZERO,
        };
        // Stopped or restarted on another URL while the detector ran (the longest wait): the
        // frame belongs to a source nobody watches any more; judging it could call the LLM.
        if task.cancel.is_cancelled() {
            break;
        }
        let sample = Sample {
            stream_time: job.frames.last().map_or(0.0, |f| f.pts.as_secs_f64()),
            started,
            captured,
            connection,
        };
        if !analysis.judge_and_send(&frame, &detections, times, &sample, pause) {
            break;
        }
    }
    analysis.end();
    Ok(())
}

/// Says which rules camera `id` cannot run, and why.
fn log_rules_off(id: CameraId, scene: &Scene) {
    for reason in scene.rules_off() {
        tracing::info!(camera = id, reason = %reason, "rule off");
    }
}

/// A picture's detections, with the wait for an inference session and the detector's run.
type Detected = (Vec<Detection>, (Duration, Duration));

/// Where a decoded sample came from.
struct Sample {
    /// Its stream time, seconds.
    stream_time: f64,
    /// When work on it started (`processTime`).
    started: Instant,
    /// When its last frame arrived (end-to-end latency).
    captured: Instant,
    /// The connection it came from (the alert pause is kept with it).
    connection: u64,
}

/// One camera's analysis state: its decoder, its scene (with the layout generation it judges
/// with) and the watch on its picture.
struct Analysis<'a> {
    task: &'a CameraTask,
    decoder: VideoDecoder,
    scene: Scene,
    layout_seen: u64,
    last_decoded: u64,
    watch: PictureWatch,
    /// The stream time of the last frame judged.
    last_stream_time: f64,
}

impl<'a> Analysis<'a> {
    fn new(task: &'a CameraTask) -> Result<Self, String> {
        let decoder =
            VideoDecoder::new().map_err(|e| format!("cannot start the video decoder: {e}"))?;
        let (layout_seen, layout) = task.layout.get();
        let scene = Scene::with_layout(task.pipeline.scene, layout);
        log_rules_off(task.id, &scene);
        Ok(Self {
            task,
            decoder,
            scene,
            layout_seen,
            last_decoded: 0,
            watch: PictureWatch::default(),
            last_stream_time: 0.0,
        })
    }

    /// Hands the measures of the tracks still open to the sinks: the analysis ends.
    fn end(&mut self) {
        let measures = self.scene.finish();
        if measures.is_empty() {
            return;
        }
        for sink in &self.task.pipeline.sinks {
            sink.ended(self.task.id, &measures, self.last_stream_time);
        }
    }

    /// Judges with the camera's latest layout from this frame on.
    fn follow_layout(&mut self) {
        if let Some((generation, layout)) = self.task.layout.changed(self.layout_seen) {
            self.layout_seen = generation;
            self.scene.set_layout(layout);
            tracing::info!(camera = self.task.id, "scene geometry applied");
            log_rules_off(self.task.id, &self.scene);
        }
    }

    /// The sample's picture; `None` (counted and reported) when there is none.
    fn decode(&mut self, job: &DecodeJob) -> Option<Arc<RgbFrame>> {
        let task = self.task;
        let frame = match self.decoder.decode(job) {
            Ok(Some(frame)) => Arc::new(frame),
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(camera = task.id, error = %e, "decode failed");
                task.event(CameraEvent::Failed(Stage::Decode));
                task.update(|i| i.last_error = Some(e.to_string()));
                return None;
            }
        };
        let decoded = self.decoder.frames_decoded();
        task.event(CameraEvent::FramesDecoded(decoded - self.last_decoded));
        self.last_decoded = decoded;
        task.update(|i| i.frames_decoded = decoded);
        Some(frame)
    }

    /// The picture's detections, the wait for an inference session and the detector's run;
    /// `Ok(None)` when the detector refused the picture, `Err` when the inference threads are
    /// gone (the camera cannot go on).
    fn detect(&self, frame: &Arc<RgbFrame>) -> Result<Option<Detected>, String> {
        let task = self.task;
        let shared = Arc::clone(frame);
        let submitted = Instant::now();
        let ran = task.pipeline.worker.run(move |d| {
            let begun = Instant::now();
            let out = d.detect(shared.view());
            (out, begun - submitted, begun.elapsed())
        });
        match ran {
            Ok((Ok(mut out), queue, inference)) => {
                vision::detector::one_box_per_vehicle(&mut out.detections, is_vehicle);
                Ok(Some((out.detections, (queue, inference))))
            }
            Ok((Err(e), _, _)) => {
                tracing::warn!(camera = task.id, error = %e, "detection failed");
                task.event(CameraEvent::Failed(Stage::Detect));
                Ok(None)
            }
            Err(e) => {
                task.event(CameraEvent::Failed(Stage::Inference));
                Err(format!("inference unavailable: {e}"))
            }
        }
    }

    /// Judges the frame, hands it to the sinks, asks for the alert pause after a fresh `high`
    /// and broadcasts the result; false when the camera was stopped meanwhile.
    fn judge_and_send(
        &mut self,
        frame: &RgbFrame,
        detections: &[Detection],
        mut times: StageTimes,
        sample: &Sample,
        pause: &AlertPause,
    ) -> bool {
        self.follow_layout();
        self.last_stream_time = sample.stream_time;
        let task = self.task;
        let pipeline = &task.pipeline;
        let input = FrameInput {
            camera_id: task.id,
            frame,
            stream_time: sample.stream_time,
            detections,
            started: sample.started,
            with_frame: true,
        };
        let judging = Instant::now();
        let judged = judge_frame(&mut self.scene, &mut self.watch, &pipeline.facts, &input);
        let judged_at = Instant::now();
        times.judge = judged_at - judging;
        let mut judged = match judged {
            Ok(judged) => judged,
            Err(e) => {
                tracing::warn!(camera = task.id, error = %e, "JPEG encode failed");
                task.event(CameraEvent::Failed(Stage::Encode));
                return true;
            }
        };
        report_picture(task, &judged.picture, sample.stream_time);
        let report = FrameReport {
            camera_id: task.id,
            frame,
            jpeg: judged.jpeg.as_deref(),
            stream_time: sample.stream_time,
            timestamp: judged.timestamp,
            scene: &judged.scene,
            crops: &judged.crops,
            times,
        };
        for sink in &pipeline.sinks {
            if let Err(e) = sink.frame(&report, &mut judged.result) {
                task.update(|i| i.last_error = Some(e.0));
            }
        }
        if fresh_high(&judged.result) {
            let until = Duration::from_secs_f64(sample.stream_time) + pipeline.alert_pause;
            pause.request(sample.connection, until);
        }
        let kept = &judged.scene.detections;
        let vehicles = kept.iter().filter(|d| is_vehicle(&d.label)).count() as u64;
        let persons = kept.iter().filter(|d| d.label == "person").count() as u64;
        task.update(|i| {
            i.frames_analysed += 1;
            i.vehicle_detections += vehicles;
            i.person_detections += persons;
            i.traffic_stats = judged.scene.stats.into();
        });
        // And once more for the rest of the frame's work.
        if task.cancel.is_cancelled() {
            return false;
        }
        let message = ServerMessage::DetectionResult(Box::new(judged.result));
        let _ = task.events.send(Broadcast {
            captured: Some(sample.captured),
            judged: Some(judged_at),
            ..Broadcast::new(message)
        });
        true
    }
}

/// Tells the watchers and the sinks what the picture did: a freeze and its end as the
/// camera's status message (the state stays `online`), every freeze, cut, move and frame with
/// held alerts as an event. (An encode failure loses the frame's verdict with the frame: the
/// watch has seen the frame all the same, and a freeze is reported on the next one.)
fn report_picture(task: &CameraTask, picture: &PictureVerdict, stream_time: f64) {
    if picture.thawed {
        // Logged as the camera's state (unless a reconnect came between, which said more).
        task.event(CameraEvent::Picture(PictureEvent::Thawed));
        task.set_online_message(PICTURE_MOVING, Some(PICTURE_FROZEN));
    }
    match picture.state {
        PictureState::Cut => {
            tracing::info!(
                camera = task.id,
                stream_time,
                "scene cut: tracks start over"
            );
            task.event(CameraEvent::Picture(PictureEvent::Cut));
        }
        PictureState::Moved => {
            tracing::debug!(camera = task.id, stream_time, change = ?picture.change, "camera moved");
            task.event(CameraEvent::Picture(PictureEvent::Moved));
        }
        _ => {}
    }
    if picture.froze {
        tracing::warn!(camera = task.id, stream_time, "picture frozen");
        task.event(CameraEvent::Picture(PictureEvent::Froze));
        task.set_online_message(PICTURE_FROZEN, None);
    }
    if picture.holds_alerts() {
        task.event(CameraEvent::Picture(PictureEvent::AlertsHeld));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_pause_applies_only_to_the_connection_it_was_asked_of() {
        let pause = AlertPause::default();
        pause.request(1, Duration::from_secs(40));
        assert_eq!(pause.take(1), Some(Duration::from_secs(40)));
        assert_eq!(pause.take(1), None, "taken once");
        // Asked during connection 1, seen after a reconnect: stream time restarted at zero,
        // so 40 s would silence the new connection for 40 s. It is dropped.
        pause.request(1, Duration::from_secs(40));
        assert_eq!(pause.take(2), None);
        assert_eq!(pause.take(1), None, "dropped, not kept for later");
    }
}
