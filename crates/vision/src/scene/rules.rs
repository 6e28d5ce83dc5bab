//! Rule-based danger detection on tracks: plain functions of one frame's tracked objects, their
//! histories and the camera's scene geometry, no model and no key.
//!
//! With a calibration the rules judge in metres and seconds, by lanes and zones, with the
//! thresholds traffic engineering uses (each with its source in `docs/scene-and-rules.md`):
//! time headway for tailgating, time to collision and post-encroachment time (FHWA SSAM) for
//! pedestrians, deceleration for hard braking (telematics), the lane's direction for wrong
//! way. Without one, only what pixels can tell runs, and nothing reaches `high`: pixel speeds
//! are in box heights per second (roughly perspective-free), tailgating and hard braking,
//! which need distances and decelerations in depth, are off.

use std::collections::HashSet;

use super::RiskLevel;
use super::history::TrackHistory;
use super::kinematics::GroundTrack;
use super::layout::{Layout, Point, ZoneKind};
use crate::geometry::BBox;

/// Rule thresholds (`rules.*` in `model_config.yaml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RulesConfig {
    /// Run the rules at all.
    pub enabled: bool,
    /// Uncalibrated: below this speed (box heights per second) a vehicle stands still.
    pub stationary_speed: f32,
    /// Uncalibrated: from this speed (box heights per second) a vehicle is moving.
    pub moving_speed: f32,
    /// Tailgating: time headway (s) under which a follower is too close; half of it is high.
    pub tailgating_headway: f32,
    /// Tailgating: the follower's speed floor, km/h (below, it is a queue).
    pub tailgating_min_kmh: f32,
    /// Pedestrian conflict: the time-to-collision horizon (s) of a medium alert.
    pub pedestrian_horizon: f32,
    /// Wrong way without a lane direction: observations a flow cell needs before it judges.
    pub wrong_way_min_samples: u32,
    /// Hard braking: the mean deceleration (m/s^2) over a second that is one.
    pub hard_braking_decel: f32,
    /// Hard braking: the speed (km/h) the vehicle had when braking began, at least.
    pub hard_braking_min_kmh: f32,
    /// Illegal stop: seconds stationary (after having moved) in a no-stopping place.
    pub dwell_seconds: f32,
    /// Congestion: fewest vehicles with a known speed (per lane, with lanes) before judging.
    pub congestion_min_vehicles: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            stationary_speed: 0.3,
            moving_speed: 1.0,
            tailgating_headway: 1.0,
            tailgating_min_kmh: 30.0,
            pedestrian_horizon: 3.0,
            wrong_way_min_samples: 30,
            hard_braking_decel: 4.0,
            hard_braking_min_kmh: 25.0,
            dwell_seconds: 60.0,
            congestion_min_vehicles: 6,
        }
    }
}

/// Calibrated: below this a vehicle stands (queues, waits), km/h.
pub const STOPPED_KMH: f64 = 5.0;
/// Calibrated: below this a vehicle is in a queue, for its measured length (km/h; HCM's queued
/// state is under 5 mi/h). Looser than [`STOPPED_KMH`]: a queue creeps.
pub const QUEUE_SPEED_KMH: f64 = 8.0;
/// Calibrated: from this a vehicle is moving for the rules that need motion, km/h.
pub const MOVING_KMH: f64 = 10.0;
/// Time to collision (s) at or under which a pedestrian conflict is high (SSAM's conflict
/// threshold).
pub const TTC_HIGH: f64 = 1.5;
/// Closest approach (m) between a vehicle's and a pedestrian's foot points that is a
/// collision course (half a car's width, a person, a margin).
pub const CONFLICT_RADIUS_M: f64 = 2.0;
/// Post-encroachment time (s) in a crosswalk at or under which it is high.
pub const PET_HIGH: f64 = 1.0;
/// Post-encroachment time (s) in a crosswalk at or under which it is medium.
pub const PET_MEDIUM: f64 = 2.0;
/// A vehicle entering a crosswalk slower than this (km/h) is yielding, not encroaching.
pub const PET_MIN_KMH: f64 = 15.0;
/// Wrong way: the cosine between a vehicle's heading and its lane's direction at or under
/// which it is against it (more than 120 degrees off).
pub const WRONG_WAY_COS: f64 = -0.5;
/// Hard braking: the window (s) the deceleration is averaged over.
pub const BRAKING_WINDOW: f64 = 1.0;
/// Hard braking: the deceleration (m/s^2) that is high (an emergency stop, about 0.7 g).
pub const BRAKING_HIGH: f64 = 7.0;
/// Queues: a stopped vehicle within this distance (m, foot point to foot point: a car length
/// and a stopped gap) ahead in its lane holds another up.
pub const QUEUE_GAP_M: f64 = 12.0;
/// Without lanes, two vehicles are in one lane when this close across the heading (m).
pub const SAME_LANE_M: f64 = 1.75;

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKind {
    /// A follower too close behind its leader.
    Tailgating,
    /// A moving vehicle and a pedestrian on a collision course.
    PedestrianConflict,
    /// A vehicle against its lane's direction (or the learned flow).
    WrongWay,
    /// Hard braking.
    SuddenStop,
    /// A vehicle stopped long where stopping is not allowed.
    IllegalStop,
    /// Many slow vehicles.
    Congestion,
}

impl RuleKind {
    /// Every rule.
    pub const ALL: [Self; 6] = [
        Self::Tailgating,
        Self::PedestrianConflict,
        Self::WrongWay,
        Self::SuddenStop,
        Self::IllegalStop,
        Self::Congestion,
    ];

    /// The `type` of the alert.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tailgating => "tailgating",
            Self::PedestrianConflict => "pedestrian_conflict",
            Self::WrongWay => "wrong_way",
            Self::SuddenStop => "sudden_stop",
            Self::IllegalStop => "illegal_stop",
            Self::Congestion => "congestion",
        }
    }

    /// The longest time between analysed frames (s) at which the rule can judge: a speed
    /// needs three sightings within a couple of seconds, a deceleration three within a second.
    pub fn max_interval(self) -> f64 {
        match self {
            Self::Tailgating | Self::PedestrianConflict => 1.0,
            Self::WrongWay => 2.0,
            Self::SuddenStop => 0.5,
            Self::IllegalStop | Self::Congestion => 10.0,
        }
    }

    /// How long (s) a rule must keep firing on the same tracks before it is an alert, so that
    /// one noisy frame is not an event.
    pub fn min_duration(self) -> f64 {
        match self {
            Self::Tailgating | Self::WrongWay => 1.0,
            _ => 0.0,
        }
    }
}

/// Which rules run at a cadence of `interval` seconds, and why the others do not.
pub fn runnable(interval: f64, calibrated: bool) -> (HashSet<RuleKind>, Vec<String>) {
    let mut on = HashSet::new();
    let mut off = Vec::new();
    for kind in RuleKind::ALL {
        if interval > kind.max_interval() + 1e-9 {
            off.push(format!(
                "{}: needs a frame every {} s or less, the camera analyses one every {interval} s",
                kind.as_str(),
                kind.max_interval()
            ));
        } else if !calibrated && matches!(kind, RuleKind::Tailgating | RuleKind::SuddenStop) {
            off.push(format!(
                "{}: needs a calibrated scene (distances and decelerations in metres)",
                kind.as_str()
            ));
        } else {
            on.insert(kind);
        }
    }
    (on, off)
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    /// Which rule.
    pub kind: RuleKind,
    /// How dangerous.
    pub level: RiskLevel,
    /// How sure, 0 to 1.
    pub confidence: f32,
    /// The tracks that triggered it.
    pub track_ids: Vec<u64>,
    /// One line for a human.
    pub description: String,
    /// What was measured, for the LLM and the record: `(name, value)`, e.g.
    /// `("headway_s", 0.6)`.
    pub measures: Vec<(&'static str, f64)>,
}

/// What a rule knows about one tracked object this frame.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The track.
    pub track: &'a TrackHistory,
    /// Current box.
    pub bbox: BBox,
    /// Road vehicle (car, bus, truck, motorcycle, bicycle).
    pub vehicle: bool,
    /// Person.
    pub person: bool,
}

impl Subject<'_> {
    /// Uncalibrated: moving, by box heights per second.
    fn moving_px(&self, cfg: &RulesConfig) -> bool {
        self.track.speed().is_some_and(|s| s >= cfg.moving_speed)
    }

    fn ground(&self) -> Option<&GroundTrack> {
        self.track.ground.as_ref()
    }

    /// Smoothed ground position and velocity, once the speed is known.
    fn motion(&self) -> Option<(Point, Point)> {
        let g = self.ground()?;
        Some((g.position(), g.velocity()?))
    }

    fn kmh(&self) -> Option<f64> {
        self.ground()?.speed_kmh()
    }

    fn foot(&self) -> Point {
        super::kinematics::foot(&self.bbox)
    }

    fn name(&self) -> String {
        format!("{} #{}", self.track.class, self.track.id)
    }
}

/// A person seen in a crosswalk: where, when, in which lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrosswalkVisit {
    /// The crosswalk zone's index.
    pub zone: usize,
    /// The lane the person's foot point was in.
    pub lane: Option<usize>,
    /// The person's ground position.
    pub ground: Option<Point>,
    /// Stream time.
    pub t: f64,
    /// The person's track.
    pub track_id: u64,
}

/// Everything the rules judge one frame with.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Thresholds.
    pub cfg: &'a RulesConfig,
    /// The camera's geometry.
    pub layout: &'a Layout,
    /// The rules that run at this camera's cadence.
    pub runnable: &'a HashSet<RuleKind>,
    /// Stream time.
    pub t: f64,
    /// This frame's tracked objects.
    pub subjects: &'a [Subject<'a>],
    /// People seen in crosswalks lately (the scene keeps them for [`PET_MEDIUM`]).
    pub crosswalk_visits: &'a [CrosswalkVisit],
}

fn dot(a: Point, b: Point) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}

fn sub(a: Point, b: Point) -> Point {
    [a[0] - b[0], a[1] - b[1]]
}

fn norm(a: Point) -> f64 {
    a[0].hypot(a[1])
}

fn unit(a: Point) -> Option<Point> {
    let n = norm(a);
    (n > 1e-9).then(|| [a[0] / n, a[1] / n])
}

fn scaled_confidence(base: f32, closeness: f64) -> f32 {
    (base + 0.4 * closeness.clamp(0.0, 1.0) as f32).min(0.95)
}

/// Whether `a` and `b` are in one lane: the same lane polygon, or without lanes, within
/// [`SAME_LANE_M`] across heading `u`.
fn same_lane(layout: &Layout, a: &Subject<'_>, b: &Subject<'_>, offset: Point, u: Point) -> bool {
    if layout.lanes.is_empty() {
        (offset[0] * u[1] - offset[1] * u[0]).abs() <= SAME_LANE_M
    } else {
        a.track.lane.is_some() && a.track.lane == b.track.lane
    }
}

/// Tailgating (calibrated): a vehicle at or above the speed floor whose nearest vehicle ahead
/// in its lane, moving the same way, is less than the headway away at its speed. Headway is
/// the distance between the two foot points (the same end of both vehicles, so front to front
/// or rear to rear: the time headway of traffic engineering) over the follower's speed.
pub fn tailgating(f: &Frame<'_>) -> Vec<RuleHit> {
    let cfg = f.cfg;
    let floor = f64::from(cfg.tailgating_min_kmh);
    let mut hits = Vec::new();
    for s in f.subjects.iter().filter(|s| s.vehicle) {
        let Some((p, v)) = s.motion() else { continue };
        let speed = norm(v);
        if speed * 3.6 < floor {
            continue;
        }
        let Some(u) = unit(v) else { continue };
        let mut best: Option<(f64, &Subject<'_>)> = None;
        for l in f
            .subjects
            .iter()
            .filter(|l| l.vehicle && l.track.id != s.track.id)
        {
            let Some((lp, lv)) = l.motion() else { continue };
            // The leader drives the same way, at least at half the floor: a vehicle closing
            // on a standing one is a different danger.
            if dot(lv, u) * 3.6 < floor / 2.0 || unit(lv).is_none_or(|lu| dot(lu, u) < 0.85) {
                continue;
            }
            let offset = sub(lp, p);
            let along = dot(offset, u);
            if along <= 0.0 || !same_lane(f.layout, s, l, offset, u) {
                continue;
            }
            if best.is_none_or(|(d, _)| along < d) {
                best = Some((along, l));
            }
        }
        let Some((gap, leader)) = best else { continue };
        let headway = gap / speed;
        let limit = f64::from(cfg.tailgating_headway);
        if headway < limit {
            hits.push(RuleHit {
                kind: RuleKind::Tailgating,
                level: if headway < 0.5 * limit {
                    RiskLevel::High
                } else {
                    RiskLevel::Medium
                },
                confidence: scaled_confidence(0.5, 1.0 - headway / limit),
                track_ids: vec![s.track.id, leader.track.id],
                description: format!(
                    "{} follows {} {:.1} s behind at {:.0} km/h ({:.0} m)",
                    s.name(),
                    leader.name(),
                    headway,
                    speed * 3.6,
                    gap
                ),
                measures: vec![
                    ("headway_s", headway),
                    ("gap_m", gap),
                    ("speed_kmh", speed * 3.6),
                ],
            });
        }
    }
    hits
}

/// Whether a person box is aboard a vehicle: a rider (a third of it inside a bicycle or
/// motorcycle box) or an occupant seen through the windscreen (most of it inside a car, bus or
/// truck box).
fn is_aboard(person: &BBox, subjects: &[Subject<'_>]) -> bool {
    subjects.iter().any(|s| {
        let share = match s.track.class.as_str() {
            "bicycle" | "motorcycle" => 0.3,
            "car" | "bus" | "truck" => 0.6,
            _ => return false,
        };
        s.bbox.intersection(person) >= share * person.area()
    })
}

/// Whether a person at foot point `p` can be in a vehicle's path: in a lane or a crosswalk,
/// or anywhere when the scene has neither.
fn in_a_path(layout: &Layout, p: Point) -> bool {
    let has_paths =
        !layout.lanes.is_empty() || layout.zones.iter().any(|z| z.kind == ZoneKind::Crosswalk);
    !has_paths || layout.lane_at(p).is_some() || layout.in_zone(p, ZoneKind::Crosswalk)
}

/// The pedestrians (not riders or occupants) that can be in a path.
fn pedestrians<'a>(f: &'a Frame<'a>) -> Vec<&'a Subject<'a>> {
    f.subjects
        .iter()
        .filter(|s| s.person && !is_aboard(&s.bbox, f.subjects) && in_a_path(f.layout, s.foot()))
        .collect()
}

/// Pedestrian conflict: time to collision and, in crosswalks, post-encroachment time.
///
/// Calibrated: a vehicle moving at [`MOVING_KMH`] or more and a pedestrian in a lane or
/// crosswalk whose straight-line motions bring them within [`CONFLICT_RADIUS_M`] of each other
/// within the horizon: medium, high at [`TTC_HIGH`] or less. And a vehicle entering a
/// crosswalk at [`PET_MIN_KMH`] or more where (in its lane) a pedestrian was at most
/// [`PET_MEDIUM`] s ago: medium, high at [`PET_HIGH`] or less.
///
/// Uncalibrated: a moving vehicle whose box, moved along its image velocity over the horizon,
/// brings its bottom edge to a pedestrian's feet: medium.
pub fn pedestrian_conflict(f: &Frame<'_>) -> Vec<RuleHit> {
    let mut hits = Vec::new();
    let horizon = f64::from(f.cfg.pedestrian_horizon);
    // Once per frame: each is checked against every subject (aboard a vehicle or not).
    let pedestrians = pedestrians(f);
    for v in f.subjects.iter().filter(|s| s.vehicle) {
        if let Some((vp, vv)) = v.motion() {
            if norm(vv) * 3.6 < MOVING_KMH {
                continue;
            }
            for &p in &pedestrians {
                let Some(pg) = p.ground() else { continue };
                let pv = pg.velocity().unwrap_or([0.0, 0.0]);
                if let Some(ttc) = time_to_collision(vp, vv, pg.position(), pv, horizon) {
                    hits.push(RuleHit {
                        kind: RuleKind::PedestrianConflict,
                        level: if ttc <= TTC_HIGH {
                            RiskLevel::High
                        } else {
                            RiskLevel::Medium
                        },
                        confidence: scaled_confidence(0.5, 1.0 - ttc / horizon),
                        track_ids: vec![v.track.id, p.track.id],
                        description: format!(
                            "{} at {:.0} km/h heading into {} (time to collision {:.1} s)",
                            v.name(),
                            norm(vv) * 3.6,
                            p.name(),
                            ttc
                        ),
                        measures: vec![("ttc_s", ttc), ("speed_kmh", norm(vv) * 3.6)],
                    });
                }
            }
            hits.extend(encroachment(f, v, vp, vv));
        } else if !f.layout.calibrated() {
            hits.extend(conflict_in_pixels(f, v, &pedestrians));
        }
    }
    hits
}

/// The time (s, within `horizon`) at which two straight-line motions come within
/// [`CONFLICT_RADIUS_M`], if they do and are closing.
fn time_to_collision(vp: Point, vv: Point, pp: Point, pv: Point, horizon: f64) -> Option<f64> {
    let r = sub(pp, vp);
    let w = sub(pv, vv);
    let (ww, rw, rr) = (dot(w, w), dot(r, w), dot(r, r));
    if rw >= 0.0 || ww < 1e-9 {
        return None; // Not closing.
    }
    // |r + w t| = R: ww t^2 + 2 rw t + rr - R^2 = 0, the first root.
    let c = rr - CONFLICT_RADIUS_M * CONFLICT_RADIUS_M;
    if c <= 0.0 {
        return Some(0.0);
    }
    let disc = rw * rw - ww * c;
    if disc < 0.0 {
        return None; // Passes wide.
    }
    let t = (-rw - disc.sqrt()) / ww;
    (t <= horizon).then_some(t)
}

/// Post-encroachment in a crosswalk: vehicle `v` (at `vp`, `vv`) is in a crosswalk where, in
/// its lane (or within [`CONFLICT_RADIUS_M`] across its path without lanes), a pedestrian was
/// lately.
fn encroachment(f: &Frame<'_>, v: &Subject<'_>, vp: Point, vv: Point) -> Option<RuleHit> {
    let speed = norm(vv) * 3.6;
    if speed < PET_MIN_KMH {
        return None;
    }
    let foot = v.foot();
    let u = unit(vv)?;
    let pet = f
        .crosswalk_visits
        .iter()
        .filter(|c| f.layout.zones[c.zone].polygon.contains(foot))
        .filter(|c| {
            if f.layout.lanes.is_empty() {
                c.ground
                    .is_some_and(|g| (sub(g, vp)[0] * u[1] - sub(g, vp)[1] * u[0]).abs() <= 2.0)
            } else {
                c.lane.is_some() && c.lane == v.track.lane
            }
        })
        .map(|c| (f.t - c.t, c.track_id))
        .filter(|(pet, _)| *pet <= PET_MEDIUM)
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    let (pet, person) = pet;
    Some(RuleHit {
        kind: RuleKind::PedestrianConflict,
        level: if pet <= PET_HIGH {
            RiskLevel::High
        } else {
            RiskLevel::Medium
        },
        confidence: scaled_confidence(0.5, 1.0 - pet / PET_MEDIUM),
        track_ids: vec![v.track.id, person],
        description: format!(
            "{} crossed the crosswalk at {speed:.0} km/h {pet:.1} s after a pedestrian",
            v.name()
        ),
        measures: vec![("pet_s", pet), ("speed_kmh", speed)],
    })
}

/// The uncalibrated pedestrian conflict of vehicle `v`, in pixels.
fn conflict_in_pixels(
    f: &Frame<'_>,
    v: &Subject<'_>,
    pedestrians: &[&Subject<'_>],
) -> Vec<RuleHit> {
    const STEPS: usize = 8;
    let horizon = f.cfg.pedestrian_horizon;
    let mut hits = Vec::new();
    if !v.moving_px(f.cfg) {
        return hits;
    }
    let Some((vx, vy)) = v.track.velocity() else {
        return hits;
    };
    let (cx, cy) = v.bbox.center();
    for p in pedestrians {
        let (px, py) = p.bbox.center();
        if (px - cx) * vx + (py - cy) * vy <= 0.0 {
            continue; // Moving away.
        }
        let h = p.bbox.height();
        let feet = ((p.bbox.x1 + p.bbox.x2) / 2.0, p.bbox.y2);
        let reach = (0..=STEPS)
            .map(|k| horizon * k as f32 / STEPS as f32)
            .find(|&t| {
                let b = v.bbox.shift(vx * t, vy * t);
                feet.0 >= b.x1 - 0.25 * h
                    && feet.0 <= b.x2 + 0.25 * h
                    && (b.y2 - feet.1).abs() <= 0.3 * h
            });
        if let Some(t) = reach {
            hits.push(RuleHit {
                kind: RuleKind::PedestrianConflict,
                level: RiskLevel::Medium,
                confidence: scaled_confidence(0.4, 1.0 - f64::from(t / horizon)),
                track_ids: vec![v.track.id, p.track.id],
                description: format!(
                    "{} heading into {} ({:.1} s, uncalibrated)",
                    v.name(),
                    p.name(),
                    t
                ),
                measures: vec![("ttc_s", f64::from(t))],
            });
        }
    }
    hits
}

/// Wrong way: a vehicle moving against its lane's direction (calibrated: ground heading more
/// than 120 degrees off, high; uncalibrated: image heading, medium); in a lane without a
/// direction or outside lanes, against a confident cell of the learned flow field on two
/// consecutive frames (its `against_flow` count, kept by the scene): medium.
pub fn wrong_way(f: &Frame<'_>) -> Vec<RuleHit> {
    let mut hits = Vec::new();
    for s in f.subjects.iter().filter(|s| s.vehicle) {
        let lane = s.track.lane.map(|i| &f.layout.lanes[i]);
        let hit = |level, confidence, against: &str, measures| RuleHit {
            kind: RuleKind::WrongWay,
            level,
            confidence,
            track_ids: vec![s.track.id],
            description: format!("{} is driving against {against}", s.name()),
            measures,
        };
        match (lane, s.motion()) {
            (Some(l), Some((_, v))) if l.direction_ground.is_some() => {
                let (Some(d), Some(u)) = (l.direction_ground, unit(v)) else {
                    continue;
                };
                let kmh = norm(v) * 3.6;
                let cos = dot(u, d);
                if kmh >= MOVING_KMH && cos <= WRONG_WAY_COS {
                    let against = format!("the direction of lane {}", l.name);
                    hits.push(hit(
                        RiskLevel::High,
                        scaled_confidence(0.5, -cos),
                        &against,
                        vec![("speed_kmh", kmh)],
                    ));
                }
            }
            (Some(l), None) if l.direction_px.is_some() && !f.layout.calibrated() => {
                let (Some(d), Some((ux, uy))) = (l.direction_px, s.track.direction()) else {
                    continue;
                };
                let cos = d[0] * f64::from(ux) + d[1] * f64::from(uy);
                if s.moving_px(f.cfg) && cos <= WRONG_WAY_COS {
                    let against = format!("the direction of lane {}", l.name);
                    hits.push(hit(RiskLevel::Medium, 0.5, &against, Vec::new()));
                }
            }
            (Some(l), _) if l.direction_px.is_some() => {}
            _ => {
                if s.moving_px(f.cfg) && s.track.against_flow >= 2 {
                    hits.push(hit(
                        RiskLevel::Medium,
                        scaled_confidence(0.4, f64::from(s.track.against_flow) / 5.0),
                        "the traffic flow",
                        Vec::new(),
                    ));
                }
            }
        }
    }
    hits
}

/// Hard braking (calibrated): a vehicle whose filtered speed fell by [`BRAKING_WINDOW`] s'
/// worth of the threshold deceleration or more, from at least the speed floor: medium, high
/// at [`BRAKING_HIGH`]. A vehicle rolling into a queue slows at 1-2 m/s^2 and is not one.
pub fn sudden_stop(f: &Frame<'_>) -> Vec<RuleHit> {
    let mut hits = Vec::new();
    for s in f.subjects.iter().filter(|s| s.vehicle) {
        let Some((decel, from)) = s.ground().and_then(|g| g.deceleration(BRAKING_WINDOW)) else {
            continue;
        };
        let now = s.kmh().unwrap_or(0.0);
        if decel >= f64::from(f.cfg.hard_braking_decel)
            && from * 3.6 >= f64::from(f.cfg.hard_braking_min_kmh)
        {
            hits.push(RuleHit {
                kind: RuleKind::SuddenStop,
                level: if decel >= BRAKING_HIGH {
                    RiskLevel::High
                } else {
                    RiskLevel::Medium
                },
                confidence: scaled_confidence(0.5, decel / BRAKING_HIGH),
                track_ids: vec![s.track.id],
                description: format!(
                    "{} braked hard: {:.0} to {:.0} km/h at {:.1} m/s^2",
                    s.name(),
                    from * 3.6,
                    now,
                    decel
                ),
                measures: vec![
                    ("deceleration_ms2", decel),
                    ("from_kmh", from * 3.6),
                    ("speed_kmh", now),
                ],
            });
        }
    }
    hits
}

/// Whether vehicle `s` stands (calibrated speed under [`STOPPED_KMH`]; without one, as at a
/// sparse cadence, image speed under `stationary_speed`).
fn standing(cfg: &RulesConfig, s: &Subject<'_>) -> Option<bool> {
    match s.kmh() {
        Some(kmh) => Some(kmh < STOPPED_KMH),
        None => s.track.speed().map(|v| v < cfg.stationary_speed),
    }
}

/// Whether stopped vehicle `s` is held up by another standing vehicle: in its lane within
/// [`QUEUE_GAP_M`] (calibrated), else within one and a half box diagonals.
fn queued(f: &Frame<'_>, s: &Subject<'_>) -> bool {
    f.subjects.iter().any(|o| {
        if !o.vehicle || o.track.id == s.track.id || standing(f.cfg, o) != Some(true) {
            return false;
        }
        match (s.ground(), o.ground()) {
            (Some(a), Some(b)) => {
                let same_lane = f.layout.lanes.is_empty() || s.track.lane == o.track.lane;
                same_lane && norm(sub(b.position(), a.position())) <= QUEUE_GAP_M
            }
            _ => {
                let (x, y) = s.bbox.center();
                let (ox, oy) = o.bbox.center();
                let diag = |b: &BBox| b.width().hypot(b.height());
                (ox - x).hypot(oy - y) <= 1.5 * diag(&s.bbox).max(diag(&o.bbox))
            }
        }
    })
}

/// Illegal stop: a vehicle that arrived moving and has stood still for `dwell_seconds` in a
/// `no_stopping` zone, or in an `roi` zone outside every lane, and is not queued behind
/// another standing vehicle. Low, medium at three times the dwell. Without such zones the
/// rule has nowhere to judge.
pub fn illegal_stop(f: &Frame<'_>) -> Vec<RuleHit> {
    let cfg = f.cfg;
    let mut hits = Vec::new();
    for s in f.subjects.iter().filter(|s| s.vehicle) {
        let still = s.track.stationary_for(f.t);
        if still < f64::from(cfg.dwell_seconds) || s.track.max_speed < cfg.moving_speed {
            continue;
        }
        let foot = s.foot();
        let place = if f.layout.in_zone(foot, ZoneKind::NoStopping) {
            "a no-stopping zone"
        } else if f.layout.in_zone(foot, ZoneKind::Roi)
            && !f.layout.lanes.is_empty()
            && f.layout.lane_at(foot).is_none()
        {
            "the watched area outside the lanes"
        } else {
            continue;
        };
        if queued(f, s) {
            continue;
        }
        let dwell = f64::from(cfg.dwell_seconds);
        hits.push(RuleHit {
            kind: RuleKind::IllegalStop,
            level: if still >= 3.0 * dwell {
                RiskLevel::Medium
            } else {
                RiskLevel::Low
            },
            confidence: scaled_confidence(0.5, still / (3.0 * dwell)),
            track_ids: vec![s.track.id],
            description: format!("{} has been stopped in {place} for {still:.0} s", s.name()),
            measures: vec![("stopped_s", still)],
        });
    }
    hits
}

/// Congestion level from the share of traffic standing still (vehicles with a known speed
/// that were seen moving: parked cars never were), per lane when the scene has lanes (the
/// worst lane counts), over the whole frame otherwise; none below `congestion_min_vehicles`.
/// Also returns the standing ones. Standing, not merely slow: traffic driving towards or away
/// from the camera moves little in the image, and must not look like a jam.
pub fn congestion(f: &Frame<'_>) -> (RiskLevel, Vec<u64>) {
    let cfg = f.cfg;
    let traffic: Vec<(&Subject<'_>, bool)> = f
        .subjects
        .iter()
        .filter(|s| s.vehicle && s.track.max_speed >= cfg.moving_speed)
        .filter_map(|s| standing(cfg, s).map(|st| (s, st)))
        .collect();
    let lanes: Vec<Option<usize>> = if f.layout.lanes.is_empty() {
        vec![None]
    } else {
        (0..f.layout.lanes.len()).map(Some).collect()
    };
    let mut worst = RiskLevel::None;
    let mut slow = Vec::new();
    for lane in lanes {
        let members: Vec<&(&Subject<'_>, bool)> = traffic
            .iter()
            .filter(|(s, _)| lane.is_none() || s.track.lane == lane)
            .collect();
        let standing: Vec<u64> = members
            .iter()
            .filter(|(_, st)| *st)
            .map(|(s, _)| s.track.id)
            .collect();
        if members.len() >= cfg.congestion_min_vehicles.max(1) {
            let share = standing.len() as f32 / members.len() as f32;
            let level = match share {
                s if s >= 0.8 => RiskLevel::High,
                s if s >= 0.6 => RiskLevel::Medium,
                s if s >= 0.4 => RiskLevel::Low,
                _ => RiskLevel::None,
            };
            worst = worst.max(level);
        }
        slow.extend(standing);
    }
    (worst, slow)
}

/// Every rule that runs at this camera's cadence over one frame; `congestion_level` is the
/// result of [`congestion`], which raises a low alert from medium up. Without a calibration
/// nothing is above medium.
pub fn evaluate(f: &Frame<'_>) -> (Vec<RuleHit>, RiskLevel) {
    let on = |k| f.runnable.contains(&k);
    let (level, slow) = if on(RuleKind::Congestion) {
        congestion(f)
    } else {
        (RiskLevel::None, Vec::new())
    };
    if !f.cfg.enabled {
        return (Vec::new(), level);
    }
    let mut hits = Vec::new();
    if on(RuleKind::Tailgating) {
        hits.extend(tailgating(f));
    }
    if on(RuleKind::PedestrianConflict) {
        hits.extend(pedestrian_conflict(f));
    }
    if on(RuleKind::WrongWay) {
        hits.extend(wrong_way(f));
    }
    if on(RuleKind::SuddenStop) {
        hits.extend(sudden_stop(f));
    }
    if on(RuleKind::IllegalStop) {
        hits.extend(illegal_stop(f));
    }
    if level >= RiskLevel::Medium {
        hits.push(RuleHit {
            kind: RuleKind::Congestion,
            level: RiskLevel::Low,
            confidence: if level == RiskLevel::High { 0.8 } else { 0.6 },
            description: format!("{} vehicles standing in traffic", slow.len()),
            measures: vec![("standing", slow.len() as f64)],
            track_ids: slow,
        });
    }
    if !f.layout.calibrated() {
        for h in &mut hits {
            h.level = h.level.min(RiskLevel::Medium);
        }
    }
    (hits, level)
}
