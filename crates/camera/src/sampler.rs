//! Which video frames to decode. Decoding is the expensive part of ingest, and we analyse one
//! frame every `frame_interval` (1.8 s) out of 25-30 per second, so we decode only what a sample
//! needs:
//! - when keyframes come at least as often as samples are due (with 20% slack, the tolerance of
//!   the analysis interval), we decode keyframes only, taking the keyframe nearest each due time;
//! - otherwise we keep the packets since the last keyframe and, when a sample is due, hand over
//!   that run (keyframe first) and analyse its last picture. A decoder that decoded the earlier
//!   part of the same run resumes where it stopped, so no frame is decoded twice.
//!
//! Pure and synchronous: packets in, decode jobs out.

use std::sync::Arc;
use std::time::Duration;

/// Most packets kept waiting for a sample; a longer group of pictures is dropped (and counted)
/// until the next keyframe.
pub const MAX_GOP_FRAMES: usize = 750;

/// How far past the due time a keyframe may come and still count as on time, as a fraction of
/// the interval.
const SLACK: f64 = 0.2;

/// One encoded video frame in Annex B form (start codes; parameter sets before keyframes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex B H.264 bytes, or a whole JPEG picture (MJPEG sources).
    pub data: Arc<[u8]>,
    /// Whether the frame can be decoded on its own (IDR).
    pub keyframe: bool,
    /// Presentation time from the start of the stream.
    pub pts: Duration,
}

/// Frames to decode for one sample: a run that starts at a keyframe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeJob {
    /// Identifies the group of pictures (run from one keyframe).
    pub gop: u64,
    /// The run from its keyframe to the frame to analyse (the last).
    pub frames: Vec<EncodedFrame>,
    /// How many leading frames an earlier job of the same `gop` already carried: a decoder that
    /// decoded exactly those may resume here; any other decoder starts from the keyframe.
    pub resume_from: usize,
}

/// What the sampler decided for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to decode now.
    Wait,
    /// Decode and analyse.
    Decode(DecodeJob),
    /// The group of pictures grew past [`MAX_GOP_FRAMES`]; its packets were dropped.
    Overflow(usize),
}

/// The sampling state of one stream.
#[derive(Debug)]
pub struct Sampler {
    interval: Duration,
    due: Option<Duration>,
    /// No sample before this stream time (an alert pause): a floor, not a target, so the
    /// keyframe nearest the due time cannot come early.
    hold: Option<Duration>,
    gop: Vec<EncodedFrame>,
    gop_id: u64,
    handed_over: usize,
    last_keyframe: Option<Duration>,
    keyframe_interval: Option<Duration>,
    last_pts: Option<Duration>,
}

impl Sampler {
    /// A sampler that wants one picture every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            due: None,
            hold: None,
            gop: Vec::new(),
            gop_id: 0,
            handed_over: 0,
            last_keyframe: None,
            keyframe_interval: None,
            last_pts: None,
        }
    }

    /// Wants one picture every `interval` from now on (a scene's `detect_interval` changed).
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// The measured keyframe interval, once two keyframes were seen.
    pub fn keyframe_interval(&self) -> Option<Duration> {
        self.keyframe_interval
    }

    /// Whether samples are taken from keyframes alone.
    pub fn keyframes_only(&self) -> bool {
        self.keyframe_interval
            .is_some_and(|k| k.as_secs_f64() <= self.interval.as_secs_f64() * (1.0 + SLACK))
    }

    /// Takes no sample before `until` (stream time), e.g. after a high risk; the next one is
    /// the first due at or after it.
    pub fn pause_until(&mut self, until: Duration) {
        self.due = Some(self.due.map_or(until, |d| d.max(until)));
        self.hold = Some(self.hold.map_or(until, |h| h.max(until)));
    }

    /// Takes one packet and says what to decode.
    pub fn push(&mut self, frame: EncodedFrame) -> Decision {
        // Time went backwards by more than an interval (a looping source, a restarted encoder):
        // the schedule belongs to the old timeline, so start a new one at the next keyframe.
        if self
            .last_pts
            .is_some_and(|last| frame.pts + self.interval < last)
        {
            self.due = None;
            self.hold = None;
            self.last_keyframe = None;
        }
        self.last_pts = Some(frame.pts);
        if frame.keyframe {
            if let Some(prev) = self.last_keyframe {
                let gap = frame.pts.saturating_sub(prev);
                if !gap.is_zero() {
                    self.keyframe_interval = Some(gap);
                }
            }
            self.last_keyframe = Some(frame.pts);
            self.gop.clear();
            self.gop_id += 1;
            self.handed_over = 0;
        } else if self.gop.is_empty() {
            return Decision::Wait; // Nothing decodable before the first keyframe.
        }
        let pts = frame.pts;
        let keyframe = frame.keyframe;
        self.gop.push(frame);

        if self.hold.is_some_and(|h| pts < h) {
            return self.overflow();
        }
        self.hold = None;
        let Some(due) = self.due else {
            return self.take(pts, pts);
        };
        let slack = self.interval.mul_f64(SLACK);
        match self.keyframe_interval {
            // Keyframe mode: the keyframe nearest the due time; a keyframe later than a whole
            // keyframe interval means the stream changed, so decode what we have.
            Some(k) if self.keyframes_only() => {
                if (keyframe && pts + k / 2 >= due) || pts >= due + k {
                    return self.take(pts, due);
                }
            }
            // Long groups of pictures: decode up to the due frame.
            Some(_) => {
                if pts >= due {
                    return self.take(pts, due);
                }
            }
            // Keyframe spacing not known yet: a keyframe within the slack, else the run.
            None => {
                if (keyframe && pts >= due) || pts >= due + slack {
                    return self.take(pts, due);
                }
            }
        }
        self.overflow()
    }

    /// Waits for more, unless the buffered group of pictures is too long to keep.
    fn overflow(&mut self) -> Decision {
        if self.gop.len() > MAX_GOP_FRAMES {
            let dropped = self.gop.len();
            self.gop.clear();
            return Decision::Overflow(dropped);
        }
        Decision::Wait
    }

    /// Emits the sample at `pts` and schedules the next one from `due`.
    fn take(&mut self, pts: Duration, due: Duration) -> Decision {
        let mut next = due + self.interval;
        if let Some(k) = self.keyframe_interval.filter(|_| self.keyframes_only()) {
            // Never aim before the keyframe after this one, or samples would drift early.
            next = next.max((pts + self.interval).saturating_sub(k / 2));
        }
        // Far behind schedule (a stall, a pause): restart the schedule from now.
        self.due = Some(if next + self.interval < pts {
            pts + self.interval
        } else {
            next
        });
        let job = DecodeJob {
            gop: self.gop_id,
            frames: self.gop.clone(),
            resume_from: self.handed_over,
        };
        self.handed_over = self.gop.len();
        Decision::Decode(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_that_starts_over_keeps_the_pace() {
        // A 9 s clip looped three times (timestamps restart at 0), keyframe every 2 s.
        let mut s = Sampler::new(Duration::from_secs_f64(1.8));
        let mut samples = Vec::new();
        for lap in 0..3 {
            for i in 0..225u32 {
                let frame = EncodedFrame {
                    data: Arc::from(vec![0u8; 4]),
                    keyframe: i % 50 == 0,
                    pts: Duration::from_secs_f64(f64::from(i) / 25.0),
                };
                if let Decision::Decode(_) = s.push(frame) {
                    samples.push(lap * 9 + i / 25);
                }
            }
        }
        // About one sample every 2 s over 27 s, in every lap.
        assert!(samples.len() >= 12, "{samples:?}");
        for lap in 0..3 {
            assert!(
                samples.iter().filter(|t| **t / 9 == lap).count() >= 4,
                "{samples:?}"
            );
        }
    }

    /// Feeds a `fps` stream with a keyframe every `gop` frames for `seconds`, returning the
    /// sample times and how many frames were handed to the decoder.
    fn simulate(interval: f64, fps: u32, gop: u32, seconds: u32) -> (Vec<f64>, usize) {
        let mut s = Sampler::new(Duration::from_secs_f64(interval));
        let (mut samples, mut decoded) = (Vec::new(), 0);
        for i in 0..fps * seconds {
            let frame = EncodedFrame {
                data: Arc::from(vec![0u8; 4]),
                keyframe: i % gop == 0,
                pts: Duration::from_secs_f64(f64::from(i) / f64::from(fps)),
            };
            if let Decision::Decode(job) = s.push(frame) {
                assert!(
                    job.frames[0].keyframe,
                    "a decode run must start at a keyframe"
                );
                decoded += job.frames.len() - job.resume_from;
                samples.push(job.frames.last().unwrap().pts.as_secs_f64());
            }
        }
        (samples, decoded)
    }

    /// A one-byte frame at `ms` milliseconds.
    fn f(keyframe: bool, ms: u64) -> EncodedFrame {
        EncodedFrame {
            data: Arc::from(vec![1u8]),
            keyframe,
            pts: Duration::from_millis(ms),
        }
    }

    fn mean_gap(samples: &[f64]) -> f64 {
        (samples[samples.len() - 1] - samples[0]) / (samples.len() - 1) as f64
    }

    #[test]
    fn ip_camera_gop_of_2s_decodes_keyframes_only() {
        // 25 fps, keyframe every 2 s, 1.8 s interval: one decode per sample, every 2 s.
        let (samples, decoded) = simulate(1.8, 25, 50, 60);
        assert_eq!(decoded, samples.len());
        let gap = mean_gap(&samples);
        assert!((gap - 1.8).abs() <= 1.8 * 0.2, "mean gap {gap}");
        // Decode-everything would be 1500 frames.
        assert!(decoded * 10 <= 1500, "{decoded} decodes");
    }

    #[test]
    fn long_gop_decodes_the_run_up_to_each_due_time() {
        // Keyframe every 10 s: samples every 1.8 s, each frame decoded at most once.
        let (samples, decoded) = simulate(1.8, 25, 250, 60);
        let gap = mean_gap(&samples);
        assert!((gap - 1.8).abs() < 0.05, "mean gap {gap}");
        assert!(decoded <= 1500, "{decoded}");
    }

    #[test]
    fn slow_interval_with_short_gop_takes_the_nearest_keyframe() {
        // 3 s interval, keyframes every 2 s: keyframe-only, averaging 3 s.
        let (samples, decoded) = simulate(3.0, 25, 50, 90);
        assert_eq!(decoded, samples.len());
        let gap = mean_gap(&samples);
        assert!((gap - 3.0).abs() < 0.2, "mean gap {gap}");
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut s = Sampler::new(Duration::from_secs(1));
        assert_eq!(s.push(f(false, 0)), Decision::Wait);
        assert!(matches!(s.push(f(true, 40)), Decision::Decode(j) if j.frames.len() == 1));
        assert_eq!(s.push(f(false, 80)), Decision::Wait);
    }

    #[test]
    fn pause_delays_the_next_sample() {
        let mut s = Sampler::new(Duration::from_secs(1));
        assert!(matches!(s.push(f(true, 0)), Decision::Decode(_)));
        s.pause_until(Duration::from_secs(4));
        // Keyframe spacing unknown: a non-keyframe is taken once 20% of the interval late.
        for ms in (40..4200).step_by(40) {
            assert_eq!(s.push(f(false, ms)), Decision::Wait, "at {ms} ms");
        }
        let Decision::Decode(job) = s.push(f(false, 4200)) else {
            panic!("no sample at 4.2 s")
        };
        assert_eq!((job.frames.len(), job.resume_from), (106, 1));
    }

    #[test]
    fn a_pause_is_a_floor_even_with_keyframes_every_two_seconds() {
        // 25 fps, keyframe every 2 s, 1.8 s interval: samples at the keyframes. A 3 s pause
        // after the sample at 4 s: the keyframe at 6 s is nearest the due time (7 s) within
        // half a keyframe interval, but it is inside the pause; the next sample is at 8 s.
        let mut s = Sampler::new(Duration::from_secs_f64(1.8));
        let mut samples = Vec::new();
        for i in 0..300u64 {
            let keyframe = i % 50 == 0;
            if let Decision::Decode(_) = s.push(f(keyframe, i * 40)) {
                samples.push(i * 40);
                if i * 40 == 4000 {
                    s.pause_until(Duration::from_secs(7));
                }
            }
        }
        assert!(samples.contains(&4000), "{samples:?}");
        let after = samples.iter().find(|&&ms| ms > 4000).unwrap();
        assert_eq!(*after, 8000, "{samples:?}");
    }

    #[test]
    fn endless_gop_is_bounded() {
        let mut s = Sampler::new(Duration::from_secs(3600));
        let f = |key, i: u64| f(key, i * 40);
        assert!(matches!(s.push(f(true, 0)), Decision::Decode(_)));
        let overflow = (1..=MAX_GOP_FRAMES as u64)
            .map(|i| s.push(f(false, i)))
            .find(|d| *d != Decision::Wait);
        assert_eq!(overflow, Some(Decision::Overflow(MAX_GOP_FRAMES + 1)));
        assert_eq!(s.push(f(false, 9999)), Decision::Wait);
    }
}
