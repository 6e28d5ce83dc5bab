//! H.264 decoding with OpenH264 (bundled source, no system codec needed). A [`VideoDecoder`] remembers which run of frames it decoded last, so a
//! [`DecodeJob`] that continues that run costs only its new frames.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::sampler::DecodeJob;
use imaging::RgbFrame;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decoder could not be created.
    #[error("cannot create the H.264 decoder: {0}")]
    Init(String),
    /// The bitstream is corrupt or unsupported.
    #[error("H.264 decode failed: {0}")]
    Decode(String),
}

/// One camera's H.264 decoder.
pub struct VideoDecoder {
    decoder: Decoder,
    /// `(gop, frames decoded of it)` after the last job.
    position: Option<(u64, usize)>,
    frames_decoded: u64,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder")
            .field("frames_decoded", &self.frames_decoded)
            .finish()
    }
}

impl VideoDecoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, DecodeError> {
        let decoder = Decoder::new().map_err(|e| DecodeError::Init(e.to_string()))?;
        Ok(Self {
            decoder,
            position: None,
            frames_decoded: 0,
        })
    }

    /// Frames decoded since creation.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// Decodes `job` (resuming when it continues the previous run) and returns the picture of
    /// its last frame, or `None` when the decoder produced no picture for it.
    pub fn decode(&mut self, job: &DecodeJob) -> Result<Option<RgbFrame>, DecodeError> {
        if let Some(last) = job
            .frames
            .last()
            .filter(|f| f.data.starts_with(&[0xFF, 0xD8]))
        {
            // MJPEG: every picture stands alone.
            self.frames_decoded += 1;
            return imaging::decode_rgb(&last.data)
                .map(Some)
                .map_err(DecodeError::Decode);
        }
        let start = match self.position {
            Some((gop, done)) if gop == job.gop && done == job.resume_from => job.resume_from,
            _ => 0,
        };
        self.position = None;
        let last = job.frames.len().saturating_sub(1);
        let mut picture = None;
        for (i, frame) in job.frames.iter().enumerate().skip(start) {
            self.frames_decoded += 1;
            let decoded = self
                .decoder
                .decode(&frame.data)
                .map_err(|e| DecodeError::Decode(e.to_string()))?;
            if i == last {
                picture = decoded.map(|yuv| {
                    let (width, height) = yuv.dimensions();
                    let mut data = vec![0u8; width * height * 3];
                    yuv.write_rgb8(&mut data);
                    RgbFrame {
                        width: width as u32,
                        height: height as u32,
                        data,
                    }
                });
            }
        }
        self.position = Some((job.gop, job.frames.len()));
        Ok(picture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = VideoDecoder::new().unwrap();
        let job = DecodeJob {
            gop: 1,
            frames: vec![super::super::sampler::EncodedFrame {
                data: std::sync::Arc::from(vec![0u8, 0, 0, 1, 0x65, 0xff, 0x00, 0x13, 0x37]),
                keyframe: true,
                pts: std::time::Duration::ZERO,
            }],
            resume_from: 0,
        };
        // Either an error or no picture; never a panic or a bogus frame.
        if let Ok(Some(p)) = d.decode(&job) {
            panic!("garbage decoded to a {}x{} picture", p.width, p.height);
        }
    }
}
