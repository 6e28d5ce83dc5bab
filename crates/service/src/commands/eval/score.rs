//! Scoring one clip's results against its labels, pure: alert episodes (one per rule, tracks
//! and start, at their highest level) are true when an event of their type is labelled around
//! them, false alarms when they fall in a span labelled normal, unlabeled otherwise; events no
//! episode matched are missed. Speeds are compared with the hand measurements; the median
//! speed of moving objects is kept for the metamorphic checks.

use std::collections::BTreeMap;

use protocol::{DetectionResult, RiskLevel};
use serde::Serialize;

use super::labels::Clip;

/// Seconds an episode may start before or after its labelled event and still match it.
pub const EVENT_SLACK: f64 = 1.0;
/// Farthest (px) a detection's foot point may be from a speed label's `near`.
pub const NEAR_PX: f64 = 60.0;
/// From this speed (km/h) an object counts as moving for the median speed.
pub const MOVING_KMH: f64 = 5.0;

/// One rule's tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleScore {
    /// Episodes matching a labelled event.
    pub true_alerts: u32,
    /// Episodes in a normal span.
    pub false_alarms: u32,
    /// Episodes outside every label.
    pub unlabeled: u32,
    /// Labelled events no episode matched.
    pub missed: u32,
    /// False alarms at `high`.
    pub false_high: u32,
    /// False alarms at `medium`.
    pub false_medium: u32,
}

/// Calibrated speeds against the hand measurements.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpeedScore {
    /// Labels with a measured vehicle.
    pub matched: usize,
    /// Labels in all.
    pub labels: usize,
    /// Mean absolute error, km/h.
    pub mae_kmh: f64,
    /// Mean signed error relative to the label, percent.
    pub bias_pct: f64,
}

/// One clip's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClipReport {
    /// Clip name.
    pub name: String,
    /// Seconds between analysed frames.
    pub interval_s: f64,
    /// Frames analysed.
    pub frames: usize,
    /// Stream minutes covered.
    pub minutes: f64,
    /// Minutes labelled normal.
    pub normal_minutes: f64,
    /// Per rule (alert `type`).
    pub rules: BTreeMap<String, RuleScore>,
    /// False alarms of every rule per hour of normal footage.
    pub false_alarms_per_hour: f64,
    /// Episodes at `high`, anywhere.
    pub high: u32,
    /// Episodes at `medium`, anywhere.
    pub medium: u32,
    /// Speeds against the labels (calibrated clips with speed labels).
    pub speed: Option<SpeedScore>,
    /// Median `speedKmh` of objects moving at 5 km/h or more.
    pub moving_median_kmh: Option<f64>,
    /// Each episode: (type, level, stream time it began).
    pub episodes: Vec<(String, RiskLevel, f64)>,
    /// Times (s) the picture was reported frozen.
    pub freezes: Vec<f64>,
    /// Crossings of each count line and direction, against the labels where there are some.
    pub counts: Vec<LineCount>,
}

/// The crossings of one line in one direction over the clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineCount {
    /// The line.
    pub line: String,
    /// `in` or `out`.
    pub direction: &'static str,
    /// Counted by the pipeline.
    pub measured: u64,
    /// Counted by eye.
    pub labelled: Option<u64>,
    /// `1 - |measured - labelled| / labelled` (1 when both are 0), when labelled.
    pub accuracy: Option<f64>,
}

/// Each line and direction counted or labelled, sorted by line then direction.
pub fn counts(clip: &Clip, crossings: &BTreeMap<String, (u64, u64)>) -> Vec<LineCount> {
    let mut lines: Vec<&str> = crossings.keys().map(String::as_str).collect();
    lines.extend(clip.counts.iter().map(|c| c.line.as_str()));
    lines.sort_unstable();
    lines.dedup();
    let mut out = Vec::new();
    for line in lines {
        let measured = crossings.get(line).copied().unwrap_or_default();
        let label = clip.counts.iter().find(|c| c.line == line);
        for (direction, m, l) in [
            ("in", measured.0, label.map(|c| c.in_)),
            ("out", measured.1, label.map(|c| c.out)),
        ] {
            let accuracy = l.map(|l| match l {
                0 => f64::from(u8::from(m == 0)),
                l => (1.0 - m.abs_diff(l) as f64 / l as f64).max(0.0),
            });
            out.push(LineCount {
                line: line.to_string(),
                direction,
                measured: m,
                labelled: l,
                accuracy,
            });
        }
    }
    out
}

/// An alert episode: its type, level (highest seen) and first stream time.
#[derive(Debug, Clone, PartialEq)]
struct Episode {
    kind: String,
    level: RiskLevel,
    t: f64,
}

/// The rule alert episodes of `results`, in order of their start.
fn episodes(results: &[DetectionResult]) -> Vec<Episode> {
    let mut by_key: BTreeMap<(String, Vec<u64>, String), Episode> = BTreeMap::new();
    for r in results {
        for a in r.dangerous_driving_results.iter().filter(|a| !a.is_stale) {
            if a.source != protocol::detection::AlertSource::Rules {
                continue;
            }
            let mut ids = a.trigger_object_ids.clone();
            ids.sort_unstable();
            let key = (a.kind.clone(), ids, a.started_at.clone());
            let e = by_key.entry(key).or_insert_with(|| Episode {
                kind: a.kind.clone(),
                level: a.risk_level,
                t: r.stream_time,
            });
            e.level = e.level.max(a.risk_level);
        }
    }
    let mut list: Vec<Episode> = by_key.into_values().collect();
    list.sort_by(|a, b| a.t.total_cmp(&b.t));
    list
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// The speed of the object whose foot point is nearest `near` in the frame nearest `at`.
fn measured_speed(
    results: &[DetectionResult],
    at: f64,
    near: [f64; 2],
    interval: f64,
) -> Option<f64> {
    let frame = results
        .iter()
        .filter(|r| (r.stream_time - at).abs() <= interval)
        .min_by(|a, b| {
            (a.stream_time - at)
                .abs()
                .total_cmp(&(b.stream_time - at).abs())
        })?;
    frame
        .detected_objects
        .iter()
        .filter_map(|o| {
            let foot = [f64::from(o.bbox.x1 + o.bbox.x2) / 2.0, f64::from(o.bbox.y2)];
            let d = (foot[0] - near[0]).hypot(foot[1] - near[1]);
            Some((d, o.speed_kmh?))
        })
        .filter(|(d, _)| *d <= NEAR_PX)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, kmh)| kmh)
}

/// Scores `results` (in stream order, at `interval` s) against `clip`; `freezes` are the stream
/// times a frozen picture was reported.
pub fn score(
    clip: &Clip,
    results: &[DetectionResult],
    interval: f64,
    freezes: Vec<f64>,
) -> ClipReport {
    let eps = episodes(results);
    let mut rules: BTreeMap<String, RuleScore> = BTreeMap::new();
    let in_normal = |t: f64| clip.normal.iter().any(|s| t >= s[0] && t <= s[1]);
    let mut matched_events = vec![false; clip.events.len()];
    for e in &eps {
        let score = rules.entry(e.kind.clone()).or_default();
        let event = clip.events.iter().position(|ev| {
            ev.kind == e.kind && e.t >= ev.from - EVENT_SLACK && e.t <= ev.to + EVENT_SLACK
        });
        if let Some(i) = event {
            matched_events[i] = true;
            score.true_alerts += 1;
        } else if in_normal(e.t) {
            score.false_alarms += 1;
            match e.level {
                RiskLevel::High => score.false_high += 1,
                RiskLevel::Medium => score.false_medium += 1,
                _ => {}
            }
        } else {
            score.unlabeled += 1;
        }
    }
    for (ev, matched) in clip.events.iter().zip(&matched_events) {
        if !matched {
            rules.entry(ev.kind.clone()).or_default().missed += 1;
        }
    }
    let first = results.first().map_or(0.0, |r| r.stream_time);
    let last = results.last().map_or(0.0, |r| r.stream_time);
    let normal_minutes: f64 = clip
        .normal
        .iter()
        .map(|s| (s[1].min(last) - s[0].max(first)).max(0.0))
        .sum::<f64>()
        / 60.0;
    let false_alarms: u32 = rules.values().map(|r| r.false_alarms).sum();
    let speed = (!clip.speeds.is_empty()).then(|| {
        let pairs: Vec<(f64, f64)> = clip
            .speeds
            .iter()
            .filter_map(|l| Some((measured_speed(results, l.at, l.near, interval)?, l.kmh)))
            .collect();
        let n = pairs.len().max(1) as f64;
        SpeedScore {
            matched: pairs.len(),
            labels: clip.speeds.len(),
            mae_kmh: pairs.iter().map(|(m, l)| (m - l).abs()).sum::<f64>() / n,
            bias_pct: pairs.iter().map(|(m, l)| 100.0 * (m - l) / l).sum::<f64>() / n,
        }
    });
    let moving: Vec<f64> = results
        .iter()
        .flat_map(|r| r.detected_objects.iter().filter_map(|o| o.speed_kmh))
        .filter(|&v| v >= MOVING_KMH)
        .collect();
    ClipReport {
        name: clip.name.clone(),
        interval_s: interval,
        frames: results.len(),
        minutes: (last - first) / 60.0,
        normal_minutes,
        false_alarms_per_hour: if normal_minutes > 0.0 {
            f64::from(false_alarms) / (normal_minutes / 60.0)
        } else {
            0.0
        },
        high: eps.iter().filter(|e| e.level == RiskLevel::High).count() as u32,
        medium: eps.iter().filter(|e| e.level == RiskLevel::Medium).count() as u32,
        speed,
        moving_median_kmh: median(moving),
        episodes: eps.into_iter().map(|e| (e.kind, e.level, e.t)).collect(),
        rules,
        freezes,
        counts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::eval::labels::{Event, SpeedLabel};
    use protocol::detection::{AlertSource, DangerAlert, DetectedObject};
    use vision::BBox;

    fn alert(kind: &str, level: RiskLevel, ids: &[u64], started: &str) -> DangerAlert {
        DangerAlert {
            kind: kind.into(),
            description: String::new(),
            risk_level: level,
            confidence: 0.5,
            group_index: None,
            group_id: None,
            risk_types: vec![kind.into()],
            trigger_object_ids: ids.to_vec(),
            source: AlertSource::Rules,
            started_at: started.into(),
            is_stale: false,
            measures: BTreeMap::new(),
            llm_verdict: None,
        }
    }

    fn frame(t: f64, alerts: Vec<DangerAlert>, speed: Option<f64>) -> DetectionResult {
        DetectionResult {
            stream_time: t,
            dangerous_driving_results: alerts,
            detected_objects: vec![DetectedObject {
                class: "car".into(),
                confidence: 0.9,
                bbox: BBox::new(90.0, 50.0, 110.0, 100.0),
                track_id: Some(1),
                ground: None,
                speed_kmh: speed,
                lane: None,
                zone: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn counts_are_scored_per_line_and_direction() {
        let clip: Clip = crate::config::yaml::parse(
            "name: c\nvideo: v.mp4\ncounts: [{line: a, in: 4, out: 0}]\n",
            "labels",
        )
        .expect("valid clip");
        let measured = BTreeMap::from([("a".to_string(), (3, 1)), ("b".to_string(), (2, 0))]);
        let rows: Vec<String> = counts(&clip, &measured)
            .into_iter()
            .map(|c| {
                format!(
                    "{} {} {} {:?} {:?}",
                    c.line, c.direction, c.measured, c.labelled, c.accuracy
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "a in 3 Some(4) Some(0.75)",
                "a out 1 Some(0) Some(0.0)",
                "b in 2 None None",
                "b out 0 None None",
            ]
        );
    }

    #[test]
    fn episodes_are_scored_against_events_and_normal_spans() {
        let clip = Clip {
            name: "c".into(),
            video: "v.mp4".into(),
            scene: None,
            counts: Vec::new(),
            normal: vec![[0.0, 30.0]],
            events: vec![
                Event {
                    kind: "wrong_way".into(),
                    from: 40.0,
                    to: 45.0,
                },
                Event {
                    kind: "sudden_stop".into(),
                    from: 50.0,
                    to: 51.0,
                },
            ],
            speeds: vec![SpeedLabel {
                at: 10.0,
                near: [100.0, 100.0],
                kmh: 40.0,
            }],
            transform: None,
            until: None,
        };
        let results = vec![
            frame(0.0, vec![], None),
            // A medium tailgating episode over two frames (one episode), in the normal span.
            frame(
                10.0,
                vec![alert("tailgating", RiskLevel::Medium, &[1, 2], "a")],
                Some(44.0),
            ),
            frame(
                10.3,
                vec![alert("tailgating", RiskLevel::High, &[2, 1], "a")],
                Some(44.0),
            ),
            // The labelled wrong-way, a second early.
            frame(
                39.0,
                vec![alert("wrong_way", RiskLevel::High, &[7], "b")],
                None,
            ),
            // Outside every label.
            frame(
                35.0,
                vec![alert("congestion", RiskLevel::Low, &[], "c")],
                Some(2.0),
            ),
            frame(60.0, vec![], None),
        ];
        let r = score(&clip, &results, 0.3, vec![]);
        assert_eq!(r.rules["tailgating"].false_alarms, 1);
        assert_eq!(
            r.rules["tailgating"].false_high, 1,
            "an episode counts at its highest"
        );
        assert_eq!(r.rules["wrong_way"].true_alerts, 1);
        assert_eq!(r.rules["congestion"].unlabeled, 1);
        assert_eq!(r.rules["sudden_stop"].missed, 1);
        assert_eq!((r.high, r.medium), (2, 0));
        assert!((r.normal_minutes - 0.5).abs() < 1e-9);
        assert!((r.false_alarms_per_hour - 120.0).abs() < 1e-9);
        let speed = r.speed.unwrap();
        assert_eq!((speed.matched, speed.labels), (1, 1));
        assert!((speed.mae_kmh - 4.0).abs() < 1e-9 && (speed.bias_pct - 10.0).abs() < 1e-9);
        assert_eq!(r.moving_median_kmh, Some(44.0), "2 km/h is not moving");
    }
}
