//! One camera's measures in bins of the wall clock (`measurement.bin_seconds`, aligned to the
//! unix epoch): line crossings per line, direction and class; movements per approach pair and
//! class; lane passes per lane and class with their speeds. It serves the current bin's figures
//! for `trafficStats` and hands the bins that changed to the database writer as absolute rows.
//! Pure: times come in, nothing is read from a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use protocol::CameraId;
use protocol::detection::{LaneStat, LineStat};
use store::{Batch, CountRow, Direction, MovementRow, SpeedHistogram, SpeedRow};
use vision::scene::layout::Layout;
use vision::scene::measure::{self, LaneNow, Measure, MeasureKind};

/// A bin is kept this long (seconds) after it ended, for measures completed late (a track's
/// movement and lane pass are known only when the track is forgotten).
pub const LATE_SECONDS: i64 = 120;

/// The measures of one bin.
#[derive(Debug, Clone, Default, PartialEq)]
struct Bin {
    counts: BTreeMap<(Arc<str>, Direction, String), u64>,
    movements: BTreeMap<(Arc<str>, Arc<str>, String), u64>,
    /// Lane passes per lane and class: all of them, and the speeds of those measured.
    passes: BTreeMap<(Arc<str>, String), (u64, SpeedHistogram)>,
}

/// One camera's bins.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    bin_seconds: i64,
    bins: BTreeMap<i64, Bin>,
    /// Bins changed since the last [`Tally::take_changed`].
    changed: BTreeSet<i64>,
}

/// What a measure added to, for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// A crossing of `line` in `direction` by `class`.
    Crossing {
        /// The line.
        line: Arc<str>,
        /// Which way.
        direction: Direction,
        /// The class.
        class: String,
    },
    /// A measured speed in `lane`.
    Speed {
        /// The lane.
        lane: Arc<str>,
        /// km/h.
        kmh: f64,
    },
    /// Nothing a metric counts.
    Other,
    /// Nothing: the measure's bin is gone (it came more than [`LATE_SECONDS`] after its bin
    /// ended, e.g. the clock jumped).
    TooLate,
}

impl Tally {
    /// An empty tally of `bin_seconds` bins.
    pub fn new(bin_seconds: u32) -> Self {
        Self {
            bin_seconds: i64::from(bin_seconds.max(1)),
            bins: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }

    /// The start (unix seconds) of the bin holding unix time `at`.
    pub fn bin_start(&self, at: f64) -> i64 {
        (at.floor() as i64).div_euclid(self.bin_seconds) * self.bin_seconds
    }

    /// Adds `m`, which happened at unix time `at`, once `now` (unix seconds).
    pub fn add(&mut self, at: f64, now: f64, m: &Measure) -> Added {
        let start = self.bin_start(at);
        if start + self.bin_seconds + LATE_SECONDS < now.floor() as i64 {
            return Added::TooLate;
        }
        let bin = self.bins.entry(start).or_default();
        self.changed.insert(start);
        match &m.kind {
            MeasureKind::Crossing { line, direction } => {
                let direction = match direction {
                    measure::Direction::In => Direction::In,
                    measure::Direction::Out => Direction::Out,
                };
                *bin.counts
                    .entry((Arc::clone(line), direction, m.class.clone()))
                    .or_default() += 1;
                Added::Crossing {
                    line: Arc::clone(line),
                    direction,
                    class: m.class.clone(),
                }
            }
            MeasureKind::Movement { from, to } => {
                *bin.movements
                    .entry((Arc::clone(from), Arc::clone(to), m.class.clone()))
                    .or_default() += 1;
                Added::Other
            }
            MeasureKind::LanePass {
                lane,
                speed_kmh,
                over_limit,
            } => {
                let (passes, speeds) = bin
                    .passes
                    .entry((Arc::clone(lane), m.class.clone()))
                    .or_default();
                *passes += 1;
                match speed_kmh {
                    Some(kmh) => {
                        speeds.add(*kmh, over_limit.unwrap_or(false));
                        Added::Speed {
                            lane: Arc::clone(lane),
                            kmh: *kmh,
                        }
                    }
                    None => Added::Other,
                }
            }
        }
    }

    /// `trafficStats.lines` and `.lanes` at unix time `now`: every line and lane of `layout`
    /// with the current bin's figures, and each lane's queue from `lanes_now`.
    pub fn current(
        &self,
        now: f64,
        layout: &Layout,
        lanes_now: &[LaneNow],
    ) -> (Vec<LineStat>, Vec<LaneStat>) {
        let bin = self.bins.get(&self.bin_start(now));
        let lines = layout
            .lines
            .iter()
            .map(|l| {
                let sum = |d: Direction| {
                    bin.map_or(0, |b| {
                        b.counts
                            .iter()
                            .filter(|((line, dir, _), _)| *line == l.name && *dir == d)
                            .map(|(_, n)| n)
                            .sum()
                    })
                };
                LineStat {
                    name: l.name.to_string(),
                    in_: sum(Direction::In),
                    out: sum(Direction::Out),
                }
            })
            .collect();
        let lanes = layout
            .lanes
            .iter()
            .map(|l| {
                let mut vehicles = 0;
                let mut speeds = SpeedHistogram::new();
                for ((lane, _), (n, h)) in bin.iter().flat_map(|b| &b.passes) {
                    if *lane == l.name {
                        vehicles += n;
                        speeds.merge(h);
                    }
                }
                LaneStat {
                    name: l.name.to_string(),
                    vehicles,
                    mean_speed_kmh: speeds.mean(),
                    queue_length_m: lanes_now
                        .iter()
                        .find(|n| n.name == l.name)
                        .and_then(|n| n.queue_length_m),
                }
            })
            .collect();
        (lines, lanes)
    }

    /// Whether every bin held has ended by unix time `now` (nothing measured from `now` on
    /// can go into one of them).
    pub fn ended_by(&self, now: f64) -> bool {
        let current = self.bin_start(now);
        self.bins.keys().all(|&start| start < current)
    }

    /// The rows of every bin changed since the last call (absolute values of this run), and
    /// forgets bins that ended more than [`LATE_SECONDS`] before unix time `now`.
    pub fn take_changed(&mut self, camera: CameraId, now: f64) -> Batch {
        let mut batch = Batch::default();
        for start in std::mem::take(&mut self.changed) {
            let Some(bin) = self.bins.get(&start) else {
                continue;
            };
            for ((line, direction, class), &count) in &bin.counts {
                batch.counts.push(CountRow {
                    camera_id: camera,
                    bin_start: start,
                    line: line.to_string(),
                    direction: *direction,
                    class: class.clone(),
                    count,
                });
            }
            for ((from, to, class), &count) in &bin.movements {
                batch.movements.push(MovementRow {
                    camera_id: camera,
                    bin_start: start,
                    from: from.to_string(),
                    to: to.to_string(),
                    class: class.clone(),
                    count,
                });
            }
            for ((lane, class), (_, histogram)) in &bin.passes {
                if histogram.count() == 0 {
                    continue;
                }
                batch.speeds.push(SpeedRow {
                    camera_id: camera,
                    bin_start: start,
                    lane: lane.to_string(),
                    class: class.clone(),
                    histogram: histogram.clone(),
                });
            }
        }
        let now = now.floor() as i64;
        self.bins
            .retain(|&start, _| start + self.bin_seconds + LATE_SECONDS >= now);
        batch
    }

    /// Totals over every bin still kept: crossings per (line, direction, class).
    pub fn crossings(&self) -> BTreeMap<(Arc<str>, Direction, String), u64> {
        let mut out = BTreeMap::new();
        for bin in self.bins.values() {
            for (k, n) in &bin.counts {
                *out.entry(k.clone()).or_default() += n;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision::scene::layout::{LaneSpec, LineSpec, SceneSpec};

    fn crossing(line: &str, direction: measure::Direction, class: &str) -> Measure {
        Measure {
            t: 0.0,
            track_id: 1,
            class: class.into(),
            kind: MeasureKind::Crossing {
                line: line.into(),
                direction,
            },
        }
    }

    fn pass(lane: &str, speed: Option<f64>) -> Measure {
        Measure {
            t: 0.0,
            track_id: 2,
            class: "car".into(),
            kind: MeasureKind::LanePass {
                lane: lane.into(),
                speed_kmh: speed,
                over_limit: speed.map(|v| v > 50.0),
            },
        }
    }

    fn layout() -> Layout {
        SceneSpec {
            lines: vec![LineSpec {
                name: "a".into(),
                points: [[0.0, 0.0], [10.0, 0.0]],
            }],
            lanes: vec![LaneSpec {
                name: "l1".into(),
                polygon: vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]],
                direction: None,
                speed_limit_kmh: None,
            }],
            ..SceneSpec::default()
        }
        .compile(5.0)
        .expect("valid")
    }

    #[test]
    fn measures_land_in_their_wall_clock_bin_and_rows_are_absolute() {
        let mut t = Tally::new(900);
        let (in_, out) = (measure::Direction::In, measure::Direction::Out);
        assert_eq!(t.bin_start(1799.9), 900);
        t.add(1000.0, 1000.0, &crossing("a", in_, "car"));
        t.add(1001.0, 1001.0, &crossing("a", in_, "car"));
        t.add(1002.0, 1002.0, &crossing("a", out, "truck"));
        t.add(1805.0, 1805.0, &crossing("a", in_, "car"));
        let batch = t.take_changed(7, 1805.0);
        let rows: Vec<(i64, &str, u64)> = batch
            .counts
            .iter()
            .map(|r| (r.bin_start, r.class.as_str(), r.count))
            .collect();
        assert_eq!(
            rows,
            vec![(900, "car", 2), (900, "truck", 1), (1800, "car", 1)]
        );
        assert!(batch.counts.iter().all(|r| r.camera_id == 7));
        // Nothing changed: nothing to write. One more crossing: its whole bin again.
        assert!(t.take_changed(7, 1806.0).is_empty());
        t.add(1810.0, 1810.0, &crossing("a", in_, "car"));
        let batch = t.take_changed(7, 1810.0);
        assert_eq!(batch.counts.len(), 1);
        assert_eq!(batch.counts[0].count, 2);
    }

    #[test]
    fn a_late_measure_goes_to_its_bin_while_kept_and_is_refused_after() {
        let mut t = Tally::new(60);
        t.add(10.0, 10.0, &crossing("a", measure::Direction::In, "car"));
        t.take_changed(1, 70.0);
        // 30 s after the bin ended: still kept, still counted there.
        let added = t.add(59.0, 90.0, &crossing("a", measure::Direction::In, "car"));
        assert!(matches!(added, Added::Crossing { .. }));
        assert_eq!(t.take_changed(1, 90.0).counts[0].count, 2);
        // Long after: the bin was forgotten (its rows written); a measure for it is refused,
        // never written as a smaller absolute count.
        t.take_changed(1, 400.0);
        assert_eq!(
            t.add(59.0, 400.0, &crossing("a", measure::Direction::In, "car")),
            Added::TooLate
        );
        assert!(t.take_changed(1, 400.0).is_empty());
    }

    #[test]
    fn current_lists_every_line_and_lane_of_the_scene() {
        let mut t = Tally::new(900);
        let l = layout();
        t.add(5.0, 5.0, &crossing("a", measure::Direction::Out, "car"));
        t.add(6.0, 6.0, &pass("l1", Some(40.0)));
        t.add(7.0, 7.0, &pass("l1", Some(60.0)));
        t.add(8.0, 8.0, &pass("l1", None));
        let now = [LaneNow {
            name: "l1".into(),
            vehicles: 2,
            queue_length_m: Some(12.5),
        }];
        let (lines, lanes) = t.current(10.0, &l, &now);
        assert_eq!(
            lines,
            vec![LineStat {
                name: "a".into(),
                in_: 0,
                out: 1
            }]
        );
        assert_eq!(lanes[0].vehicles, 3);
        assert_eq!(lanes[0].mean_speed_kmh, Some(50.0));
        assert_eq!(lanes[0].queue_length_m, Some(12.5));
        let speeds = t.take_changed(1, 10.0).speeds;
        assert_eq!(speeds.len(), 1);
        assert_eq!(speeds[0].histogram.count(), 2);
        // The next bin starts at zero.
        let (lines, lanes) = t.current(905.0, &l, &[]);
        assert_eq!((lines[0].in_, lines[0].out, lanes[0].vehicles), (0, 0, 0));
    }
}
