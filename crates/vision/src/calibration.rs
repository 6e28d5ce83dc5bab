//! A camera calibrated to the road: the homography that maps image pixels on the road surface to
//! ground coordinates in metres, fitted from four or more image/ground point pairs (the
//! normalised direct linear transform, least squares through an SVD), and how well it fits:
//! the reprojection error, in pixels, of the ground points mapped back into the image. A
//! calibration whose error is above the caller's limit is refused, so a mistyped point cannot
//! silently turn every speed into nonsense. Pure: no I/O, no clock.

use nalgebra::{DMatrix, Matrix3, Vector3};

/// Why a calibration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// Fewer than four point pairs.
    #[error("needs at least 4 point pairs, got {0}")]
    TooFewPoints(usize),
    /// `image` and `ground` differ in length.
    #[error("{image} image points but {ground} ground points")]
    Mismatch {
        /// Image points given.
        image: usize,
        /// Ground points given.
        ground: usize,
    },
    /// A coordinate is not a finite number.
    #[error("point {0} is not a finite number")]
    NotFinite(usize),
    /// The points do not span the plane (all, or three of four, on one line; or repeated).
    #[error("the {0} points lie on one line: they cannot fix a plane")]
    Degenerate(&'static str),
    /// The fit is worse than the limit: most likely a point is wrong.
    #[error(
        "reprojection error {error_px:.1} px is above the {limit_px:.1} px limit \
         (worst: point {worst}); check the points"
    )]
    TooInaccurate {
        /// Root-mean-square reprojection error, pixels.
        error_px: f64,
        /// The limit it broke.
        limit_px: f64,
        /// Index of the worst point.
        worst: usize,
    },
}

/// An image -> ground plane mapping and how well it fits its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    to_ground: Matrix3<f64>,
    to_image: Matrix3<f64>,
    /// Root-mean-square distance, in image pixels, between each image point and its ground
    /// point mapped back into the image.
    pub reprojection_error_px: f64,
    /// The largest of those distances.
    pub worst_error_px: f64,
}

impl Calibration {
    /// Fits the mapping from `image` pixels to `ground` metres (same order, at least four
    /// pairs) and refuses it when its reprojection error is above `max_error_px`.
    pub fn fit(
        image: &[[f64; 2]],
        ground: &[[f64; 2]],
        max_error_px: f64,
    ) -> Result<Self, CalibrationError> {
        check_points(image, ground)?;
        let to_ground = dlt(image, ground).ok_or(CalibrationError::Degenerate("image"))?;
        let to_image = to_ground
            .try_inverse()
            .ok_or(CalibrationError::Degenerate("image"))?;
        let mut calibration = Self {
            to_ground,
            to_image,
            reprojection_error_px: 0.0,
            worst_error_px: 0.0,
        };
        let errors: Vec<f64> = image
            .iter()
            .zip(ground)
            .map(|(px, g)| {
                calibration
                    .image(*g)
                    .map_or(f64::INFINITY, |back| distance(back, *px))
            })
            .collect();
        let (worst, worst_error) =
            errors
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, 0.0),
                    |best, (i, e)| if e > best.1 { (i, e) } else { best },
                );
        let rms = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
        // The image points must all lie below the horizon (the same side of it).
        let same_side = image.iter().all(|p| calibration.ground(*p).is_some());
        if !same_side || !rms.is_finite() || rms > max_error_px {
            return Err(CalibrationError::TooInaccurate {
                error_px: if rms.is_finite() { rms } else { f64::MAX },
                limit_px: max_error_px,
                worst,
            });
        }
        calibration.reprojection_error_px = rms;
        calibration.worst_error_px = worst_error;
        Ok(calibration)
    }

    /// The ground position (metres) of image pixel `px`; `None` at or above the horizon.
    pub fn ground(&self, px: [f64; 2]) -> Option<[f64; 2]> {
        let w = self.to_ground * Vector3::new(px[0], px[1], 1.0);
        // The road's side of the horizon has the sign the fit gave the calibration points;
        // the fit is scaled so that it is positive (see `dlt`).
        (w.z > 1e-12).then(|| [w.x / w.z, w.y / w.z])
    }

    /// The image pixel of ground position `g` (metres); `None` behind the camera.
    pub fn image(&self, g: [f64; 2]) -> Option<[f64; 2]> {
        let w = self.to_image * Vector3::new(g[0], g[1], 1.0);
        (w.z.abs() > 1e-12).then(|| [w.x / w.z, w.y / w.z])
    }
}

fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// Counts, finiteness and spread of the point sets.
fn check_points(image: &[[f64; 2]], ground: &[[f64; 2]]) -> Result<(), CalibrationError> {
    if image.len() != ground.len() {
        return Err(CalibrationError::Mismatch {
            image: image.len(),
            ground: ground.len(),
        });
    }
    if image.len() < 4 {
        return Err(CalibrationError::TooFewPoints(image.len()));
    }
    for (i, p) in image.iter().chain(ground).enumerate() {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return Err(CalibrationError::NotFinite(i % image.len()));
        }
    }
    for (points, name) in [(image, "image"), (ground, "ground")] {
        if collinear(points) {
            return Err(CalibrationError::Degenerate(name));
        }
    }
    Ok(())
}

/// Whether the points fail to span the plane: with four, any three on one line; with more, all
/// of them near one line. "On a line" is relative to the points' own spread.
fn collinear(points: &[[f64; 2]]) -> bool {
    let spread = points
        .iter()
        .flat_map(|a| points.iter().map(move |b| distance(*a, *b)))
        .fold(0.0, f64::max);
    if spread == 0.0 {
        return true;
    }
    let area = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        ((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])).abs() / 2.0
    };
    let flat = |a, b, c| area(a, b, c) < 1e-3 * spread * spread;
    if points.len() == 4 {
        let [a, b, c, d] = [points[0], points[1], points[2], points[3]];
        return flat(a, b, c) || flat(a, b, d) || flat(a, c, d) || flat(b, c, d);
    }
    // More points: degenerate when every triangle is flat.
    let n = points.len();
    !(0..n).any(|i| (i + 1..n).any(|j| (j + 1..n).any(|k| !flat(points[i], points[j], points[k]))))
}

/// The similarity that moves `points` to their centroid and scales their mean distance from it
/// to sqrt(2) (Hartley's normalisation, which keeps the linear system well conditioned).
fn normaliser(points: &[[f64; 2]]) -> Matrix3<f64> {
    let n = points.len() as f64;
    let cx = points.iter().map(|p| p[0]).sum::<f64>() / n;
    let cy = points.iter().map(|p| p[1]).sum::<f64>() / n;
    let mean = points
        .iter()
        .map(|p| (p[0] - cx).hypot(p[1] - cy))
        .sum::<f64>()
        / n;
    let s = if mean > 0.0 {
        std::f64::consts::SQRT_2 / mean
    } else {
        1.0
    };
    Matrix3::new(s, 0.0, -s * cx, 0.0, s, -s * cy, 0.0, 0.0, 1.0)
}

fn apply(m: &Matrix3<f64>, p: [f64; 2]) -> [f64; 2] {
    let w = m * Vector3::new(p[0], p[1], 1.0);
    [w.x / w.z, w.y / w.z]
}

/// The homography taking `src` to `dst` (least squares over all pairs), scaled so that the
/// source points map with a positive third coordinate; `None` when the system is degenerate.
fn dlt(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Matrix3<f64>> {
    let (ts, td) = (normaliser(src), normaliser(dst));
    // Two rows per pair; at least nine rows so that the SVD yields the whole null space.
    let rows = (2 * src.len()).max(9);
    let mut a = DMatrix::<f64>::zeros(rows, 9);
    for (i, (s, d)) in src.iter().zip(dst).enumerate() {
        let [x, y] = apply(&ts, *s);
        let [u, v] = apply(&td, *d);
        let r = 2 * i;
        let row_u = [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u];
        let row_v = [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v];
        for c in 0..9 {
            a[(r, c)] = row_u[c];
            a[(r + 1, c)] = row_v[c];
        }
    }
    let svd = a.svd(false, true);
    let v_t = svd.v_t?;
    // The right singular vector of the smallest singular value.
    let (smallest, _) = svd
        .singular_values
        .iter()
        .enumerate()
        .min_by(|x, y| x.1.total_cmp(y.1))?;
    let h = v_t.row(smallest);
    let hn = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    let m = td.try_inverse()? * hn * ts;
    if !m.iter().all(|x| x.is_finite()) || m.determinant().abs() < 1e-12 * m.norm().powi(3) {
        return None;
    }
    // Scale so that the calibration points have w > 0 (which side of the horizon is the road).
    let w = (m * Vector3::new(src[0][0], src[0][1], 1.0)).z;
    Some(if w < 0.0 { -m } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A road camera: ground (metres, x across, y ahead) to image (1280x720), looking down a
    /// road from a pole; far points rise towards a horizon at y = 200.
    fn camera(g: [f64; 2]) -> [f64; 2] {
        let depth = g[1] + 10.0;
        [640.0 + 900.0 * g[0] / depth, 200.0 + 5200.0 / depth]
    }

    fn grid() -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
        let ground: Vec<[f64; 2]> = [-5.25, -1.75, 1.75, 5.25]
            .iter()
            .flat_map(|&x| [0.0, 12.0, 30.0].map(move |y| [x, y]))
            .collect();
        let image = ground.iter().map(|g| camera(*g)).collect();
        (image, ground)
    }

    #[test]
    fn four_or_more_exact_points_give_the_exact_mapping() {
        let (image, ground) = grid();
        let corners = [0, 2, 9, 11];
        let img4: Vec<[f64; 2]> = corners.iter().map(|&i| image[i]).collect();
        let gnd4: Vec<[f64; 2]> = corners.iter().map(|&i| ground[i]).collect();
        for (img, gnd) in [(&img4, &gnd4), (&image, &ground)] {
            let c = Calibration::fit(img, gnd, 2.0).unwrap();
            assert!(
                c.reprojection_error_px < 1e-6,
                "{}",
                c.reprojection_error_px
            );
            // A point that was not among the calibration points.
            let g = c.ground(camera([0.5, 20.0])).unwrap();
            assert!(
                (g[0] - 0.5).abs() < 1e-6 && (g[1] - 20.0).abs() < 1e-6,
                "{g:?}"
            );
            let px = c.image([3.0, 5.0]).unwrap();
            let want = camera([3.0, 5.0]);
            assert!(distance(px, want) < 1e-6, "{px:?} vs {want:?}");
        }
    }

    #[test]
    fn pixel_noise_gives_a_small_error_and_a_close_mapping() {
        let (mut image, ground) = grid();
        // Clicks off by up to half a pixel.
        for (i, p) in image.iter_mut().enumerate() {
            p[0] += [0.4, -0.3, 0.5, -0.5][i % 4];
            p[1] += [-0.2, 0.5, -0.4, 0.3][i % 3];
        }
        let c = Calibration::fit(&image, &ground, 2.0).unwrap();
        assert!(
            c.reprojection_error_px > 0.05 && c.reprojection_error_px < 0.8,
            "{}",
            c.reprojection_error_px
        );
        assert!(c.worst_error_px >= c.reprojection_error_px);
        let g = c.ground(camera([0.0, 15.0])).unwrap();
        assert!((g[0]).abs() < 0.1 && (g[1] - 15.0).abs() < 0.3, "{g:?}");
    }

    #[test]
    fn a_wrong_point_is_refused_with_the_error_and_the_culprit() {
        let (image, mut ground) = grid();
        ground[7][1] += 6.0; // one ground point typed 6 m off
        match Calibration::fit(&image, &ground, 3.0) {
            Err(CalibrationError::TooInaccurate {
                error_px,
                limit_px,
                worst,
            }) => {
                assert!(error_px > 3.0 && limit_px == 3.0, "{error_px}");
                assert_eq!(worst, 7);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_point_sets_are_refused_by_name() {
        let (image, ground) = grid();
        assert_eq!(
            Calibration::fit(&image[..3], &ground[..3], 2.0),
            Err(CalibrationError::TooFewPoints(3))
        );
        assert_eq!(
            Calibration::fit(&image[..5], &ground[..4], 2.0),
            Err(CalibrationError::Mismatch {
                image: 5,
                ground: 4
            })
        );
        let mut nan = image.clone();
        nan[2][0] = f64::NAN;
        assert_eq!(
            Calibration::fit(&nan, &ground, 2.0),
            Err(CalibrationError::NotFinite(2))
        );
        // Three of four ground points on one line (a lane edge, clicked three times).
        let line_ground = [[0.0, 0.0], [0.0, 10.0], [0.0, 20.0], [3.5, 5.0]];
        let line_image = line_ground.map(camera);
        assert_eq!(
            Calibration::fit(&line_image, &line_ground, 2.0),
            Err(CalibrationError::Degenerate("image"))
        );
        let same = [[1.0, 1.0]; 4];
        assert!(matches!(
            Calibration::fit(&same, &same, 2.0),
            Err(CalibrationError::Degenerate(_))
        ));
    }

    #[test]
    fn the_sky_has_no_ground_position() {
        let (image, ground) = grid();
        let c = Calibration::fit(&image, &ground, 2.0).unwrap();
        assert!(c.ground([640.0, 150.0]).is_none(), "above the horizon");
        assert!(c.ground([640.0, 700.0]).is_some());
    }
}
