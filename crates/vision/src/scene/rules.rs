//! Rule-based danger detection on tracks: plain functions of the tracks' histories, run every
//! analysed frame, no model and no key. Distances are in pixels and speeds in box heights per
//! second, so the rules hold in any part of a perspective view without calibration; what pixel
//! geometry cannot tell (depth) is approximated by comparing the boxes' bottom edges, where the
//! objects touch the road.

use super::RiskLevel;
use super::history::TrackHistory;
use crate::geometry::BBox;

/// Rule thresholds (`rules.*` in `model_config.yaml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RulesConfig {
    /// Run the rules at all.
    pub enabled: bool,
    /// Below this speed (box heights per second) a vehicle stands still.
    pub stationary_speed: f32,
    /// From this speed a vehicle is moving for the rules that need motion.
    pub moving_speed: f32,
    /// Tailgating: time headway (s) under which a follower is too close; half of it is high.
    pub tailgating_headway: f32,
    /// Pedestrian conflict: how far ahead (s) a vehicle's path is projected.
    pub pedestrian_horizon: f32,
    /// Wrong way: observations a grid cell needs before it judges.
    pub wrong_way_min_samples: u32,
    /// Sudden stop: the speed a vehicle had before standing still.
    pub sudden_stop_speed: f32,
    /// Illegal stop: seconds stationary (after having moved) outside a queue.
    pub dwell_seconds: f32,
    /// Congestion: fewest vehicles with a known speed before judging.
    pub congestion_min_vehicles: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            stationary_speed: 0.3,
            moving_speed: 1.0,
            tailgating_headway: 1.0,
            pedestrian_horizon: 2.0,
            wrong_way_min_samples: 30,
            sudden_stop_speed: 3.0,
            dwell_seconds: 60.0,
            congestion_min_vehicles: 6,
        }
    }
}

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKind {
    /// A follower too close behind its leader.
    Tailgating,
    /// A moving vehicle heading into a pedestrian.
    PedestrianConflict,
    /// A vehicle against the dominant flow.
    WrongWay,
    /// A fast vehicle that stopped between two frames.
    SuddenStop,
    /// A vehicle stationary for long outside a queue.
    IllegalStop,
    /// Many slow vehicles.
    Congestion,
}

impl RuleKind {
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
    fn moving(&self, cfg: &RulesConfig) -> bool {
        self.track.speed().is_some_and(|s| s >= cfg.moving_speed)
    }

    fn name(&self) -> String {
        format!("{} #{}", self.track.class, self.track.id)
    }
}

/// The extent of `b` along unit vector `u`.
fn extent(b: &BBox, u: (f32, f32)) -> f32 {
    u.0.abs() * b.width() + u.1.abs() * b.height()
}

fn diagonal(b: &BBox) -> f32 {
    b.width().hypot(b.height())
}

fn scaled_confidence(base: f32, closeness: f32) -> f32 {
    (base + 0.4 * closeness.clamp(0.0, 1.0)).min(0.95)
}

/// Tailgating: for each moving vehicle, the nearest vehicle ahead in the same lane and direction;
/// fires when the gap between them divided by the follower's speed is under the headway.
/// Boxes that overlap along the way (one hides the other in depth) are not judged.
pub fn tailgating(cfg: &RulesConfig, subjects: &[Subject<'_>]) -> Vec<RuleHit> {
    let cos_max = 25f32.to_radians().cos();
    let mut hits = Vec::new();
    for f in subjects.iter().filter(|s| s.vehicle && s.moving(cfg)) {
        let (Some(u), Some((vx, vy))) = (f.track.direction(), f.track.velocity()) else {
            continue;
        };
        let (fx, fy) = f.bbox.center();
        let mut best: Option<(f32, &Subject<'_>)> = None;
        for l in subjects
            .iter()
            .filter(|s| s.vehicle && s.track.id != f.track.id && s.moving(cfg))
        {
            let Some(lu) = l.track.direction() else {
                continue;
            };
            if u.0 * lu.0 + u.1 * lu.1 < cos_max {
                continue;
            }
            let (lx, ly) = l.bbox.center();
            let (dx, dy) = (lx - fx, ly - fy);
            let along = dx * u.0 + dy * u.1;
            let across = (dx * u.1 - dy * u.0).abs();
            let normal = (-u.1, u.0);
            let lane = 0.5 * extent(&f.bbox, normal).max(extent(&l.bbox, normal));
            let gap = along - 0.5 * (extent(&f.bbox, u) + extent(&l.bbox, u));
            if along <= 0.0 || across > lane || gap < 0.0 {
                continue;
            }
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, l));
            }
        }
        let Some((gap, leader)) = best else { continue };
        let speed = vx.hypot(vy);
        let headway = gap / speed;
        if headway < cfg.tailgating_headway {
            let level = if headway < 0.5 * cfg.tailgating_headway {
                RiskLevel::High
            } else {
                RiskLevel::Medium
            };
            hits.push(RuleHit {
                kind: RuleKind::Tailgating,
                level,
                confidence: scaled_confidence(0.5, 1.0 - headway / cfg.tailgating_headway),
                track_ids: vec![f.track.id, leader.track.id],
                description: format!(
                    "{} follows {} {:.1} s behind",
                    f.name(),
                    leader.name(),
                    headway
                ),
            });
        }
    }
    hits
}

/// Whether a person box is a rider (mostly inside a bicycle or motorcycle box).
fn is_rider(person: &BBox, subjects: &[Subject<'_>]) -> bool {
    subjects.iter().any(|s| {
        matches!(s.track.class.as_str(), "bicycle" | "motorcycle")
            && s.bbox.intersection(person) >= 0.3 * person.area()
    })
}

/// Pedestrian conflict: a moving vehicle whose path over the horizon brings its front edge on
/// the road (the box bottom) to a pedestrian's feet. High when that is within a second.
pub fn pedestrian_conflict(cfg: &RulesConfig, subjects: &[Subject<'_>]) -> Vec<RuleHit> {
    const STEPS: usize = 8;
    let mut hits = Vec::new();
    let persons: Vec<&Subject<'_>> = subjects
        .iter()
        .filter(|s| s.person && !is_rider(&s.bbox, subjects))
        .collect();
    for v in subjects.iter().filter(|s| s.vehicle && s.moving(cfg)) {
        let Some((vx, vy)) = v.track.velocity() else {
            continue;
        };
        let (cx, cy) = v.bbox.center();
        for p in &persons {
            let (px, py) = p.bbox.center();
            if (px - cx) * vx + (py - cy) * vy <= 0.0 {
                continue; // Moving away.
            }
            let h = p.bbox.height();
            let feet = ((p.bbox.x1 + p.bbox.x2) / 2.0, p.bbox.y2);
            let reach = (0..=STEPS)
                .map(|k| cfg.pedestrian_horizon * k as f32 / STEPS as f32)
                .find(|&t| {
                    let b = v.bbox.shift(vx * t, vy * t);
                    feet.0 >= b.x1 - 0.25 * h
                        && feet.0 <= b.x2 + 0.25 * h
                        && (b.y2 - feet.1).abs() <= 0.3 * h
                });
            if let Some(t) = reach {
                hits.push(RuleHit {
                    kind: RuleKind::PedestrianConflict,
                    level: if t <= 1.0 {
                        RiskLevel::High
                    } else {
                        RiskLevel::Medium
                    },
                    confidence: scaled_confidence(0.5, 1.0 - t / cfg.pedestrian_horizon),
                    track_ids: vec![v.track.id, p.track.id],
                    description: format!("{} heading into {} ({:.1} s)", v.name(), p.name(), t),
                });
            }
        }
    }
    hits
}

/// Wrong way: a vehicle seen moving against a confident cell of the flow field on two
/// consecutive frames (its `against_flow` count, kept by the scene).
pub fn wrong_way(cfg: &RulesConfig, subjects: &[Subject<'_>]) -> Vec<RuleHit> {
    subjects
        .iter()
        .filter(|s| s.vehicle && s.moving(cfg) && s.track.against_flow >= 2)
        .map(|s| RuleHit {
            kind: RuleKind::WrongWay,
            level: RiskLevel::High,
            confidence: scaled_confidence(0.5, s.track.against_flow as f32 / 5.0),
            track_ids: vec![s.track.id],
            description: format!("{} is driving against the traffic flow", s.name()),
        })
        .collect()
}

/// Sudden stop: a vehicle that was fast at the previous frame and stands still now.
pub fn sudden_stop(cfg: &RulesConfig, subjects: &[Subject<'_>]) -> Vec<RuleHit> {
    let mut hits = Vec::new();
    for s in subjects.iter().filter(|s| s.vehicle) {
        let (Some(before), Some(now)) = (s.track.previous_speed, s.track.speed()) else {
            continue;
        };
        let n = s.track.samples.len();
        let dt = s.track.samples[n - 1].t - s.track.samples[n - 2].t;
        if before >= cfg.sudden_stop_speed && now < cfg.stationary_speed && dt <= 4.0 {
            hits.push(RuleHit {
                kind: RuleKind::SuddenStop,
                level: RiskLevel::Medium,
                confidence: scaled_confidence(0.5, before / (2.0 * cfg.sudden_stop_speed)),
                track_ids: vec![s.track.id],
                description: format!("{} stopped suddenly from {:.1} heights/s", s.name(), before),
            });
        }
    }
    hits
}

/// Illegal stop: a vehicle that arrived moving and has stood still for `dwell_seconds` with no
/// other slow vehicle within one and a half box diagonals (then it would be queueing). Parked cars that never moved
/// while watched do not count.
pub fn illegal_stop(cfg: &RulesConfig, subjects: &[Subject<'_>], t: f64) -> Vec<RuleHit> {
    let mut hits = Vec::new();
    for s in subjects.iter().filter(|s| s.vehicle) {
        let still = s.track.stationary_for(t) as f32;
        if still < cfg.dwell_seconds || s.track.max_speed < cfg.moving_speed {
            continue;
        }
        let (x, y) = s.bbox.center();
        let queued = subjects.iter().any(|o| {
            let (ox, oy) = o.bbox.center();
            o.vehicle
                && o.track.id != s.track.id
                && !o.moving(cfg)
                && (ox - x).hypot(oy - y) <= 1.5 * diagonal(&s.bbox).max(diagonal(&o.bbox))
        });
        if !queued {
            hits.push(RuleHit {
                kind: RuleKind::IllegalStop,
                level: if still >= 3.0 * cfg.dwell_seconds {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                },
                confidence: scaled_confidence(0.5, still / (3.0 * cfg.dwell_seconds)),
                track_ids: vec![s.track.id],
                description: format!("{} has been stopped for {:.0} s", s.name(), still),
            });
        }
    }
    hits
}

/// The vehicles congestion is judged on: speed known, and seen moving at some time (parked
/// cars never are, so a street lined with them is not a jam).
fn traffic<'a, 'b>(
    cfg: &RulesConfig,
    subjects: &'b [Subject<'a>],
) -> impl Iterator<Item = &'b Subject<'a>> {
    subjects
        .iter()
        .filter(|s| s.vehicle && s.track.speed().is_some() && s.track.max_speed >= cfg.moving_speed)
}

/// Congestion level from the share of [`traffic`] standing still now (below
/// `stationary_speed`; none below `congestion_min_vehicles`). Also returns the standing ones.
/// Standing, not merely slow: traffic driving towards or away from the camera moves little in
/// the image, and must not look like a jam.
pub fn congestion(cfg: &RulesConfig, subjects: &[Subject<'_>]) -> (RiskLevel, Vec<u64>) {
    let known = traffic(cfg, subjects).count();
    let slow: Vec<u64> = traffic(cfg, subjects)
        .filter(|s| s.track.speed().is_some_and(|v| v < cfg.stationary_speed))
        .map(|s| s.track.id)
        .collect();
    if known < cfg.congestion_min_vehicles.max(1) {
        return (RiskLevel::None, slow);
    }
    let share = slow.len() as f32 / known as f32;
    let level = match share {
        s if s >= 0.8 => RiskLevel::High,
        s if s >= 0.6 => RiskLevel::Medium,
        s if s >= 0.4 => RiskLevel::Low,
        _ => RiskLevel::None,
    };
    (level, slow)
}

/// Every rule over one frame's subjects at stream time `t`; `congestion_level` is the result
/// of [`congestion`], which raises a low alert from medium up.
pub fn evaluate(cfg: &RulesConfig, subjects: &[Subject<'_>], t: f64) -> (Vec<RuleHit>, RiskLevel) {
    let (level, slow) = congestion(cfg, subjects);
    if !cfg.enabled {
        return (Vec::new(), level);
    }
    let mut hits = tailgating(cfg, subjects);
    hits.extend(pedestrian_conflict(cfg, subjects));
    hits.extend(wrong_way(cfg, subjects));
    hits.extend(sudden_stop(cfg, subjects));
    hits.extend(illegal_stop(cfg, subjects, t));
    if level >= RiskLevel::Medium {
        let total = subjects
            .iter()
            .filter(|s| s.vehicle && s.track.speed().is_some())
            .count();
        hits.push(RuleHit {
            kind: RuleKind::Congestion,
            level: RiskLevel::Low,
            confidence: if level == RiskLevel::High { 0.8 } else { 0.6 },
            description: format!("{} of {} vehicles slow or stopped", slow.len(), total),
            track_ids: slow,
        });
    }
    (hits, level)
}
