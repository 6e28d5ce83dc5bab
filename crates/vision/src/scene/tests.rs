//! Tests of the rules on synthetic tracks over a calibrated road (each rule fires, and its
//! near-misses do not), of what runs without a calibration or at a sparse cadence, and of the
//! whole scene over synthetic frames.
//!
//! The road: a top-down view at 10 px per metre, so ground `[X, Y]` m is pixel
//! `[10 X, 10 Y]`. Lane `eb` (eastbound, +X) is Y 10-13.5 m, lane `wb` (westbound) Y 13.5-17 m;
//! a crosswalk spans both at X 100-104 m; a no-stopping kerb is X 40-60 m, Y 7-10 m.

use std::sync::Arc;

use super::history::TrackHistory;
use super::kinematics::GroundTrack;
use super::layout::{CalibrationSpec, LaneSpec, Layout, LineSpec, SceneSpec, ZoneKind, ZoneSpec};
use super::measure::{Direction, MeasureKind};
use super::rules::{self, CrosswalkVisit, RuleHit, RuleKind, RulesConfig, Subject};
use super::*;
use crate::tracker::byte_track::ByteTrackConfig;

const CFG: RulesConfig = RulesConfig {
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
};

/// Pixels per metre of the test road.
const PX: f64 = 10.0;

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Vec<Point> {
    vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
}

fn road_spec() -> SceneSpec {
    SceneSpec {
        calibration: Some(CalibrationSpec {
            image: vec![
                [0.0, 0.0],
                [2000.0, 0.0],
                [2000.0, 1000.0],
                [0.0, 1000.0],
                [700.0, 300.0],
            ],
            ground: vec![
                [0.0, 0.0],
                [200.0, 0.0],
                [200.0, 100.0],
                [0.0, 100.0],
                [70.0, 30.0],
            ],
        }),
        detect_interval: Some(0.3),
        lanes: vec![
            LaneSpec {
                name: "eb".into(),
                polygon: rect(0.0, 100.0, 2000.0, 135.0),
                direction: Some([[100.0, 117.0], [300.0, 117.0]]),
                speed_limit_kmh: Some(50.0),
            },
            LaneSpec {
                name: "wb".into(),
                polygon: rect(0.0, 135.0, 2000.0, 170.0),
                direction: Some([[300.0, 152.0], [100.0, 152.0]]),
                speed_limit_kmh: Some(50.0),
            },
        ],
        zones: vec![
            ZoneSpec {
                name: "crossing".into(),
                kind: ZoneKind::Crosswalk,
                polygon: rect(1000.0, 90.0, 1040.0, 180.0),
            },
            ZoneSpec {
                name: "kerb".into(),
                kind: ZoneKind::NoStopping,
                polygon: rect(400.0, 70.0, 600.0, 100.0),
            },
        ],
        lines: Vec::new(),
    }
}

fn road() -> Layout {
    road_spec().compile(1.0).unwrap()
}

/// A box `w` x `h` whose top-left corner is at `(x, y)`.
fn b(x: f32, y: f32, w: f32, h: f32) -> BBox {
    BBox::new(x, y, x + w, y + h)
}

/// The box of `class` whose foot point is at ground `g`.
fn box_at(class: &str, g: Point) -> BBox {
    let (x, y) = ((g[0] * PX) as f32, (g[1] * PX) as f32);
    let (w, h) = if class == "person" {
        (5.0, 17.0)
    } else {
        (18.0, 15.0)
    };
    BBox::new(x - w / 2.0, y - h, x + w / 2.0, y)
}

/// A track of `class` seen at each `(t, ground position)` on `layout`.
fn on_road(layout: &Layout, id: u64, class: &str, samples: &[(f64, Point)]) -> TrackHistory {
    let cal = layout.calibration.as_ref().unwrap();
    let model = if class == "person" {
        kinematics::MotionModel::PERSON
    } else {
        kinematics::MotionModel::VEHICLE
    };
    let (t0, g0) = samples[0];
    let mut h = TrackHistory::new(id, class, 0.9, t0, box_at(class, g0));
    h.ground = GroundTrack::start(cal, model, t0, &box_at(class, g0));
    for &(t, g) in &samples[1..] {
        let bbox = box_at(class, g);
        h.push(t, bbox, class, 0.9, CFG.stationary_speed);
        assert!(h.ground.as_mut().unwrap().update(cal, t, &bbox));
    }
    h.lane = layout.lane_at(kinematics::foot(&h.last().bbox));
    h
}

/// A vehicle driving from `x0` along row `y` (m) at `kmh` (negative: westwards), seen every
/// 0.3 s for 1.5 s.
fn driving(layout: &Layout, id: u64, x0: f64, y: f64, kmh: f64) -> TrackHistory {
    let v = kmh / 3.6;
    let samples: Vec<(f64, Point)> = (0..6)
        .map(|k| {
            let t = 0.3 * f64::from(k);
            (t, [x0 + v * t, y])
        })
        .collect();
    on_road(layout, id, "car", &samples)
}

/// A person standing at `g`, seen every 0.3 s for 1.5 s.
fn standing_person(layout: &Layout, id: u64, g: Point) -> TrackHistory {
    let samples: Vec<(f64, Point)> = (0..6).map(|k| (0.3 * f64::from(k), g)).collect();
    on_road(layout, id, "person", &samples)
}

fn subjects(tracks: &[TrackHistory]) -> Vec<Subject<'_>> {
    tracks
        .iter()
        .map(|t| Subject {
            track: t,
            bbox: t.last().bbox,
            vehicle: is_vehicle(&t.class),
            person: t.class == "person",
        })
        .collect()
}

/// Every rule over `tracks` on `layout` at stream time `t` (cadence 0.3 s).
fn judge(
    layout: &Layout,
    tracks: &[TrackHistory],
    t: f64,
    visits: &[CrosswalkVisit],
) -> Vec<RuleHit> {
    let (runnable, _) = rules::runnable(0.3, layout.calibrated());
    let subjects = subjects(tracks);
    rules::evaluate(&rules::Frame {
        cfg: &CFG,
        layout,
        runnable: &runnable,
        t,
        subjects: &subjects,
        crosswalk_visits: visits,
    })
    .0
}

fn of(hits: &[RuleHit], kind: RuleKind) -> Vec<&RuleHit> {
    hits.iter().filter(|h| h.kind == kind).collect()
}

#[test]
fn tailgating_is_time_headway_in_one_lane_above_the_speed_floor() {
    let l = road();
    // 50 km/h, 10 m apart: 0.72 s, medium; 5 m: 0.36 s, high; 20 m: 1.44 s, fine.
    for (gap, level) in [
        (10.0, Some(RiskLevel::Medium)),
        (5.0, Some(RiskLevel::High)),
        (20.0, None),
    ] {
        let tracks = [
            driving(&l, 1, 20.0, 11.7, 50.0),
            driving(&l, 2, 20.0 + gap, 11.7, 50.0),
        ];
        let hits = judge(&l, &tracks, 1.5, &[]);
        let hits = of(&hits, RuleKind::Tailgating);
        assert_eq!(
            hits.first().map(|h| h.level),
            level,
            "gap {gap} m: {hits:?}"
        );
        if let Some(h) = hits.first() {
            assert_eq!(h.track_ids, vec![1, 2]);
            let headway = h.measures.iter().find(|m| m.0 == "headway_s").unwrap().1;
            assert!((headway - gap / (50.0 / 3.6)).abs() < 0.1, "{headway}");
        }
    }
    // A queue creeping at 10 km/h, 5 m apart; the next lane; oncoming traffic.
    let queue = [
        driving(&l, 1, 20.0, 11.7, 10.0),
        driving(&l, 2, 25.0, 11.7, 10.0),
    ];
    let lanes = [
        driving(&l, 1, 20.0, 11.7, 50.0),
        driving(&l, 2, 25.0, 15.2, 50.0),
    ];
    let oncoming = [
        driving(&l, 1, 20.0, 11.7, 50.0),
        driving(&l, 2, 60.0, 11.9, -50.0),
    ];
    for tracks in [queue, lanes, oncoming] {
        assert!(of(&judge(&l, &tracks, 1.5, &[]), RuleKind::Tailgating).is_empty());
    }
}

#[test]
fn pedestrian_conflict_is_time_to_collision_with_people_in_a_path() {
    let l = road();
    // A car at 40 km/h (11.1 m/s) in lane eb, at X = 36.7 m at t = 1.5.
    let car = || driving(&l, 1, 20.0, 11.7, 40.0);
    let level = |person: Point| {
        let tracks = [car(), standing_person(&l, 9, person)];
        of(&judge(&l, &tracks, 1.5, &[]), RuleKind::PedestrianConflict)
            .first()
            .map(|h| (h.level, h.track_ids.clone()))
    };
    // 12 m ahead: about 0.9 s to within 2 m: high; 30 m: about 2.5 s: medium; 45 m: beyond.
    assert_eq!(level([49.0, 11.7]), Some((RiskLevel::High, vec![1, 9])));
    assert_eq!(level([67.0, 12.5]), Some((RiskLevel::Medium, vec![1, 9])));
    assert_eq!(level([82.0, 11.7]), None);
    // Behind the car; in the other lane beside its path; on the pavement (in no path).
    assert_eq!(level([25.0, 11.7]), None);
    assert_eq!(level([49.0, 16.5]), None);
    assert_eq!(level([45.0, 8.0]), None);
    // A parked car next to a person in the lane.
    let tracks = [
        driving(&l, 1, 45.0, 11.7, 0.0),
        standing_person(&l, 9, [47.0, 11.7]),
    ];
    assert!(of(&judge(&l, &tracks, 1.5, &[]), RuleKind::PedestrianConflict).is_empty());
}

#[test]
fn entering_a_crosswalk_right_after_a_pedestrian_is_post_encroachment() {
    let l = road();
    // A car at 30 km/h in the crosswalk (X 100-104) at t = 1.5, lane eb.
    let tracks = [driving(&l, 1, 89.0, 11.7, 30.0)];
    assert!(
        l.zones[0]
            .polygon
            .contains(kinematics::foot(&tracks[0].last().bbox))
    );
    let visit = |t: f64, lane: usize| CrosswalkVisit {
        zone: 0,
        lane: Some(lane),
        ground: Some([102.0, 11.7]),
        t,
        track_id: 9,
    };
    let pet = |visits: &[CrosswalkVisit]| {
        of(
            &judge(&l, &tracks, 1.5, visits),
            RuleKind::PedestrianConflict,
        )
        .first()
        .map(|h| h.level)
    };
    assert_eq!(pet(&[visit(0.9, 0)]), Some(RiskLevel::High), "0.6 s after");
    assert_eq!(
        pet(&[visit(0.0, 0)]),
        Some(RiskLevel::Medium),
        "1.5 s after"
    );
    assert_eq!(
        pet(&[visit(0.9, 1)]),
        None,
        "the pedestrian was in the other lane"
    );
    // Slow enough to be yielding.
    let slow = [driving(&l, 1, 97.0, 11.7, 12.0)];
    let hits = judge(&l, &slow, 1.5, &[visit(0.9, 0)]);
    assert!(of(&hits, RuleKind::PedestrianConflict).is_empty());
}

#[test]
fn wrong_way_is_against_the_lane_direction() {
    let l = road();
    let hits = judge(&l, &[driving(&l, 1, 80.0, 11.7, -30.0)], 1.5, &[]);
    let hits = of(&hits, RuleKind::WrongWay);
    assert_eq!((hits.len(), hits[0].level), (1, RiskLevel::High));
    assert!(
        hits[0].description.contains("lane eb"),
        "{}",
        hits[0].description
    );
    for tracks in [
        [driving(&l, 1, 80.0, 15.2, -30.0)], // westbound in wb
        [driving(&l, 1, 20.0, 11.7, 30.0)],  // eastbound in eb
        [driving(&l, 1, 80.0, 11.7, -5.0)],  // reversing slowly
    ] {
        assert!(of(&judge(&l, &tracks, 1.5, &[]), RuleKind::WrongWay).is_empty());
    }
}

/// A car at `kmh` braking at `decel` m/s^2 from t = 1.2, seen every 0.3 s until `until`.
fn braking(l: &Layout, kmh: f64, decel: f64, until: f64) -> TrackHistory {
    let v0 = kmh / 3.6;
    let pos = |t: f64| {
        let tb = (t - 1.2).clamp(0.0, v0 / decel);
        20.0 + v0 * t.min(1.2) + v0 * tb - 0.5 * decel * tb * tb
    };
    let n = (until / 0.3).round() as u32;
    let samples: Vec<(f64, Point)> = (0..=n)
        .map(|k| {
            let t = 0.3 * f64::from(k);
            (t, [pos(t), 11.7])
        })
        .collect();
    on_road(l, 1, "car", &samples)
}

#[test]
fn hard_braking_is_sustained_deceleration_from_speed() {
    let l = road();
    let hits = judge(&l, &[braking(&l, 60.0, 6.0, 2.7)], 2.7, &[]);
    let hits = of(&hits, RuleKind::SuddenStop);
    assert_eq!(
        (hits.len(), hits[0].level),
        (1, RiskLevel::Medium),
        "{hits:?}"
    );
    let decel = hits[0]
        .measures
        .iter()
        .find(|m| m.0 == "deceleration_ms2")
        .unwrap()
        .1;
    assert!((3.5..8.0).contains(&decel), "{decel}");
    // Rolling into a queue at 1.5 m/s^2; braking hard but from 20 km/h; cruising.
    for track in [
        braking(&l, 40.0, 1.5, 4.5),
        braking(&l, 20.0, 6.0, 2.7),
        braking(&l, 60.0, 0.01, 2.7),
    ] {
        assert!(of(&judge(&l, &[track], 2.7, &[]), RuleKind::SuddenStop).is_empty());
    }
}

/// A car that drove in and has stood at ground `g` since t = 2, seen every 2 s until t = 80.
fn stopped_at(l: &Layout, id: u64, g: Point, moved: bool) -> TrackHistory {
    let start = if moved { [g[0] - 30.0, g[1]] } else { g };
    let mut samples = vec![(0.0, start)];
    samples.extend((1..=40).map(|i| (f64::from(i) * 2.0, g)));
    on_road(l, id, "car", &samples)
}

#[test]
fn illegal_stop_is_a_long_stop_in_a_no_stopping_zone_outside_a_queue() {
    let l = road();
    let hits = judge(&l, &[stopped_at(&l, 1, [50.0, 9.0], true)], 80.0, &[]);
    let hits = of(&hits, RuleKind::IllegalStop);
    assert_eq!((hits.len(), hits[0].level), (1, RiskLevel::Low), "{hits:?}");
    // The same stop in a lane (waiting at a light), a parked car never seen moving, a car
    // queued behind another in the zone, and one not stopped long enough.
    let queued = [
        stopped_at(&l, 1, [50.0, 9.0], true),
        stopped_at(&l, 2, [56.0, 9.0], false),
    ];
    for (tracks, t) in [
        (vec![stopped_at(&l, 1, [50.0, 11.7], true)], 80.0),
        (vec![stopped_at(&l, 1, [50.0, 9.0], false)], 80.0),
        (queued.to_vec(), 80.0),
        (vec![stopped_at(&l, 1, [50.0, 9.0], true)], 50.0),
    ] {
        assert!(of(&judge(&l, &tracks, t, &[]), RuleKind::IllegalStop).is_empty());
    }
}

#[test]
fn rules_off_at_a_sparse_cadence_and_without_calibration() {
    let (on, off) = rules::runnable(1.8, true);
    for kind in [
        RuleKind::Tailgating,
        RuleKind::PedestrianConflict,
        RuleKind::SuddenStop,
    ] {
        assert!(!on.contains(&kind), "{kind:?}");
    }
    assert!(on.contains(&RuleKind::WrongWay) && on.contains(&RuleKind::IllegalStop));
    assert_eq!(off.len(), 3, "{off:?}");
    assert!(off[0].contains("1.8"), "{off:?}");
    let (on, off) = rules::runnable(0.3, false);
    assert!(!on.contains(&RuleKind::Tailgating) && !on.contains(&RuleKind::SuddenStop));
    assert!(off.iter().all(|r| r.contains("calibrated")), "{off:?}");
}

/// A car (100 x 50) moving from `x0` at `vx` px/s along row `y`, seen at t = 0 and 1.
fn car_px(id: u64, x0: f32, y: f32, vx: f32) -> TrackHistory {
    let mut h = TrackHistory::new(id, "car", 0.9, 0.0, b(x0, y, 100.0, 50.0));
    h.push(
        1.0,
        b(x0 + vx, y, 100.0, 50.0),
        "car",
        0.9,
        CFG.stationary_speed,
    );
    h
}

#[test]
fn uncalibrated_pedestrian_conflicts_stay_medium() {
    let l = Layout::default();
    let person = TrackHistory::new(9, "person", 0.9, 1.0, b(450.0, 270.0, 30.0, 80.0));
    let tracks = [car_px(1, 0.0, 300.0, 200.0), person];
    let hits = judge(&l, &tracks, 1.0, &[]);
    let hits = of(&hits, RuleKind::PedestrianConflict);
    assert_eq!(
        (hits.len(), hits[0].level),
        (1, RiskLevel::Medium),
        "{hits:?}"
    );
    // Behind the car, and a rider on a motorcycle.
    let behind = TrackHistory::new(9, "person", 0.9, 1.0, b(-100.0, 270.0, 30.0, 80.0));
    assert!(judge(&l, &[car_px(1, 0.0, 300.0, 200.0), behind], 1.0, &[]).is_empty());
    let mut moto = TrackHistory::new(3, "motorcycle", 0.9, 0.0, b(400.0, 300.0, 60.0, 50.0));
    moto.push(1.0, b(400.0, 300.0, 60.0, 50.0), "motorcycle", 0.9, 0.3);
    let rider = TrackHistory::new(4, "person", 0.9, 1.0, b(410.0, 270.0, 40.0, 70.0));
    let tracks = [car_px(1, 0.0, 300.0, 200.0), moto, rider];
    assert!(of(&judge(&l, &tracks, 1.0, &[]), RuleKind::PedestrianConflict).is_empty());
    // A driver seen through the windscreen of a car ahead.
    let driver = || TrackHistory::new(6, "person", 0.9, 1.0, b(450.0, 305.0, 25.0, 40.0));
    let tracks = [car_px(1, 0.0, 300.0, 200.0), driver()];
    assert!(
        !judge(&l, &tracks, 1.0, &[]).is_empty(),
        "alone, it would be a pedestrian"
    );
    let tracks = [
        car_px(1, 0.0, 300.0, 200.0),
        car_px(5, 420.0, 300.0, 0.0),
        driver(),
    ];
    assert!(of(&judge(&l, &tracks, 1.0, &[]), RuleKind::PedestrianConflict).is_empty());
}

#[test]
fn congestion_levels_follow_the_share_of_standing_traffic() {
    let l = Layout::default();
    // Every car drove in at 200 px/s (4 heights/s); the first `slow` ones now move at `v`.
    let fleet = |slow: usize, total: usize, v: f32| -> Vec<TrackHistory> {
        (0..total)
            .map(|i| {
                let x = 150.0 * i as f32;
                let last = if i < slow { x + 200.0 + v } else { x + 400.0 };
                let mut h = TrackHistory::new(i as u64, "car", 0.9, 0.0, b(x, 300.0, 100.0, 50.0));
                h.push(1.0, b(x + 200.0, 300.0, 100.0, 50.0), "car", 0.9, 0.3);
                h.push(2.0, b(last, 300.0, 100.0, 50.0), "car", 0.9, 0.3);
                h
            })
            .collect()
    };
    let level = |tracks: &[TrackHistory]| {
        let (runnable, _) = rules::runnable(0.3, false);
        let subjects = subjects(tracks);
        rules::congestion(&rules::Frame {
            cfg: &CFG,
            layout: &l,
            runnable: &runnable,
            t: 2.0,
            subjects: &subjects,
            crosswalk_visits: &[],
        })
        .0
    };
    assert_eq!(level(&fleet(8, 10, 5.0)), RiskLevel::High);
    assert_eq!(level(&fleet(6, 10, 5.0)), RiskLevel::Medium);
    assert_eq!(level(&fleet(4, 10, 5.0)), RiskLevel::Low);
    assert_eq!(level(&fleet(3, 10, 5.0)), RiskLevel::None);
    assert_eq!(
        level(&fleet(5, 5, 5.0)),
        RiskLevel::None,
        "too few vehicles to judge"
    );
    // Crawling at 0.6 heights/s (driving towards the camera looks like this) is not a jam.
    assert_eq!(level(&fleet(10, 10, 30.0)), RiskLevel::None);
    // Parked cars (never seen moving) are not traffic.
    let parked: Vec<TrackHistory> = (0..10)
        .map(|i| car_px(i, 150.0 * i as f32, 300.0, 2.0))
        .collect();
    assert_eq!(level(&parked), RiskLevel::None);
    let hits = judge(&l, &fleet(8, 10, 5.0), 2.0, &[]);
    let congestion = of(&hits, RuleKind::Congestion);
    assert_eq!((congestion.len(), congestion[0].track_ids.len()), (1, 8));
}

#[test]
fn without_a_calibration_nothing_is_high() {
    // A lane with a direction and no calibration: a car against it is medium.
    let spec = SceneSpec {
        calibration: None,
        ..road_spec()
    };
    let l = spec.compile(1.0).unwrap();
    let mut car = car_px(1, 800.0, 70.0, -200.0);
    car.lane = Some(0);
    let hits = judge(&l, &[car], 1.0, &[]);
    let hits = of(&hits, RuleKind::WrongWay);
    assert_eq!(
        (hits.len(), hits[0].level),
        (1, RiskLevel::Medium),
        "{hits:?}"
    );
}

fn det(label: &str, class_id: usize, bbox: BBox) -> Detection {
    Detection {
        label: label.into(),
        class_id,
        confidence: 0.9,
        bbox,
    }
}

fn scene() -> Scene {
    Scene::new(SceneConfig {
        tracker: ByteTrackConfig {
            motion_steps: 18.0,
            max_jump: 3.0,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The test road at 40 px per metre (cars big enough for the tracker at 0.3 s).
fn big_road() -> Arc<Layout> {
    let mut spec = road_spec();
    let scale = |p: &mut Point| {
        p[0] *= 4.0;
        p[1] *= 4.0;
    };
    spec.calibration
        .as_mut()
        .unwrap()
        .image
        .iter_mut()
        .for_each(scale);
    for lane in &mut spec.lanes {
        lane.polygon.iter_mut().for_each(scale);
        lane.direction.as_mut().unwrap().iter_mut().for_each(scale);
    }
    for zone in &mut spec.zones {
        zone.polygon.iter_mut().for_each(scale);
    }
    Arc::new(spec.compile(1.0).unwrap())
}

/// A car 4.5 m long and 1.8 m deep seen from above at 40 px per metre, foot point at `g`.
fn big_car(g: Point) -> Detection {
    let (x, y) = ((g[0] * 40.0) as f32, (g[1] * 40.0) as f32);
    det("car", 2, BBox::new(x - 90.0, y - 72.0, x + 90.0, y))
}

#[test]
fn the_scene_tracks_groups_and_alerts_a_tailgater() {
    let mut s = Scene::with_layout(scene().cfg, big_road());
    assert!(
        s.runnable().contains(&RuleKind::Tailgating),
        "0.3 s and calibrated"
    );
    let v = 35.0 / 3.6;
    let mut frames = Vec::new();
    for k in 0..10 {
        // Two cars 8 m apart at 35 km/h in lane eb (0.82 s headway), sampled every 0.3 s,
        // and a person standing on the kerb.
        let t = 0.3 * f64::from(k);
        let x = 5.0 + v * t;
        let dets = [
            big_car([x, 11.7]),
            big_car([x + 8.0, 11.7]),
            det("person", 0, BBox::new(2800.0, 900.0, 2820.0, 968.0)),
        ];
        frames.push(s.update(t, 3000, 1000, &dets));
    }
    let first = &frames[0];
    assert_eq!(first.track_ids, vec![Some(1), Some(2), Some(3)]);
    for f in &frames {
        assert_eq!(f.track_ids, first.track_ids, "identities hold");
        assert_eq!(
            f.groups.len(),
            1,
            "the two cars form a group; the person is alone"
        );
        assert_eq!(
            (f.groups[0].id, f.groups[0].track_ids.clone()),
            (1, vec![1, 2])
        );
    }
    // Places: lane, zone, ground, and from the third sighting a speed.
    assert_eq!(first.places[0].lane.as_deref(), Some("eb"));
    assert_eq!(first.places[0].speed_kmh, None);
    assert_eq!(first.places[2].lane, None);
    let last = frames.last().unwrap();
    let kmh = last.places[0].speed_kmh.unwrap();
    assert!((kmh - 35.0).abs() < 3.0, "{kmh}");
    let g = last.places[1].ground.unwrap();
    assert!(
        (g[0] - (13.0 + v * 2.7)).abs() < 0.5 && (g[1] - 11.7).abs() < 0.2,
        "{g:?}"
    );
    // Speeds are known at the third frame (t = 0.6); the rule must hold for a second before
    // it is an alert (t = 1.8, the seventh frame).
    let fired = |f: &SceneFrame| f.alerts.iter().any(|a| a.hit.kind == RuleKind::Tailgating);
    assert!(!fired(&frames[5]), "not yet a second");
    let a = frames[6]
        .alerts
        .iter()
        .find(|a| a.hit.kind == RuleKind::Tailgating)
        .unwrap();
    assert_eq!(
        (a.group, a.stale, a.hit.level),
        (Some((1, 1)), false, RiskLevel::Medium)
    );
    assert_eq!(
        (last.max_level, last.groups[0].level),
        (RiskLevel::Medium, RiskLevel::Medium)
    );
    assert_eq!(
        (
            last.stats.vehicles_per_minute,
            last.stats.persons_per_minute
        ),
        (2, 1)
    );

    // The follower drops back: the alert is carried (stale) within the hold, then gone.
    let mut t = 3.0;
    let mut gap = 8.0;
    for _ in 0..4 {
        gap += 2.0;
        let x = 5.0 + v * t;
        let f = s.update(
            t,
            2000,
            1000,
            &[big_car([x, 11.7]), big_car([x + gap, 11.7])],
        );
        assert!(
            f.alerts
                .iter()
                .all(|a| a.hit.kind != RuleKind::Tailgating || a.stale)
        );
        t += 0.3;
    }
    let f = s.update(t + 4.0, 2000, 1000, &[]);
    assert!(f.alerts.iter().all(|a| a.hit.kind != RuleKind::Tailgating));
}

#[test]
fn objects_in_exclude_zones_are_listed_but_never_tracked() {
    let spec = SceneSpec {
        zones: vec![ZoneSpec {
            name: "bay".into(),
            kind: ZoneKind::Exclude,
            polygon: vec![[0.0, 0.0], [500.0, 0.0], [500.0, 500.0], [0.0, 500.0]],
        }],
        ..SceneSpec::default()
    };
    let mut s = Scene::with_layout(scene().cfg, Arc::new(spec.compile(1.0).unwrap()));
    let dets = [
        det("car", 2, b(100.0, 100.0, 100.0, 50.0)),
        det("car", 2, b(150.0, 120.0, 100.0, 50.0)),
        det("car", 2, b(800.0, 600.0, 100.0, 50.0)),
    ];
    let f = s.update(0.0, 1280, 720, &dets);
    assert_eq!(f.track_ids, vec![None, None, Some(1)]);
    assert!(f.places[0].excluded && !f.places[2].excluded);
    assert!(
        f.groups.is_empty(),
        "the two parked cars would group, but are excluded"
    );
    assert_eq!(f.stats.vehicles_total, 1);
}

#[test]
fn stream_restart_resets_tracks_but_keeps_totals_and_counters_age_out() {
    let mut s = scene();
    s.update(0.0, 1280, 720, &[det("car", 2, b(0.0, 0.0, 100.0, 50.0))]);
    let f = s.update(100.0, 1280, 720, &[det("car", 2, b(0.0, 0.0, 100.0, 50.0))]);
    assert_eq!(
        (f.stats.vehicles_per_minute, f.stats.vehicles_total),
        (0, 1),
        "seen 100 s ago"
    );
    assert_eq!(s.tracks(), 1);
    let f = s.update(
        1.0,
        1280,
        720,
        &[det("bus", 5, b(600.0, 0.0, 200.0, 100.0))],
    );
    assert_eq!(f.track_ids, vec![Some(1)], "ids start over");
    assert_eq!(
        (f.stats.vehicles_per_minute, f.stats.vehicles_total),
        (1, 2)
    );
}

#[test]
fn without_tracking_there_are_groups_but_no_ids_or_rules() {
    let mut s = Scene::new(SceneConfig {
        tracking: false,
        ..Default::default()
    });
    let dets = [
        det("car", 2, b(0.0, 0.0, 100.0, 50.0)),
        det("car", 2, b(120.0, 0.0, 100.0, 50.0)),
    ];
    let f = s.update(0.0, 1280, 720, &dets);
    assert_eq!(f.track_ids, vec![None, None]);
    assert_eq!(f.groups.len(), 1);
    assert!(f.groups[0].track_ids.is_empty() && f.alerts.is_empty());
}

#[test]
fn wrong_way_is_learned_from_the_traffic_and_fires_on_the_scene() {
    let mut s = Scene::new(SceneConfig {
        rules: RulesConfig {
            wrong_way_min_samples: 3,
            ..CFG
        },
        ..scene().cfg
    });
    let mut t = 0.0;
    // 20 frames of three cars driving right along a road (60 learned directions per cell row).
    for k in 0..20 {
        let x = 60.0 * (k % 10) as f32;
        let dets: Vec<Detection> = (0..3)
            .map(|i| det("car", 2, b(x + 300.0 * i as f32, 300.0, 100.0, 50.0)))
            .collect();
        let f = s.update(t, 1280, 720, &dets);
        assert!(
            f.alerts.iter().all(|a| a.hit.kind != RuleKind::WrongWay),
            "with the flow"
        );
        t += 0.6;
        if k % 10 == 9 {
            // Cars leave; the next ones come in from the left after a pause.
            t += 40.0;
            s.update(t, 1280, 720, &[]);
        }
    }
    // One car coming the other way along the same road.
    let mut fired = false;
    for k in 0..8 {
        let dets = [det(
            "car",
            2,
            b(1100.0 - 60.0 * k as f32, 300.0, 100.0, 50.0),
        )];
        let f = s.update(t, 1280, 720, &dets);
        fired |= f
            .alerts
            .iter()
            .any(|a| a.hit.kind == RuleKind::WrongWay && !a.stale);
        t += 0.6;
    }
    assert!(fired, "a car against the learned flow is reported");
}

#[test]
fn held_alerts_keep_tracks_running_and_a_restart_forgets_them() {
    let mut s = Scene::with_layout(scene().cfg, big_road());
    let v = 35.0 / 3.6;
    let pair = |t: f64| {
        let x = 5.0 + v * t;
        [big_car([x, 11.7]), big_car([x + 8.0, 11.7])]
    };
    // The tailgater of the test above (an alert from 1.8 s), with the alerts held up to 2.1 s.
    s.hold_alerts(2.1);
    let mut frames = Vec::new();
    for k in 0..9 {
        let t = 0.3 * f64::from(k);
        frames.push(s.update(t, 3000, 1000, &pair(t)));
    }
    for f in &frames[..8] {
        assert!(f.alerts.is_empty(), "held: {:?}", f.alerts);
        assert_eq!(f.track_ids, vec![Some(1), Some(2)], "tracking runs on");
    }
    let a = &frames[8].alerts;
    assert!(
        a.iter()
            .any(|a| a.hit.kind == RuleKind::Tailgating && (a.started_at - 2.4).abs() < 1e-9),
        "{a:?}"
    );
    assert!(frames[8].motion[0].is_some());

    // Another picture: tracks, motion and alerts start over; totals stay.
    s.restart();
    let f = s.update(2.7, 3000, 1000, &pair(30.0));
    assert_eq!(f.track_ids, vec![Some(1), Some(2)], "ids start over");
    assert!(f.alerts.is_empty() && f.motion.iter().all(Option::is_none));
    assert_eq!(f.stats.vehicles_total, 4);
}

#[test]
fn a_line_crossed_before_the_tracker_confirmed_the_track_is_counted() {
    // A car first seen left of a vertical line and confirmed (its second sighting) right of
    // it: the crossing happened between the two sightings and counts once.
    let spec = SceneSpec {
        lines: vec![LineSpec {
            name: "gate".into(),
            points: [[640.0, 700.0], [640.0, 0.0]],
        }],
        ..SceneSpec::default()
    };
    let mut s = Scene::with_layout(scene().cfg, Arc::new(spec.compile(1.0).unwrap()));
    let parked = det("car", 2, b(100.0, 600.0, 180.0, 72.0));
    let car = |x: f32| det("car", 2, b(x, 300.0, 180.0, 72.0));
    let mut crossings = Vec::new();
    // The parked car alone first: tracks are confirmed at once only on the first frame.
    for (i, x) in [None, Some(460.0), Some(620.0), Some(780.0), Some(940.0)]
        .into_iter()
        .enumerate()
    {
        let dets: Vec<Detection> = std::iter::once(parked.clone()).chain(x.map(car)).collect();
        let f = s.update(0.3 * i as f64, 1280, 720, &dets);
        if i == 1 {
            assert_eq!(f.track_ids[1], None, "first sighting: not confirmed yet");
        }
        if i == 2 {
            assert!(f.track_ids[1].is_some(), "second sighting confirms");
        }
        crossings.extend(f.measures.into_iter().filter_map(|m| match m.kind {
            MeasureKind::Crossing { direction, .. } => Some((m.track_id, direction, m.t)),
            _ => None,
        }));
    }
    assert_eq!(crossings.len(), 1, "{crossings:?}");
    let (_, direction, t) = crossings[0];
    assert_eq!(direction, Direction::In);
    assert!((t - 0.6).abs() < 1e-9, "counted on the confirming frame");
}

#[test]
fn unsure_detections_only_continue_tracks() {
    // ByteTrack's second association across the published threshold: a car seen surely twice
    // keeps its track through frames where the detector is unsure of it (0.2, under the
    // threshold of 0.35), and those sightings are part of the frame; an unsure box no track
    // takes is dropped from the frame altogether.
    let mut s = Scene::new(SceneConfig {
        min_confidence: 0.35,
        ..scene().cfg
    });
    let car = |x: f32, confidence: f32| Detection {
        confidence,
        ..det("car", 2, b(x, 300.0, 180.0, 72.0))
    };
    let ghost = Detection {
        confidence: 0.2,
        ..det("car", 2, b(900.0, 100.0, 60.0, 40.0))
    };
    let mut ids = Vec::new();
    for (i, confidence) in [0.9, 0.9, 0.2, 0.2, 0.9].into_iter().enumerate() {
        let dets = vec![car(100.0 + 20.0 * i as f32, confidence), ghost.clone()];
        let f = s.update(0.3 * i as f64, 1280, 720, &dets);
        assert_eq!(f.detections.len(), 1, "frame {i}: the ghost is dropped");
        assert_eq!(f.detections[0].confidence, confidence);
        assert_eq!(f.track_ids.len(), f.detections.len());
        ids.push(f.track_ids[0]);
    }
    assert!(ids[0].is_some());
    assert!(
        ids.iter().all(|&id| id == ids[0]),
        "one track throughout: {ids:?}"
    );

    // Without a track to continue, an unsure sighting is not reported.
    let mut fresh = Scene::new(SceneConfig {
        min_confidence: 0.35,
        ..scene().cfg
    });
    let f = fresh.update(0.0, 1280, 720, &[car(100.0, 0.2)]);
    assert!(f.detections.is_empty() && f.track_ids.is_empty());
}
