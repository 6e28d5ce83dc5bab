//! Evidence of one analysed frame: the frame and each traffic group's crop as JPEG (group crops at
//! most [`MAX_CROP_SIDE`] pixels on their long side), and [`judge_frame`], the step shared by
//! the live pipeline and `analyze`: detections -> scene -> crops -> `detection_result`.

use std::time::Instant;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use vision::scene::{Alert, RiskLevel, Scene, SceneFrame};
use vision::{BBox, Detection};

use super::decode::{DecodeError, encode_jpeg};
use super::result::{FrameResult, ModelFacts, detection_result};
use crate::http::protocol::CameraId;
use crate::imageio::RgbFrame;
use crate::llm::camera::CameraLlm;
use crate::llm::parse::Finding;

/// Longest side of a group crop (SPEC section 4).
pub const MAX_CROP_SIDE: u32 = 1280;
/// JPEG quality of frames and crops.
pub const JPEG_QUALITY: i32 = 80;

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
pub fn crop_jpeg(frame: &RgbFrame, region: BBox) -> Result<Option<GroupCrop>, DecodeError> {
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
pub fn downscale(src: &RgbFrame, width: u32, height: u32) -> Result<RgbFrame, DecodeError> {
    let fail = |e: &dyn std::fmt::Display| DecodeError::Encode(format!("crop resize: {e}"));
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

/// One decoded frame to judge.
#[derive(Debug)]
pub struct FrameInput<'a> {
    /// Camera id.
    pub camera_id: CameraId,
    /// The decoded frame.
    pub frame: &'a RgbFrame,
    /// Stream time of the frame, seconds.
    pub stream_time: f64,
    /// The frame's detections.
    pub detections: &'a [Detection],
    /// When work on the frame started (for `processTime`).
    pub started: Instant,
    /// Whether to inline the frame itself as JPEG.
    pub with_frame: bool,
}

/// A judged frame.
#[derive(Debug)]
pub struct Judged {
    /// The `detection_result` message text.
    pub text: String,
    /// What the scene said.
    pub scene: SceneFrame,
    /// A `high` alert fired on this very frame (not carried over): the alert pause applies.
    pub fresh_high: bool,
    /// The frame's stream time.
    pub stream_time: f64,
    /// The LLM's findings at `medium` or above that arrived with this frame.
    pub fresh_llm_findings: Vec<Finding>,
    /// The frame as JPEG, when it was inlined.
    pub jpeg: Option<Vec<u8>>,
    /// When the frame was judged (the message's `timestamp`).
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

impl Judged {
    /// Rule alerts that started on this frame (not carried over from an earlier one).
    pub fn new_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.scene
            .alerts
            .iter()
            .filter(|a| !a.stale && a.started_at == self.stream_time)
    }
}

/// Runs the scene on a frame's detections, encodes the evidence, offers the frame to the
/// camera's LLM (if any) and builds the message with its latest answer.
pub fn judge_frame(
    scene: &mut Scene,
    facts: &ModelFacts,
    input: &FrameInput<'_>,
    llm: Option<&CameraLlm>,
) -> Result<Judged, DecodeError> {
    let frame = input.frame;
    let judged = scene.update(
        input.stream_time,
        frame.width,
        frame.height,
        input.detections,
    );
    let process_time = input.started.elapsed().as_secs_f64();
    let crops = judged
        .groups
        .iter()
        .map(|g| crop_jpeg(frame, g.crop))
        .collect::<Result<Vec<_>, _>>()?;
    let jpeg = if input.with_frame {
        Some(encode_jpeg(frame, JPEG_QUALITY)?)
    } else {
        None
    };
    let timestamp = chrono::Utc::now();
    let verdict = llm.and_then(|l| {
        l.offer(input.detections, &judged, &crops, timestamp);
        l.current()
    });
    let text = detection_result(
        &FrameResult {
            camera_id: input.camera_id,
            timestamp,
            jpeg: jpeg.as_deref(),
            stream_time: input.stream_time,
            width: frame.width,
            height: frame.height,
            detections: input.detections,
            scene: &judged,
            crops: &crops,
            process_time,
            llm: verdict.as_ref().map(|(v, fresh)| (v, *fresh)),
        },
        facts,
    );
    let fresh_llm_findings: Vec<Finding> = verdict
        .as_ref()
        .filter(|(_, fresh)| *fresh)
        .map(|(v, _)| {
            v.answer
                .results
                .iter()
                .filter(|f| f.level >= RiskLevel::Medium)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let llm_high = fresh_llm_findings
        .iter()
        .any(|f| f.level == RiskLevel::High);
    let fresh_high = llm_high
        || judged
            .alerts
            .iter()
            .any(|a| a.hit.level == RiskLevel::High && !a.stale);
    Ok(Judged {
        text,
        scene: judged,
        fresh_high,
        stream_time: input.stream_time,
        fresh_llm_findings,
        jpeg,
        timestamp,
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
        let back = crate::imageio::decode_rgb(&c.jpeg).unwrap();
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
