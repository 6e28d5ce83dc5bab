//! Tests of the rules on synthetic tracks (each rule fires, and its near-misses do not) and of
//! the whole scene over synthetic frames.

use super::history::TrackHistory;
use super::rules::{self, RuleKind, RulesConfig, Subject};
use super::*;
use crate::tracker::byte_track::ByteTrackConfig;

const CFG: RulesConfig = RulesConfig {
    enabled: true,
    stationary_speed: 0.3,
    moving_speed: 1.0,
    tailgating_headway: 1.0,
    pedestrian_horizon: 2.0,
    wrong_way_min_samples: 30,
    sudden_stop_speed: 3.0,
    dwell_seconds: 60.0,
    congestion_min_vehicles: 6,
};

/// A box `w` x `h` whose top-left corner is at `(x, y)`.
fn b(x: f32, y: f32, w: f32, h: f32) -> BBox {
    BBox::new(x, y, x + w, y + h)
}

/// A track seen at each `(t, box)`.
fn track(id: u64, class: &str, samples: &[(f64, BBox)]) -> TrackHistory {
    let mut h = TrackHistory::new(id, class, 0.9, samples[0].0, samples[0].1);
    for &(t, bbox) in &samples[1..] {
        h.push(t, bbox, class, 0.9, CFG.stationary_speed);
    }
    h
}

/// A car (100 x 50) moving from `x0` at `vx` px/s along row `y`, seen at t = 0 and 1.
fn car(id: u64, x0: f32, y: f32, vx: f32) -> TrackHistory {
    track(
        id,
        "car",
        &[
            (0.0, b(x0, y, 100.0, 50.0)),
            (1.0, b(x0 + vx, y, 100.0, 50.0)),
        ],
    )
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

fn kinds(hits: &[rules::RuleHit]) -> Vec<RuleKind> {
    hits.iter().map(|h| h.kind).collect()
}

#[test]
fn tailgating_fires_under_the_headway_and_not_above_or_in_another_lane() {
    // Both at 150 px/s (3 heights/s). Follower's front 30 px behind the leader: 0.2 s.
    let close = [car(1, 0.0, 300.0, 150.0), car(2, 130.0, 300.0, 150.0)];
    let hits = rules::tailgating(&CFG, &subjects(&close));
    assert_eq!(kinds(&hits), vec![RuleKind::Tailgating]);
    assert_eq!(
        (hits[0].track_ids.clone(), hits[0].level),
        (vec![1, 2], RiskLevel::High)
    );
    // 120 px: 0.8 s, medium.
    let medium = [car(1, 0.0, 300.0, 150.0), car(2, 220.0, 300.0, 150.0)];
    assert_eq!(
        rules::tailgating(&CFG, &subjects(&medium))[0].level,
        RiskLevel::Medium
    );
    // 200 px of gap: 1.3 s, fine.
    let far = [car(1, 0.0, 300.0, 150.0), car(2, 300.0, 300.0, 150.0)];
    assert!(rules::tailgating(&CFG, &subjects(&far)).is_empty());
    // Same gap, next lane (80 px lower).
    let lanes = [car(1, 0.0, 300.0, 150.0), car(2, 130.0, 380.0, 150.0)];
    assert!(rules::tailgating(&CFG, &subjects(&lanes)).is_empty());
    // Opposite directions, and a queue standing still.
    let opposite = [car(1, 0.0, 300.0, 150.0), car(2, 280.0, 300.0, -150.0)];
    assert!(rules::tailgating(&CFG, &subjects(&opposite)).is_empty());
    let queue = [car(1, 0.0, 300.0, 2.0), car(2, 110.0, 300.0, 2.0)];
    assert!(rules::tailgating(&CFG, &subjects(&queue)).is_empty());
}

#[test]
fn pedestrian_conflict_fires_for_a_vehicle_heading_at_a_person_only() {
    // Car moving right at 200 px/s, bottom edge at y = 350; a person whose feet are at y = 350,
    // 150 px ahead of the car's front: reached in under a second.
    let person = |x: f32, feet: f32| {
        track(
            9,
            "person",
            &[
                (0.0, b(x, feet - 80.0, 30.0, 80.0)),
                (1.0, b(x, feet - 80.0, 30.0, 80.0)),
            ],
        )
    };
    let tracks = [car(1, 0.0, 300.0, 200.0), person(450.0, 350.0)];
    let hits = rules::pedestrian_conflict(&CFG, &subjects(&tracks));
    assert_eq!(kinds(&hits), vec![RuleKind::PedestrianConflict]);
    assert_eq!(
        (hits[0].track_ids.clone(), hits[0].level),
        (vec![1, 9], RiskLevel::High)
    );
    // Further ahead: reached in 1-2 s, medium.
    let tracks = [car(1, 0.0, 300.0, 200.0), person(600.0, 350.0)];
    assert_eq!(
        rules::pedestrian_conflict(&CFG, &subjects(&tracks))[0].level,
        RiskLevel::Medium
    );
    // Near misses: behind the car, on the far pavement (feet 100 px higher), out of reach.
    for (x, feet) in [(-100.0, 350.0), (450.0, 250.0), (1200.0, 350.0)] {
        let tracks = [car(1, 0.0, 300.0, 200.0), person(x, feet)];
        assert!(
            rules::pedestrian_conflict(&CFG, &subjects(&tracks)).is_empty(),
            "{x},{feet}"
        );
    }
    // A parked car next to a person, and a rider on a motorcycle.
    let tracks = [car(1, 320.0, 300.0, 0.0), person(450.0, 350.0)];
    assert!(rules::pedestrian_conflict(&CFG, &subjects(&tracks)).is_empty());
    let moto = track(
        3,
        "motorcycle",
        &[
            (0.0, b(400.0, 300.0, 60.0, 50.0)),
            (1.0, b(400.0, 300.0, 60.0, 50.0)),
        ],
    );
    let rider = track(
        4,
        "person",
        &[
            (0.0, b(410.0, 270.0, 40.0, 70.0)),
            (1.0, b(410.0, 270.0, 40.0, 70.0)),
        ],
    );
    let tracks = [car(1, 0.0, 300.0, 200.0), moto, rider];
    assert!(rules::pedestrian_conflict(&CFG, &subjects(&tracks)).is_empty());
}

#[test]
fn sudden_stop_fires_from_speed_to_standstill_only() {
    let stop = |v: f32| {
        track(
            1,
            "car",
            &[
                (0.0, b(0.0, 0.0, 100.0, 50.0)),
                (1.8, b(v * 1.8, 0.0, 100.0, 50.0)),
                (3.6, b(v * 1.8 + 5.0, 0.0, 100.0, 50.0)),
            ],
        )
    };
    let hits = rules::sudden_stop(&CFG, &subjects(&[stop(200.0)]));
    assert_eq!(kinds(&hits), vec![RuleKind::SuddenStop]);
    // Slow before (2 heights/s): a gentle stop.
    assert!(rules::sudden_stop(&CFG, &subjects(&[stop(100.0)])).is_empty());
    // Still moving at the end.
    let slowing = track(
        1,
        "car",
        &[
            (0.0, b(0.0, 0.0, 100.0, 50.0)),
            (1.8, b(360.0, 0.0, 100.0, 50.0)),
            (3.6, b(460.0, 0.0, 100.0, 50.0)),
        ],
    );
    assert!(rules::sudden_stop(&CFG, &subjects(&[slowing])).is_empty());
}

#[test]
fn illegal_stop_needs_a_long_stop_after_moving_and_no_queue() {
    let stopped = |id: u64, x: f32, moved: bool| {
        let x0 = if moved { x - 300.0 } else { x };
        let mut samples = vec![(0.0, b(x0, 0.0, 100.0, 50.0))];
        samples.extend((1..=40).map(|i| (f64::from(i) * 2.0, b(x, 0.0, 100.0, 50.0))));
        track(id, "car", &samples)
    };
    let t = 80.0;
    // Stopped since t = 2: 78 s.
    let hits = rules::illegal_stop(&CFG, &subjects(&[stopped(1, 500.0, true)]), t);
    assert_eq!(kinds(&hits), vec![RuleKind::IllegalStop]);
    assert_eq!(hits[0].level, RiskLevel::Low);
    // Never seen moving (parked), or queueing behind another stopped car, or not long enough.
    assert!(rules::illegal_stop(&CFG, &subjects(&[stopped(1, 500.0, false)]), t).is_empty());
    let queue = [stopped(1, 500.0, true), stopped(2, 610.0, false)];
    assert!(rules::illegal_stop(&CFG, &subjects(&queue), t).is_empty());
    assert!(rules::illegal_stop(&CFG, &subjects(&[stopped(1, 500.0, true)]), 50.0).is_empty());
}

#[test]
fn wrong_way_fires_after_two_frames_against_the_flow() {
    let mut t = car(1, 500.0, 300.0, -200.0);
    t.against_flow = 1;
    assert!(rules::wrong_way(&CFG, &subjects(std::slice::from_ref(&t))).is_empty());
    t.against_flow = 2;
    let hits = rules::wrong_way(&CFG, &subjects(&[t]));
    assert_eq!(
        (kinds(&hits), hits[0].level),
        (vec![RuleKind::WrongWay], RiskLevel::High)
    );
}

#[test]
fn congestion_levels_follow_the_share_of_standing_traffic() {
    // Every car drove in at 200 px/s (4 heights/s); the first `slow` ones now move at `v`.
    let fleet = |slow: usize, total: usize, v: f32| -> Vec<TrackHistory> {
        (0..total)
            .map(|i| {
                let x = 150.0 * i as f32;
                let last = if i < slow { x + 200.0 + v } else { x + 400.0 };
                let samples = [(0.0, x), (1.0, x + 200.0), (2.0, last)];
                track(
                    i as u64,
                    "car",
                    &samples.map(|(t, x)| (t, b(x, 300.0, 100.0, 50.0))),
                )
            })
            .collect()
    };
    let level = |slow, total| rules::congestion(&CFG, &subjects(&fleet(slow, total, 5.0))).0;
    assert_eq!(level(8, 10), RiskLevel::High);
    assert_eq!(level(6, 10), RiskLevel::Medium);
    assert_eq!(level(4, 10), RiskLevel::Low);
    assert_eq!(level(3, 10), RiskLevel::None);
    assert_eq!(level(5, 5), RiskLevel::None, "too few vehicles to judge");
    // Crawling at 0.6 heights/s (driving towards the camera looks like this) is not a jam.
    let crawling = fleet(10, 10, 30.0);
    assert_eq!(
        rules::congestion(&CFG, &subjects(&crawling)).0,
        RiskLevel::None
    );
    // Parked cars (never seen moving) are not traffic.
    let parked: Vec<TrackHistory> = (0..10)
        .map(|i| car(i, 150.0 * i as f32, 300.0, 2.0))
        .collect();
    assert_eq!(
        rules::congestion(&CFG, &subjects(&parked)).0,
        RiskLevel::None
    );
    let (hits, _) = rules::evaluate(&CFG, &subjects(&fleet(8, 10, 5.0)), 2.0);
    let congestion: Vec<_> = hits
        .iter()
        .filter(|h| h.kind == RuleKind::Congestion)
        .collect();
    assert_eq!((congestion.len(), congestion[0].track_ids.len()), (1, 8));
    let off = RulesConfig {
        enabled: false,
        ..CFG
    };
    assert!(
        rules::evaluate(&off, &subjects(&fleet(8, 10, 5.0)), 2.0)
            .0
            .is_empty()
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

#[test]
fn the_scene_tracks_groups_and_alerts_a_tailgater() {
    let mut s = scene();
    let mut frames = Vec::new();
    for k in 0..6 {
        // Two cars 30 px apart at 150 px/s, sampled every 0.3 s, and a lone person far away.
        // (Sampled sparser, the first step would be ambiguous: a platoon moving about its own
        // spacing per frame looks the same as one standing still with its members swapped.)
        let x = 45.0 * k as f32;
        let dets = [
            det("car", 2, b(x, 300.0, 100.0, 50.0)),
            det("car", 2, b(x + 130.0, 300.0, 100.0, 50.0)),
            det("person", 0, b(1100.0, 600.0, 30.0, 80.0)),
        ];
        frames.push(s.update(0.3 * f64::from(k), 1280, 720, &dets));
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
        assert_eq!(f.groups[0].classes, vec!["car".to_string()]);
    }
    // Speeds are known from the second frame: the alert is there and on the group.
    let last = &frames[5];
    assert_eq!(frames[0].motion[0], None, "one sighting: no motion yet");
    let m = last.motion[0].unwrap();
    assert!(
        (m.speed - 3.0).abs() < 0.01 && m.heading_degrees.abs() < 0.01,
        "{m:?}"
    );
    assert!((m.velocity.0 - 150.0).abs() < 0.5, "{m:?}");
    let a = last
        .alerts
        .iter()
        .find(|a| a.hit.kind == RuleKind::Tailgating)
        .unwrap();
    assert_eq!((a.group, a.stale, a.started_at), (Some((1, 1)), false, 0.3));
    assert_eq!(
        (last.max_level, last.groups[0].level),
        (RiskLevel::High, RiskLevel::High)
    );
    assert_eq!(
        (
            last.stats.vehicles_per_minute,
            last.stats.persons_per_minute
        ),
        (2, 1)
    );

    // The cars stop being close: the alert is carried (stale) within the hold, then gone.
    let apart = |s: &mut Scene, t: f64, x: f32| {
        s.update(
            t,
            1280,
            720,
            &[
                det("car", 2, b(x, 300.0, 100.0, 50.0)),
                det("car", 2, b(x + 400.0, 300.0, 100.0, 50.0)),
            ],
        )
    };
    let f = apart(&mut s, 2.0, 270.0);
    assert!(
        f.alerts
            .iter()
            .any(|a| a.hit.kind == RuleKind::Tailgating && a.stale)
    );
    let f = apart(&mut s, 5.0, 270.0);
    assert!(f.alerts.iter().all(|a| a.hit.kind != RuleKind::Tailgating));
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
    for k in 0..6 {
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
    let mut s = scene();
    let pair = |x: f32| {
        [
            det("car", 2, b(x, 300.0, 100.0, 50.0)),
            det("car", 2, b(x + 130.0, 300.0, 100.0, 50.0)),
        ]
    };
    // The tailgater of the test above, with the alerts held up to 0.9 s.
    s.hold_alerts(0.9);
    let mut frames = Vec::new();
    for k in 0..5 {
        frames.push(s.update(0.3 * f64::from(k), 1280, 720, &pair(45.0 * k as f32)));
    }
    for f in &frames[..4] {
        assert!(f.alerts.is_empty(), "held: {:?}", f.alerts);
        assert_eq!(f.track_ids, vec![Some(1), Some(2)], "tracking runs on");
    }
    let a = &frames[4].alerts;
    assert!(
        a.iter()
            .any(|a| a.hit.kind == RuleKind::Tailgating && a.started_at == 1.2),
        "{a:?}"
    );
    assert!(frames[4].motion[0].is_some());

    // Another picture: tracks, motion and alerts start over; totals stay.
    s.restart();
    let f = s.update(1.5, 1280, 720, &pair(600.0));
    assert_eq!(f.track_ids, vec![Some(1), Some(2)], "ids start over");
    assert!(f.alerts.is_empty() && f.motion.iter().all(Option::is_none));
    assert_eq!(f.stats.vehicles_total, 4);
}
