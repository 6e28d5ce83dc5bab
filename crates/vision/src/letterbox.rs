//! Letterboxing: the resize-and-pad that turns a camera frame into the square tensor a YOLO model
//! expects, and the inverse mapping of boxes back to the frame. The maths follows Ultralytics'
//! `LetterBox` (centred, grey 114 padding, Python's round-half-to-even) so that our boxes agree
//! with what users see from `yolo predict`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::geometry::BBox;

/// The grey level Ultralytics pads with.
pub const PAD_VALUE: u8 = 114;

/// A borrowed, tightly packed 8-bit RGB image.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major RGB.
    pub rgb: &'a [u8],
}

impl<'a> ImageView<'a> {
    /// A view over `rgb`, or `None` when the buffer does not hold `width x height` RGB pixels.
    pub fn new(width: u32, height: u32, rgb: &'a [u8]) -> Option<Self> {
        let expected = width as usize * height as usize * 3;
        (width > 0 && height > 0 && rgb.len() == expected).then_some(Self { width, height, rgb })
    }
}

/// Where a source image lands inside the model input: scale and padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Source image width.
    pub src_width: u32,
    /// Source image height.
    pub src_height: u32,
    /// Model input width.
    pub dst_width: u32,
    /// Model input height.
    pub dst_height: u32,
    /// Scale factor applied to the source (`min(dst_w / src_w, dst_h / src_h)`).
    pub scale: f32,
    /// Width of the resized image inside the input.
    pub resized_width: u32,
    /// Height of the resized image inside the input.
    pub resized_height: u32,
    /// Padding columns on the left.
    pub left: u32,
    /// Padding rows on the top.
    pub top: u32,
}

/// Python's `round()`: halves go to the even neighbour.
fn py_round(v: f64) -> f64 {
    v.round_ties_even()
}

impl Letterbox {
    /// Plans the letterbox of a `src_width x src_height` image into `dst_width x dst_height`.
    pub fn new(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> Self {
        let (sw, sh) = (f64::from(src_width), f64::from(src_height));
        let (dw, dh) = (f64::from(dst_width), f64::from(dst_height));
        let scale = (dh / sh).min(dw / sw);
        let resized_width = (py_round(sw * scale) as u32).clamp(1, dst_width);
        let resized_height = (py_round(sh * scale) as u32).clamp(1, dst_height);
        let pad_w = f64::from(dst_width - resized_width) / 2.0;
        let pad_h = f64::from(dst_height - resized_height) / 2.0;
        Self {
            src_width,
            src_height,
            dst_width,
            dst_height,
            scale: scale as f32,
            resized_width,
            resized_height,
            left: py_round(pad_w - 0.1) as u32,
            top: py_round(pad_h - 0.1) as u32,
        }
    }

    /// Maps a box from model-input pixels back to source pixels, clipped to the source image.
    pub fn to_source(&self, b: BBox) -> BBox {
        let (l, t, s) = (self.left as f32, self.top as f32, self.scale);
        BBox::new(
            (b.x1 - l) / s,
            (b.y1 - t) / s,
            (b.x2 - l) / s,
            (b.y2 - t) / s,
        )
        .clip(self.src_width as f32, self.src_height as f32)
    }
}

/// Errors of the preprocessing step.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The resize library refused the buffers (should not happen with validated views).
    #[error("resize failed: {0}")]
    Resize(String),
}

/// Turns RGB frames into normalised NCHW float tensors, reusing its buffers between frames.
pub struct Preprocessor {
    resizer: Resizer,
    resized: Vec<u8>,
    tensor: Vec<f32>,
    to_float: [f32; 256],
}

impl Default for Preprocessor {
    fn default() -> Self {
        Self::new()
    }
}

impl Preprocessor {
    /// A preprocessor with empty buffers; they grow on first use.
    pub fn new() -> Self {
        Self {
            resizer: Resizer::new(),
            resized: Vec::new(),
            tensor: Vec::new(),
            to_float: std::array::from_fn(|v| v as f32 / 255.0),
        }
    }

    /// Letterboxes `image` into a `1x3xHxW` tensor (RGB, 0-1, grey 114 padding) and returns the
    /// plan needed to map boxes back. The tensor is [`Preprocessor::tensor`].
    pub fn run(
        &mut self,
        image: ImageView<'_>,
        dst_width: u32,
        dst_height: u32,
    ) -> Result<Letterbox, PreprocessError> {
        let lb = Letterbox::new(image.width, image.height, dst_width, dst_height);
        let (rw, rh) = (lb.resized_width as usize, lb.resized_height as usize);
        let resized: &[u8] = if rw == image.width as usize && rh == image.height as usize {
            image.rgb
        } else {
            self.resize(image, &lb)?;
            &self.resized
        };

        let (w, plane) = (dst_width as usize, dst_width as usize * dst_height as usize);
        let pad = self.to_float[usize::from(PAD_VALUE)];
        self.tensor.resize(plane * 3, pad);
        // Only the border is grey: fill it, then write the image rows between.
        let (top, left) = (lb.top as usize, lb.left as usize);
        for channel in self.tensor.chunks_exact_mut(plane) {
            channel[..top * w].fill(pad);
            channel[(top + rh) * w..].fill(pad);
            for row in channel[top * w..(top + rh) * w].chunks_exact_mut(w) {
                row[..left].fill(pad);
                row[left + rw..].fill(pad);
            }
        }
        let (r_plane, rest) = self.tensor.split_at_mut(plane);
        let (g_plane, b_plane) = rest.split_at_mut(plane);
        for (y, row) in resized.chunks_exact(rw * 3).enumerate() {
            let start = (y + top) * w + left;
            let r = &mut r_plane[start..start + rw];
            let g = &mut g_plane[start..start + rw];
            let b = &mut b_plane[start..start + rw];
            for (x, px) in row.chunks_exact(3).enumerate() {
                r[x] = self.to_float[usize::from(px[0])];
                g[x] = self.to_float[usize::from(px[1])];
                b[x] = self.to_float[usize::from(px[2])];
            }
        }
        Ok(lb)
    }

    fn resize(&mut self, image: ImageView<'_>, lb: &Letterbox) -> Result<(), PreprocessError> {
        let src = ImageRef::new(image.width, image.height, image.rgb, PixelType::U8x3)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        self.resized.clear();
        self.resized.resize(
            lb.resized_width as usize * lb.resized_height as usize * 3,
            0,
        );
        let mut dst = Image::from_slice_u8(
            lb.resized_width,
            lb.resized_height,
            &mut self.resized,
            PixelType::U8x3,
        )
        .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        // Plain bilinear interpolation (no anti-aliasing convolution), as OpenCV's INTER_LINEAR
        // that the Ultralytics pipeline uses: the model was trained on such inputs.
        let options =
            ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| PreprocessError::Resize(e.to_string()))
    }

    /// The tensor written by the last [`Preprocessor::run`], `3 * H * W` floats in CHW order.
    pub fn tensor(&self) -> &[f32] {
        &self.tensor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portrait_image_is_padded_left_and_right() {
        // bus.jpg: 810x1080 into 640x640 -> scale 0.5926, 480x640, 80 px each side.
        let lb = Letterbox::new(810, 1080, 640, 640);
        assert!((lb.scale - 640.0 / 1080.0).abs() < 1e-6);
        assert_eq!((lb.resized_width, lb.resized_height), (480, 640));
        assert_eq!((lb.left, lb.top), (80, 0));
    }

    #[test]
    fn landscape_image_is_padded_top_and_bottom() {
        // zidane.jpg: 1280x720 -> 640x360, 140 rows above.
        let lb = Letterbox::new(1280, 720, 640, 640);
        assert_eq!((lb.resized_width, lb.resized_height), (640, 360));
        assert_eq!((lb.left, lb.top), (0, 140));
    }

    #[test]
    fn odd_padding_puts_the_smaller_half_first() {
        // 768x576 (vtest.avi) -> 640x480: 160 rows of padding, 80 on top.
        let lb = Letterbox::new(768, 576, 640, 640);
        assert_eq!((lb.resized_width, lb.resized_height), (640, 480));
        assert_eq!(lb.top, 80);
        // 100x99 -> 640x634, 6 rows: dh = 3 -> top round(2.9) = 3.
        let lb = Letterbox::new(100, 99, 640, 640);
        assert_eq!(lb.resized_height, 634);
        assert_eq!(lb.top, 3);
        // 100x98 -> 640x627 (627.2), 13 rows: dh = 6.5 -> top round(6.4) = 6, bottom 7.
        let lb = Letterbox::new(100, 98, 640, 640);
        assert_eq!(lb.resized_height, 627);
        assert_eq!(lb.top, 6);
    }

    #[test]
    fn python_rounding_is_half_to_even() {
        assert_eq!(py_round(2.5), 2.0);
        assert_eq!(py_round(3.5), 4.0);
        assert_eq!(py_round(2.4), 2.0);
    }

    #[test]
    fn boxes_map_back_to_source_pixels_and_are_clipped() {
        let lb = Letterbox::new(1280, 720, 640, 640);
        // A box at input (100, 240)-(200, 340) is source (200, 200)-(400, 400).
        let b = lb.to_source(BBox::new(100.0, 240.0, 200.0, 340.0));
        assert!((b.x1 - 200.0).abs() < 1e-3 && (b.y1 - 200.0).abs() < 1e-3);
        assert!((b.x2 - 400.0).abs() < 1e-3 && (b.y2 - 400.0).abs() < 1e-3);
        // Boxes reaching into the padding are clipped to the image.
        let b = lb.to_source(BBox::new(-10.0, 100.0, 650.0, 600.0));
        assert_eq!(b, BBox::new(0.0, 0.0, 1280.0, 720.0));
    }

    #[test]
    fn tensor_has_padding_and_normalised_pixels() {
        // A 4x2 red image into 4x4: rows 0 and 3 padded grey, rows 1-2 red.
        let rgb: Vec<u8> = [255u8, 0, 0].repeat(8);
        let view = ImageView::new(4, 2, &rgb).unwrap();
        let mut pre = Preprocessor::new();
        let lb = pre.run(view, 4, 4).unwrap();
        assert_eq!((lb.top, lb.resized_height), (1, 2));
        let t = pre.tensor();
        assert_eq!(t.len(), 3 * 16);
        let grey = 114.0 / 255.0;
        assert_eq!(t[0], grey); // R, row 0
        assert_eq!(t[4], 1.0); // R, row 1
        assert_eq!(t[16 + 4], 0.0); // G, row 1
        assert_eq!(t[32 + 12], grey); // B, row 3
    }

    #[test]
    fn padding_is_refreshed_between_differently_shaped_frames() {
        let mut pre = Preprocessor::new();
        let wide: Vec<u8> = [200u8; 3].repeat(8 * 2);
        pre.run(ImageView::new(8, 2, &wide).unwrap(), 8, 8).unwrap();
        let tall: Vec<u8> = [10u8; 3].repeat(2 * 8);
        let lb = pre.run(ImageView::new(2, 8, &tall).unwrap(), 8, 8).unwrap();
        assert_eq!((lb.left, lb.resized_width), (3, 2));
        let grey = 114.0 / 255.0;
        // Row 0, column 0 was image in the first frame and is padding now.
        assert_eq!(pre.tensor()[0], grey);
        assert_eq!(pre.tensor()[3], 10.0 / 255.0);
        assert!(pre.tensor().iter().all(|&v| v == grey || v == 10.0 / 255.0));
    }

    #[test]
    fn resize_keeps_a_flat_colour_flat() {
        let rgb: Vec<u8> = [10u8, 20, 30].repeat(100 * 50);
        let view = ImageView::new(100, 50, &rgb).unwrap();
        let mut pre = Preprocessor::new();
        let lb = pre.run(view, 64, 64).unwrap();
        assert_eq!((lb.resized_width, lb.resized_height, lb.top), (64, 32, 16));
        let t = pre.tensor();
        let centre = 32 * 64 + 32;
        assert!((t[centre] - 10.0 / 255.0).abs() < 1e-6);
        assert!((t[4096 + centre] - 20.0 / 255.0).abs() < 1e-6);
        assert!((t[8192 + centre] - 30.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn view_rejects_wrong_buffer_sizes() {
        assert!(ImageView::new(2, 2, &[0; 11]).is_none());
        assert!(ImageView::new(0, 2, &[]).is_none());
    }
}
