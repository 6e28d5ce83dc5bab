//! The detector role's two ends. [`DetectionPublisher`] is a frame sink, called on a camera's
//! analysis thread: it gives the frame's `detection_result` a `detectionId` and, when the frame
//! has groups, queues a [`DetectionRecord`] (the result without the frame, plus a summary of each
//! group worth asking about) for `detection-results` without ever waiting (a full queue drops
//! and counts). [`forward_merged`] reads `merged-results` and hands those for this instance to
//! the WebSocket watchers of their camera as a second `detection_result` of the same frame.

use std::collections::HashMap;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera::hub::CameraHub;
use camera::sink::{FrameReport, FrameSink, SinkError};
use llm::prompt::{group_summary, select_groups};
use protocol::{CameraId, DetectionResult, RiskLevel, ServerMessage};
use rdkafka::Message;
use retry::{Backoff, retry, sleep_or_cancelled};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::held::HeldAlerts;
use crate::kafka::{GroupConsumer, Producer};
use crate::messages::{DetectionRecord, GroupBrief, MergedResult, decode, encode_detection};

/// Retries of a failed send before the record is dropped (and counted).
const SEND_RETRIES: u32 = 2;
/// Records queued for the broker before new ones are dropped.
pub const PUBLISH_QUEUE: usize = 64;
/// Merged-result ids remembered to drop the second of a complete/partial pair.
const SEEN_MERGED: usize = 4096;

/// Counters of the detector role.
#[derive(Debug, Default)]
pub struct DetectorStats {
    /// Records sent to the broker.
    pub published: AtomicU64,
    /// Records dropped (queue full, too large, or the broker refused them).
    pub dropped: AtomicU64,
    /// Merged results delivered to this instance's watchers.
    pub merged_delivered: AtomicU64,
    /// Frames with groups not sent to the LLM: their camera's cooldown (`llm.cooldown_seconds`)
    /// had not passed.
    pub cooled: AtomicU64,
}

type Queued = (CameraId, Vec<u8>);

/// Queues analysed frames for `detection-results`.
#[derive(Debug)]
pub struct DetectionPublisher {
    instance_id: String,
    epoch: i64,
    seq: AtomicU64,
    tx: mpsc::Sender<Queued>,
    rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    /// Least time between two frames of one camera sent to the LLM.
    cooldown: Duration,
    /// When each camera may send the next one.
    next_allowed: Mutex<HashMap<CameraId, Instant>>,
    /// The LLM findings shown on each camera's later results.
    held: Mutex<HeldAlerts>,
    /// Counters.
    pub stats: Arc<DetectorStats>,
}

impl DetectionPublisher {
    /// A publisher for this instance: at most one frame per camera every `cooldown` goes to
    /// the LLM, and its findings show on the camera's results for `hold`.
    pub fn new(instance_id: &str, cooldown: Duration, hold: Duration) -> Self {
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        Self {
            instance_id: instance_id.to_string(),
            epoch: chrono::Utc::now().timestamp_millis(),
            seq: AtomicU64::new(0),
            tx,
            rx: Mutex::new(Some(rx)),
            cooldown,
            next_allowed: Mutex::default(),
            held: Mutex::new(HeldAlerts::new(hold)),
            stats: Arc::default(),
        }
    }

    /// Holds the findings of camera `camera`'s merged result for its later results.
    pub fn hold(&self, camera: CameraId, merged: &DetectionResult) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.keep(camera, merged, Instant::now());
    }

    /// Whether camera `camera` may send a frame to the LLM now (and, if so, it has).
    fn ask_now(&self, camera: CameraId) -> bool {
        let now = Instant::now();
        let mut next = self.next_allowed.lock().unwrap_or_else(|e| e.into_inner());
        if next.get(&camera).is_some_and(|t| now < *t) {
            return false;
        }
        next.insert(camera, now + self.cooldown);
        true
    }

    /// Takes the queue's receiving end (once).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Queued>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl FrameSink for DetectionPublisher {
    /// Gives the result a `detectionId` and queues the frame's record when it has groups.
    fn frame(
        &self,
        report: &FrameReport<'_>,
        result: &mut DetectionResult,
    ) -> Result<(), SinkError> {
        let camera_id = report.camera_id;
        let scene = report.scene;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let detection_id = format!("{camera_id}-{}-{}-{seq}", self.instance_id, self.epoch);
        result.detection_id = Some(detection_id.clone());
        let record = if scene.groups.is_empty() {
            None
        } else if self.ask_now(camera_id) {
            Some(self.record(report, result, detection_id))
        } else {
            self.stats.cooled.fetch_add(1, Ordering::Relaxed);
            None
        };
        // Held findings of earlier frames show on this one (not in the record: its own answers
        // come with its merged result).
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.apply(camera_id, result, Instant::now());
        drop(held);
        let Some(record) = record else {
            return Ok(());
        };
        let queued = encode_detection(&record)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                self.tx
                    .try_send((camera_id, bytes))
                    .map_err(|_| "publish queue full".to_string())
            });
        if let Err(why) = queued {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(camera = camera_id, reason = %why, "detection not published");
        }
        Ok(())
    }
}

impl DetectionPublisher {
    /// The record of a frame with groups: its result without the frame, and a summary of each
    /// group worth asking about.
    fn record(
        &self,
        report: &FrameReport<'_>,
        result: &mut DetectionResult,
        detection_id: String,
    ) -> DetectionRecord {
        // The record carries the result without its frame (taken out, not copied).
        let frame = result.frame.take();
        let without_frame = result.clone();
        result.frame = frame;
        let scene = report.scene;
        let groups = select_groups(scene)
            .into_iter()
            .map(|i| {
                let g = &scene.groups[i];
                GroupBrief {
                    group_id: g.id,
                    group_index: g.index,
                    summary: group_summary(1, g, &scene.detections, scene),
                    flagged: g.level > RiskLevel::None,
                }
            })
            .collect();
        DetectionRecord {
            message_id: format!("det:{detection_id}"),
            detection_id,
            camera_id: report.camera_id,
            instance_id: self.instance_id.clone(),
            result: without_frame,
            groups,
        }
    }
}

/// Sends queued records to `topic` until `shutdown`, retrying a failed send a few times.
pub async fn run_publisher(
    mut rx: mpsc::Receiver<Queued>,
    producer: Producer,
    topic: String,
    stats: Arc<DetectorStats>,
    shutdown: CancellationToken,
) {
    loop {
        let (camera, bytes) = tokio::select! {
            next = rx.recv() => match next {
                Some(q) => q,
                None => return,
            },
            () = shutdown.cancelled() => return,
        };
        let key = camera.to_string();
        let sent = retry(
            SEND_RETRIES,
            Backoff::new(Duration::from_millis(500), Duration::from_secs(2)),
            Some(&shutdown),
            |_| true,
            |e, attempt| tracing::warn!(camera, error = %e, attempt, "detection send failed"),
            |_| producer.send(&topic, &key, &bytes),
        )
        .await
        .is_ok();
        let counter = if sent {
            &stats.published
        } else {
            &stats.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Delivers this instance's merged results to their cameras' watchers until `shutdown`.
pub async fn forward_merged(
    consumer: GroupConsumer,
    topic: String,
    instance_id: String,
    hub: Arc<CameraHub>,
    publisher: Arc<DetectionPublisher>,
    shutdown: CancellationToken,
) {
    let stats = Arc::clone(&publisher.stats);
    let mut seen: HashSet<String> = HashSet::new();
    let mut order: VecDeque<String> = VecDeque::new();
    loop {
        let received = tokio::select! {
            r = consumer.recv() => r,
            () = shutdown.cancelled() => return,
        };
        let msg = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "merged results: receive failed");
                sleep_or_cancelled(Duration::from_millis(500), &shutdown).await;
                continue;
            }
        };
        let (partition, offset) = (msg.partition(), msg.offset());
        if let Ok(merged) = decode::<MergedResult>(msg.payload().unwrap_or_default())
            && merged.instance_id == instance_id
            && seen.insert(merged.message_id.clone())
        {
            order.push_back(merged.message_id.clone());
            if order.len() > SEEN_MERGED
                && let Some(old) = order.pop_front()
            {
                seen.remove(&old);
            }
            publisher.hold(merged.camera_id, &merged.data);
            let message = ServerMessage::DetectionResult(Box::new(merged.data));
            if hub.deliver(merged.camera_id, message) {
                stats.merged_delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(msg);
        if let Err(e) = consumer.commit(&topic, partition, offset + 1) {
            tracing::debug!(error = %e, "merged results: commit failed");
        }
    }
}
