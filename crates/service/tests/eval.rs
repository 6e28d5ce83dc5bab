//! `traffic-algo eval` over the shared clips with their hand-written labels
//! (`tests/data/eval/labels.yaml`, scenes in `tests/data/eval/scenes/`), through the binary:
//! on normal traffic, at the default cadence and at 0.3 s, no `high` alert and at most one
//! `medium` per ten camera-minutes; and metamorphic checks that need no ground truth
//! (`tests/data/eval/metamorphic.yaml`): the same clip twice as fast measures twice the
//! speeds, a time-reversed segment drives against its lanes, a frozen segment raises nothing
//! and is reported, a looped clip counts exactly twice. Line counts are checked against hand
//! counts.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use serde_json::Value;
use support::{model, model_with_int8, repo_root, run_ok, traffic_algo};

/// Runs `eval` on `labels` (relative to the repository) with extra arguments; the JSON report.
fn eval(labels: &str, args: &[&str]) -> Value {
    eval_with(&model(), labels, args)
}

/// [`eval`] with the model file `model`.
fn eval_with(model: &std::path::Path, labels: &str, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        traffic_algo(dir.path())
            .arg("eval")
            .arg(repo_root().join(labels))
            .arg("--json")
            .args(args)
            .arg("--model")
            .arg(model),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn clip<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["clips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no clip {name} in {report}"))
}

/// No `high` alert at all, and false `medium` ones (in spans labelled normal) at most one per
/// ten camera-minutes.
fn normal_traffic_is_quiet(report: &Value, what: &str) {
    let clips = report["clips"].as_array().unwrap();
    assert!(clips.len() >= 3, "{report}");
    let minutes: f64 = clips.iter().map(|c| c["minutes"].as_f64().unwrap()).sum();
    let mut false_medium = 0;
    for c in clips {
        assert!(c["frames"].as_u64().unwrap() > 4, "{what}: {c}");
        assert_eq!(c["high"], 0, "{what}: {}", c["episodes"]);
        false_medium += c["rules"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["false_medium"].as_u64().unwrap())
            .sum::<u64>();
    }
    assert!(
        false_medium as f64 <= minutes / 10.0,
        "{what}: {false_medium} false medium alerts in {minutes:.1} camera-minutes: {report}"
    );
}

#[test]
fn normal_traffic_raises_nothing_at_the_default_cadence() {
    normal_traffic_is_quiet(
        &eval("tests/data/eval/labels.yaml", &["--interval", "1.8"]),
        "1.8 s",
    );
}

#[test]
fn normal_traffic_raises_nothing_at_a_measuring_cadence() {
    let report = eval("tests/data/eval/labels.yaml", &["--interval", "0.3"]);
    normal_traffic_is_quiet(&report, "0.3 s");
    // The one real event of the clips, a car following another 0.8 s behind at 110 km/h, is
    // found.
    let tailgating = &clip(&report, "road-cars")["rules"]["tailgating"];
    assert!(
        tailgating["true_alerts"].as_u64().unwrap() >= 1,
        "{tailgating}"
    );
    assert_eq!(tailgating["missed"], 0);
    // Counts against the hand counts: the highway exactly; the street (whose scene analyses
    // every 0.1 s: see the next test) never more than by eye.
    for (name, exact) in [("road-cars", true), ("traffic-street", false)] {
        let counts = clip(&report, name)["counts"].as_array().unwrap();
        assert_eq!(counts.len(), 2, "{name}: {counts:?}");
        for c in counts {
            let (measured, labelled) = (c["measured"].as_u64(), c["labelled"].as_u64());
            if exact {
                assert_eq!(measured, labelled, "{name}: {c}");
            } else {
                assert!(measured.unwrap() <= labelled.unwrap(), "{name}: {c}");
            }
        }
    }
    // The calibrated clips measure speeds close to the hand measurements.
    for c in report["clips"].as_array().unwrap() {
        let Some(speed) = c["speed"].as_object() else {
            continue;
        };
        let matched = speed["matched"].as_u64().unwrap();
        assert!(matched * 2 >= speed["labels"].as_u64().unwrap(), "{c}");
        let bias = speed["bias_pct"].as_f64().unwrap();
        assert!(bias.abs() <= 25.0, "{}: bias {bias:.0}%", c["name"]);
    }
}

/// The street clip at its scene's own cadence (`detect_interval` 0.1 s, every frame of the
/// 10 fps clip) counts exactly the hand counts in both directions, with the fp32 model and with
/// its static int8 twin: the school bus and the black pickup, which YOLOv8n scores under 0.5 on
/// most frames, are counted through ByteTrack's low-score stage.
#[test]
fn the_street_counts_match_the_hand_counts_at_its_scene_cadence() {
    let int8 = model_with_int8();
    for (precision, model) in [("fp32", model()), ("int8", int8)] {
        let precision_set = format!("model.precision={precision}");
        let report = eval_with(
            &model,
            "tests/data/eval/labels.yaml",
            &["--clip", "traffic-street", "--set", &precision_set],
        );
        let street = clip(&report, "traffic-street");
        assert_eq!(street["interval_s"], 0.1, "{precision}: {street}");
        let counts = street["counts"].as_array().unwrap();
        assert_eq!(counts.len(), 2, "{precision}: {counts:?}");
        for c in counts {
            assert_eq!(c["measured"], c["labelled"], "{precision}: {c}");
        }
        assert_eq!(street["high"], 0, "{precision}: {street}");
    }
}

#[test]
fn metamorphic_twice_as_fast_measures_twice_the_speed() {
    let report = eval("tests/data/eval/metamorphic.yaml", &["--clip", "road"]);
    let normal = clip(&report, "road")["moving_median_kmh"].as_f64().unwrap();
    // The same video frames, half the time apart (see metamorphic.yaml).
    let report = eval(
        "tests/data/eval/metamorphic.yaml",
        &["--clip", "road-2x", "--interval", "0.15"],
    );
    let fast = clip(&report, "road-2x")["moving_median_kmh"]
        .as_f64()
        .unwrap();
    let ratio = fast / normal;
    assert!(
        (1.7..=2.3).contains(&ratio),
        "median {normal:.1} km/h, twice as fast {fast:.1} km/h: ratio {ratio:.2}"
    );
}

#[test]
fn metamorphic_a_reversed_segment_drives_the_wrong_way() {
    let report = eval(
        "tests/data/eval/metamorphic.yaml",
        &["--clip", "road-reversed"],
    );
    let c = clip(&report, "road-reversed");
    let wrong_way = &c["rules"]["wrong_way"];
    assert!(
        wrong_way["true_alerts"].as_u64().unwrap() >= 1,
        "no wrong_way in the reversed span: {}",
        c["episodes"]
    );
    assert_eq!(wrong_way["false_alarms"], 0, "{}", c["episodes"]);
    // And the same clip played forwards does not.
    let report = eval("tests/data/eval/metamorphic.yaml", &["--clip", "road"]);
    let forwards = &clip(&report, "road")["episodes"];
    assert!(
        forwards
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e[0] != "wrong_way"),
        "{forwards}"
    );
}

#[test]
fn metamorphic_a_frozen_segment_raises_nothing_and_is_reported() {
    let report = eval(
        "tests/data/eval/metamorphic.yaml",
        &["--clip", "street-frozen"],
    );
    let c = clip(&report, "street-frozen");
    let freezes = c["freezes"].as_array().unwrap();
    assert_eq!(freezes.len(), 1, "{c}");
    let at = freezes[0].as_f64().unwrap();
    assert!(
        (13.0..=16.0).contains(&at),
        "frozen at 12 s, reported at {at} s"
    );
    let in_freeze: Vec<&Value> = c["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| (12.0..=20.0).contains(&e[2].as_f64().unwrap()))
        .collect();
    assert!(in_freeze.is_empty(), "{in_freeze:?}");
}

#[test]
fn metamorphic_a_looped_clip_counts_exactly_twice() {
    let once = eval("tests/data/eval/metamorphic.yaml", &["--clip", "road"]);
    let twice = eval(
        "tests/data/eval/metamorphic.yaml",
        &["--clip", "road-looped"],
    );
    let counts = |report: &Value, name: &str| -> Vec<(String, String, u64)> {
        clip(report, name)["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["line"].as_str().unwrap().to_string(),
                    c["direction"].as_str().unwrap().to_string(),
                    c["measured"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let once = counts(&once, "road");
    assert!(once.iter().any(|c| c.2 > 0), "{once:?}");
    let doubled: Vec<_> = once
        .iter()
        .map(|(l, d, n)| (l.clone(), d.clone(), 2 * n))
        .collect();
    assert_eq!(counts(&twice, "road-looped"), doubled);
}
