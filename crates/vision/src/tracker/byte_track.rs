//! ByteTrack (Zhang et al., 2022) as a plain synchronous `update()`: every detection of a frame
//! goes in, each gets the id of the track it continues. High-score detections are associated
//! first with every track, then the low-score ones keep the remaining tracks alive without
//! starting new ones; a new track is confirmed by its second sighting (on the very first frame
//! at once); a lost track is kept for `max_lost_frames` and then dropped. Association is IoU of
//! the Kalman-predicted box with one gate for both stages, as in Roboflow's clean-room
//! `trackers` implementation our parity test compares with (the original code also fuses the
//! score into the first stage and has a separate stage for new tracks). Steps are analysed
//! frames, whatever time lies between.
//!
//! Two adaptations for sparse sampling (an analysed frame every 1.8 s, where a car can move
//! several of its own lengths), both off in [`ByteTrackConfig::default`], which is plain
//! ByteTrack:
//! - `motion_steps` scales the Kalman process noise to the reference frames one step stands
//!   for ([`kalman::Noise::for_steps`]), so a track's velocity is learned from two sightings;
//! - `max_jump` adds a last stage after ByteTrack's two: tracks and confident detections that
//!   are still unmatched (no box overlap left to go by) are matched by centre distance from the
//!   predicted position, gated at `max_jump` box diagonals per step since the track was last
//!   seen, same class and a plausible size change only.

use super::assignment::assign;
use super::kalman::{self, Covariance, State};
use crate::geometry::BBox;

/// Tracker parameters (ByteTrack's names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteTrackConfig {
    /// Detections at or above this score are "high" and may start tracks.
    pub track_thresh: f32,
    /// Detections below this are ignored entirely.
    pub low_thresh: f32,
    /// Largest cost `1 - IoU` of a match (0.8: an IoU of at least 0.2).
    pub match_thresh: f32,
    /// Analysed frames a lost track is remembered.
    pub max_lost_frames: u32,
    /// Reference frames (of the video ByteTrack's noise is tuned for) per step; 1 = ByteTrack.
    pub motion_steps: f64,
    /// Gate of the centre-distance stage in box diagonals per step; 0 turns the stage off.
    pub max_jump: f32,
}

impl Default for ByteTrackConfig {
    fn default() -> Self {
        Self {
            track_thresh: 0.5,
            low_thresh: 0.1,
            match_thresh: 0.8,
            max_lost_frames: 30,
            motion_steps: 1.0,
            max_jump: 0.0,
        }
    }
}

/// One detection given to the tracker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackInput {
    /// Box in frame pixels.
    pub bbox: BBox,
    /// Detector confidence.
    pub score: f32,
    /// Class id: the distance stage never links different classes.
    pub class_id: usize,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    mean: State,
    cov: Covariance,
    /// Seen twice (or on the first frame): has a public id.
    confirmed: bool,
    last_frame: u64,
    class_id: usize,
    /// Box of the first sighting (the detection that started the track).
    first: BBox,
}

fn to_xyah(b: &BBox) -> kalman::Measurement {
    let (cx, cy) = b.center();
    let h = f64::from(b.height()).max(1e-3);
    [f64::from(cx), f64::from(cy), f64::from(b.width()) / h, h]
}

impl Track {
    fn bbox(&self) -> BBox {
        let [x, y, a, h, ..] = self.mean;
        let w = a * h;
        BBox::from_center(x as f32, y as f32, w as f32, h as f32)
    }
}

/// The ByteTrack tracker.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    cfg: ByteTrackConfig,
    noise: kalman::Noise,
    frame: u64,
    next_id: u64,
    /// Every live track: confirmed (seen this frame or lost) and new ones.
    tracks: Vec<Track>,
    /// Tracks confirmed by the last update (their second sighting), with the box of their
    /// first sighting on the frame before.
    confirmed_now: Vec<(u64, BBox)>,
}

/// Cost matrix `1 - IoU` of the predicted track boxes, tracks by detections.
fn iou_cost(tracks: &[Track], dets: &[(usize, TrackInput)]) -> Vec<f32> {
    let mut cost = Vec::with_capacity(tracks.len() * dets.len());
    for t in tracks {
        let tb = t.bbox();
        cost.extend(dets.iter().map(|(_, d)| 1.0 - tb.iou(&d.bbox)));
    }
    cost
}

/// Cost matrix of the distance stage: centre distance over the gate (`max_jump` diagonals of
/// the predicted box per step since last seen); pairs of different classes or implausible size
/// change cost more than any threshold.
fn jump_cost(
    tracks: &[Track],
    dets: &[(usize, TrackInput)],
    max_jump: f32,
    frame: u64,
) -> Vec<f32> {
    let mut cost = Vec::with_capacity(tracks.len() * dets.len());
    for t in tracks {
        let tb = t.bbox();
        let (tx, ty) = tb.center();
        let steps = (frame - t.last_frame).max(1) as f32;
        let gate = max_jump * tb.width().hypot(tb.height()) * steps;
        // Where the track was last seen, and its velocity per step (the prediction carried
        // it `steps` steps on).
        let (vx, vy) = (t.mean[4] as f32, t.mean[5] as f32);
        let (lx, ly) = (tx - vx * steps, ty - vy * steps);
        let diagonal = tb.width().hypot(tb.height());
        let speed = vx.hypot(vy);
        for (_, d) in dets {
            let ratio = d.bbox.height() / tb.height().max(1e-3);
            if d.class_id != t.class_id || !(0.5..=2.0).contains(&ratio) || gate <= 0.0 {
                cost.push(f32::MAX);
                continue;
            }
            let (dx, dy) = d.bbox.center();
            // A moving track does not jump back behind where it was last seen: that is
            // another object (a new one entering where this one came from).
            let back = ((dx - lx) * vx + (dy - ly) * vy) / speed.max(1e-3);
            if speed > 0.1 * diagonal && back < -diagonal {
                cost.push(f32::MAX);
                continue;
            }
            cost.push((dx - tx).hypot(dy - ty) / gate);
        }
    }
    cost
}

/// How an association stage scores a track against a detection.
#[derive(Debug, Clone, Copy)]
enum Cost {
    /// `1 - IoU`.
    Iou,
    /// Centre distance over the motion gate.
    Jump { max_jump: f32, frame: u64 },
}

/// A detection with its index in the frame.
type Indexed = (usize, TrackInput);

/// One association stage: matches `tracks` to `dets` (cost above `thresh` never matches), hands
/// each matched pair to `apply`, and returns the tracks and detections left over.
fn associate(
    tracks: Vec<Track>,
    dets: &[(usize, TrackInput)],
    cost: Cost,
    thresh: f32,
    apply: &mut impl FnMut(Track, (usize, TrackInput)),
) -> (Vec<Track>, Vec<(usize, TrackInput)>) {
    let matrix = match cost {
        Cost::Iou => iou_cost(&tracks, dets),
        Cost::Jump { max_jump, frame } => jump_cost(&tracks, dets, max_jump, frame),
    };
    let a = assign(&matrix, tracks.len(), dets.len(), thresh);
    let mut left: Vec<Option<Track>> = tracks.into_iter().map(Some).collect();
    for &(t, d) in &a.matches {
        if let Some(track) = left[t].take() {
            apply(track, dets[d]);
        }
    }
    let dets_left = a.unmatched_cols.iter().map(|&d| dets[d]).collect();
    (left.into_iter().flatten().collect(), dets_left)
}

impl ByteTracker {
    /// A tracker with no tracks.
    pub fn new(cfg: ByteTrackConfig) -> Self {
        Self {
            cfg,
            noise: kalman::Noise::for_steps(cfg.motion_steps),
            frame: 0,
            next_id: 1,
            tracks: Vec::new(),
            confirmed_now: Vec::new(),
        }
    }

    /// The tracks the last [`ByteTracker::update`] confirmed (seen for the second time), each
    /// with the box of its first, unconfirmed sighting on the analysed frame before: where the
    /// object was when the tracker first saw it, for measures that need its path from the
    /// start (a count line crossed between the two sightings).
    pub fn confirmed_now(&self) -> &[(u64, BBox)] {
        &self.confirmed_now
    }

    /// Number of live (tracked or lost) tracks.
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Takes one frame's detections; returns, aligned with them, the track id of each
    /// detection that belongs to a confirmed track.
    pub fn update(&mut self, dets: &[TrackInput]) -> Vec<Option<u64>> {
        self.frame += 1;
        let frame = self.frame;
        let mut ids = vec![None; dets.len()];
        let (high, low): (Vec<Indexed>, Vec<Indexed>) = dets
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, d)| d.score > self.cfg.low_thresh)
            .partition(|(_, d)| d.score >= self.cfg.track_thresh);

        let mut pool = std::mem::take(&mut self.tracks);
        for t in &mut pool {
            kalman::predict(&mut t.mean, &mut t.cov, &self.noise);
        }
        let mut matched: Vec<Track> = Vec::new();
        let confirmed_now = &mut self.confirmed_now;
        confirmed_now.clear();
        let mut apply = |mut t: Track, (i, d): (usize, TrackInput)| {
            kalman::update(&mut t.mean, &mut t.cov, to_xyah(&d.bbox));
            if !t.confirmed {
                confirmed_now.push((t.id, t.first));
            }
            t.confirmed = true;
            t.last_frame = frame;
            t.class_id = d.class_id;
            ids[i] = Some(t.id);
            matched.push(t);
        };
        let gate = self.cfg.match_thresh;
        // Stage 1: every track (confirmed, lost or new) against the confident detections.
        let (pool, high_left) = associate(pool, &high, Cost::Iou, gate, &mut apply);
        // Stage 2: the tracks left against the unsure detections, which start nothing.
        let (pool, _) = associate(pool, &low, Cost::Iou, gate, &mut apply);
        // Stage 3 (sparse sampling): what is left, by distance from the prediction.
        let (pool, new_dets) = if self.cfg.max_jump > 0.0 && !high_left.is_empty() {
            let jump = Cost::Jump {
                max_jump: self.cfg.max_jump,
                frame,
            };
            associate(pool, &high_left, jump, 1.0, &mut apply)
        } else {
            (pool, high_left)
        };

        // Unmatched: a new track that missed its second sighting is dropped; a confirmed one
        // is kept (lost) for `max_lost_frames`.
        let max_lost = u64::from(self.cfg.max_lost_frames);
        let lost = pool
            .into_iter()
            .filter(|t| t.confirmed && frame - t.last_frame <= max_lost);

        // New tracks from unmatched confident detections, confirmed by their second sighting
        // (or at once on the very first frame).
        let mut fresh: Vec<Track> = Vec::new();
        for &(i, det) in &new_dets {
            if det.score < self.cfg.track_thresh + 0.1 {
                continue;
            }
            let (mean, cov) = kalman::initiate(to_xyah(&det.bbox), &self.noise);
            let id = self.next_id;
            self.next_id += 1;
            let confirmed = frame == 1;
            if confirmed {
                ids[i] = Some(id);
            }
            fresh.push(Track {
                id,
                mean,
                cov,
                confirmed,
                last_frame: frame,
                class_id: det.class_id,
                first: det.bbox,
            });
        }
        matched.extend(lost);
        matched.extend(fresh);
        self.tracks = matched;
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, score: f32) -> TrackInput {
        TrackInput {
            bbox: BBox::new(x, y, x + 40.0, y + 80.0),
            score,
            class_id: 0,
        }
    }

    fn sparse() -> ByteTrackConfig {
        ByteTrackConfig {
            motion_steps: 54.0,
            max_jump: 3.0,
            ..Default::default()
        }
    }

    #[test]
    fn a_confirmed_track_reports_its_first_sighting_once() {
        let mut t = ByteTracker::new(ByteTrackConfig::default());
        t.update(&[det(0.0, 0.0, 0.9)]);
        assert_eq!(
            t.confirmed_now().len(),
            0,
            "first-frame tracks are confirmed as born"
        );
        t.update(&[det(0.0, 0.0, 0.9), det(500.0, 0.0, 0.9)]);
        assert!(
            t.confirmed_now().is_empty(),
            "a new track waits for its second sighting"
        );
        let ids = t.update(&[det(0.0, 0.0, 0.9), det(505.0, 2.0, 0.9)]);
        let id = ids[1].expect("confirmed");
        assert_eq!(t.confirmed_now(), &[(id, det(500.0, 0.0, 0.9).bbox)]);
        t.update(&[det(0.0, 0.0, 0.9), det(510.0, 4.0, 0.9)]);
        assert!(t.confirmed_now().is_empty(), "reported once");
    }

    #[test]
    fn sparse_sampling_keeps_a_fast_object_that_plain_bytetrack_loses() {
        // A 40x80 box moving 120 px (1.3 diagonals) per analysed frame never overlaps itself.
        let run = |cfg: ByteTrackConfig| -> Vec<Vec<Option<u64>>> {
            let mut t = ByteTracker::new(cfg);
            (0..10)
                .map(|step| t.update(&[det(120.0 * step as f32, 100.0, 0.9)]))
                .collect()
        };
        let plain = run(ByteTrackConfig::default());
        assert!(plain[1..].iter().all(|ids| ids[0] != Some(1)), "{plain:?}");
        let adapted = run(sparse());
        assert!(
            adapted.iter().all(|ids| ids == &vec![Some(1)]),
            "{adapted:?}"
        );
    }

    #[test]
    fn the_distance_stage_never_links_another_class_or_a_far_jump() {
        let mut t = ByteTracker::new(sparse());
        t.update(&[det(0.0, 0.0, 0.9)]);
        let other_class = TrackInput {
            class_id: 2,
            ..det(100.0, 0.0, 0.9)
        };
        assert_eq!(t.update(&[other_class]), vec![None]);
        let mut t = ByteTracker::new(sparse());
        t.update(&[det(0.0, 0.0, 0.9)]);
        // 3 diagonals of a 40x80 box is 268 px: 300 px away is a new object.
        assert_eq!(t.update(&[det(300.0, 0.0, 0.9)]), vec![None]);
    }

    #[test]
    fn a_lost_moving_track_is_not_given_to_an_object_behind_it() {
        // A car moving right 60 px a step, then out of sight (lost) for 6 steps; a car of the
        // same class appears far behind where the first was last seen: within the gate of a
        // track lost that long, but the first car does not drive backwards.
        let mut t = ByteTracker::new(sparse());
        for step in 0..4 {
            assert_eq!(
                t.update(&[det(300.0 + 60.0 * step as f32, 0.0, 0.9)]),
                vec![Some(1)]
            );
        }
        for _ in 0..6 {
            t.update(&[]);
        }
        assert_ne!(t.update(&[det(20.0, 0.0, 0.9)]), vec![Some(1)]);
        // Ahead of it, where it was going, it is the same car.
        let mut t = ByteTracker::new(sparse());
        for step in 0..4 {
            t.update(&[det(300.0 + 60.0 * step as f32, 0.0, 0.9)]);
        }
        for _ in 0..2 {
            t.update(&[]);
        }
        assert_eq!(t.update(&[det(660.0, 0.0, 0.9)]), vec![Some(1)]);
    }

    #[test]
    fn sparse_sampling_keeps_two_fast_crossing_objects_apart() {
        let mut t = ByteTracker::new(sparse());
        let mut first = None;
        for step in 0..12 {
            let s = step as f32;
            // Left-to-right and right-to-left, 100 px per step, on lines 200 px apart.
            let ids = t.update(&[
                det(100.0 * s, 0.0, 0.9),
                det(1100.0 - 100.0 * s, 200.0, 0.9),
            ]);
            match &first {
                None => first = Some(ids),
                Some(f) => assert_eq!(&ids, f, "step {step}"),
            }
        }
    }

    #[test]
    fn a_moving_object_keeps_its_id() {
        let mut t = ByteTracker::new(ByteTrackConfig::default());
        let first = t.update(&[det(0.0, 100.0, 0.9)]);
        assert_eq!(first, vec![Some(1)], "confirmed at once on the first frame");
        for step in 1..20 {
            let ids = t.update(&[det(8.0 * step as f32, 100.0, 0.9)]);
            assert_eq!(ids, vec![Some(1)], "step {step}");
        }
    }

    #[test]
    fn a_new_object_is_confirmed_on_its_second_sighting() {
        let mut t = ByteTracker::new(ByteTrackConfig::default());
        t.update(&[det(0.0, 0.0, 0.9)]);
        let ids = t.update(&[det(2.0, 0.0, 0.9), det(300.0, 0.0, 0.9)]);
        assert_eq!(ids, vec![Some(1), None]);
        let ids = t.update(&[det(4.0, 0.0, 0.9), det(302.0, 0.0, 0.9)]);
        assert_eq!(ids, vec![Some(1), Some(2)]);
    }

    #[test]
    fn crossing_objects_keep_their_ids() {
        // Two people walking towards each other along the same line, passing at step 10.
        let mut t = ByteTracker::new(ByteTrackConfig::default());
        let mut first_ids = None;
        for step in 0..21 {
            let s = step as f32;
            let ids = t.update(&[
                det(10.0 * s, 100.0, 0.9),
                det(200.0 - 10.0 * s, 104.0, 0.85),
            ]);
            if step == 0 {
                first_ids = Some(ids.clone());
            } else if !(8..=12).contains(&step) {
                // Away from the crossing, identities match the start.
                assert_eq!(Some(ids.clone()), first_ids, "step {step}");
            }
        }
    }

    #[test]
    fn a_short_occlusion_keeps_the_id_and_a_long_one_does_not() {
        let cfg = ByteTrackConfig {
            max_lost_frames: 3,
            ..Default::default()
        };
        let mut t = ByteTracker::new(cfg);
        for step in 0..5 {
            t.update(&[det(5.0 * step as f32, 0.0, 0.9)]);
        }
        for _ in 0..2 {
            assert!(t.update(&[]).is_empty());
        }
        // Reappears where the motion model expects it (x = 5 * 7).
        assert_eq!(t.update(&[det(35.0, 0.0, 0.9)]), vec![Some(1)]);
        for _ in 0..5 {
            t.update(&[]);
        }
        assert_eq!(t.live_tracks(), 0, "dropped after 3 lost frames");
        t.update(&[det(60.0, 0.0, 0.9)]);
        assert_eq!(t.update(&[det(61.0, 0.0, 0.9)]), vec![Some(2)]);
    }

    #[test]
    fn low_score_detections_extend_tracks_but_never_start_them() {
        let mut t = ByteTracker::new(ByteTrackConfig::default());
        t.update(&[det(0.0, 0.0, 0.9)]);
        // The object's score drops (partly hidden): still the same track.
        assert_eq!(t.update(&[det(3.0, 0.0, 0.3)]), vec![Some(1)]);
        assert_eq!(t.update(&[det(6.0, 0.0, 0.2)]), vec![Some(1)]);
        // A lone low-score detection elsewhere starts nothing.
        assert_eq!(
            t.update(&[det(9.0, 0.0, 0.9), det(400.0, 0.0, 0.3)]),
            vec![Some(1), None]
        );
        assert_eq!(
            t.update(&[det(12.0, 0.0, 0.9), det(400.0, 0.0, 0.3)]),
            vec![Some(1), None]
        );
        assert_eq!(t.live_tracks(), 1);
    }
}
