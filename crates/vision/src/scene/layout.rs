//! A camera's scene geometry (SPEC section 9): its calibration to the road plane, its lanes with
//! their direction and speed limit, its zones (crosswalk, no stopping, exclude, approach, region
//! of interest) and its count lines, all in pixels of the camera's native frame.
//!
//! [`SceneSpec`] is the shape users write (`scenes/<id>.yaml`, `cameras.yaml`, the scene API);
//! [`SceneSpec::compile`] checks every field and turns it into a [`Layout`], the form the scene
//! judges with (polygons with their bounding boxes, the homography, lane directions on the
//! ground). A spec that fails a check gives one [`LayoutError`] naming the field, so a caller
//! keeps its last good layout. Pure: no I/O.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::calibration::Calibration;

/// A point: pixels `[x, y]` in the image, metres `[X, Y]` on the ground.
pub type Point = [f64; 2];

/// The most lanes, zones or lines a scene may have (each is a metric label later).
pub const MAX_ITEMS: usize = 64;
/// The most points of one polygon or calibration.
pub const MAX_POINTS: usize = 64;
/// The longest name.
pub const MAX_NAME: usize = 64;
/// Bounds of `detect_interval`, seconds.
pub const DETECT_INTERVAL_RANGE: (f64, f64) = (0.1, 60.0);

/// A scene as written by a user. Every part is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneSpec {
    /// Image to ground plane; without it no metric measure exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSpec>,
    /// Seconds between analysed frames for this camera (default: `stream.frame_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_interval: Option<f64>,
    /// Lanes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<LaneSpec>,
    /// Zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneSpec>,
    /// Count lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineSpec>,
}

/// Point pairs for the homography.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSpec {
    /// At least four points on the road surface, pixels.
    pub image: Vec<Point>,
    /// The same points on the ground, metres (any local origin).
    pub ground: Vec<Point>,
}

/// One lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneSpec {
    /// Name (unique among the lanes).
    pub name: String,
    /// Outline, pixels, at least three points.
    pub polygon: Vec<Point>,
    /// Direction of travel: an arrow from the first point to the second, pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<[Point; 2]>,
    /// Posted speed limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_limit_kmh: Option<f64>,
}

/// What a zone means to the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Pedestrians cross here: post-encroachment time is judged.
    Crosswalk,
    /// Stopping here is an illegal stop.
    NoStopping,
    /// Objects here are ignored (parking bays, a bus stop, a reflection).
    Exclude,
    /// An approach of a junction (turning movements).
    Approach,
    /// The region the camera watches; outside lanes in it, stopping is an illegal stop.
    Roi,
}

impl ZoneKind {
    /// The kind's name in scene files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crosswalk => "crosswalk",
            Self::NoStopping => "no_stopping",
            Self::Exclude => "exclude",
            Self::Approach => "approach",
            Self::Roi => "roi",
        }
    }
}

/// One zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Name (unique among the zones).
    pub name: String,
    /// What it means.
    pub kind: ZoneKind,
    /// Outline, pixels, at least three points.
    pub polygon: Vec<Point>,
}

/// One count line: crossing from the left of the arrow (first to second point) to its right
/// is `in`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSpec {
    /// Name (unique among the lines).
    pub name: String,
    /// The two end points, pixels.
    pub points: [Point; 2],
}

/// A scene field that failed its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scene field `{field}`: {message}")]
pub struct LayoutError {
    /// Path of the field, e.g. `lanes[1].polygon`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, LayoutError> {
    Err(LayoutError {
        field: field.into(),
        message: message.into(),
    })
}

/// A closed polygon in image pixels with its bounding box.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
    min: Point,
    max: Point,
}

impl Polygon {
    /// A polygon from its corners (at least three, checked by the caller).
    pub fn new(points: Vec<Point>) -> Self {
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for p in &points {
            for k in 0..2 {
                min[k] = min[k].min(p[k]);
                max[k] = max[k].max(p[k]);
            }
        }
        Self { points, min, max }
    }

    /// The corners.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Whether `p` is inside (even-odd rule; points on an edge may go either way).
    pub fn contains(&self, p: Point) -> bool {
        if p[0] < self.min[0] || p[0] > self.max[0] || p[1] < self.min[1] || p[1] > self.max[1] {
            return false;
        }
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let a = self.points[i];
            let b = self.points[(i + n - 1) % n];
            if (a[1] > p[1]) != (b[1] > p[1]) {
                let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
                if p[0] < x {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Signed area (shoelace), pixels squared.
    pub fn area(&self) -> f64 {
        let n = self.points.len();
        0.5 * (0..n)
            .map(|i| {
                let (a, b) = (self.points[i], self.points[(i + 1) % n]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum::<f64>()
    }
}

/// A compiled lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// Name.
    pub name: Arc<str>,
    /// Outline.
    pub polygon: Polygon,
    /// Direction of travel in the image, a unit vector.
    pub direction_px: Option<Point>,
    /// Direction of travel on the ground, a unit vector (with a calibration).
    pub direction_ground: Option<Point>,
    /// Posted speed limit, km/h.
    pub speed_limit_kmh: Option<f64>,
}

/// A compiled zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Name.
    pub name: Arc<str>,
    /// What it means.
    pub kind: ZoneKind,
    /// Outline.
    pub polygon: Polygon,
}

/// A compiled count line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Name.
    pub name: Arc<str>,
    /// First end, pixels.
    pub a: Point,
    /// Second end, pixels.
    pub b: Point,
}

/// A checked scene, ready to judge with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    /// What it was compiled from (what the scene API returns).
    pub spec: SceneSpec,
    /// The homography, when calibrated.
    pub calibration: Option<Calibration>,
    /// Lanes, in the spec's order.
    pub lanes: Vec<Lane>,
    /// Zones, in the spec's order.
    pub zones: Vec<Zone>,
    /// Count lines, in the spec's order.
    pub lines: Vec<Line>,
}

impl Layout {
    /// Whether metric measures exist.
    pub fn calibrated(&self) -> bool {
        self.calibration.is_some()
    }

    /// The ground position (metres) of image pixel `p`, when calibrated and below the horizon.
    pub fn ground(&self, p: Point) -> Option<Point> {
        self.calibration.as_ref()?.ground(p)
    }

    /// Index of the first lane that holds `p`.
    pub fn lane_at(&self, p: Point) -> Option<usize> {
        self.lanes.iter().position(|l| l.polygon.contains(p))
    }

    /// Index of the first zone that holds `p`, other than `exclude` zones.
    pub fn zone_at(&self, p: Point) -> Option<usize> {
        self.zones
            .iter()
            .position(|z| z.kind != ZoneKind::Exclude && z.polygon.contains(p))
    }

    /// Whether `p` is in a zone of kind `kind`.
    pub fn in_zone(&self, p: Point, kind: ZoneKind) -> bool {
        self.zones
            .iter()
            .any(|z| z.kind == kind && z.polygon.contains(p))
    }

    /// Whether `p` is watched: in an `roi` zone, or anywhere when the scene has none (the rules
    /// judge only watched objects).
    pub fn watched(&self, p: Point) -> bool {
        !self.zones.iter().any(|z| z.kind == ZoneKind::Roi) || self.in_zone(p, ZoneKind::Roi)
    }

    /// Whether `p` is in an `exclude` zone (objects there are ignored).
    pub fn excluded(&self, p: Point) -> bool {
        self.in_zone(p, ZoneKind::Exclude)
    }
}

impl SceneSpec {
    /// Checks every field and compiles the scene; a calibration whose reprojection error is
    /// above `max_error_px` pixels is refused.
    pub fn compile(&self, max_error_px: f64) -> Result<Layout, LayoutError> {
        let calibration = match &self.calibration {
            None => None,
            Some(c) => Some(compile_calibration(c, max_error_px)?),
        };
        if let Some(dt) = self.detect_interval {
            let (lo, hi) = DETECT_INTERVAL_RANGE;
            if !(lo..=hi).contains(&dt) {
                return fail(
                    "detect_interval",
                    format!("must be between {lo} and {hi} seconds, got {dt}"),
                );
            }
        }
        let lanes = self
            .lanes
            .iter()
            .enumerate()
            .map(|(i, l)| compile_lane(i, l, calibration.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let zones = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let field = format!("zones[{i}]");
                Ok(Zone {
                    name: check_name(&field, &z.name)?,
                    kind: z.kind,
                    polygon: check_polygon(&format!("{field}.polygon"), &z.polygon)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lines = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let field = format!("lines[{i}]");
                let [a, b] = l.points;
                check_finite(&format!("{field}.points"), &l.points)?;
                if distance(a, b) < 1.0 {
                    return fail(format!("{field}.points"), "the two points are the same");
                }
                Ok(Line {
                    name: check_name(&field, &l.name)?,
                    a,
                    b,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (what, names) in [
            ("lanes", lanes.iter().map(|l| &l.name).collect::<Vec<_>>()),
            ("zones", zones.iter().map(|z| &z.name).collect()),
            ("lines", lines.iter().map(|l| &l.name).collect()),
        ] {
            if names.len() > MAX_ITEMS {
                return fail(what, format!("at most {MAX_ITEMS}, got {}", names.len()));
            }
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    return fail(
                        format!("{what}[{i}].name"),
                        format!("`{name}` is used twice"),
                    );
                }
            }
        }
        Ok(Layout {
            spec: self.clone(),
            calibration,
            lanes,
            zones,
            lines,
        })
    }
}

fn distance(a: Point, b: Point) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

fn compile_calibration(c: &CalibrationSpec, max_error_px: f64) -> Result<Calibration, LayoutError> {
    if c.image.len() > MAX_POINTS {
        return fail(
            "calibration.image",
            format!("at most {MAX_POINTS} points, got {}", c.image.len()),
        );
    }
    Calibration::fit(&c.image, &c.ground, max_error_px).map_err(|e| LayoutError {
        field: "calibration".into(),
        message: e.to_string(),
    })
}

fn compile_lane(i: usize, l: &LaneSpec, cal: Option<&Calibration>) -> Result<Lane, LayoutError> {
    let field = format!("lanes[{i}]");
    let name = check_name(&field, &l.name)?;
    let polygon = check_polygon(&format!("{field}.polygon"), &l.polygon)?;
    let (mut direction_px, mut direction_ground) = (None, None);
    if let Some([a, b]) = l.direction {
        let at = format!("{field}.direction");
        check_finite(&at, &[a, b])?;
        let len = distance(a, b);
        if len < 1.0 {
            return fail(at, "the arrow's two points are the same");
        }
        direction_px = Some([(b[0] - a[0]) / len, (b[1] - a[1]) / len]);
        if let Some(cal) = cal {
            let (Some(ga), Some(gb)) = (cal.ground(a), cal.ground(b)) else {
                return fail(at, "the arrow reaches above the calibration's horizon");
            };
            let glen = distance(ga, gb);
            if glen < 1e-6 {
                return fail(at, "the arrow has no length on the ground");
            }
            direction_ground = Some([(gb[0] - ga[0]) / glen, (gb[1] - ga[1]) / glen]);
        }
    }
    if let Some(limit) = l.speed_limit_kmh
        && !(limit > 0.0 && limit <= 300.0)
    {
        return fail(
            format!("{field}.speed_limit_kmh"),
            format!("must be above 0 and at most 300, got {limit}"),
        );
    }
    Ok(Lane {
        name,
        polygon,
        direction_px,
        direction_ground,
        speed_limit_kmh: l.speed_limit_kmh,
    })
}

/// Names become labels and file content: short, printable, no surprises.
fn check_name(field: &str, name: &str) -> Result<Arc<str>, LayoutError> {
    let at = format!("{field}.name");
    if name.is_empty() || name.len() > MAX_NAME {
        return fail(at, format!("must be 1 to {MAX_NAME} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
    {
        return fail(
            at,
            format!("`{name}`: only letters, digits, space, '-', '_' and '.'"),
        );
    }
    Ok(Arc::from(name))
}

fn check_finite(field: &str, points: &[Point]) -> Result<(), LayoutError> {
    match points
        .iter()
        .position(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        Some(k) => fail(field, format!("point {k} is not a finite number")),
        None => Ok(()),
    }
}

fn check_polygon(field: &str, points: &[Point]) -> Result<Polygon, LayoutError> {
    if points.len() < 3 || points.len() > MAX_POINTS {
        return fail(
            field,
            format!("needs 3 to {MAX_POINTS} points, got {}", points.len()),
        );
    }
    check_finite(field, points)?;
    let polygon = Polygon::new(points.to_vec());
    if polygon.area().abs() < 1.0 {
        return fail(field, "encloses no area (points on one line?)");
    }
    Ok(polygon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f64, y: f64, s: f64) -> Vec<Point> {
        vec![[x, y], [x + s, y], [x + s, y + s], [x, y + s]]
    }

    fn spec() -> SceneSpec {
        SceneSpec {
            calibration: Some(CalibrationSpec {
                // A top-down view at 10 px per metre, origin at the top-left.
                image: vec![[0.0, 0.0], [400.0, 0.0], [400.0, 300.0], [0.0, 300.0]],
                ground: vec![[0.0, 0.0], [40.0, 0.0], [40.0, 30.0], [0.0, 30.0]],
            }),
            detect_interval: Some(0.4),
            lanes: vec![LaneSpec {
                name: "nb-1".into(),
                polygon: square(100.0, 0.0, 100.0),
                direction: Some([[150.0, 90.0], [150.0, 10.0]]),
                speed_limit_kmh: Some(50.0),
            }],
            zones: vec![
                ZoneSpec {
                    name: "bus stop".into(),
                    kind: ZoneKind::Exclude,
                    polygon: square(0.0, 0.0, 50.0),
                },
                ZoneSpec {
                    name: "x".into(),
                    kind: ZoneKind::Crosswalk,
                    polygon: square(100.0, 40.0, 20.0),
                },
            ],
            lines: vec![LineSpec {
                name: "stop".into(),
                points: [[100.0, 50.0], [200.0, 50.0]],
            }],
        }
    }

    #[test]
    fn a_scene_compiles_and_answers_where_things_are() {
        let l = spec().compile(2.0).unwrap();
        assert!(l.calibrated());
        let g = l.ground([150.0, 100.0]).unwrap();
        assert!(
            (g[0] - 15.0).abs() < 1e-9 && (g[1] - 10.0).abs() < 1e-9,
            "{g:?}"
        );
        assert_eq!(l.lane_at([150.0, 50.0]), Some(0));
        assert_eq!(l.lane_at([250.0, 50.0]), None);
        assert_eq!(l.lanes[0].direction_px, Some([0.0, -1.0]));
        let d = l.lanes[0].direction_ground.unwrap();
        assert!(d[0].abs() < 1e-9 && (d[1] + 1.0).abs() < 1e-9, "{d:?}");
        assert!(l.excluded([10.0, 10.0]));
        assert!(!l.excluded([60.0, 10.0]));
        assert_eq!(l.zone_at([10.0, 10.0]), None, "exclude zones are not zones");
        assert_eq!(l.zone_at([110.0, 50.0]), Some(1));
        assert!(l.in_zone([110.0, 50.0], ZoneKind::Crosswalk));
        assert!(
            l.watched([390.0, 290.0]),
            "no roi zone: everything is watched"
        );
        let mut with_roi = spec();
        with_roi.zones.push(ZoneSpec {
            name: "road".into(),
            kind: ZoneKind::Roi,
            polygon: square(100.0, 0.0, 100.0),
        });
        let l = with_roi.compile(2.0).unwrap();
        assert!(l.watched([150.0, 50.0]) && !l.watched([390.0, 290.0]));
    }

    #[test]
    fn the_yaml_shape_round_trips_and_refuses_unknown_fields() {
        let text = serde_json::to_string(&spec()).unwrap();
        let back: SceneSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec());
        let e = serde_json::from_str::<SceneSpec>(r#"{"lanez": []}"#).unwrap_err();
        assert!(e.to_string().contains("lanez"), "{e}");
        let e = serde_json::from_str::<SceneSpec>(
            r#"{"zones": [{"name": "a", "kind": "parking", "polygon": []}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("parking"), "{e}");
        let empty: SceneSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.compile(2.0).unwrap().lanes.len(), 0);
    }

    #[test]
    fn concave_polygons_hold_only_their_inside() {
        // An L shape: the notch at the top right is outside.
        let p = Polygon::new(vec![
            [0.0, 0.0],
            [10.0, 0.0],
            [10.0, 20.0],
            [20.0, 20.0],
            [20.0, 30.0],
            [0.0, 30.0],
        ]);
        assert!(p.contains([5.0, 5.0]));
        assert!(p.contains([15.0, 25.0]));
        assert!(!p.contains([15.0, 5.0]));
        assert!(!p.contains([25.0, 25.0]));
        assert_eq!(p.area(), 400.0);
    }

    fn refused(edit: impl FnOnce(&mut SceneSpec)) -> LayoutError {
        let mut s = spec();
        edit(&mut s);
        s.compile(2.0).unwrap_err()
    }

    #[test]
    fn each_bad_field_is_named() {
        let e = refused(|s| s.lanes[0].polygon.truncate(2));
        assert_eq!(e.field, "lanes[0].polygon");
        assert!(e.to_string().contains("needs 3"), "{e}");
        let e = refused(|s| s.zones[1].polygon = vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]);
        assert_eq!(e.field, "zones[1].polygon");
        let e = refused(|s| s.lines[0].points[1] = s.lines[0].points[0]);
        assert_eq!(e.field, "lines[0].points");
        let e = refused(|s| s.zones[1].name = "bus stop".into());
        assert_eq!(e.field, "zones[1].name");
        assert!(e.message.contains("twice"), "{e}");
        let e = refused(|s| s.lanes[0].name = "a\"b".into());
        assert_eq!(e.field, "lanes[0].name");
        let e = refused(|s| s.detect_interval = Some(0.01));
        assert_eq!(e.field, "detect_interval");
        let e = refused(|s| s.lanes[0].speed_limit_kmh = Some(f64::NAN));
        assert_eq!(e.field, "lanes[0].speed_limit_kmh");
        let e = refused(|s| s.lanes[0].direction = Some([[1.0, 1.0], [1.0, 1.0]]));
        assert_eq!(e.field, "lanes[0].direction");
        let e = refused(|s| s.lanes[0].polygon[1][0] = f64::INFINITY);
        assert!(e.message.contains("point 1"), "{e}");
        let e = refused(|s| {
            let c = s.calibration.as_mut().unwrap();
            c.image.push([200.0, 150.0]);
            c.ground.push([25.0, 15.0]); // 5 m off: 50 px at this scale.
        });
        assert_eq!(e.field, "calibration");
        assert!(e.message.contains("reprojection error"), "{e}");
        assert_eq!(
            e.to_string(),
            format!("scene field `calibration`: {}", e.message)
        );
    }
}
