//! Video files as sources: H.264 in MP4 (what IP-camera exports and `ffmpeg -c:v libx264`
//! produce), demuxed with the `mp4` crate and turned into the same Annex B frames an RTSP camera
//! gives, so files and cameras share the sampler, decoder and pipeline.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mp4::{MediaType, Mp4Reader, TrackType};

use super::error::SourceError;
use crate::sampler::EncodedFrame;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// An H.264 track of an MP4 file, read frame by frame.
pub struct FileSource {
    path: PathBuf,
    reader: Mp4Reader<BufReader<File>>,
    track: u32,
    samples: u32,
    next: u32,
    timescale: f64,
    parameter_sets: Vec<u8>,
    /// Picture size from the track header.
    pub dimensions: (u32, u32),
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// Opens `path` and finds its H.264 video track.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let fail = |why: String| SourceError::Connect(format!("{}: {why}", path.display()));
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let size = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        let reader = Mp4Reader::read_header(BufReader::new(file), size)
            .map_err(|e| fail(format!("not a readable MP4 file ({e})")))?;
        let (track, info) = reader
            .tracks()
            .iter()
            .find(|(_, t)| matches!(t.track_type(), Ok(TrackType::Video)))
            .map(|(id, t)| (*id, t))
            .ok_or_else(|| fail("no video track".into()))?;
        if !matches!(info.media_type(), Ok(MediaType::H264)) {
            return Err(SourceError::Unsupported(format!(
                "{}: only H.264 video is supported",
                path.display()
            )));
        }
        let mut parameter_sets = Vec::new();
        for set in [info.sequence_parameter_set(), info.picture_parameter_set()] {
            let set = set.map_err(|e| fail(format!("missing parameter set ({e})")))?;
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(set);
        }
        let dimensions = (u32::from(info.width()), u32::from(info.height()));
        let timescale = f64::from(info.timescale().max(1));
        let samples = info.sample_count();
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            track,
            samples,
            next: 1,
            timescale,
            parameter_sets,
            dimensions,
        })
    }

    /// The next frame, or [`SourceError::Ended`] after the last.
    pub fn next_frame(&mut self) -> Result<EncodedFrame, SourceError> {
        if self.next > self.samples {
            return Err(SourceError::Ended);
        }
        let sample = self
            .reader
            .read_sample(self.track, self.next)
            .map_err(|e| SourceError::Stream(format!("{}: {e}", self.path.display())))?
            .ok_or(SourceError::Ended)?;
        self.next += 1;
        let mut data = Vec::with_capacity(sample.bytes.len() + self.parameter_sets.len());
        if sample.is_sync {
            data.extend_from_slice(&self.parameter_sets);
        }
        avcc_to_annex_b(&sample.bytes, &mut data)
            .map_err(|why| SourceError::Stream(format!("{}: {why}", self.path.display())))?;
        Ok(EncodedFrame {
            data: Arc::from(data),
            keyframe: sample.is_sync,
            pts: Duration::from_secs_f64(sample.start_time as f64 / self.timescale),
        })
    }

    /// Starts again from the first frame (looping playback).
    pub fn rewind(&mut self) {
        self.next = 1;
    }
}

/// Rewrites 4-byte length-prefixed NAL units as start-code-prefixed ones, appending to `out`.
pub fn avcc_to_annex_b(mut avcc: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    while !avcc.is_empty() {
        let Some((len, rest)) = avcc.split_first_chunk::<4>() else {
            return Err("truncated NAL length");
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err("NAL unit longer than its sample");
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(&rest[..len]);
        avcc = &rest[len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_becomes_annex_b() {
        let mut out = Vec::new();
        avcc_to_annex_b(&[0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 1, 0x41], &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41]);
        assert!(avcc_to_annex_b(&[0, 0, 0, 9, 1], &mut Vec::new()).is_err());
        assert!(avcc_to_annex_b(&[0, 0], &mut Vec::new()).is_err());
    }

    #[test]
    fn missing_and_non_mp4_files_are_errors() {
        assert!(FileSource::open(Path::new("/nonexistent.mp4")).is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"definitely not an mp4").unwrap();
        assert!(FileSource::open(f.path()).is_err());
    }
}
