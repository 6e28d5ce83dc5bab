//! The scene of one camera: everything that is judged from one analysed frame to the next, as
//! one synchronous [`Scene::update`] per frame. Detections go through the tracker (identity),
//! the track histories (kinematics), the flow field (what direction traffic goes where), the
//! grouper (traffic groups with stable ids), the rules (danger) and the alert book
//! (persistence); out comes a [`SceneFrame`] that the service turns into `detection_result`.
//!
//! Time is the stream's clock in seconds; if it goes backwards (the stream restarted) the
//! scene starts over.

pub mod alerts;
pub mod flow;
pub mod grouping;
pub mod history;
pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use crate::detector::Detection;
use crate::geometry::BBox;
use crate::tracker::byte_track::{ByteTrackConfig, ByteTracker, TrackInput};
use alerts::{ActiveAlert, AlertBook};
use flow::FlowField;
use grouping::{Grouper, GroupingConfig, Member};
use history::TrackHistory;
use rules::{RuleHit, RulesConfig, Subject};

/// How long a track's history outlives its last sighting, in seconds.
const HISTORY_TTL: f64 = 30.0;
/// The window of the per-minute counters, in seconds.
const MINUTE: f64 = 60.0;

/// A risk level (SPEC sections 4 and 5), ordered from none to high.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Nothing.
    #[default]
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl RiskLevel {
    /// The level's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Whether a COCO class is a road vehicle.
pub fn is_vehicle(class: &str) -> bool {
    matches!(class, "car" | "bus" | "truck" | "motorcycle" | "bicycle")
}

/// Everything the scene is configured with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneConfig {
    /// Track objects (without tracking there are no track ids, histories or rules).
    pub tracking: bool,
    /// Tracker parameters.
    pub tracker: ByteTrackConfig,
    /// Grouping parameters.
    pub grouping: GroupingConfig,
    /// Rule thresholds.
    pub rules: RulesConfig,
    /// Seconds an alert lives after it last fired.
    pub alert_hold: f64,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            tracking: true,
            tracker: ByteTrackConfig::default(),
            grouping: GroupingConfig::default(),
            rules: RulesConfig::default(),
            alert_hold: 3.0,
        }
    }
}

/// A traffic group of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// 1-based position in this frame's list.
    pub index: usize,
    /// Stable id.
    pub id: u64,
    /// Indices of the members among the frame's detections.
    pub members: Vec<usize>,
    /// Track ids of the tracked members, ascending.
    pub track_ids: Vec<u64>,
    /// Union of the member boxes.
    pub bbox: BBox,
    /// The evidence crop (union plus margin, clipped).
    pub crop: BBox,
    /// Distinct member classes, sorted.
    pub classes: Vec<String>,
    /// Mean detector confidence of the members.
    pub average_confidence: f32,
    /// Highest level among the group's alerts.
    pub level: RiskLevel,
}

/// A live alert of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// What fired.
    pub hit: RuleHit,
    /// Stream time the episode started.
    pub started_at: f64,
    /// Carried over: did not fire on this frame.
    pub stale: bool,
    /// The group that holds most of the triggering tracks: (index, id).
    pub group: Option<(usize, u64)>,
}

/// Per-camera traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrafficStats {
    /// Distinct vehicle tracks that appeared in the last minute.
    pub vehicles_per_minute: u32,
    /// Distinct person tracks that appeared in the last minute.
    pub persons_per_minute: u32,
    /// Current congestion.
    pub congestion: RiskLevel,
    /// Distinct vehicle tracks since the camera started.
    pub vehicles_total: u64,
    /// Distinct person tracks since the camera started.
    pub persons_total: u64,
}

/// How a tracked object moves (from its last two sightings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// Velocity in pixels per second.
    pub velocity: (f32, f32),
    /// Speed in box heights per second.
    pub speed: f32,
    /// Heading in degrees, 0 = right, 90 = down the image.
    pub heading_degrees: f32,
}

/// What the scene says about one frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneFrame {
    /// Track id of each detection (aligned with the input), if tracked.
    pub track_ids: Vec<Option<u64>>,
    /// Motion of each detection (aligned with the input), once its track was seen twice.
    pub motion: Vec<Option<Motion>>,
    /// Traffic groups, ordered by id.
    pub groups: Vec<Group>,
    /// Live alerts.
    pub alerts: Vec<Alert>,
    /// Counters.
    pub stats: TrafficStats,
    /// Highest alert level.
    pub max_level: RiskLevel,
}

/// The per-camera state.
#[derive(Debug, Clone)]
pub struct Scene {
    cfg: SceneConfig,
    tracker: ByteTracker,
    histories: HashMap<u64, TrackHistory>,
    flow: FlowField,
    grouper: Grouper,
    book: AlertBook,
    /// First sightings within the last minute: (time, is vehicle).
    arrivals: VecDeque<(f64, bool)>,
    stats: TrafficStats,
    last_t: Option<f64>,
}

impl Scene {
    /// An empty scene.
    pub fn new(cfg: SceneConfig) -> Self {
        Self {
            cfg,
            tracker: ByteTracker::new(cfg.tracker),
            histories: HashMap::new(),
            flow: FlowField::default(),
            grouper: Grouper::new(),
            book: AlertBook::default(),
            arrivals: VecDeque::new(),
            stats: TrafficStats::default(),
            last_t: None,
        }
    }

    /// Tracks currently remembered (with a history).
    pub fn tracks(&self) -> usize {
        self.histories.len()
    }

    /// Analyses one frame (`width` x `height`) seen at stream time `t`.
    pub fn update(&mut self, t: f64, width: u32, height: u32, dets: &[Detection]) -> SceneFrame {
        self.restart_if_rewound(t);
        self.last_t = Some(t);
        let track_ids = self.track(dets);
        self.record(t, width, height, dets, &track_ids);
        let (hits, congestion) = self.judge(t, dets, &track_ids);
        let motion = self.motion(&track_ids);
        let active = self.book.update(t, self.cfg.alert_hold, hits);
        let mut groups = self.group(width, height, dets, &track_ids);
        let alerts = assign_alerts(active, &mut groups);
        let max_level = alerts.iter().map(|a| a.hit.level).max().unwrap_or_default();
        self.count(t, congestion);
        SceneFrame {
            track_ids,
            motion,
            groups,
            alerts,
            stats: self.stats,
            max_level,
        }
    }

    /// Holds the alerts up to stream time `until` (inclusive): tracks, histories and rules run
    /// on, but no rule hit enters the alert book, and alerts already live take their course.
    /// For pictures that say nothing about traffic (a frozen picture, a scene cut, a camera
    /// that moved: see [`crate::sanity`]), where every vehicle seems to stop dead or leap.
    pub fn hold_alerts(&mut self, until: f64) {
        self.book.hold(until);
    }

    /// Starts over: tracks, histories, flow, groups and alerts are forgotten (another
    /// picture: nothing from before can be compared with what comes). The totals survive.
    pub fn restart(&mut self) {
        let totals = (self.stats.vehicles_total, self.stats.persons_total);
        *self = Self::new(self.cfg);
        (self.stats.vehicles_total, self.stats.persons_total) = totals;
    }

    /// Starts over when time went backwards (the stream restarted).
    fn restart_if_rewound(&mut self, t: f64) {
        if self.last_t.is_some_and(|last| t < last) {
            self.restart();
        }
    }

    /// The track id of each detection (none without tracking).
    fn track(&mut self, dets: &[Detection]) -> Vec<Option<u64>> {
        if self.cfg.tracking {
            let inputs: Vec<TrackInput> = dets
                .iter()
                .map(|d| TrackInput {
                    bbox: d.bbox,
                    score: d.confidence,
                    class_id: d.class_id,
                })
                .collect();
            self.tracker.update(&inputs)
        } else {
            vec![None; dets.len()]
        }
    }

    /// Runs the rules over the tracked detections: what fired, and the congestion level.
    fn judge(
        &self,
        t: f64,
        dets: &[Detection],
        track_ids: &[Option<u64>],
    ) -> (Vec<RuleHit>, RiskLevel) {
        let subjects: Vec<Subject<'_>> = dets
            .iter()
            .zip(track_ids)
            .filter_map(|(d, id)| {
                let track = self.histories.get(&(*id)?)?;
                Some(Subject {
                    track,
                    bbox: d.bbox,
                    vehicle: is_vehicle(&d.label),
                    person: d.label == "person",
                })
            })
            .collect();
        rules::evaluate(&self.cfg.rules, &subjects, t)
    }

    /// The motion of each detection, once its track was seen twice.
    fn motion(&self, track_ids: &[Option<u64>]) -> Vec<Option<Motion>> {
        track_ids
            .iter()
            .map(|id| {
                let h = self.histories.get(&(*id)?)?;
                Some(Motion {
                    velocity: h.velocity()?,
                    speed: h.speed()?,
                    heading_degrees: h.heading_degrees()?,
                })
            })
            .collect()
    }

    /// This frame's traffic groups, with stable ids, at level none until alerts are assigned.
    fn group(
        &mut self,
        width: u32,
        height: u32,
        dets: &[Detection],
        track_ids: &[Option<u64>],
    ) -> Vec<Group> {
        let members: Vec<Member> = dets
            .iter()
            .zip(track_ids)
            .map(|(d, &track_id)| Member {
                bbox: d.bbox,
                track_id,
            })
            .collect();
        let clusters = self
            .grouper
            .update(&self.cfg.grouping, width, height, &members);
        clusters
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut classes: Vec<String> =
                    c.members.iter().map(|&m| dets[m].label.clone()).collect();
                classes.sort_unstable();
                classes.dedup();
                let mut ids: Vec<u64> = c.members.iter().filter_map(|&m| track_ids[m]).collect();
                ids.sort_unstable();
                let confidence: f32 = c.members.iter().map(|&m| dets[m].confidence).sum();
                Group {
                    index: i + 1,
                    id: c.id,
                    average_confidence: confidence / c.members.len() as f32,
                    members: c.members,
                    track_ids: ids,
                    bbox: c.bbox,
                    crop: c.crop,
                    classes,
                    level: RiskLevel::None,
                }
            })
            .collect()
    }

    /// Updates the per-minute counters (arrivals older than a minute leave) and the congestion.
    fn count(&mut self, t: f64, congestion: RiskLevel) {
        while self
            .arrivals
            .front()
            .is_some_and(|&(at, _)| t - at > MINUTE)
        {
            self.arrivals.pop_front();
        }
        let vehicles = self.arrivals.iter().filter(|(_, v)| *v).count() as u32;
        self.stats.vehicles_per_minute = vehicles;
        self.stats.persons_per_minute = self.arrivals.len() as u32 - vehicles;
        self.stats.congestion = congestion;
    }

    /// Updates histories, arrivals and the flow field with this frame's tracked detections.
    fn record(&mut self, t: f64, width: u32, height: u32, dets: &[Detection], ids: &[Option<u64>]) {
        let rules = self.cfg.rules;
        for (d, id) in dets.iter().zip(ids) {
            let Some(id) = *id else { continue };
            let vehicle = is_vehicle(&d.label);
            let history = self.histories.entry(id).or_insert_with(|| {
                if vehicle || d.label == "person" {
                    self.arrivals.push_back((t, vehicle));
                    if vehicle {
                        self.stats.vehicles_total += 1;
                    } else {
                        self.stats.persons_total += 1;
                    }
                }
                TrackHistory::new(id, &d.label, d.confidence, t, d.bbox)
            });
            history.push(t, d.bbox, &d.label, d.confidence, rules.stationary_speed);
            if !vehicle {
                continue;
            }
            let (Some(dir), Some(speed)) = (history.direction(), history.speed()) else {
                continue;
            };
            if speed < rules.moving_speed {
                continue;
            }
            let (x, y) = d.bbox.center();
            let verdict = self.flow.judge(x, y, dir, width, height);
            let against = verdict.samples >= rules.wrong_way_min_samples
                && verdict.coherence >= 0.6
                && verdict.agreement <= -0.7;
            history.against_flow = if against { history.against_flow + 1 } else { 0 };
            self.flow.learn(x, y, dir, width, height);
        }
        self.histories.retain(|_, h| t - h.last().t <= HISTORY_TTL);
    }
}

/// Each live alert with the group that holds most of its tracks (the first such group on a tie),
/// whose level it raises.
fn assign_alerts(active: Vec<ActiveAlert>, groups: &mut [Group]) -> Vec<Alert> {
    let mut alerts = Vec::with_capacity(active.len());
    for a in active {
        let best = groups
            .iter_mut()
            .map(|g| {
                let shared = a
                    .hit
                    .track_ids
                    .iter()
                    .filter(|id| g.track_ids.contains(id))
                    .count();
                (shared, g)
            })
            .filter(|(shared, _)| *shared > 0)
            .max_by_key(|(shared, g)| (*shared, std::cmp::Reverse(g.index)))
            .map(|(_, g)| {
                g.level = g.level.max(a.hit.level);
                (g.index, g.id)
            });
        alerts.push(Alert {
            hit: a.hit,
            started_at: a.started_at,
            stale: a.stale,
            group: best,
        });
    }
    alerts
}
