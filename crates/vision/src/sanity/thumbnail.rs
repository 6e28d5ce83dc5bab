//! The picture measures of stream sanity: a frame's [`Thumbnail`] (a small grey copy,
//! area-averaged) and how one thumbnail differs from the one before ([`compare`]): mean and
//! largest cell difference, the whole-picture shift that best explains the change (an
//! exhaustive search of integer shifts), how much changed beyond a step of exposure, and the
//! correlation of the two pictures. Pure arithmetic on a few thousand cells.

use crate::letterbox::ImageView;

/// Width of a [`Thumbnail`] in cells (narrower pictures keep their own width); its height
/// keeps the picture's aspect ratio (36 for 16:9, 48 for 4:3).
pub const THUMBNAIL_WIDTH: u32 = 64;

/// A small grey copy of a frame: each cell the mean luma (BT.601, 0-255) of its block of
/// pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    width: u32,
    height: u32,
    luma: Vec<f32>,
    /// Size of the picture it was made from.
    source: (u32, u32),
}

impl Thumbnail {
    /// The thumbnail of `image`, area-averaged.
    pub fn of(image: ImageView<'_>) -> Self {
        let (src_w, src_h) = (image.width as usize, image.height as usize);
        let width = THUMBNAIL_WIDTH.min(image.width).max(1) as usize;
        let height = ((src_h * width + src_w / 2) / src_w.max(1)).clamp(1, src_h.max(1));
        // Which cell each source column and row falls in, and how many of them each cell has.
        let cols: Vec<usize> = (0..src_w).map(|x| x * width / src_w).collect();
        let mut per_col = vec![0u64; width];
        for &c in &cols {
            per_col[c] += 1;
        }
        let mut sums = vec![0u64; width * height];
        let mut per_row = vec![0u64; height];
        for (y, row) in image.rgb.chunks_exact(src_w * 3).take(src_h).enumerate() {
            let cy = y * height / src_h;
            per_row[cy] += 1;
            let cells = &mut sums[cy * width..(cy + 1) * width];
            for (px, &c) in row.chunks_exact(3).zip(&cols) {
                // Luma in 1/256 grey levels.
                cells[c] += 77 * u64::from(px[0]) + 150 * u64::from(px[1]) + 29 * u64::from(px[2]);
            }
        }
        let luma = sums
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let n = per_row[i / width] * per_col[i % width];
                s as f32 / (256.0 * n.max(1) as f32)
            })
            .collect();
        Self {
            width: width as u32,
            height: height as u32,
            luma,
            source: (image.width, image.height),
        }
    }

    /// A thumbnail from its cells (row-major grey levels), as if of a picture of its own size,
    /// or `None` when `luma` does not hold `width x height` of them.
    pub fn from_luma(width: u32, height: u32, luma: Vec<f32>) -> Option<Self> {
        (width > 0 && height > 0 && luma.len() == width as usize * height as usize).then_some(
            Self {
                width,
                height,
                luma,
                source: (width, height),
            },
        )
    }

    /// Width in cells.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in cells.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The cells, row-major, grey levels 0-255.
    pub fn luma(&self) -> &[f32] {
        &self.luma
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        self.luma[y * self.width as usize + x]
    }
}

/// How a thumbnail differs from the one before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// Mean absolute cell difference, grey levels, picture against picture.
    pub mean: f32,
    /// Largest absolute cell difference, grey levels.
    pub max: f32,
    /// The whole-picture shift (cells; x to the right, y down) that best explains the change:
    /// (0, 0) unless one explains it clearly better than none (see [`compare`]).
    pub shift: (i32, i32),
    /// Mean absolute cell difference after that shift (inside the margin the search needs).
    pub shifted_mean: f32,
    /// How much of the picture changed after that shift, beyond a change of brightness: the
    /// median over the shared cells of their difference less the median difference (grey
    /// levels).
    /// Whatever covers less than half of the picture (a bus) leaves it small, and so does a
    /// step of exposure; another picture makes it large.
    pub residual_median: f32,
    /// Correlation of the two pictures' shared cells after that shift, -1 to 1 (1 when either
    /// is flat).
    pub correlation: f32,
}

/// Mean absolute difference between `a`'s inner window (a `margin` in from each edge) and
/// `b`'s window shifted by `(dx, dy)`.
fn window_mean(a: &Thumbnail, b: &Thumbnail, margin: usize, dx: i32, dy: i32) -> f32 {
    let (w, h) = (a.width as usize, a.height as usize);
    let mut sum = 0.0f32;
    for y in margin..h - margin {
        let by = (y as i32 + dy) as usize;
        for x in margin..w - margin {
            sum += (a.at(x, y) - b.at((x as i32 + dx) as usize, by)).abs();
        }
    }
    sum / ((w - 2 * margin) * (h - 2 * margin)) as f32
}

/// The pairs of cells of `a` and of `b` shifted by `(dx, dy)` (b's cell `(x + dx, y + dy)`
/// against a's `(x, y)`) wherever both exist.
fn overlap<'a>(
    a: &'a Thumbnail,
    b: &'a Thumbnail,
    (dx, dy): (i32, i32),
) -> impl Iterator<Item = (f32, f32)> + 'a {
    let (w, h) = (a.width as i32, a.height as i32);
    let xs = (-dx).max(0)..(w - dx).min(w);
    (((-dy).max(0))..(h - dy).min(h)).flat_map(move |y| {
        xs.clone().map(move |x| {
            let (x, y) = (x as usize, y as usize);
            let (bx, by) = ((x as i32 + dx) as usize, (y as i32 + dy) as usize);
            (a.at(x, y), b.at(bx, by))
        })
    })
}

/// How much of the picture changed beyond a change of brightness: the median, over the cells
/// `a` and `b` (shifted by `shift`) share, of each cell's difference less the median
/// difference (the picture-wide step of an exposure change).
fn residual(a: &Thumbnail, b: &Thumbnail, shift: (i32, i32)) -> f32 {
    let mut diffs: Vec<f32> = overlap(a, b, shift).map(|(p, q)| q - p).collect();
    let mid = diffs.len() / 2;
    let step = *diffs.select_nth_unstable_by(mid, f32::total_cmp).1;
    for d in &mut diffs {
        *d = (*d - step).abs();
    }
    *diffs.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Pearson correlation of the cells `a` and `b` (shifted by `shift`) share.
fn correlation(a: &Thumbnail, b: &Thumbnail, shift: (i32, i32)) -> f32 {
    let pairs = || overlap(a, b, shift).map(|(p, q)| (f64::from(p), f64::from(q)));
    let n = pairs().count().max(1) as f64;
    let (sa, sb) = pairs().fold((0.0, 0.0), |(sa, sb), (p, q)| (sa + p, sb + q));
    let (ma, mb) = (sa / n, sb / n);
    let (cov, va, vb) = pairs().fold((0.0, 0.0, 0.0), |(c, va, vb), (p, q)| {
        let (p, q) = (p - ma, q - mb);
        (c + p * q, va + p * p, vb + q * q)
    });
    // Flat pictures (a lens cap, a black frame, fog) carry no structure to compare: no
    // evidence of a cut either way.
    const FLAT: f64 = 1.0;
    if va / n < FLAT || vb / n < FLAT {
        return 1.0;
    }
    (cov / (va * vb).sqrt()) as f32
}

/// How `after` differs from `before`, searching shifts of up to `max_shift` cells each way; a
/// shift is taken only if it leaves at most `shift_gain` of the unshifted difference. `None`
/// when they were made from pictures of different sizes (the stream changed resolution:
/// nothing can be compared).
pub fn compare(
    before: &Thumbnail,
    after: &Thumbnail,
    max_shift: i32,
    shift_gain: f32,
) -> Option<Change> {
    if before.source != after.source || (before.width, before.height) != (after.width, after.height)
    {
        return None;
    }
    let (mut sum, mut max) = (0.0f32, 0.0f32);
    for (a, b) in before.luma.iter().zip(&after.luma) {
        let d = (a - b).abs();
        sum += d;
        max = max.max(d);
    }
    let mean = sum / before.luma.len() as f32;
    // The shift search compares one inner window of `before` with shifted windows of `after`,
    // so every shift is judged on the same cells; tiny thumbnails get a smaller search.
    let margin = max_shift
        .max(0)
        .min((before.width.min(before.height) as i32 - 1) / 2) as usize;
    let r = margin as i32;
    let still = window_mean(before, after, margin, 0, 0);
    let mut best: (f32, (i32, i32)) = (still, (0, 0));
    for dy in -r..=r {
        for dx in -r..=r {
            let m = window_mean(before, after, margin, dx, dy);
            // Smaller shifts first on a tie.
            let closer = dx.abs().max(dy.abs()) < best.1.0.abs().max(best.1.1.abs());
            if m < best.0 || (m == best.0 && closer) {
                best = (m, (dx, dy));
            }
        }
    }
    let (shifted_mean, shift) = if best.1 != (0, 0) && best.0 <= shift_gain * still {
        best
    } else {
        (still, (0, 0))
    };
    Some(Change {
        mean,
        max,
        shift,
        shifted_mean,
        residual_median: residual(before, after, shift),
        correlation: correlation(before, after, shift),
    })
}
