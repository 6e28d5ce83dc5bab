//! The constant-velocity Kalman filter of ByteTrack (and DeepSORT) in `xyah` space: box centre
//! `x, y`, aspect ratio `a = w / h`, height `h`, and their velocities. Noise scales with the box
//! height, so near and far objects are equally certain relative to their size.
//!
//! ByteTrack's noise weights are tuned for one step per frame of a 30 fps video. One analysed
//! frame here may stand for many such frames (1.8 s is 54 of them), so [`Noise::for_steps`]
//! scales the process noise to `n` reference frames per step: position noise random-walks over
//! `n` frames (x sqrt(n)) and velocity, measured per step, is both `n` times larger and
//! random-walks over `n` frames (x n sqrt(n)). The measurement noise does not depend on the
//! interval. With `n = 1` this is exactly ByteTrack's filter.

/// Position noise weight relative to height (ByteTrack).
const STD_POSITION: f64 = 1.0 / 20.0;
/// Velocity noise weight relative to height (ByteTrack).
const STD_VELOCITY: f64 = 1.0 / 160.0;

/// Process-noise weights (relative to box height) for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Position noise per step.
    pub position: f64,
    /// Velocity noise per step, in pixels per step.
    pub velocity: f64,
}

impl Noise {
    /// ByteTrack's weights: one step is one reference frame.
    pub const BYTETRACK: Noise = Noise {
        position: STD_POSITION,
        velocity: STD_VELOCITY,
    };

    /// Weights for steps of `n` reference frames each (`n` below 1 counts as 1).
    pub fn for_steps(n: f64) -> Self {
        let n = n.max(1.0);
        Self {
            position: STD_POSITION * n.sqrt(),
            velocity: STD_VELOCITY * n * n.sqrt(),
        }
    }
}

/// An 8-vector: `x, y, a, h, vx, vy, va, vh`.
pub type State = [f64; 8];
/// An 8x8 covariance.
pub type Covariance = [[f64; 8]; 8];
/// A measurement `x, y, a, h`.
pub type Measurement = [f64; 4];

fn diag<const N: usize>(std: [f64; N]) -> [[f64; N]; N] {
    let mut m = [[0.0; N]; N];
    for (i, s) in std.iter().enumerate() {
        m[i][i] = s * s;
    }
    m
}

/// A new track's state and covariance from its first measurement.
pub fn initiate(z: Measurement, noise: &Noise) -> (State, Covariance) {
    let h = z[3];
    let mean = [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0];
    let (p, v) = (2.0 * STD_POSITION * h, 10.0 * noise.velocity * h);
    (mean, diag([p, p, 1e-2, p, v, v, 1e-5, v]))
}

/// One step ahead: `x += v`, covariance grown by the motion and process noise.
pub fn predict(mean: &mut State, cov: &mut Covariance, noise: &Noise) {
    let h = mean[3];
    let (p, v) = (noise.position * h, noise.velocity * h);
    let q = diag([p, p, 1e-2, p, v, v, 1e-5, v]);
    for i in 0..4 {
        mean[i] += mean[i + 4];
    }
    // F P F^T with F = [I I; 0 I]: blocks [P11+P12+P21+P22, P12+P22; P21+P22, P22].
    let old = *cov;
    for r in 0..8 {
        for c in 0..8 {
            let mut v = old[r][c];
            if r < 4 {
                v += old[r + 4][c];
            }
            if c < 4 {
                v += old[r][c + 4];
            }
            if r < 4 && c < 4 {
                v += old[r + 4][c + 4];
            }
            cov[r][c] = v + q[r][c];
        }
    }
}

/// The measurement-space mean and covariance (with measurement noise).
pub fn project(mean: &State, cov: &Covariance) -> (Measurement, [[f64; 4]; 4]) {
    let h = mean[3];
    let p = STD_POSITION * h;
    let r = diag([p, p, 1e-1, p]);
    let mut s = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            s[i][j] = cov[i][j] + r[i][j];
        }
    }
    ([mean[0], mean[1], mean[2], mean[3]], s)
}

/// Inverse of a symmetric positive-definite 4x4 matrix (Gauss-Jordan with pivoting).
fn invert4(m: [[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut a = m;
    let mut inv = diag([1.0; 4]);
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..4 {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for row in 0..4 {
            if row != col {
                let f = a[row][col];
                for j in 0..4 {
                    a[row][j] -= f * a[col][j];
                    inv[row][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

/// Corrects the state with measurement `z`. Leaves the state as it is if the innovation
/// covariance is singular (which positive noise makes impossible in practice).
pub fn update(mean: &mut State, cov: &mut Covariance, z: Measurement) {
    let (projected, s) = project(mean, cov);
    let Some(s_inv) = invert4(s) else { return };
    // K = P H^T S^-1, with P H^T the first four columns of P.
    let mut k = [[0.0; 4]; 8];
    for (r, row) in k.iter_mut().enumerate() {
        for (c, out) in row.iter_mut().enumerate() {
            *out = (0..4).map(|i| cov[r][i] * s_inv[i][c]).sum();
        }
    }
    let innovation: [f64; 4] = std::array::from_fn(|i| z[i] - projected[i]);
    for (r, value) in mean.iter_mut().enumerate() {
        *value += (0..4).map(|i| k[r][i] * innovation[i]).sum::<f64>();
    }
    // P -= K S K^T.
    let ks: [[f64; 4]; 8] =
        std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|i| k[r][i] * s[i][c]).sum()));
    for r in 0..8 {
        for c in 0..8 {
            cov[r][c] -= (0..4).map(|i| ks[r][i] * k[c][i]).sum::<f64>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiate_sets_height_scaled_uncertainty() {
        let (mean, cov) = initiate([50.0, 60.0, 0.5, 100.0], &Noise::BYTETRACK);
        assert_eq!(mean, [50.0, 60.0, 0.5, 100.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((cov[0][0] - 100.0).abs() < 1e-9); // (2 * 100 / 20)^2
        assert!((cov[4][4] - 39.0625).abs() < 1e-9); // (10 * 100 / 160)^2
        assert!((cov[2][2] - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn predict_moves_by_velocity_and_grows_covariance() {
        let (mut mean, mut cov) = initiate([50.0, 60.0, 0.5, 100.0], &Noise::BYTETRACK);
        mean[4] = 3.0;
        mean[5] = -2.0;
        predict(&mut mean, &mut cov, &Noise::BYTETRACK);
        assert_eq!((mean[0], mean[1]), (53.0, 58.0));
        // 100 (position) + 39.0625 (velocity) + 25 (process noise (100/20)^2).
        assert!((cov[0][0] - 164.0625).abs() < 1e-9, "{}", cov[0][0]);
        // Position-velocity covariance appears: 39.0625.
        assert!((cov[0][4] - 39.0625).abs() < 1e-9);
        // Velocity variance: 39.0625 + (100/160)^2.
        assert!((cov[4][4] - (39.0625 + 0.390625)).abs() < 1e-9);
    }

    #[test]
    fn update_blends_by_the_kalman_gain() {
        // Fresh track: P_xx = 100, R_xx = (100/20)^2 = 25, gain 0.8: x moves 8 of 10 px.
        let (mut mean, mut cov) = initiate([0.0, 0.0, 1.0, 100.0], &Noise::BYTETRACK);
        update(&mut mean, &mut cov, [10.0, 0.0, 1.0, 100.0]);
        assert!((mean[0] - 8.0).abs() < 1e-9, "{}", mean[0]);
        assert!(mean[1].abs() < 1e-9);
        // Posterior variance: (1 - 0.8) * 100 = 20.
        assert!((cov[0][0] - 20.0).abs() < 1e-9, "{}", cov[0][0]);
    }

    #[test]
    fn a_steadily_moving_box_is_followed_and_its_velocity_learned() {
        let (mut mean, mut cov) = initiate([0.0, 0.0, 0.5, 80.0], &Noise::BYTETRACK);
        for step in 1..=30 {
            predict(&mut mean, &mut cov, &Noise::BYTETRACK);
            update(&mut mean, &mut cov, [6.0 * f64::from(step), 0.0, 0.5, 80.0]);
        }
        assert!((mean[4] - 6.0).abs() < 0.2, "vx {}", mean[4]);
        assert!((mean[0] - 180.0).abs() < 1.0, "x {}", mean[0]);
        predict(&mut mean, &mut cov, &Noise::BYTETRACK);
        assert!((mean[0] - 186.0).abs() < 1.5, "predicted x {}", mean[0]);
    }

    #[test]
    fn noise_for_one_step_is_bytetrack_and_grows_with_the_interval() {
        assert_eq!(Noise::for_steps(1.0), Noise::BYTETRACK);
        assert_eq!(Noise::for_steps(0.2), Noise::BYTETRACK);
        let n = Noise::for_steps(4.0);
        assert!((n.position - 2.0 / 20.0).abs() < 1e-12);
        assert!((n.velocity - 8.0 / 160.0).abs() < 1e-12);
    }

    #[test]
    fn scaled_noise_learns_a_fast_velocity_from_two_sightings() {
        // 54 reference frames per step (1.8 s at 30 fps): a car 60 px high moving 150 px per
        // step. After the second sighting the prediction must be close to the third position.
        let noise = Noise::for_steps(54.0);
        let (mut mean, mut cov) = initiate([0.0, 0.0, 2.0, 60.0], &noise);
        predict(&mut mean, &mut cov, &noise);
        update(&mut mean, &mut cov, [150.0, 0.0, 2.0, 60.0]);
        predict(&mut mean, &mut cov, &noise);
        assert!((mean[0] - 300.0).abs() < 20.0, "predicted x {}", mean[0]);
        // ByteTrack's per-frame noise barely moves: the velocity stays near zero.
        let (mut mean, mut cov) = initiate([0.0, 0.0, 2.0, 60.0], &Noise::BYTETRACK);
        predict(&mut mean, &mut cov, &Noise::BYTETRACK);
        update(&mut mean, &mut cov, [150.0, 0.0, 2.0, 60.0]);
        predict(&mut mean, &mut cov, &Noise::BYTETRACK);
        assert!(mean[0] < 200.0, "unscaled predicted x {}", mean[0]);
    }

    #[test]
    fn inverse_of_a_diagonal_and_a_singular_matrix() {
        let inv = invert4(diag([2.0, 4.0, 1.0, 0.5])).unwrap();
        assert!((inv[0][0] - 0.25).abs() < 1e-12 && (inv[3][3] - 4.0).abs() < 1e-12);
        assert!(invert4([[0.0; 4]; 4]).is_none());
    }
}
