//! What the scene remembers about each track: its recent boxes with their stream times, and the
//! kinematics derived from them (velocity and speed in pixels per second, heading, speed in box
//! heights per second). Box height is the unit of the rules because it is roughly the same
//! physical size (a car, a person: 1.5-1.8 m) wherever the object is in a perspective view.

use std::collections::VecDeque;

use super::kinematics::GroundTrack;
use crate::geometry::BBox;

/// Samples kept per track (about a minute at one analysed frame per 1.8 s).
pub const MAX_SAMPLES: usize = 32;

/// One sighting of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Stream time in seconds.
    pub t: f64,
    /// Box in frame pixels.
    pub bbox: BBox,
}

/// The bounded history of one track.
#[derive(Debug, Clone)]
pub struct TrackHistory {
    /// Track id.
    pub id: u64,
    /// Class name of the latest detection.
    pub class: String,
    /// Detector confidence of the latest detection.
    pub confidence: f32,
    /// Stream time of the first sighting.
    pub first_seen: f64,
    /// Recent sightings, oldest first, at most [`MAX_SAMPLES`].
    pub samples: VecDeque<Sample>,
    /// Speed (box heights per second) before the latest sighting, if it was known.
    pub previous_speed: Option<f32>,
    /// Highest speed seen (box heights per second).
    pub max_speed: f32,
    /// Since when the track has been stationary, if it is.
    pub stationary_since: Option<f64>,
    /// Consecutive sightings moving against the learned flow.
    pub against_flow: u32,
    /// Motion on the ground, when the scene is calibrated.
    pub ground: Option<GroundTrack>,
    /// The lane (index in the layout) of the latest sighting.
    pub lane: Option<usize>,
}

impl TrackHistory {
    /// A track seen for the first time.
    pub fn new(id: u64, class: &str, confidence: f32, t: f64, bbox: BBox) -> Self {
        Self {
            id,
            class: class.to_string(),
            confidence,
            first_seen: t,
            samples: VecDeque::from([Sample { t, bbox }]),
            previous_speed: None,
            max_speed: 0.0,
            stationary_since: None,
            against_flow: 0,
            ground: None,
            lane: None,
        }
    }

    /// Adds a sighting (ignored unless later than the last one) and updates the derived state;
    /// `stationary_speed` is the speed (box heights per second) below which it stands still.
    pub fn push(
        &mut self,
        t: f64,
        bbox: BBox,
        class: &str,
        confidence: f32,
        stationary_speed: f32,
    ) {
        if t <= self.last().t {
            return;
        }
        self.previous_speed = self.speed();
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample { t, bbox });
        if class != self.class {
            class.clone_into(&mut self.class);
        }
        self.confidence = confidence;
        if let Some(speed) = self.speed() {
            self.max_speed = self.max_speed.max(speed);
            if speed < stationary_speed {
                // Stationary since the previous sighting, where it stopped at the latest.
                let since = self.samples[self.samples.len() - 2].t;
                self.stationary_since.get_or_insert(since);
            } else {
                self.stationary_since = None;
            }
        }
    }

    /// The latest sighting.
    pub fn last(&self) -> &Sample {
        // `samples` is never empty: created with one, and only full deques drop one.
        &self.samples[self.samples.len() - 1]
    }

    /// Velocity in pixels per second between the last two sightings.
    pub fn velocity(&self) -> Option<(f32, f32)> {
        let n = self.samples.len();
        if n < 2 {
            return None;
        }
        let (a, b) = (&self.samples[n - 2], &self.samples[n - 1]);
        let dt = (b.t - a.t) as f32;
        let (ax, ay) = a.bbox.center();
        let (bx, by) = b.bbox.center();
        Some(((bx - ax) / dt, (by - ay) / dt))
    }

    /// Speed in box heights per second (perspective-independent), if known.
    pub fn speed(&self) -> Option<f32> {
        let (vx, vy) = self.velocity()?;
        let n = self.samples.len();
        let h = 0.5 * (self.samples[n - 2].bbox.height() + self.samples[n - 1].bbox.height());
        Some(vx.hypot(vy) / h.max(1.0))
    }

    /// Direction of travel as a unit vector, if moving at all.
    pub fn direction(&self) -> Option<(f32, f32)> {
        let (vx, vy) = self.velocity()?;
        let norm = vx.hypot(vy);
        (norm > 1e-3).then(|| (vx / norm, vy / norm))
    }

    /// Heading in degrees, 0 = right, 90 = down the image.
    pub fn heading_degrees(&self) -> Option<f32> {
        let (vx, vy) = self.velocity()?;
        Some(vy.atan2(vx).to_degrees().rem_euclid(360.0))
    }

    /// Seconds stationary at time `t`.
    pub fn stationary_for(&self, t: f64) -> f64 {
        self.stationary_since.map_or(0.0, |s| t - s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, h: f32) -> BBox {
        BBox::new(x, 0.0, x + 2.0 * h, h)
    }

    #[test]
    fn kinematics_from_the_last_two_sightings() {
        let mut h = TrackHistory::new(1, "car", 0.9, 0.0, b(0.0, 50.0));
        assert_eq!(h.speed(), None);
        h.push(2.0, b(200.0, 50.0), "car", 0.8, 0.3);
        assert_eq!(h.velocity(), Some((100.0, 0.0)));
        assert_eq!(h.speed(), Some(2.0));
        assert_eq!(h.heading_degrees(), Some(0.0));
        assert_eq!(h.direction(), Some((1.0, 0.0)));
        assert_eq!(h.previous_speed, None);
        h.push(4.0, b(200.0, 50.0), "car", 0.8, 0.3);
        assert_eq!(h.previous_speed, Some(2.0));
        assert_eq!(h.speed(), Some(0.0));
        assert_eq!(h.stationary_since, Some(2.0));
        assert_eq!(h.stationary_for(10.0), 8.0);
        assert_eq!(h.max_speed, 2.0);
    }

    #[test]
    fn history_is_bounded_and_ignores_time_going_back() {
        let mut h = TrackHistory::new(1, "person", 0.9, 0.0, b(0.0, 80.0));
        for i in 1..100 {
            h.push(f64::from(i), b(i as f32, 80.0), "person", 0.9, 0.3);
        }
        assert_eq!(h.samples.len(), MAX_SAMPLES);
        h.push(50.0, b(0.0, 80.0), "person", 0.9, 0.3);
        assert_eq!(h.last().t, 99.0);
        assert_eq!(h.stationary_since, Some(0.0), "1 px/s is standing still");
    }
}
