//! Reading image files into owned RGB frames, with errors that say which file and why. JPEG goes
//! through libjpeg-turbo (the decoder OpenCV and most camera tooling use, so our pixels match
//! theirs exactly); PNG through the `image` crate.

use std::path::{Path, PathBuf};

use vision::ImageView;

/// An owned, tightly packed RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB bytes.
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// A borrowed view for the detector.
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            width: self.width,
            height: self.height,
            rgb: &self.data,
        }
    }
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file is missing or unreadable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not an image we can decode.
    #[error("{path}: not a readable image ({reason})")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

/// Reads and decodes `path` (JPEG or PNG, told apart by content) to RGB.
pub fn read_rgb(path: &Path) -> Result<RgbFrame, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_rgb(&bytes).map_err(|reason| ImageError::Decode {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes encoded image bytes (JPEG or PNG) to RGB.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbFrame, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let image =
            turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB).map_err(|e| e.to_string())?;
        if image.width == 0 || image.height == 0 {
            return Err("empty image".into());
        }
        return Ok(RgbFrame {
            width: image.width as u32,
            height: image.height as u32,
            data: image.pixels,
        });
    }
    let image = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err("empty image".into());
    }
    Ok(RgbFrame {
        width,
        height,
        data: rgb.into_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_corrupt_files_are_errors() {
        let err = read_rgb(Path::new("/nonexistent/x.jpg")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.jpg"), "{err}");
        assert!(decode_rgb(b"\xff\xd8\xff\xe0 not really a jpeg").is_err());
        assert!(decode_rgb(b"").is_err());
    }

    #[test]
    fn png_round_trip_keeps_pixels() {
        let mut png = Vec::new();
        let img = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 7]));
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let frame = decode_rgb(&png).unwrap();
        assert_eq!((frame.width, frame.height), (3, 2));
        assert_eq!(&frame.data[..6], &[0, 0, 7, 1, 0, 7]);
    }
}
