//! Evidence crops: a region of a frame, rounded outwards and clipped, downscaled to at most
//! [`MAX_CROP_SIDE`] on its long side (SPEC section 4) and encoded as JPEG; and the downscaler
//! it uses, shared with the LLM prompt's smaller images.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use vision::BBox;

use crate::RgbFrame;
use crate::jpeg::{EncodeError, JPEG_QUALITY, encode_jpeg};

/// Longest side of a group crop (SPEC section 4).
pub const MAX_CROP_SIDE: u32 = 1280;

/// One group's crop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCrop {
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
    /// Width of the (possibly downscaled) crop.
    pub width: u32,
    /// Height of the (possibly downscaled) crop.
    pub height: u32,
}

/// Cuts `region` (frame pixels, rounded outwards and clipped) out of `frame`, downscales it to
/// fit [`MAX_CROP_SIDE`] and encodes it as JPEG. `None` for an empty region.
pub fn crop_jpeg(frame: &RgbFrame, region: BBox) -> Result<Option<GroupCrop>, EncodeError> {
    let x1 = (region.x1.floor().max(0.0) as u32).min(frame.width);
    let y1 = (region.y1.floor().max(0.0) as u32).min(frame.height);
    let x2 = (region.x2.ceil().max(0.0) as u32).min(frame.width);
    let y2 = (region.y2.ceil().max(0.0) as u32).min(frame.height);
    if x2 <= x1 || y2 <= y1 {
        return Ok(None);
    }
    let (w, h) = (x2 - x1, y2 - y1);
    let stride = frame.width as usize * 3;
    let mut cut = Vec::with_capacity(w as usize * h as usize * 3);
    for row in y1..y2 {
        let start = row as usize * stride + x1 as usize * 3;
        cut.extend_from_slice(&frame.data[start..start + w as usize * 3]);
    }
    let mut crop = RgbFrame {
        width: w,
        height: h,
        data: cut,
    };
    let long = w.max(h);
    if long > MAX_CROP_SIDE {
        let scale = f64::from(MAX_CROP_SIDE) / f64::from(long);
        let nw = ((f64::from(w) * scale).round() as u32).max(1);
        let nh = ((f64::from(h) * scale).round() as u32).max(1);
        crop = downscale(&crop, nw, nh)?;
    }
    Ok(Some(GroupCrop {
        jpeg: encode_jpeg(&crop, JPEG_QUALITY)?,
        width: crop.width,
        height: crop.height,
    }))
}

/// `src` resized to `width` x `height` (bilinear convolution, for downscaling).
pub fn downscale(src: &RgbFrame, width: u32, height: u32) -> Result<RgbFrame, EncodeError> {
    let fail = |e: &dyn std::fmt::Display| EncodeError(format!("crop resize: {e}"));
    let from =
        ImageRef::new(src.width, src.height, &src.data, PixelType::U8x3).map_err(|e| fail(&e))?;
    let mut to = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&from, &mut to, &options)
        .map_err(|e| fail(&e))?;
    Ok(RgbFrame {
        width,
        height,
        data: to.into_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32) -> RgbFrame {
        let data = (0..width * height)
            .flat_map(|i| [(i % width) as u8, (i / width) as u8, 7])
            .collect();
        RgbFrame {
            width,
            height,
            data,
        }
    }

    #[test]
    fn a_crop_holds_the_region_rounded_outwards_and_clipped() {
        let f = frame(64, 48);
        let c = crop_jpeg(&f, BBox::new(10.4, 5.6, 30.2, 60.0))
            .unwrap()
            .unwrap();
        assert_eq!((c.width, c.height), (21, 43));
        let back = crate::decode_rgb(&c.jpeg).unwrap();
        assert_eq!((back.width, back.height), (21, 43));
        // Top-left pixel of the crop is frame pixel (10, 5): red = x, green = y.
        assert!(
            back.data[0].abs_diff(10) <= 6 && back.data[1].abs_diff(5) <= 6,
            "{:?}",
            &back.data[..3]
        );
        assert!(
            crop_jpeg(&f, BBox::new(70.0, 0.0, 90.0, 10.0))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_large_crop_is_downscaled_to_1280_on_its_long_side() {
        let f = frame(1920, 1080);
        let c = crop_jpeg(&f, BBox::new(0.0, 100.0, 1920.0, 700.0))
            .unwrap()
            .unwrap();
        assert_eq!((c.width, c.height), (1280, 400));
    }
}
