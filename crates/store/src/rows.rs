//! The rows the store keeps and returns. Rows written are ABSOLUTE values for one process run
//! (the store adds its run id): writing a row again replaces it, so a retried write never counts
//! twice. Rows read back are summed over runs and rolled up into the bins asked for.

use serde::Serialize;

use crate::histogram::SpeedHistogram;

/// The way a track crossed a counting line: from the left of its arrow to the right is `in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Left of the arrow to its right.
    In,
    /// Right of the arrow to its left.
    Out,
}

impl Direction {
    /// `in` or `out`, as stored and served.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }

    /// The direction named `in` or `out`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "in" => Some(Self::In),
            "out" => Some(Self::Out),
            _ => None,
        }
    }
}

/// Line crossings of one class in one direction during one bin, so far in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    /// The camera.
    pub camera_id: i64,
    /// Start of the bin, unix seconds UTC.
    pub bin_start: i64,
    /// The counting line's name.
    pub line: String,
    /// The crossing's direction.
    pub direction: Direction,
    /// The object class (`car`, `truck`, ...).
    pub class: String,
    /// Crossings in the bin (absolute, not an increment).
    pub count: u64,
}

/// Trips of one class from one approach zone to another during one bin, so far in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRow {
    /// The camera.
    pub camera_id: i64,
    /// Start of the bin, unix seconds UTC.
    pub bin_start: i64,
    /// The zone the trip entered from.
    pub from: String,
    /// The zone the trip left by.
    pub to: String,
    /// The object class.
    pub class: String,
    /// Trips in the bin (absolute).
    pub count: u64,
}

/// Speeds measured on one lane for one class during one bin, so far in this run.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedRow {
    /// The camera.
    pub camera_id: i64,
    /// Start of the bin, unix seconds UTC.
    pub bin_start: i64,
    /// The lane's name.
    pub lane: String,
    /// The object class.
    pub class: String,
    /// The speeds (absolute).
    pub histogram: SpeedHistogram,
}

/// A danger event (an alert), kept with its measures and a snapshot. Written again with the same
/// `uid` (e.g. when it ends) it replaces the stored one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// Unique id of the event.
    pub uid: String,
    /// The camera.
    pub camera_id: i64,
    /// What happened (`tailgating`, `illegal_stop`, ...).
    pub kind: String,
    /// Severity (`low`, `medium`, `high`).
    pub level: String,
    /// When it started, unix milliseconds.
    pub started_at_ms: i64,
    /// When it ended, unix milliseconds; `None` while it lasts.
    pub ended_at_ms: Option<i64>,
    /// The tracks involved.
    pub track_ids: Vec<u64>,
    /// Its measures (headway, time to collision, ...), a JSON object.
    pub measures: serde_json::Value,
    /// A sentence for people.
    pub description: String,
    /// A picture of it (e.g. a file name or a data URL), if kept.
    pub snapshot: Option<String>,
}

/// Rows to write together, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Line crossings.
    pub counts: Vec<CountRow>,
    /// Zone-to-zone trips.
    pub movements: Vec<MovementRow>,
    /// Lane speeds.
    pub speeds: Vec<SpeedRow>,
    /// Danger events.
    pub events: Vec<EventRow>,
}

impl Batch {
    /// The number of rows of all kinds.
    pub fn len(&self) -> usize {
        self.counts.len() + self.movements.len() + self.speeds.len() + self.events.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Crossings of one line, direction and class in one bin, summed over runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountBin {
    /// Start of the bin, unix seconds UTC.
    pub bin_start: i64,
    /// The counting line.
    pub line: String,
    /// The direction.
    pub direction: Direction,
    /// The object class.
    pub class: String,
    /// Crossings.
    pub count: u64,
}

/// Trips from one zone to another of one class in one bin, summed over runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MovementBin {
    /// Start of the bin, unix seconds UTC.
    pub bin_start: i64,
    /// The zone entered from.
    pub from: String,
    /// The zone left by.
    pub to: String,
    /// The object class.
    pub class: String,
    /// Trips.
    pub count: u64,
}

/// Speeds on one lane of one class in one bin, over all runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeedBin {
    /// Start of the bin, unix seconds UTC.
    pub bin_start: i64,
    /// The lane.
    pub lane: String,
    /// The object class.
    pub class: String,
    /// Speeds measured.
    pub count: u64,
    /// Their mean, km/h.
    pub mean_kmh: f64,
    /// Their median, km/h (within the histogram's 1 km/h buckets).
    pub median_kmh: f64,
    /// Their 85th percentile, km/h.
    pub p85_kmh: f64,
    /// The share (0 to 1) over the lane's speed limit.
    pub over_limit_share: f64,
}

/// Which events to list; `None` fields do not filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this camera's.
    pub camera_id: Option<i64>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// Only of this level.
    pub level: Option<String>,
    /// Only those started at or after this time, unix seconds.
    pub since: Option<i64>,
    /// Only those started before this time, unix seconds.
    pub until: Option<i64>,
    /// At most this many, newest first.
    pub limit: u32,
}

impl Default for EventFilter {
    /// All events, the newest 100.
    fn default() -> Self {
        Self {
            camera_id: None,
            kind: None,
            level: None,
            since: None,
            until: None,
            limit: 100,
        }
    }
}
