//! One camera's measures since the backend was last told (`backend.stats_interval_seconds`):
//! crossings per line, direction and class, and lane passes with their speeds. The statistics
//! post takes the window and starts the next one, so each crossing and pass is posted once.
//! Pure: measures come in, figures go out.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use store::SpeedHistogram;
use vision::scene::layout::Layout;
use vision::scene::measure::{Direction, Measure, MeasureKind};

/// Crossings one way and the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InOut {
    /// From the left of the line's arrow to its right.
    #[serde(rename = "in")]
    pub in_: u64,
    /// The other way.
    pub out: u64,
}

impl InOut {
    fn add(&mut self, direction: Direction) {
        match direction {
            Direction::In => self.in_ += 1,
            Direction::Out => self.out += 1,
        }
    }
}

/// One count line over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineWindow {
    /// The line's name.
    pub name: String,
    /// Crossings of every class.
    #[serde(flatten)]
    pub total: InOut,
    /// Crossings per class.
    pub by_class: BTreeMap<String, InOut>,
}

/// One lane over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneWindow {
    /// The lane's name.
    pub name: String,
    /// Vehicles that passed through it.
    pub vehicles: u64,
    /// Of those, the ones with a measured speed.
    pub measured: u64,
    /// Their mean speed, km/h.
    pub mean_speed_kmh: Option<f64>,
    /// Their 85th-percentile speed, km/h.
    pub p85_speed_kmh: Option<f64>,
    /// The share of them over the lane's limit (when it has one).
    pub over_limit_share: Option<f64>,
}

/// The figures of one window: every line and lane of the camera's scene, in its order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowStats {
    /// Count lines.
    pub lines: Vec<LineWindow>,
    /// Lanes.
    pub lanes: Vec<LaneWindow>,
}

/// The measures of the window so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    crossings: BTreeMap<Arc<str>, BTreeMap<String, InOut>>,
    /// Passes per lane, and the speeds of those measured.
    passes: BTreeMap<Arc<str>, (u64, SpeedHistogram)>,
}

/// Rounds to 0.1 (speeds and shares in the API and the backend's statistics).
pub fn tenth(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Window {
    /// Adds `m` (movements are not posted).
    pub fn add(&mut self, m: &Measure) {
        match &m.kind {
            MeasureKind::Crossing { line, direction } => self
                .crossings
                .entry(Arc::clone(line))
                .or_default()
                .entry(m.class.clone())
                .or_default()
                .add(*direction),
            MeasureKind::LanePass {
                lane,
                speed_kmh,
                over_limit,
            } => {
                let (n, speeds) = self.passes.entry(Arc::clone(lane)).or_default();
                *n += 1;
                if let Some(kmh) = speed_kmh {
                    speeds.add(*kmh, over_limit.unwrap_or(false));
                }
            }
            MeasureKind::Movement { .. } => {}
        }
    }

    /// The window's figures for every line and lane of `layout`, and a new window begun.
    pub fn take(&mut self, layout: &Layout) -> WindowStats {
        let Self { crossings, passes } = std::mem::take(self);
        let lines = layout
            .lines
            .iter()
            .map(|l| {
                let by_class = crossings.get(&l.name).cloned().unwrap_or_default();
                let total = by_class.values().fold(InOut::default(), |a, c| InOut {
                    in_: a.in_ + c.in_,
                    out: a.out + c.out,
                });
                LineWindow {
                    name: l.name.to_string(),
                    total,
                    by_class,
                }
            })
            .collect();
        let lanes = layout
            .lanes
            .iter()
            .map(|l| {
                let (vehicles, speeds) = passes.get(&l.name).cloned().unwrap_or_default();
                LaneWindow {
                    name: l.name.to_string(),
                    vehicles,
                    measured: speeds.count(),
                    mean_speed_kmh: speeds.mean().map(tenth),
                    p85_speed_kmh: speeds.percentile(85.0).map(tenth),
                    over_limit_share: l
                        .speed_limit_kmh
                        .and(speeds.over_limit_share())
                        .map(|s| (s * 1000.0).round() / 1000.0),
                }
            })
            .collect();
        WindowStats { lines, lanes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision::scene::layout::{LaneSpec, LineSpec, SceneSpec};

    fn layout() -> Layout {
        let square = |x: f64| vec![[x, 0.0], [x + 100.0, 0.0], [x + 100.0, 100.0], [x, 100.0]];
        let line = |name: &str, y: f64| LineSpec {
            name: name.into(),
            points: [[0.0, y], [200.0, y]],
        };
        SceneSpec {
            lanes: vec![
                LaneSpec {
                    name: "nb".into(),
                    polygon: square(0.0),
                    direction: None,
                    speed_limit_kmh: Some(50.0),
                },
                LaneSpec {
                    name: "sb".into(),
                    polygon: square(100.0),
                    direction: None,
                    speed_limit_kmh: None,
                },
            ],
            lines: vec![line("stop", 50.0), line("quiet", 90.0)],
            ..SceneSpec::default()
        }
        .compile(5.0)
        .expect("valid")
    }

    fn crossing(direction: Direction, class: &str) -> Measure {
        Measure {
            t: 1.0,
            track_id: 1,
            class: class.into(),
            kind: MeasureKind::Crossing {
                line: "stop".into(),
                direction,
            },
        }
    }

    fn pass(lane: &str, kmh: Option<f64>) -> Measure {
        Measure {
            t: 1.0,
            track_id: 1,
            class: "car".into(),
            kind: MeasureKind::LanePass {
                lane: lane.into(),
                speed_kmh: kmh,
                over_limit: kmh.map(|k| k > 50.0),
            },
        }
    }

    #[test]
    fn a_window_counts_per_line_class_and_lane_once() {
        let layout = layout();
        let mut w = Window::default();
        for m in [
            crossing(Direction::In, "car"),
            crossing(Direction::In, "car"),
            crossing(Direction::Out, "truck"),
            pass("nb", Some(40.0)),
            pass("nb", Some(60.0)),
            pass("nb", None),
            pass("sb", Some(30.0)),
        ] {
            w.add(&m);
        }
        let stats = w.take(&layout);
        let stop = &stats.lines[0];
        assert_eq!((stop.total.in_, stop.total.out), (2, 1));
        assert_eq!(stop.by_class["car"], InOut { in_: 2, out: 0 });
        assert_eq!(stop.by_class["truck"], InOut { in_: 0, out: 1 });
        // Every line of the scene, counted or not.
        assert_eq!(stats.lines[1].name, "quiet");
        assert_eq!(stats.lines[1].total, InOut::default());
        let nb = &stats.lanes[0];
        assert_eq!((nb.vehicles, nb.measured), (3, 2));
        assert_eq!(nb.mean_speed_kmh, Some(50.0));
        assert_eq!(nb.over_limit_share, Some(0.5));
        // A lane without a limit has no share over it.
        assert_eq!(stats.lanes[1].over_limit_share, None);
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["lines"][0]["in"], 2);
        assert_eq!(json["lines"][0]["byClass"]["truck"]["out"], 1);
        assert_eq!(json["lanes"][0]["meanSpeedKmh"], 50.0);
        // Taken: the next window starts empty.
        let next = w.take(&layout);
        assert_eq!(next.lines[0].total, InOut::default());
        assert_eq!(next.lanes[0].vehicles, 0);
    }
}
