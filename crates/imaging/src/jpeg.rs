//! JPEG encoding with libjpeg-turbo (the codec OpenCV and most camera tooling use).

use crate::RgbFrame;

/// JPEG quality of frames and crops.
pub const JPEG_QUALITY: i32 = 80;

/// Why a picture could not be encoded or resized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JPEG encode failed: {0}")]
pub struct EncodeError(pub String);

/// Encodes an RGB frame as JPEG at `quality` (1-100).
pub fn encode_jpeg(frame: &RgbFrame, quality: i32) -> Result<Vec<u8>, EncodeError> {
    let image = turbojpeg::Image {
        pixels: frame.data.as_slice(),
        width: frame.width as usize,
        pitch: frame.width as usize * 3,
        height: frame.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, quality, turbojpeg::Subsamp::Sub2x2)
        .map(|buf| buf.to_vec())
        .map_err(|e| EncodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_round_trips_through_libjpeg_turbo() {
        let frame = RgbFrame {
            width: 16,
            height: 8,
            data: [200u8, 30, 30].repeat(16 * 8),
        };
        let jpeg = encode_jpeg(&frame, 90).unwrap();
        let back = crate::decode_rgb(&jpeg).unwrap();
        assert_eq!((back.width, back.height), (16, 8));
        assert!(
            back.data
                .chunks(3)
                .all(|p| p[0].abs_diff(200) < 8 && p[1].abs_diff(30) < 8)
        );
    }
}
