//! Traffic measurement of one camera (SPEC section 9), what traffic engineers count: crossings
//! of each count line per direction and class, turning movements from approach zone to
//! approach zone, and each vehicle's pass through each lane with its speed. The scene calls
//! [`Meter::observe`] once per frame with every tracked road user's foot point; out come
//! [`Measure`]s stamped with stream time. Binning them by the wall clock and keeping them is
//! the caller's business. Pure and synchronous.
//!
//! Line crossings are judged on the track's path, not on a box touching the line: a track has a
//! settled side of each line (where its foot point last was, clearly off the line), and when it
//! settles on the other side, the segment between the two settled points must cut the drawn
//! line. So a crossing between two sparse samples counts, a box jittering on the line counts
//! once (it never settles on the other side), a vehicle passing beside the line's end counts
//! nothing, and each track counts at most once per line and direction.

use std::collections::HashMap;
use std::sync::Arc;

use super::layout::{Layout, Point, ZoneKind};
use super::rules::{QUEUE_GAP_M, QUEUE_SPEED_KMH};

/// A track's foot point must be this share of its box height off a line (at least
/// [`SETTLE_MIN_PX`]) before it is on one side: the hysteresis against jitter.
pub const SETTLE_SHARE: f64 = 0.08;
/// The least distance (pixels) off a line that settles a side.
pub const SETTLE_MIN_PX: f64 = 2.0;
/// On a track's first sighting, this far (pixels) off a line is enough to say its side.
pub const FIRST_SIDE_MIN_PX: f64 = 0.5;
/// A crossing point may lie this share of the line's length beyond its ends (a line drawn
/// kerb to kerb, a vehicle on the kerb's edge).
const LINE_END_SLACK: f64 = 0.02;
/// A lane pass of at least this long (seconds) between its first and last ground positions
/// gives a two-point speed.
pub const MIN_PASS_SECONDS: f64 = 1.0;
/// Faster than this (km/h) is not one vehicle's pass: the tracker swapped identities.
const MAX_PASS_KMH: f64 = 250.0;
/// The length counted for the last vehicle of a queue, metres.
pub const VEHICLE_LENGTH_M: f64 = 5.0;

/// Which way a line was crossed: from the left of its arrow (first point to second, as seen
/// in the image) to its right is `In`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Left to right of the arrow.
    In,
    /// Right to left.
    Out,
}

impl Direction {
    /// `in` or `out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// What was measured.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasureKind {
    /// The track crossed count line `line`.
    Crossing {
        /// The line's name.
        line: Arc<str>,
        /// Which way.
        direction: Direction,
    },
    /// The track came from approach `from` and left by approach `to` (its first and last
    /// approach zones, which differ).
    Movement {
        /// First approach zone.
        from: Arc<str>,
        /// Last approach zone.
        to: Arc<str>,
    },
    /// A vehicle drove through lane `lane`.
    LanePass {
        /// The lane's name.
        lane: Arc<str>,
        /// Its speed there, km/h, when the scene is calibrated and it was seen long enough.
        speed_kmh: Option<f64>,
        /// Whether that speed is above the lane's limit (when both are known).
        over_limit: Option<bool>,
    },
}

/// One measurement of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// Stream time it happened (the sighting that completed it), seconds.
    pub t: f64,
    /// The track.
    pub track_id: u64,
    /// The track's class (the one it was seen as with the most confidence overall).
    pub class: String,
    /// What was measured.
    pub kind: MeasureKind,
}

/// One lane right now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaneNow {
    /// The lane's name.
    pub name: Arc<str>,
    /// Vehicles in it on this frame.
    pub vehicles: u32,
    /// Length of the queue standing at its head, metres (calibrated lanes with a direction;
    /// zero when nothing stands).
    pub queue_length_m: Option<f64>,
}

/// A road user on one frame, as the meter needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting<'a> {
    /// Track id.
    pub track_id: u64,
    /// Class seen on this frame.
    pub class: &'a str,
    /// Its confidence.
    pub confidence: f32,
    /// Whether it is a vehicle (lanes and queues are of vehicles).
    pub vehicle: bool,
    /// Foot point (bottom centre of the box), pixels.
    pub foot: Point,
    /// Box height, pixels (sets the hysteresis).
    pub box_height: f64,
    /// Smoothed ground position and speed (km/h) when the scene is calibrated and the track's
    /// ground motion is known; the `u32` counts the ground filter's sightings (it drops when
    /// the filter restarted).
    pub ground: Option<GroundFix>,
}

/// A track's ground motion on one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundFix {
    /// Smoothed ground position, metres.
    pub position: Point,
    /// Smoothed speed, m/s, whatever the sampling gap (for queues: standing or not).
    pub speed_ms: f64,
    /// Sightings of the ground filter so far (falls when it restarted: another object).
    pub updates: u32,
}

/// A track's side of one line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Side {
    /// Right of the arrow (towards `In`).
    right: bool,
    /// Where the track was when it settled there, pixels.
    at: Point,
}

/// A lane being driven through.
#[derive(Debug, Clone, PartialEq)]
struct Visit {
    lane: usize,
    /// First and last ground fix in the lane: (time, position, filter updates).
    first: Option<(f64, Point, u32)>,
    last: Option<(f64, Point, u32)>,
    last_t: f64,
}

/// What the meter remembers of one track.
#[derive(Debug, Clone, PartialEq, Default)]
struct TrackState {
    /// Confidence summed per class seen.
    votes: Vec<(String, f32)>,
    vehicle: bool,
    /// Per line (layout order): the settled side.
    sides: Vec<Option<Side>>,
    /// Sightings so far.
    seen_lines: u32,
    /// Lines and directions already counted.
    counted: Vec<(usize, Direction)>,
    first_approach: Option<usize>,
    last_approach: Option<usize>,
    visit: Option<Visit>,
    last_t: f64,
}

impl TrackState {
    fn vote(&mut self, class: &str, confidence: f32) {
        match self.votes.iter_mut().find(|(c, _)| c == class) {
            Some((_, sum)) => *sum += confidence,
            None => self.votes.push((class.to_string(), confidence)),
        }
    }

    /// The class seen with the most confidence overall.
    fn class(&self) -> String {
        self.votes
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    }
}

/// The measuring state of one camera.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    tracks: HashMap<u64, TrackState>,
}

impl Meter {
    /// Tracks being measured.
    pub fn tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Measures one frame at stream time `t`: the crossings it completes (and the lane passes
    /// of vehicles that changed lanes), plus each lane's state now (aligned with
    /// `layout.lanes`).
    pub fn observe(
        &mut self,
        layout: &Layout,
        t: f64,
        sightings: &[Sighting<'_>],
    ) -> (Vec<Measure>, Vec<LaneNow>) {
        let mut out = Vec::new();
        for s in sightings {
            self.sight(layout, t, s, true, &mut out);
        }
        (out, lanes_now(layout, sightings))
    }

    /// Starts a track that is not measured yet from an earlier sighting at `t` (its first,
    /// before the tracker confirmed it): the sides of the lines and the approach it was in,
    /// so the next [`Meter::observe`] counts a line crossed in between. Lanes start with the
    /// confirmed sighting (they need its ground motion).
    pub fn seed(&mut self, layout: &Layout, t: f64, s: &Sighting<'_>) {
        if self.tracks.contains_key(&s.track_id) {
            return;
        }
        let mut out = Vec::new();
        self.sight(layout, t, s, false, &mut out);
        debug_assert!(out.is_empty(), "a first sighting completes nothing");
    }

    /// Takes one sighting of a track; `lanes` also follows it through the lanes.
    fn sight(
        &mut self,
        layout: &Layout,
        t: f64,
        s: &Sighting<'_>,
        lanes: bool,
        out: &mut Vec<Measure>,
    ) {
        let state = self.tracks.entry(s.track_id).or_default();
        state.vote(s.class, s.confidence);
        state.vehicle |= s.vehicle;
        state.last_t = t;
        state.sides.resize(layout.lines.len(), None);
        state.seen_lines += 1;
        cross_lines(layout, t, s, state, out);
        if let Some(zone) = approach_at(layout, s.foot) {
            state.first_approach.get_or_insert(zone);
            state.last_approach = Some(zone);
        }
        if lanes && state.vehicle {
            drive(layout, t, s, state, out);
        }
    }

    /// Ends the tracks of `ids` (the scene forgot them): their movements and lane passes.
    pub fn end(&mut self, layout: &Layout, ids: impl IntoIterator<Item = u64>) -> Vec<Measure> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(state) = self.tracks.remove(&id) {
                close(layout, id, state, &mut out);
            }
        }
        out
    }

    /// Ends every track (the stream ended or started over), oldest sighting first.
    pub fn finish(&mut self, layout: &Layout) -> Vec<Measure> {
        let mut ids: Vec<(f64, u64)> = self.tracks.iter().map(|(&id, s)| (s.last_t, id)).collect();
        ids.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.end(layout, ids.into_iter().map(|(_, id)| id))
    }
}

/// The approach zone holding `p`, if any.
fn approach_at(layout: &Layout, p: Point) -> Option<usize> {
    layout
        .zones
        .iter()
        .position(|z| z.kind == ZoneKind::Approach && z.polygon.contains(p))
}

/// Signed distance of `p` from the line through `a` and `b`, pixels: positive on the right of
/// the arrow `a -> b` as seen in the image (y grows downwards).
fn signed_distance(a: Point, b: Point, p: Point) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len = dx.hypot(dy);
    if len == 0.0 {
        return 0.0;
    }
    (dx * (p[1] - a[1]) - dy * (p[0] - a[0])) / len
}

/// Whether the segment `p -> q`, whose ends lie on opposite sides of the line through `a` and
/// `b`, cuts it between its ends (with a little slack).
fn cuts(a: Point, b: Point, p: Point, q: Point) -> bool {
    let (dp, dq) = (signed_distance(a, b, p), signed_distance(a, b, q));
    if dp == dq {
        return false;
    }
    let k = dp / (dp - dq);
    let x = [p[0] + k * (q[0] - p[0]), p[1] + k * (q[1] - p[1])];
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return false;
    }
    let u = ((x[0] - a[0]) * dx + (x[1] - a[1]) * dy) / len2;
    (-LINE_END_SLACK..=1.0 + LINE_END_SLACK).contains(&u)
}

/// Updates the track's side of every line; a settled change of side whose path cuts the line
/// is a crossing, counted once per line and direction.
fn cross_lines(
    layout: &Layout,
    t: f64,
    s: &Sighting<'_>,
    state: &mut TrackState,
    out: &mut Vec<Measure>,
) {
    let margin = (SETTLE_SHARE * s.box_height).max(SETTLE_MIN_PX);
    for (i, line) in layout.lines.iter().enumerate() {
        let d = signed_distance(line.a, line.b, s.foot);
        // A track's first sighting near a line still tells its side: the tracker confirms a
        // new track a frame or two late, and a vehicle first tracked right at the line would
        // otherwise never have a side to cross from.
        let first = state.sides[i].is_none() && state.seen_lines <= 1;
        if d.abs() < margin && !(first && d.abs() >= FIRST_SIDE_MIN_PX) {
            continue;
        }
        let now = Side {
            right: d > 0.0,
            at: s.foot,
        };
        let before = state.sides[i].replace(now);
        let Some(before) = before.filter(|b| b.right != now.right) else {
            continue;
        };
        if !cuts(line.a, line.b, before.at, now.at) {
            continue;
        }
        let direction = if now.right {
            Direction::In
        } else {
            Direction::Out
        };
        if state.counted.contains(&(i, direction)) {
            continue;
        }
        state.counted.push((i, direction));
        out.push(Measure {
            t,
            track_id: s.track_id,
            class: state.class(),
            kind: MeasureKind::Crossing {
                line: Arc::clone(&line.name),
                direction,
            },
        });
    }
}

/// Follows a vehicle through the lanes: a change of lane ends the pass through the last one.
fn drive(
    layout: &Layout,
    t: f64,
    s: &Sighting<'_>,
    state: &mut TrackState,
    out: &mut Vec<Measure>,
) {
    let lane = layout.lane_at(s.foot);
    if state.visit.as_ref().map(|v| v.lane) != lane {
        if let Some(v) = state.visit.take() {
            out.push(pass(layout, s.track_id, state.class(), &v));
        }
        state.visit = lane.map(|lane| Visit {
            lane,
            first: None,
            last: None,
            last_t: t,
        });
    }
    let Some(v) = state.visit.as_mut() else {
        return;
    };
    v.last_t = t;
    if let Some(g) = s.ground {
        let fix = (t, g.position, g.updates);
        // A ground filter that restarted follows another object from here: the pass's
        // two-point speed starts again.
        let restarted = v.last.is_some_and(|(_, _, n)| g.updates <= n);
        if v.first.is_none() || restarted {
            v.first = Some(fix);
        }
        v.last = Some(fix);
    }
}

/// The pass of a visit: its two-point speed over the lane (first to last ground position).
fn pass(layout: &Layout, track_id: u64, class: String, v: &Visit) -> Measure {
    let speed_kmh = match (v.first, v.last) {
        (Some((t0, p0, _)), Some((t1, p1, _))) if t1 - t0 >= MIN_PASS_SECONDS => {
            let kmh = (p1[0] - p0[0]).hypot(p1[1] - p0[1]) / (t1 - t0) * 3.6;
            (kmh <= MAX_PASS_KMH).then_some(kmh)
        }
        _ => None,
    };
    let lane = &layout.lanes[v.lane];
    let over_limit = speed_kmh
        .zip(lane.speed_limit_kmh)
        .map(|(v, limit)| v > limit);
    Measure {
        t: v.last_t,
        track_id,
        class,
        kind: MeasureKind::LanePass {
            lane: Arc::clone(&lane.name),
            speed_kmh,
            over_limit,
        },
    }
}

/// A track's end: its movement (first and last approach differ) and its last lane pass.
fn close(layout: &Layout, id: u64, mut state: TrackState, out: &mut Vec<Measure>) {
    let class = state.class();
    if let Some(v) = state.visit.take() {
        out.push(pass(layout, id, class.clone(), &v));
    }
    if let (Some(from), Some(to)) = (state.first_approach, state.last_approach)
        && from != to
    {
        out.push(Measure {
            t: state.last_t,
            track_id: id,
            class,
            kind: MeasureKind::Movement {
                from: Arc::clone(&layout.zones[from].name),
                to: Arc::clone(&layout.zones[to].name),
            },
        });
    }
}

/// Each lane now: vehicles in it, and the queue standing at its head.
fn lanes_now(layout: &Layout, sightings: &[Sighting<'_>]) -> Vec<LaneNow> {
    layout
        .lanes
        .iter()
        .enumerate()
        .map(|(i, lane)| {
            let inside: Vec<&Sighting<'_>> = sightings
                .iter()
                .filter(|s| s.vehicle && layout.lane_at(s.foot) == Some(i))
                .collect();
            let queue_length_m = lane
                .direction_ground
                .filter(|_| layout.calibrated())
                .map(|dir| queue_length(dir, &inside));
            LaneNow {
                name: Arc::clone(&lane.name),
                vehicles: inside.len() as u32,
                queue_length_m,
            }
        })
        .collect()
}

/// The queue at the head of a lane going `dir` (ground unit vector): from the standing vehicle
/// furthest along the lane back through each standing vehicle within [`QUEUE_GAP_M`] of the one
/// ahead, plus one vehicle length; zero when none stands.
fn queue_length(dir: Point, inside: &[&Sighting<'_>]) -> f64 {
    let mut along: Vec<f64> = inside
        .iter()
        .filter_map(|s| {
            let g = s.ground?;
            (g.speed_ms * 3.6 < QUEUE_SPEED_KMH).then_some(g.position)
        })
        .map(|p| p[0] * dir[0] + p[1] * dir[1])
        .collect();
    along.sort_by(|a, b| b.total_cmp(a));
    let Some(&head) = along.first() else {
        return 0.0;
    };
    let mut tail = head;
    for &s in &along[1..] {
        if tail - s > QUEUE_GAP_M {
            break;
        }
        tail = s;
    }
    head - tail + VEHICLE_LENGTH_M
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::layout::{CalibrationSpec, LaneSpec, LineSpec, SceneSpec, ZoneSpec};

    fn layout(spec: &SceneSpec) -> Layout {
        spec.compile(5.0).expect("valid scene")
    }

    /// A horizontal line across x 100..500 at y 300, its arrow pointing right: "in" is
    /// downwards in the image.
    fn one_line() -> Layout {
        layout(&SceneSpec {
            lines: vec![LineSpec {
                name: "stop".into(),
                points: [[100.0, 300.0], [500.0, 300.0]],
            }],
            ..SceneSpec::default()
        })
    }

    fn car(id: u64, x: f64, y: f64) -> Sighting<'static> {
        Sighting {
            track_id: id,
            class: "car",
            confidence: 0.8,
            vehicle: true,
            foot: [x, y],
            box_height: 50.0,
            ground: None,
        }
    }

    fn crossings(ms: &[Measure]) -> Vec<(String, Direction)> {
        ms.iter()
            .filter_map(|m| match &m.kind {
                MeasureKind::Crossing { line, direction } => Some((line.to_string(), *direction)),
                _ => None,
            })
            .collect()
    }

    fn run(layout: &Layout, path: &[(f64, f64)]) -> Vec<(String, Direction)> {
        let mut meter = Meter::default();
        let mut all = Vec::new();
        for (k, &(x, y)) in path.iter().enumerate() {
            all.extend(meter.observe(layout, k as f64, &[car(1, x, y)]).0);
        }
        crossings(&all)
    }

    #[test]
    fn a_crossing_between_two_sparse_samples_counts_once_in_its_direction() {
        let l = one_line();
        assert_eq!(
            run(&l, &[(300.0, 200.0), (300.0, 420.0)]),
            vec![("stop".to_string(), Direction::In)]
        );
        assert_eq!(
            run(&l, &[(300.0, 420.0), (300.0, 200.0)]),
            vec![("stop".to_string(), Direction::Out)]
        );
    }

    #[test]
    fn a_box_jittering_on_the_line_counts_once() {
        // Margin: 8% of 50 px = 4 px. It settles above, then wobbles within 3 px of the line
        // for a while, then goes on below: one "in", no "out".
        let l = one_line();
        let mut path = vec![(300.0, 250.0)];
        for k in 0..10 {
            path.push((300.0, if k % 2 == 0 { 302.5 } else { 297.5 }));
        }
        path.push((300.0, 350.0));
        assert_eq!(run(&l, &path), vec![("stop".to_string(), Direction::In)]);
    }

    #[test]
    fn a_track_first_seen_at_the_line_has_the_side_it_is_on() {
        // Confirmed by the tracker 1 px above the line (within the 4 px margin), then seen
        // well below it: one "in". Later sightings that close do not settle a side.
        let l = one_line();
        assert_eq!(
            run(&l, &[(300.0, 299.0), (300.0, 330.0)]),
            vec![("stop".to_string(), Direction::In)]
        );
        assert!(run(&l, &[(300.0, 250.0), (300.0, 299.0), (300.0, 250.0)]).is_empty());
    }

    #[test]
    fn back_and_forth_counts_each_direction_at_most_once() {
        let l = one_line();
        let path = [
            (300.0, 250.0),
            (300.0, 350.0),
            (300.0, 250.0),
            (300.0, 350.0),
        ];
        assert_eq!(
            run(&l, &path),
            vec![
                ("stop".to_string(), Direction::In),
                ("stop".to_string(), Direction::Out)
            ]
        );
    }

    #[test]
    fn passing_beside_the_line_end_or_appearing_beyond_it_counts_nothing() {
        let l = one_line();
        assert!(run(&l, &[(600.0, 200.0), (600.0, 400.0)]).is_empty());
        assert!(run(&l, &[(300.0, 400.0), (300.0, 500.0)]).is_empty());
    }

    #[test]
    fn a_track_counts_with_the_class_it_was_seen_as_most() {
        let l = one_line();
        let mut meter = Meter::default();
        let mut truck = car(7, 300.0, 200.0);
        truck.class = "truck";
        meter.observe(&l, 0.0, &[car(7, 300.0, 150.0)]);
        meter.observe(&l, 1.0, &[truck.clone()]);
        truck.foot = [300.0, 250.0];
        meter.observe(&l, 2.0, &[truck.clone()]);
        truck.foot = [300.0, 400.0];
        let (ms, _) = meter.observe(&l, 3.0, &[truck]);
        assert_eq!(ms[0].class, "truck");
        assert_eq!(ms[0].t, 3.0);
    }

    fn junction() -> Layout {
        let square = |x: f64, y: f64| {
            vec![
                [x, y],
                [x + 100.0, y],
                [x + 100.0, y + 100.0],
                [x, y + 100.0],
            ]
        };
        layout(&SceneSpec {
            zones: vec![
                ZoneSpec {
                    name: "north".into(),
                    kind: ZoneKind::Approach,
                    polygon: square(300.0, 0.0),
                },
                ZoneSpec {
                    name: "east".into(),
                    kind: ZoneKind::Approach,
                    polygon: square(600.0, 300.0),
                },
            ],
            ..SceneSpec::default()
        })
    }

    #[test]
    fn a_movement_is_first_to_last_approach_when_the_track_ends() {
        let l = junction();
        let mut meter = Meter::default();
        for (k, p) in [
            [350.0, 50.0],
            [350.0, 200.0],
            [500.0, 350.0],
            [650.0, 350.0],
        ]
        .iter()
        .enumerate()
        {
            let (ms, _) = meter.observe(&l, k as f64, &[car(3, p[0], p[1])]);
            assert!(ms.is_empty());
        }
        let ms = meter.end(&l, [3]);
        assert_eq!(
            ms,
            vec![Measure {
                t: 3.0,
                track_id: 3,
                class: "car".into(),
                kind: MeasureKind::Movement {
                    from: "north".into(),
                    to: "east".into()
                }
            }]
        );
        assert_eq!(meter.tracks(), 0);
        // A track seen in one approach only makes no movement.
        meter.observe(&l, 5.0, &[car(4, 350.0, 50.0)]);
        assert!(meter.finish(&l).is_empty());
    }

    /// 10 px = 1 m: a lane 200 px wide along the image's y axis, driving down, limit 50 km/h.
    fn calibrated_lane() -> Layout {
        layout(&SceneSpec {
            calibration: Some(CalibrationSpec {
                image: vec![[0.0, 0.0], [1000.0, 0.0], [1000.0, 1000.0], [0.0, 1000.0]],
                ground: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]],
            }),
            lanes: vec![LaneSpec {
                name: "sb".into(),
                polygon: vec![[400.0, 0.0], [600.0, 0.0], [600.0, 1000.0], [400.0, 1000.0]],
                direction: Some([[500.0, 0.0], [500.0, 1000.0]]),
                speed_limit_kmh: Some(50.0),
            }],
            ..SceneSpec::default()
        })
    }

    fn fix(x: f64, y: f64, kmh: f64, updates: u32) -> Option<GroundFix> {
        Some(GroundFix {
            position: [x / 10.0, y / 10.0],
            speed_ms: kmh / 3.6,
            updates,
        })
    }

    #[test]
    fn a_lane_pass_has_a_two_point_speed_and_its_limit() {
        let l = calibrated_lane();
        let mut meter = Meter::default();
        // 60 km/h = 16.67 m/s: 33.3 m (333 px) every 2 s.
        for k in 0..3 {
            let y = 100.0 + 333.33 * k as f64;
            let mut s = car(9, 500.0, y);
            s.ground = fix(500.0, y, 60.0, k + 1);
            meter.observe(&l, 2.0 * k as f64, &[s]);
        }
        let ms = meter.finish(&l);
        let MeasureKind::LanePass {
            speed_kmh,
            over_limit,
            ..
        } = &ms[0].kind
        else {
            panic!("{ms:?}")
        };
        assert!(
            (speed_kmh.expect("speed") - 60.0).abs() < 0.1,
            "{speed_kmh:?}"
        );
        assert_eq!(*over_limit, Some(true));
        assert_eq!(ms[0].t, 4.0);
    }

    #[test]
    fn a_restarted_ground_filter_restarts_the_pass_speed() {
        let l = calibrated_lane();
        let mut meter = Meter::default();
        let mut s = car(9, 500.0, 100.0);
        s.ground = fix(500.0, 100.0, 0.0, 5);
        meter.observe(&l, 0.0, &[s.clone()]);
        // Another object under the same track id: a far jump, the filter restarted.
        s.foot = [500.0, 900.0];
        s.ground = fix(500.0, 900.0, 0.0, 1);
        meter.observe(&l, 1.0, &[s.clone()]);
        s.ground = fix(500.0, 920.0, 0.0, 2);
        meter.observe(&l, 2.5, &[s]);
        let ms = meter.finish(&l);
        let MeasureKind::LanePass { speed_kmh, .. } = &ms[0].kind else {
            panic!("{ms:?}")
        };
        // 2 m in 1.5 s, not 82 m in 2.5 s.
        assert!(
            (speed_kmh.expect("speed") - 4.8).abs() < 0.1,
            "{speed_kmh:?}"
        );
    }

    #[test]
    fn the_queue_runs_back_from_the_head_through_close_standing_vehicles() {
        let l = calibrated_lane();
        // Heading down (+y): the head is the lowest in the image. Standing at y 900, 820,
        // 740 px (8 m apart), then one 20 m further back (not in the queue), and one moving.
        let mut cars = Vec::new();
        for (id, y, kmh) in [
            (1, 900.0, 0.0),
            (2, 820.0, 2.0),
            (3, 740.0, 1.0),
            (4, 540.0, 0.0),
            (5, 950.0, 40.0),
        ] {
            let mut s = car(id, 500.0, y);
            s.ground = fix(500.0, y, kmh, 5);
            cars.push(s);
        }
        let (_, lanes) = Meter::default().observe(&l, 0.0, &cars);
        assert_eq!(lanes[0].vehicles, 5);
        let q = lanes[0].queue_length_m.expect("calibrated lane");
        assert!((q - 21.0).abs() < 1e-9, "{q}");
        let (_, lanes) = Meter::default().observe(&l, 0.0, &cars[4..]);
        assert_eq!(lanes[0].queue_length_m, Some(0.0));
    }

    #[test]
    fn a_lane_change_ends_the_pass_through_the_first_lane() {
        let mut spec = calibrated_lane().spec;
        spec.lanes.push(LaneSpec {
            name: "sb-2".into(),
            polygon: vec![[600.0, 0.0], [800.0, 0.0], [800.0, 1000.0], [600.0, 1000.0]],
            direction: None,
            speed_limit_kmh: None,
        });
        let l = layout(&spec);
        let mut meter = Meter::default();
        meter.observe(&l, 0.0, &[car(2, 500.0, 100.0)]);
        let (ms, _) = meter.observe(&l, 1.0, &[car(2, 700.0, 300.0)]);
        assert_eq!(ms.len(), 1);
        assert!(
            matches!(&ms[0].kind, MeasureKind::LanePass { lane, speed_kmh: None, .. } if &**lane == "sb")
        );
        let ms = meter.finish(&l);
        assert!(matches!(&ms[0].kind, MeasureKind::LanePass { lane, .. } if &**lane == "sb-2"));
    }
}
