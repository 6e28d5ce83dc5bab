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
pub mod kinematics;
pub mod layout;
pub mod measure;
pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::detector::Detection;
use crate::geometry::BBox;
use crate::tracker::byte_track::{ByteTrackConfig, ByteTracker, TrackInput};
use alerts::{ActiveAlert, AlertBook};
use flow::FlowField;
use grouping::{Grouper, GroupingConfig, Member};
use history::TrackHistory;
use kinematics::{GroundTrack, MotionModel, foot};
use layout::{Layout, Point};
use measure::{GroundFix, LaneNow, Measure, Meter, Sighting};
use rules::{CrosswalkVisit, RuleHit, RuleKind, RulesConfig, Subject};

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
    /// Seconds between analysed frames unless the layout sets its `detect_interval`.
    pub frame_interval: f64,
    /// Detections below this confidence only continue confirmed tracks (ByteTrack's second
    /// association: a vehicle the detector is unsure of on one frame keeps its track); the
    /// ones no track takes are dropped before anything else sees them.
    pub min_confidence: f32,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            tracking: true,
            tracker: ByteTrackConfig::default(),
            grouping: GroupingConfig::default(),
            rules: RulesConfig::default(),
            alert_hold: 3.0,
            frame_interval: 1.8,
            min_confidence: 0.0,
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

/// Where one detection is in the scene's geometry (SPEC 9: `ground`, `speedKmh`, `lane`,
/// `zone` of `detectedObjects[]`). Empty without a layout.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Place {
    /// Ground position of the foot point, metres (the track's smoothed one when tracked).
    pub ground: Option<Point>,
    /// Calibrated track speed, km/h, once known.
    pub speed_kmh: Option<f64>,
    /// Name of the lane the foot point is in.
    pub lane: Option<Arc<str>>,
    /// Name of the zone the foot point is in (not `exclude`).
    pub zone: Option<Arc<str>>,
    /// In an `exclude` zone: not tracked, judged or counted.
    pub excluded: bool,
}

/// What the scene says about one frame.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneFrame {
    /// The frame's detections: the input less the unsure ones no track took
    /// ([`SceneConfig::min_confidence`]); the other per-detection lists are aligned with it.
    pub detections: Vec<Detection>,
    /// Track id of each detection, if tracked.
    pub track_ids: Vec<Option<u64>>,
    /// Motion of each detection, once its track was seen twice.
    pub motion: Vec<Option<Motion>>,
    /// Where each detection is.
    pub places: Vec<Place>,
    /// Traffic groups, ordered by id.
    pub groups: Vec<Group>,
    /// Live alerts.
    pub alerts: Vec<Alert>,
    /// Counters.
    pub stats: TrafficStats,
    /// Highest alert level.
    pub max_level: RiskLevel,
    /// What was measured on this frame (line crossings, movements, lane passes; SPEC 9).
    pub measures: Vec<Measure>,
    /// Each lane of the layout now.
    pub lanes: Vec<LaneNow>,
    /// The geometry this frame was judged with.
    pub layout: Arc<Layout>,
}

/// The per-camera state.
#[derive(Debug, Clone)]
pub struct Scene {
    cfg: SceneConfig,
    layout: Arc<Layout>,
    /// The rules this camera's cadence and calibration allow.
    runnable: HashSet<RuleKind>,
    /// Why the others do not run.
    rules_off: Vec<String>,
    /// People seen in crosswalks within the last [`rules::PET_MEDIUM`] seconds.
    crosswalk_visits: Vec<CrosswalkVisit>,
    /// Hits waiting for their rule's minimum duration: since when each has fired.
    pending: HashMap<(RuleKind, Vec<u64>), f64>,
    tracker: ByteTracker,
    histories: HashMap<u64, TrackHistory>,
    flow: FlowField,
    grouper: Grouper,
    book: AlertBook,
    meter: Meter,
    /// Measures completed outside a frame (a restart, a new layout), for the next frame.
    flushed: Vec<Measure>,
    /// First sightings within the last minute: (time, is vehicle).
    arrivals: VecDeque<(f64, bool)>,
    stats: TrafficStats,
    last_t: Option<f64>,
}

impl Scene {
    /// An empty scene.
    pub fn new(cfg: SceneConfig) -> Self {
        Self::with_layout(cfg, Arc::default())
    }

    /// An empty scene with a geometry.
    pub fn with_layout(cfg: SceneConfig, layout: Arc<Layout>) -> Self {
        let (runnable, rules_off) = runnable_rules(&cfg, &layout);
        Self {
            cfg,
            layout,
            runnable,
            rules_off,
            crosswalk_visits: Vec::new(),
            pending: HashMap::new(),
            tracker: ByteTracker::new(cfg.tracker),
            histories: HashMap::new(),
            flow: FlowField::default(),
            grouper: Grouper::new(),
            book: AlertBook::default(),
            meter: Meter::default(),
            flushed: Vec::new(),
            arrivals: VecDeque::new(),
            stats: TrafficStats::default(),
            last_t: None,
        }
    }

    /// The geometry judged with.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Judges with `layout` from the next frame on. Tracks keep their identity, but their
    /// ground motion restarts when the calibration changed (old metres mean nothing now).
    pub fn set_layout(&mut self, layout: Arc<Layout>) {
        let ended = self.meter.finish(&self.layout);
        self.flushed.extend(ended);
        if layout.calibration != self.layout.calibration {
            for h in self.histories.values_mut() {
                h.ground = None;
            }
        }
        (self.runnable, self.rules_off) = runnable_rules(&self.cfg, &layout);
        self.crosswalk_visits.clear();
        self.layout = layout;
    }

    /// The rules that run on this camera now.
    pub fn runnable(&self) -> &HashSet<RuleKind> {
        &self.runnable
    }

    /// Why the other rules do not run (for the log), one line each; empty when rules or
    /// tracking are off altogether.
    pub fn rules_off(&self) -> &[String] {
        &self.rules_off
    }

    /// Tracks currently remembered (with a history).
    pub fn tracks(&self) -> usize {
        self.histories.len()
    }

    /// Analyses one frame (`width` x `height`) seen at stream time `t`.
    pub fn update(&mut self, t: f64, width: u32, height: u32, dets: &[Detection]) -> SceneFrame {
        self.restart_if_rewound(t);
        let before = self.last_t.replace(t).unwrap_or(t);
        let feet: Vec<Point> = dets.iter().map(|d| foot(&d.bbox)).collect();
        let excluded: Vec<bool> = feet.iter().map(|&p| self.layout.excluded(p)).collect();
        let track_ids = self.track(dets, &excluded);
        // The unsure detections no track took go here, before anything else sees them.
        let keep: Vec<usize> = (0..dets.len())
            .filter(|&i| track_ids[i].is_some() || dets[i].confidence >= self.cfg.min_confidence)
            .collect();
        let kept: Vec<Detection> = keep.iter().map(|&i| dets[i].clone()).collect();
        let feet: Vec<Point> = keep.iter().map(|&i| feet[i]).collect();
        let excluded: Vec<bool> = keep.iter().map(|&i| excluded[i]).collect();
        let track_ids: Vec<Option<u64>> = keep.iter().map(|&i| track_ids[i]).collect();
        let dets = &kept[..];
        let mut measures = std::mem::take(&mut self.flushed);
        let forgotten = self.record(t, width, height, dets, &track_ids);
        measures.extend(self.meter.end(&self.layout, forgotten));
        self.locate(t, (width, height), dets, &feet, &track_ids);
        let lanes = self.measure((before, t), dets, &feet, &track_ids, &mut measures);
        self.visit_crosswalks(t, dets, &feet, &track_ids);
        let (hits, congestion) = self.judge(t, dets, &track_ids);
        let motion = self.motion(&track_ids);
        let places = self.places(&feet, &excluded, &track_ids);
        let active = self.book.update(t, self.cfg.alert_hold, hits);
        let mut groups = self.group(width, height, dets, &track_ids, &excluded);
        let alerts = assign_alerts(active, &mut groups);
        let max_level = alerts.iter().map(|a| a.hit.level).max().unwrap_or_default();
        self.count(t, congestion);
        SceneFrame {
            detections: kept,
            track_ids,
            motion,
            places,
            groups,
            alerts,
            stats: self.stats,
            max_level,
            measures,
            lanes,
            layout: Arc::clone(&self.layout),
        }
    }

    /// Measures this frame's tracked road users (vehicles and people) seen at `t`: the
    /// crossings it completes go to `out`; returns each lane's state now. A track the tracker
    /// confirmed on this frame starts from its first sighting on the frame before (at
    /// `before`), so a line it crossed between the two is counted.
    fn measure(
        &mut self,
        (before, t): (f64, f64),
        dets: &[Detection],
        feet: &[Point],
        ids: &[Option<u64>],
        out: &mut Vec<Measure>,
    ) -> Vec<LaneNow> {
        let layout = &*self.layout;
        if layout.lines.is_empty() && layout.lanes.is_empty() && layout.zones.is_empty() {
            return Vec::new();
        }
        let sightings: Vec<Sighting<'_>> = dets
            .iter()
            .zip(feet)
            .zip(ids)
            .filter_map(|((d, &foot), id)| {
                let vehicle = is_vehicle(&d.label);
                if !vehicle && d.label != "person" {
                    return None;
                }
                let track_id = (*id)?;
                let ground = self.histories.get(&track_id)?.ground.as_ref();
                Some(Sighting {
                    track_id,
                    class: &d.label,
                    confidence: d.confidence,
                    vehicle,
                    foot,
                    box_height: f64::from(d.bbox.height()),
                    ground: ground.map(|g| GroundFix {
                        position: g.position(),
                        speed_ms: g.speed_any_gap(),
                        updates: g.updates(),
                    }),
                })
            })
            .collect();
        for &(id, first) in self.tracker.confirmed_now() {
            if let Some(s) = sightings.iter().find(|s| s.track_id == id) {
                let seed = Sighting {
                    foot: foot(&first),
                    box_height: f64::from(first.height()),
                    ground: None,
                    ..s.clone()
                };
                self.meter.seed(layout, before, &seed);
            }
        }
        let (measures, lanes) = self.meter.observe(layout, t, &sightings);
        out.extend(measures);
        lanes
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
        let mut flushed = self.finish();
        let totals = (self.stats.vehicles_total, self.stats.persons_total);
        *self = Self::with_layout(self.cfg, Arc::clone(&self.layout));
        (self.stats.vehicles_total, self.stats.persons_total) = totals;
        self.flushed.append(&mut flushed);
    }

    /// Ends every track's measurement (the stream ended): the movements and lane passes still
    /// open, and any measures not yet handed out with a frame.
    pub fn finish(&mut self) -> Vec<Measure> {
        let ended = self.meter.finish(&self.layout);
        let mut out = std::mem::take(&mut self.flushed);
        out.extend(ended);
        out
    }

    /// Starts over when time went backwards (the stream restarted).
    fn restart_if_rewound(&mut self, t: f64) {
        if self.last_t.is_some_and(|last| t < last) {
            self.restart();
        }
    }

    /// The track id of each detection (none without tracking, or in an `exclude` zone).
    fn track(&mut self, dets: &[Detection], excluded: &[bool]) -> Vec<Option<u64>> {
        if !self.cfg.tracking {
            return vec![None; dets.len()];
        }
        let kept: Vec<usize> = (0..dets.len()).filter(|&i| !excluded[i]).collect();
        let inputs: Vec<TrackInput> = kept
            .iter()
            .map(|&i| TrackInput {
                bbox: dets[i].bbox,
                score: dets[i].confidence,
                class_id: dets[i].class_id,
            })
            .collect();
        let mut ids = vec![None; dets.len()];
        for (i, id) in kept.into_iter().zip(self.tracker.update(&inputs)) {
            ids[i] = id;
        }
        ids
    }

    /// Updates each tracked detection's lane and ground motion.
    /// A box cut by the frame's bottom, left or right edge has no true foot point (the object
    /// goes on beyond the picture): its ground motion is dropped, not fed a wrong position.
    fn locate(
        &mut self,
        t: f64,
        (width, height): (u32, u32),
        dets: &[Detection],
        feet: &[Point],
        ids: &[Option<u64>],
    ) {
        let layout = &*self.layout;
        for ((d, &p), id) in dets.iter().zip(feet).zip(ids) {
            let Some(h) = id.and_then(|id| self.histories.get_mut(&id)) else {
                continue;
            };
            h.lane = layout.lane_at(p);
            let Some(cal) = &layout.calibration else {
                continue;
            };
            let cut = d.bbox.y2 >= height as f32 - 2.0
                || d.bbox.x1 <= 1.0
                || d.bbox.x2 >= width as f32 - 2.0;
            if cut {
                h.ground = None;
                continue;
            }
            let kept = h.ground.as_mut().is_some_and(|g| g.update(cal, t, &d.bbox));
            if !kept {
                let model = if d.label == "person" {
                    MotionModel::PERSON
                } else {
                    MotionModel::VEHICLE
                };
                h.ground = GroundTrack::start(cal, model, t, &d.bbox);
            }
        }
    }

    /// Where each detection is: its track's smoothed ground position and speed, or its own
    /// ground position when untracked; its lane and zone.
    fn places(&self, feet: &[Point], excluded: &[bool], ids: &[Option<u64>]) -> Vec<Place> {
        let layout = &*self.layout;
        if layout.lanes.is_empty() && layout.zones.is_empty() && !layout.calibrated() {
            return vec![Place::default(); feet.len()];
        }
        feet.iter()
            .zip(excluded)
            .zip(ids)
            .map(|((&p, &excluded), id)| {
                if excluded {
                    return Place {
                        excluded,
                        ..Place::default()
                    };
                }
                let ground = id
                    .and_then(|id| self.histories.get(&id))
                    .and_then(|h| h.ground.as_ref());
                Place {
                    ground: ground
                        .map(GroundTrack::position)
                        .or_else(|| layout.ground(p)),
                    speed_kmh: ground.and_then(GroundTrack::speed_kmh),
                    lane: layout.lane_at(p).map(|i| Arc::clone(&layout.lanes[i].name)),
                    zone: layout.zone_at(p).map(|i| Arc::clone(&layout.zones[i].name)),
                    excluded,
                }
            })
            .collect()
    }

    /// Runs the rules over the tracked detections: what fired for long enough, and the
    /// congestion level.
    fn judge(
        &mut self,
        t: f64,
        dets: &[Detection],
        track_ids: &[Option<u64>],
    ) -> (Vec<RuleHit>, RiskLevel) {
        let subjects: Vec<Subject<'_>> = dets
            .iter()
            .zip(track_ids)
            .filter(|(d, _)| self.layout.watched(foot(&d.bbox)))
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
        let (hits, level) = rules::evaluate(&rules::Frame {
            cfg: &self.cfg.rules,
            layout: &self.layout,
            runnable: &self.runnable,
            t,
            subjects: &subjects,
            crosswalk_visits: &self.crosswalk_visits,
        });
        (self.confirm(t, hits), level)
    }

    /// The hits whose rule has fired on the same tracks for its minimum duration; a pair that
    /// stops firing starts over.
    fn confirm(&mut self, t: f64, hits: Vec<RuleHit>) -> Vec<RuleHit> {
        let key = |h: &RuleHit| {
            let mut ids = h.track_ids.clone();
            ids.sort_unstable();
            (h.kind, ids)
        };
        let fired: HashSet<(RuleKind, Vec<u64>)> = hits.iter().map(key).collect();
        self.pending.retain(|k, _| fired.contains(k));
        hits.into_iter()
            .filter(|h| {
                let since = *self.pending.entry(key(h)).or_insert(t);
                t - since >= h.kind.min_duration() - 1e-9
            })
            .collect()
    }

    /// Remembers the people in crosswalks for the post-encroachment time.
    fn visit_crosswalks(
        &mut self,
        t: f64,
        dets: &[Detection],
        feet: &[Point],
        ids: &[Option<u64>],
    ) {
        self.crosswalk_visits
            .retain(|v| t - v.t <= rules::PET_MEDIUM);
        let layout = &*self.layout;
        for ((d, &p), id) in dets.iter().zip(feet).zip(ids) {
            let Some(id) = *id else { continue };
            if d.label != "person" {
                continue;
            }
            for (zone, z) in layout.zones.iter().enumerate() {
                if z.kind == layout::ZoneKind::Crosswalk && z.polygon.contains(p) {
                    let ground = self
                        .histories
                        .get(&id)
                        .and_then(|h| h.ground.as_ref())
                        .map(GroundTrack::position);
                    self.crosswalk_visits.push(CrosswalkVisit {
                        zone,
                        lane: layout.lane_at(p),
                        ground,
                        t,
                        track_id: id,
                    });
                }
            }
        }
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

    /// This frame's traffic groups (of the detections outside `exclude` zones), with stable
    /// ids, at level none until alerts are assigned.
    fn group(
        &mut self,
        width: u32,
        height: u32,
        dets: &[Detection],
        track_ids: &[Option<u64>],
        excluded: &[bool],
    ) -> Vec<Group> {
        let kept: Vec<usize> = (0..dets.len()).filter(|&i| !excluded[i]).collect();
        let members: Vec<Member> = kept
            .iter()
            .map(|&i| Member {
                bbox: dets[i].bbox,
                track_id: track_ids[i],
            })
            .collect();
        let clusters = self
            .grouper
            .update(&self.cfg.grouping, width, height, &members);
        clusters
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                for m in &mut c.members {
                    *m = kept[*m];
                }
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

    /// Updates histories, arrivals and the flow field with this frame's tracked detections;
    /// returns the tracks forgotten (not seen for [`HISTORY_TTL`]).
    fn record(
        &mut self,
        t: f64,
        width: u32,
        height: u32,
        dets: &[Detection],
        ids: &[Option<u64>],
    ) -> Vec<u64> {
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
        let mut forgotten: Vec<u64> = self
            .histories
            .iter()
            .filter(|(_, h)| t - h.last().t > HISTORY_TTL)
            .map(|(&id, _)| id)
            .collect();
        forgotten.sort_unstable();
        for id in &forgotten {
            self.histories.remove(id);
        }
        forgotten
    }
}

/// The rules `cfg` and `layout` allow at the camera's cadence, and why the others do not.
fn runnable_rules(cfg: &SceneConfig, layout: &Layout) -> (HashSet<RuleKind>, Vec<String>) {
    let interval = layout.spec.detect_interval.unwrap_or(cfg.frame_interval);
    let (on, off) = rules::runnable(interval, layout.calibrated());
    if cfg.tracking && cfg.rules.enabled {
        (on, off)
    } else {
        (on, Vec::new())
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
