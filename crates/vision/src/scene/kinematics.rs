//! Motion on the ground plane, in metres and seconds: a constant-velocity Kalman filter per
//! track over the ground positions the calibration gives for the track's foot point (the
//! bottom centre of its box, where it touches the road).
//!
//! Perspective is what makes pixel kinematics lie: one pixel of jitter in a far car's box is
//! metres on the road. So each measurement's noise is the pixel noise of a box edge carried
//! through the homography's local Jacobian: far measurements count for little and the filter
//! leans on its motion model there, near ones are trusted. Speeds and accelerations come out of
//! the filter, never from differencing two raw positions. Pure and synchronous.

use nalgebra::{Matrix2, Matrix2x4, Matrix4, Matrix4x2, Vector2, Vector4};

use super::layout::Point;
use crate::calibration::Calibration;
use crate::geometry::BBox;

/// Sightings before a speed is reported (the first one only places the track).
pub const MIN_UPDATES: u32 = 3;
/// A gap longer than this (seconds) restarts the filter: the motion model cannot bridge it.
pub const MAX_GAP: f64 = 6.0;
/// Speeds kept for the deceleration window.
const SPEED_SAMPLES: usize = 16;
/// A measurement this far from the prediction (squared Mahalanobis distance; 2 degrees of
/// freedom, about 1 in 10^6 by chance) is another object: the tracker swapped identities, or
/// the box jumped. The caller starts a new filter.
pub const GATE: f64 = 28.0;
/// Faster than this (m/s, 250 km/h) between two sightings is not one road user.
pub const MAX_SPEED: f64 = 70.0;
/// Speeds further apart than this (s) do not make one deceleration: a gap in the sightings
/// hides what happened in between.
pub const MAX_SPEED_GAP: f64 = 1.0;

/// How a class of object moves and how well its box edge is seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionModel {
    /// Standard deviation of the unmodelled acceleration, m/s^2 (white-noise acceleration).
    pub accel_sigma: f64,
    /// Noise of the foot point, as a share of the box height (bottom edges jitter with the box).
    pub foot_noise_share: f64,
    /// Smallest foot-point noise, pixels.
    pub foot_noise_min_px: f64,
}

impl MotionModel {
    /// Road vehicles: hard braking is 4-8 m/s^2, so a few m/s^2 of process noise lets the
    /// filter follow it within a second.
    pub const VEHICLE: Self = Self {
        accel_sigma: 3.0,
        foot_noise_share: 0.04,
        foot_noise_min_px: 1.5,
    };
    /// People walk at 1-2 m/s and change pace gently.
    pub const PERSON: Self = Self {
        accel_sigma: 1.0,
        foot_noise_share: 0.03,
        foot_noise_min_px: 1.5,
    };
}

/// The foot point of a box: bottom centre, pixels.
pub fn foot(b: &BBox) -> Point {
    [f64::from(b.x1 + b.x2) / 2.0, f64::from(b.y2)]
}

/// One track's filter.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTrack {
    model: MotionModel,
    /// State `[x, y, vx, vy]`, metres and m/s.
    x: Vector4<f64>,
    p: Matrix4<f64>,
    t: f64,
    updates: u32,
    /// Seconds between the last two sightings.
    last_gap: f64,
    /// Recent `(t, speed m/s)` after each update from the [`MIN_UPDATES`]th, oldest first.
    speeds: std::collections::VecDeque<(f64, f64)>,
}

/// The measurement noise of ground point `g` seen at pixel `px` with pixel noise `sigma_px`:
/// the pixel covariance through the homography's Jacobian at that pixel.
fn measurement_noise(
    cal: &Calibration,
    px: Point,
    g: Point,
    sigma_px: f64,
) -> Option<Matrix2<f64>> {
    let gx = cal.ground([px[0] + 1.0, px[1]])?;
    let gy = cal.ground([px[0], px[1] + 1.0])?;
    let j = Matrix2::new(gx[0] - g[0], gy[0] - g[0], gx[1] - g[1], gy[1] - g[1]);
    Some(j * j.transpose() * (sigma_px * sigma_px))
}

impl GroundTrack {
    /// A filter started by a sighting of box `b` at time `t`; `None` when its foot point has
    /// no ground position (above the horizon).
    pub fn start(cal: &Calibration, model: MotionModel, t: f64, b: &BBox) -> Option<Self> {
        let px = foot(b);
        let g = cal.ground(px)?;
        let r = measurement_noise(cal, px, g, sigma_px(model, b))?;
        let mut p = Matrix4::zeros();
        p.fixed_view_mut::<2, 2>(0, 0).copy_from(&r);
        Some(Self {
            model,
            x: Vector4::new(g[0], g[1], 0.0, 0.0),
            p,
            t,
            updates: 1,
            last_gap: 0.0,
            speeds: std::collections::VecDeque::new(),
        })
    }

    /// Takes the sighting of box `b` at time `t` (later than the last); false when it could not
    /// (above the horizon, a gap too long, or a position the motion cannot explain: the caller
    /// starts over).
    pub fn update(&mut self, cal: &Calibration, t: f64, b: &BBox) -> bool {
        let dt = t - self.t;
        if dt <= 0.0 || dt > MAX_GAP {
            return false;
        }
        let px = foot(b);
        let Some(g) = cal.ground(px) else {
            return false;
        };
        let Some(r) = measurement_noise(cal, px, g, sigma_px(self.model, b)) else {
            return false;
        };
        if self.updates == 1 {
            return self.second_sighting(t, dt, g, r);
        }
        // Predict.
        let f = Matrix4::new(
            1.0, 0.0, dt, 0.0, //
            0.0, 1.0, 0.0, dt, //
            0.0, 0.0, 1.0, 0.0, //
            0.0, 0.0, 0.0, 1.0,
        );
        let q = self.model.accel_sigma.powi(2);
        let (q11, q13, q33) = (dt.powi(4) / 4.0 * q, dt.powi(3) / 2.0 * q, dt * dt * q);
        let qm = Matrix4::new(
            q11, 0.0, q13, 0.0, //
            0.0, q11, 0.0, q13, //
            q13, 0.0, q33, 0.0, //
            0.0, q13, 0.0, q33,
        );
        let x = f * self.x;
        let p = f * self.p * f.transpose() + qm;
        // Update with the position.
        let h = Matrix2x4::new(1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        let s = h * p * h.transpose() + r;
        let Some(s_inv) = s.try_inverse() else {
            return false;
        };
        let k: Matrix4x2<f64> = p * h.transpose() * s_inv;
        let innovation = Vector2::new(g[0], g[1]) - h * x;
        if (innovation.transpose() * s_inv * innovation)[(0, 0)] > GATE {
            return false;
        }
        self.x = x + k * innovation;
        self.p = (Matrix4::identity() - k * h) * p;
        self.t = t;
        self.last_gap = dt;
        self.updates += 1;
        if self.updates >= MIN_UPDATES {
            if self.speeds.len() == SPEED_SAMPLES {
                self.speeds.pop_front();
            }
            self.speeds.push_back((t, self.speed_ms()));
        }
        true
    }

    /// The second sighting starts the velocity from the two positions (two-point
    /// initialisation): a filter that starts at rest needs several sightings to believe a fast
    /// car, and under-reads it meanwhile. A displacement no road user makes is refused.
    fn second_sighting(&mut self, t: f64, dt: f64, g: Point, r: Matrix2<f64>) -> bool {
        let v = [(g[0] - self.x[0]) / dt, (g[1] - self.x[1]) / dt];
        if v[0].hypot(v[1]) > MAX_SPEED {
            return false;
        }
        let first = self.p.fixed_view::<2, 2>(0, 0).into_owned();
        let mut p = Matrix4::zeros();
        p.fixed_view_mut::<2, 2>(0, 0).copy_from(&r);
        p.fixed_view_mut::<2, 2>(0, 2).copy_from(&(r / dt));
        p.fixed_view_mut::<2, 2>(2, 0).copy_from(&(r / dt));
        p.fixed_view_mut::<2, 2>(2, 2)
            .copy_from(&((r + first) / (dt * dt)));
        self.x = Vector4::new(g[0], g[1], v[0], v[1]);
        self.p = p;
        self.t = t;
        self.last_gap = dt;
        self.updates = 2;
        true
    }

    /// Smoothed ground position, metres.
    pub fn position(&self) -> Point {
        [self.x[0], self.x[1]]
    }

    /// Smoothed velocity, m/s, once the track was seen [`MIN_UPDATES`] times, the last two at
    /// most [`MAX_SPEED_GAP`] apart (sparser, the tracker's identities are not sure enough to
    /// speak of a speed).
    pub fn velocity(&self) -> Option<Point> {
        (self.updates >= MIN_UPDATES && self.last_gap <= MAX_SPEED_GAP)
            .then(|| [self.x[2], self.x[3]])
    }

    /// Smoothed speed, m/s, whatever the gap between sightings (enough to tell standing from
    /// moving; not a measured speed).
    pub fn speed_any_gap(&self) -> f64 {
        self.speed_ms()
    }

    fn speed_ms(&self) -> f64 {
        self.x[2].hypot(self.x[3])
    }

    /// Smoothed speed, m/s, once known.
    pub fn speed(&self) -> Option<f64> {
        self.velocity().map(|v| v[0].hypot(v[1]))
    }

    /// Speed in km/h, once known.
    pub fn speed_kmh(&self) -> Option<f64> {
        self.speed().map(|v| v * 3.6)
    }

    /// Sightings taken.
    pub fn updates(&self) -> u32 {
        self.updates
    }

    /// The mean deceleration (m/s^2, positive when slowing) over at least `window` seconds
    /// ending now, with the speed at the window's start: `None` until that much is known from
    /// sightings no more than [`MAX_SPEED_GAP`] apart.
    pub fn deceleration(&self, window: f64) -> Option<(f64, f64)> {
        let now = *self.speeds.back()?;
        let mut later = now.0;
        for &(t, v) in self.speeds.iter().rev().skip(1) {
            if later - t > MAX_SPEED_GAP {
                return None;
            }
            if now.0 - t >= window {
                return Some(((v - now.1) / (now.0 - t), v));
            }
            later = t;
        }
        None
    }
}

fn sigma_px(model: MotionModel, b: &BBox) -> f64 {
    (model.foot_noise_share * f64::from(b.height())).max(model.foot_noise_min_px)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A road seen from a pole: ground Y (metres ahead) 5..80 maps to image rows 700..250,
    /// ground X (metres across) -7..7 narrows with distance; four exact points define it.
    fn road() -> Calibration {
        let image = [
            [240.0, 700.0],
            [1040.0, 700.0],
            [700.0, 250.0],
            [580.0, 250.0],
        ];
        let ground = [[-7.0, 5.0], [7.0, 5.0], [7.0, 80.0], [-7.0, 80.0]];
        Calibration::fit(&image, &ground, 1.0).unwrap()
    }

    /// The box of a car (1.5 m tall, 1.8 m wide) whose foot point is at ground `g`.
    fn car_at(cal: &Calibration, g: Point) -> BBox {
        let [x, y] = cal.image(g).unwrap();
        let [xr, _] = cal.image([g[0] + 1.8, g[1]]).unwrap();
        let w = (xr - x) as f32;
        let h = 0.8 * w;
        BBox::new(
            x as f32 - w / 2.0,
            y as f32 - h,
            x as f32 + w / 2.0,
            y as f32,
        )
    }

    /// A small deterministic jitter in pixels, roughly uniform in [-a, a].
    fn jitter(k: u32, a: f32) -> f32 {
        let s = (k.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32;
        (2.0 * s - 1.0) * a
    }

    fn drive(cal: &Calibration, dt: f64, n: u32, pos: impl Fn(f64) -> Point) -> GroundTrack {
        let b0 = car_at(cal, pos(0.0));
        let mut track = GroundTrack::start(cal, MotionModel::VEHICLE, 0.0, &b0).unwrap();
        for k in 1..n {
            let t = f64::from(k) * dt;
            let b = car_at(cal, pos(t)).shift(jitter(k, 1.0), jitter(k + 99, 1.0));
            assert!(track.update(cal, t, &b));
        }
        track
    }

    #[test]
    fn a_steady_car_measures_its_speed_near_and_far() {
        let cal = road();
        // 50 km/h away from the camera, from 10 m to about 60 m, sampled every 0.4 s.
        let v = 50.0 / 3.6;
        let track = drive(&cal, 0.4, 10, |t| [1.5, 10.0 + v * t]);
        let kmh = track.speed_kmh().unwrap();
        assert!((kmh - 50.0).abs() < 5.0, "measured {kmh:.1} km/h");
        let far = drive(&cal, 0.4, 10, |t| [-1.5, 70.0 - v * t]);
        let kmh = far.speed_kmh().unwrap();
        assert!(
            (kmh - 50.0).abs() < 7.5,
            "far and approaching: {kmh:.1} km/h"
        );
    }

    #[test]
    fn a_parked_car_stays_still_despite_jitter_far_away() {
        let cal = road();
        let track = drive(&cal, 0.4, 20, |_| [3.0, 70.0]);
        let kmh = track.speed_kmh().unwrap();
        // One pixel of jitter at 70 m is about a metre: raw differences would say 10 km/h.
        assert!(kmh < 6.0, "a parked car at 70 m moves at {kmh:.1} km/h");
        let (decel, _) = track.deceleration(1.0).unwrap();
        assert!(decel.abs() < 2.0, "{decel}");
    }

    #[test]
    fn hard_braking_shows_as_deceleration() {
        let cal = road();
        // 60 km/h for 2 s, then braking at 6 m/s^2 to a stop.
        let v0 = 60.0 / 3.6;
        let pos = |t: f64| {
            let brake = t - 2.0;
            if brake <= 0.0 {
                [1.5, 10.0 + v0 * t]
            } else {
                let tb = brake.min(v0 / 6.0);
                [1.5, 10.0 + v0 * 2.0 + v0 * tb - 3.0 * tb * tb]
            }
        };
        let cruising = drive(&cal, 0.4, 6, pos);
        let (decel, _) = cruising.deceleration(1.0).unwrap();
        assert!(decel < 2.0, "cruising decelerates at {decel:.1}");
        let braking = drive(&cal, 0.4, 10, pos);
        let (decel, from) = braking.deceleration(1.0).unwrap();
        assert!(decel > 3.5, "braking at 6 m/s^2 measured {decel:.1}");
        assert!(from * 3.6 > 35.0, "from {:.0} km/h", from * 3.6);
    }

    #[test]
    fn a_position_the_motion_cannot_explain_is_refused() {
        let cal = road();
        // 50 km/h, then the box is suddenly 30 m further (another car took over the track).
        let v = 50.0 / 3.6;
        let mut track = drive(&cal, 0.3, 8, |t| [1.5, 20.0 + v * t]);
        let jump = car_at(&cal, [1.5, 20.0 + v * 2.4 + 30.0]);
        assert!(!track.update(&cal, 2.4, &jump));
        let near = car_at(&cal, [1.5, 20.0 + v * 2.4]);
        assert!(
            track.update(&cal, 2.4, &near),
            "the refused one changed nothing"
        );
    }

    #[test]
    fn a_deceleration_needs_sightings_close_together() {
        let cal = road();
        let v0 = 60.0 / 3.6;
        // Seen every 0.3 s until 1.2 s, then not until 4.2 s, stopped.
        let mut track = drive(&cal, 0.3, 5, |t| [1.5, 10.0 + v0 * t]);
        let stop = 10.0 + v0 * 1.4;
        assert!(track.update(&cal, 4.2, &car_at(&cal, [1.5, stop])));
        assert_eq!(
            track.deceleration(1.0),
            None,
            "3 s unseen: not a measured braking"
        );
    }

    #[test]
    fn speed_waits_for_enough_sightings_and_long_gaps_restart() {
        let cal = road();
        let b = car_at(&cal, [0.0, 20.0]);
        let mut track = GroundTrack::start(&cal, MotionModel::VEHICLE, 0.0, &b).unwrap();
        assert_eq!(track.speed(), None);
        assert!(track.update(&cal, 0.5, &car_at(&cal, [0.0, 25.0])));
        assert_eq!(track.speed(), None, "two sightings are not enough");
        assert!(track.update(&cal, 1.0, &car_at(&cal, [0.0, 30.0])));
        assert!(track.speed().is_some());
        assert!(!track.update(&cal, 1.0 + MAX_GAP + 0.1, &b));
        assert!(!track.update(&cal, 0.5, &b), "time going back");
        let sky = BBox::new(600.0, 10.0, 650.0, 50.0);
        assert!(GroundTrack::start(&cal, MotionModel::VEHICLE, 0.0, &sky).is_none());
    }
}
