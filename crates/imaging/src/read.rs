//! Reading image bytes and files into owned RGB frames, with errors that say which file and
//! why. JPEG goes through libjpeg-turbo (so our pixels match OpenCV's exactly); PNG through the
//! `image` crate. A picture whose header claims more than [`MAX_PIXELS`] is refused before any
//! pixel memory is allocated.

use std::path::{Path, PathBuf};

use crate::RgbFrame;

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

/// Largest picture decoded, in pixels (8K UHD is 33.2 million): a header claiming more is
/// refused before any pixel memory is allocated, so a hostile camera cannot make the service
/// allocate gigabytes with a few bytes.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Refuses dimensions above [`MAX_PIXELS`].
fn check_size(width: u64, height: u64) -> Result<(), String> {
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(format!(
            "picture of {width}x{height} is larger than {MAX_PIXELS} pixels"
        ));
    }
    Ok(())
}

/// Decodes encoded image bytes (JPEG or PNG) to RGB. The declared size is checked against
/// [`MAX_PIXELS`] before decoding.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbFrame, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let header = turbojpeg::read_header(bytes).map_err(|e| e.to_string())?;
        check_size(header.width as u64, header.height as u64)?;
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
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())
    };
    let (width, height) = reader()?.into_dimensions().map_err(|e| e.to_string())?;
    check_size(u64::from(width), u64::from(height))?;
    let mut limits = image::Limits::default();
    // Room for the decoded picture in its widest layout (16-bit RGBA).
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let mut reader = reader()?;
    reader.limits(limits);
    let image = reader.decode().map_err(|e| e.to_string())?;
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

    /// A valid JPEG whose frame header is patched to claim `width` x `height`.
    fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
        let frame = RgbFrame {
            width: 16,
            height: 16,
            data: vec![90; 16 * 16 * 3],
        };
        let mut jpeg = crate::encode_jpeg(&frame, 80).unwrap();
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        jpeg
    }

    #[test]
    fn pictures_claiming_huge_sizes_are_refused_before_decoding() {
        // 65000 x 65000 x 3 would be 12.7 GB of pixels.
        let err = decode_rgb(&jpeg_claiming(65000, 65000)).unwrap_err();
        assert!(err.contains("65000x65000"), "{err}");
        // Patched to a size inside the cap the check lets it through to the decoder.
        let err = decode_rgb(&jpeg_claiming(6000, 6000)).map(|f| f.width);
        assert!(!format!("{err:?}").contains("larger than"), "{err:?}");
        assert_eq!(decode_rgb(&jpeg_claiming(16, 16)).unwrap().width, 16);
        // A PNG whose IHDR (with a correct CRC) claims 100000 x 100000.
        let mut png = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_rgb(&png).unwrap_err();
        assert!(err.contains("100000x100000"), "{err}");
    }

    /// The CRC-32 PNG chunks carry.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
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
