//! The picture watch (`vision::sanity`) on real footage, decoded the way cameras are (MP4
//! demuxer, sampler, OpenH264): normal street traffic stays `Normal` at the cadences cameras
//! run at, and the failures it must catch are made from the same real frames: the picture
//! repeated (a frozen encoder), shifted by a few percent (the camera moved), swapped for another
//! street (a scene cut). The figures it prints are those quoted in docs/scene-and-rules.md.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

use std::path::{Path, PathBuf};
use std::time::Duration;

use camera::sampler::{Decision, Sampler};
use camera::source::SourceError;
use camera::source::file::FileSource;
use camera::video::VideoDecoder;
use imaging::RgbFrame;
use vision::sanity::{PictureState, PictureWatch, SanityConfig, Thumbnail, compare};

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/media")
        .join(name)
}

/// Calls `f` with every sampled picture of `name` (one per `interval` seconds) and its stream
/// time, up to `until` seconds.
fn each_frame(name: &str, interval: f64, until: f64, mut f: impl FnMut(f64, &RgbFrame)) {
    let mut source = FileSource::open(&media(name)).unwrap();
    let mut sampler = Sampler::new(Duration::from_secs_f64(interval));
    let mut decoder = VideoDecoder::new().unwrap();
    loop {
        let frame = match source.next_frame() {
            Ok(frame) => frame,
            Err(SourceError::Ended) => return,
            Err(e) => panic!("{name}: {e}"),
        };
        if frame.pts.as_secs_f64() > until {
            return;
        }
        let Decision::Decode(job) = sampler.push(frame) else {
            continue;
        };
        let t = job.frames.last().unwrap().pts.as_secs_f64();
        if let Some(picture) = decoder.decode(&job).unwrap() {
            f(t, &picture);
        }
    }
}

fn thumb(frame: &RgbFrame) -> Thumbnail {
    Thumbnail::of(frame.view())
}

/// The first picture of `name` at or after `t` seconds.
fn picture_at(name: &str, t: f64) -> RgbFrame {
    let mut found = None;
    each_frame(name, 0.04, t + 3.0, |at, p| {
        if at >= t && found.is_none() {
            found = Some(p.clone());
        }
    });
    found.unwrap()
}

/// `frame` seen by a camera turned right and down by (`dx`, `dy`) pixels: its content moves
/// the other way, the strip that comes into view repeats the edge.
fn turned(frame: &RgbFrame, dx: i64, dy: i64) -> RgbFrame {
    let (w, h) = (i64::from(frame.width), i64::from(frame.height));
    let mut data = Vec::with_capacity(frame.data.len());
    for y in 0..h {
        for x in 0..w {
            let sx = (x + dx).clamp(0, w - 1);
            let sy = (y + dy).clamp(0, h - 1);
            let i = ((sy * w + sx) * 3) as usize;
            data.extend_from_slice(&frame.data[i..i + 3]);
        }
    }
    RgbFrame { data, ..*frame }
}

/// Every other pixel of every other row.
fn halved(frame: &RgbFrame) -> RgbFrame {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut data = Vec::with_capacity(frame.data.len() / 4);
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let i = (y * w + x) * 3;
            data.extend_from_slice(&frame.data[i..i + 3]);
        }
    }
    RgbFrame {
        width: frame.width / 2,
        height: frame.height / 2,
        data,
    }
}

/// What the watch saw on a clip: the extremes of the frame-to-frame measures.
#[derive(Debug)]
struct Figures {
    frames: usize,
    /// Frames that repeated the previous one (within the still thresholds).
    still: usize,
    max_mean: f32,
    /// The smallest largest-cell difference between frames that were not repeats.
    min_max_moving: f32,
    max_shift: i32,
    max_residual: f32,
    min_correlation: f32,
    /// The smallest largest-cell difference between frames 3 s apart: how close the clip's
    /// quietest moments come to a frozen picture.
    min_max_over_3s: f32,
}

#[test]
fn real_street_footage_is_never_frozen_cut_or_moved() {
    // The shared clips as cameras send them (H.264 without B-frames; OpenH264 cannot decode
    // most frames of the originals' High profile with B-frames).
    let cfg = SanityConfig::default();
    for (name, seconds) in [
        ("traffic-street-h264.mp4", 75.0),
        ("road-cars-h264.mp4", 9.0),
        ("vtest-h264.mp4", 80.0),
    ] {
        for interval in [0.3, 1.8] {
            let mut watch = PictureWatch::new(cfg);
            let mut fig = Figures {
                frames: 0,
                still: 0,
                max_mean: 0.0,
                min_max_moving: f32::MAX,
                max_shift: 0,
                max_residual: 0.0,
                min_correlation: 1.0,
                min_max_over_3s: f32::MAX,
            };
            let mut seen: Vec<(f64, Thumbnail)> = Vec::new();
            each_frame(name, interval, seconds, |t, frame| {
                let v = watch.observe(t, thumb(frame));
                fig.frames += 1;
                if let Some((_, old)) = seen.iter().rev().find(|(t0, _)| t - t0 >= 2.9) {
                    let c = compare(old, &thumb(frame), cfg.max_shift, cfg.shift_gain).unwrap();
                    fig.min_max_over_3s = fig.min_max_over_3s.min(c.max);
                }
                seen.push((t, thumb(frame)));
                let Some(c) = v.change else { return };
                fig.max_mean = fig.max_mean.max(c.mean);
                fig.max_shift = fig.max_shift.max(c.shift.0.abs().max(c.shift.1.abs()));
                fig.max_residual = fig.max_residual.max(c.residual_median);
                fig.min_correlation = fig.min_correlation.min(c.correlation);
                if v.state == PictureState::Still {
                    fig.still += 1;
                } else {
                    fig.min_max_moving = fig.min_max_moving.min(c.max);
                }
                // A frame that repeats the last one holds its alerts (it says nothing new);
                // nothing else may.
                assert!(
                    matches!(v.state, PictureState::Normal | PictureState::Still),
                    "{name} every {interval} s, at {t:.2} s: {v:?}"
                );
            });
            eprintln!("{name} every {interval} s: {fig:?}");
            assert!(fig.frames as f64 >= seconds / interval * 0.8, "{fig:?}");
            assert!(fig.still * 10 <= fig.frames, "{name}: {fig:?}");
            // Far from the thresholds, not just under them.
            assert!(fig.max_shift < cfg.moved_shift, "{name}: {fig:?}");
            assert!(fig.max_residual <= cfg.cut_median / 2.0, "{name}: {fig:?}");
            assert!(
                fig.min_max_over_3s >= 2.0 * cfg.still_max,
                "{name}: {fig:?}"
            );
        }
    }
}

#[test]
fn real_frames_repeated_shifted_or_swapped_are_caught() {
    let cfg = SanityConfig::default();
    let street = picture_at("traffic-street-h264.mp4", 12.0);
    let later = picture_at("traffic-street-h264.mp4", 12.3);
    let much_later = picture_at("traffic-street-h264.mp4", 42.0);

    // The same picture again (a frozen encoder) is unchanged; the street 0.3 s later is not.
    // (Not at 10 s: the clip itself repeats one picture from 10.0 to 10.6 s.)
    let c = compare(
        &thumb(&street),
        &thumb(&street.clone()),
        cfg.max_shift,
        cfg.shift_gain,
    )
    .unwrap();
    assert!(c.mean == 0.0 && c.max == 0.0, "{c:?}");
    let c = compare(
        &thumb(&street),
        &thumb(&later),
        cfg.max_shift,
        cfg.shift_gain,
    )
    .unwrap();
    eprintln!("0.3 s later: {c:?}");
    assert!(c.max > 4.0 * cfg.still_max, "{c:?}");

    // The camera turned by 3% and 6% of the width, or tilted by 5% of the height, while the
    // traffic drove on: moved; by 0.5% (wind), not.
    for (dx, dy) in [(20, 0), (-40, 0), (0, 18), (20, -18)] {
        let mut watch = PictureWatch::new(cfg);
        watch.observe(12.0, thumb(&street));
        let v = watch.observe(12.3, thumb(&turned(&later, dx, dy)));
        assert_eq!(
            v.state,
            PictureState::Moved,
            "turned by ({dx}, {dy}): {v:?}"
        );
        let (sx, sy) = v.change.unwrap().shift;
        assert!(
            (f64::from(sx) + dx as f64 / 10.0).abs() <= 1.0
                && (f64::from(sy) + dy as f64 / 10.0).abs() <= 1.0,
            "turned by ({dx}, {dy}) px, estimated ({sx}, {sy}) cells"
        );
    }
    let mut watch = PictureWatch::new(cfg);
    watch.observe(12.0, thumb(&street));
    let v = watch.observe(12.3, thumb(&turned(&later, 3, -2)));
    assert_eq!(v.state, PictureState::Normal, "{v:?}");

    // Another street of the same size (the road clip halved to 640x360): a cut. The same street
    // 30 s later, all its cars changed: not one.
    let road = halved(&picture_at("road-cars-h264.mp4", 4.0));
    assert_eq!((road.width, road.height), (street.width, street.height));
    let mut watch = PictureWatch::new(cfg);
    watch.observe(12.0, thumb(&street));
    let v = watch.observe(12.3, thumb(&road));
    assert_eq!(v.state, PictureState::Cut, "{v:?}");
    eprintln!("cut: {:?}", v.change);
    let mut watch = PictureWatch::new(cfg);
    watch.observe(12.0, thumb(&street));
    let v = watch.observe(42.0, thumb(&much_later));
    assert_eq!(v.state, PictureState::Normal, "{v:?}");
    eprintln!("30 s later: {:?}", v.change);
}
