//! The watch on synthetic pictures whose truth is known: a textured "street" (random grey
//! blocks, like façades and road markings at thumbnail scale) with cars (solid boxes) driving
//! over it. Real footage is checked in `crates/camera/tests/picture_sanity.rs`.

use super::*;
use crate::letterbox::ImageView;

const W: u32 = 640;
const H: u32 = 360;

/// A small deterministic generator (64-bit LCG), so the pictures need no crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

/// The grey of the street texture at (x, y): 16-pixel blocks of random grey, the same for a
/// seed wherever the view is.
fn texture(seed: u64, x: i64, y: i64) -> u8 {
    let (bx, by) = (x.div_euclid(16) as u64, y.div_euclid(16) as u64);
    // splitmix64's finaliser: every input bit flips half the output bits.
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(bx.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(by.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (40 + z % 170) as u8
}

/// A car: a box of one colour.
#[derive(Clone, Copy)]
struct Car {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    grey: u8,
}

/// A frame of the street of `seed` seen from a camera offset by `view` pixels, with `cars`,
/// every pixel plus `noise` (a generator of offsets, or none) and `gain` added.
fn frame(seed: u64, view: (i64, i64), cars: &[Car], noise: Option<&mut Lcg>, gain: i32) -> Vec<u8> {
    let mut noise = noise;
    let mut rgb = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..i64::from(H) {
        for x in 0..i64::from(W) {
            let (sx, sy) = (x + view.0, y + view.1);
            let mut v = i32::from(texture(seed, sx, sy));
            if let Some(c) = cars
                .iter()
                .find(|c| (c.x..c.x + c.w).contains(&sx) && (c.y..c.y + c.h).contains(&sy))
            {
                v = i32::from(c.grey);
            }
            v += gain;
            for _ in 0..3 {
                let n = noise
                    .as_deref_mut()
                    .map_or(0, |g| (g.next() % 7) as i32 - 3);
                rgb.push((v + n).clamp(0, 255) as u8);
            }
        }
    }
    rgb
}

fn thumb(rgb: &[u8]) -> Thumbnail {
    Thumbnail::of(ImageView::new(W, H, rgb).unwrap())
}

/// Three cars driving at `t` seconds: 60-120 px a second, like cars 30-60 m from a camera.
fn traffic(t: f64) -> Vec<Car> {
    let at = |x0: f64, v: f64| (x0 + v * t).rem_euclid(760.0) as i64 - 60;
    vec![
        Car {
            x: at(0.0, 120.0),
            y: 200,
            w: 56,
            h: 30,
            grey: 230,
        },
        Car {
            x: at(300.0, 90.0),
            y: 250,
            w: 64,
            h: 34,
            grey: 20,
        },
        Car {
            x: 700 - at(100.0, 60.0),
            y: 150,
            w: 40,
            h: 22,
            grey: 200,
        },
    ]
}

#[test]
fn thumbnails_average_areas_and_keep_the_aspect_ratio() {
    let rgb = frame(1, (0, 0), &[], None, 0);
    let t = thumb(&rgb);
    assert_eq!((t.width(), t.height()), (64, 36));
    // Each cell is the mean of its 10x10 block: cell (0, 0) from the first block's grey.
    let g = f32::from(texture(1, 0, 0));
    assert!((t.luma()[0] - g).abs() < 0.5, "{} vs {g}", t.luma()[0]);
    // Luma of a pure colour (BT.601).
    let red = [255u8, 0, 0].repeat(8 * 6);
    let t = Thumbnail::of(ImageView::new(8, 6, &red).unwrap());
    assert_eq!((t.width(), t.height()), (8, 6));
    assert!(
        t.luma().iter().all(|&v| (v - 76.5).abs() < 0.5),
        "{:?}",
        t.luma()
    );
    // 4:3 and tall pictures.
    let grey = vec![100u8; 768 * 576 * 3];
    let t = Thumbnail::of(ImageView::new(768, 576, &grey).unwrap());
    assert_eq!((t.width(), t.height()), (64, 48));
    assert!(t.luma().iter().all(|&v| (v - 100.0).abs() < 1e-3));
    assert!(Thumbnail::from_luma(2, 2, vec![0.0; 3]).is_none());
}

#[test]
fn moving_traffic_is_normal_at_every_cadence() {
    for cadence in [0.04, 0.3, 1.8] {
        let mut watch = PictureWatch::new(SanityConfig::default());
        for i in 0..40 {
            let t = f64::from(i) * cadence;
            let v = watch.observe(t, thumb(&frame(1, (0, 0), &traffic(t), None, 0)));
            assert_eq!(
                v.state,
                PictureState::Normal,
                "at {t} s every {cadence} s: {v:?}"
            );
            assert!(!v.holds_alerts());
        }
    }
}

#[test]
fn identical_frames_for_three_seconds_freeze_once_then_move_again() {
    let mut watch = PictureWatch::new(SanityConfig::default());
    let mut states = Vec::new();
    let mut froze_at = Vec::new();
    let mut thawed_at = Vec::new();
    // Traffic for 2 s, the picture stuck on the 2 s frame until 8 s, traffic again.
    for i in 0..=24 {
        let t = f64::from(i) * 0.5;
        let shown = if (2.0..8.0).contains(&t) { 2.0 } else { t };
        let v = watch.observe(t, thumb(&frame(1, (0, 0), &traffic(shown), None, 0)));
        states.push((t, v.state));
        if v.froze {
            froze_at.push(t);
        }
        if v.thawed {
            thawed_at.push(t);
        }
        assert_eq!(v.holds_alerts(), v.state != PictureState::Normal);
        assert!(!v.restarts_scene(), "{v:?}");
    }
    // Unchanged from 2.5 s (same as the 2 s frame), frozen once 3 s have passed since 2 s.
    assert_eq!(froze_at, [5.0], "{states:?}");
    assert_eq!(thawed_at, [8.0], "{states:?}");
    use PictureState::*;
    let state = |t: f64| states.iter().find(|s| s.0 == t).unwrap().1;
    assert_eq!(state(2.0), Normal);
    for t in [2.5, 3.0, 4.5] {
        assert_eq!(state(t), Still, "{t}: {states:?}");
    }
    for t in [5.0, 6.0, 7.5] {
        assert_eq!(state(t), Frozen, "{t}: {states:?}");
    }
    // Moving again: that frame and two more held while the rules find their feet.
    for t in [8.0, 8.5, 9.0] {
        assert_eq!(state(t), Settling, "{t}: {states:?}");
    }
    assert_eq!(state(9.5), Normal, "{states:?}");
    assert!(!watch.is_frozen());
}

#[test]
fn noise_of_a_still_picture_is_not_motion_but_one_small_car_is() {
    let mut g = Lcg(7);
    let parked = [Car {
        x: 100,
        y: 200,
        w: 56,
        h: 30,
        grey: 230,
    }];
    let cfg = SanityConfig::default();
    let a = thumb(&frame(1, (0, 0), &parked, Some(&mut g), 0));
    // The same picture with fresh noise of +-3 levels on every pixel (sensor and compression).
    let b = thumb(&frame(1, (0, 0), &parked, Some(&mut g), 0));
    let c = compare(&a, &b, cfg.max_shift, cfg.shift_gain).unwrap();
    assert!(c.mean <= cfg.still_mean && c.max <= cfg.still_max, "{c:?}");
    // A car of 40x22 pixels (0.4% of the picture) moving by 12 pixels is a change.
    let moved = [Car {
        x: 112,
        ..parked[0]
    }];
    let d = thumb(&frame(1, (0, 0), &moved, Some(&mut g), 0));
    let c = compare(&a, &d, cfg.max_shift, cfg.shift_gain).unwrap();
    assert!(c.max > cfg.still_max, "{c:?}");
    assert_eq!(c.shift, (0, 0), "{c:?}");

    // So noisy repeats freeze, and the moving car never lets them.
    let mut noisy = PictureWatch::new(cfg);
    let mut moving = PictureWatch::new(cfg);
    for i in 0..10 {
        let t = f64::from(i);
        let v = noisy.observe(t, thumb(&frame(1, (0, 0), &parked, Some(&mut g), 0)));
        assert_eq!(v.froze, i == 3, "{t}: {v:?}");
        let car = [Car {
            x: 100 + 12 * i64::from(i),
            ..parked[0]
        }];
        let v = moving.observe(t, thumb(&frame(1, (0, 0), &car, Some(&mut g), 0)));
        assert_eq!(v.state, PictureState::Normal, "{t}: {v:?}");
    }
}

#[test]
fn a_shifted_picture_is_a_camera_move_and_a_small_shake_is_not() {
    let cfg = SanityConfig::default();
    let cars = traffic(0.0);
    let base = thumb(&frame(1, (0, 0), &cars, None, 0));
    // The view moves right by 20 pixels: the picture's content moves left by two cells.
    for (view, cells) in [((20, 0), (-2, 0)), ((0, -30), (0, 3)), ((-40, 20), (4, -2))] {
        let c = compare(
            &base,
            &thumb(&frame(1, view, &cars, None, 0)),
            cfg.max_shift,
            cfg.shift_gain,
        )
        .unwrap();
        assert_eq!(c.shift, cells, "view moved by {view:?}: {c:?}");
        assert!(c.shifted_mean < c.mean / 3.0, "{c:?}");
        let mut watch = PictureWatch::new(cfg);
        watch.observe(0.0, base.clone());
        let v = watch.observe(0.5, thumb(&frame(1, view, &cars, None, 0)));
        assert_eq!(
            v.state,
            PictureState::Moved,
            "view moved by {view:?}: {v:?}"
        );
        assert!(v.holds_alerts() && !v.restarts_scene());
        // Still on the new view: held two more frames, then normal.
        let mut later = Vec::new();
        for i in 1..=3 {
            let t = 0.5 + f64::from(i) * 0.5;
            later.push(
                watch
                    .observe(t, thumb(&frame(1, view, &traffic(t), None, 0)))
                    .state,
            );
        }
        use PictureState::{Normal, Settling};
        assert_eq!(later, [Settling, Settling, Normal]);
    }
    // Under 1% of the width (one cell at most): wind within what the tracker absorbs.
    let mut watch = PictureWatch::new(cfg);
    for (i, view) in [(0, 0), (5, 0), (0, 4), (-3, 3), (0, 0)]
        .into_iter()
        .enumerate()
    {
        let t = i as f64 * 0.5;
        let v = watch.observe(t, thumb(&frame(1, view, &traffic(t), None, 0)));
        assert_eq!(v.state, PictureState::Normal, "view {view:?}: {v:?}");
    }
}

#[test]
fn another_picture_is_a_cut_and_a_change_of_exposure_is_not() {
    let cfg = SanityConfig::default();
    let mut watch = PictureWatch::new(cfg);
    watch.observe(0.0, thumb(&frame(1, (0, 0), &traffic(0.0), None, 0)));
    let v = watch.observe(0.5, thumb(&frame(2, (0, 0), &traffic(0.5), None, 0)));
    assert_eq!(v.state, PictureState::Cut, "{v:?}");
    assert!(v.restarts_scene() && v.holds_alerts());
    let c = v.change.unwrap();
    assert!(c.correlation < 0.2 && c.residual_median > 30.0, "{c:?}");
    let next = |watch: &mut PictureWatch, t: f64, gain: i32| {
        watch
            .observe(t, thumb(&frame(2, (0, 0), &traffic(t), None, gain)))
            .state
    };
    assert_eq!(next(&mut watch, 1.0, 0), PictureState::Settling);
    assert_eq!(next(&mut watch, 1.5, 0), PictureState::Settling);
    assert_eq!(next(&mut watch, 2.0, 0), PictureState::Normal);
    // The camera's exposure jumps by 30 levels as the cars drive on: the same scene, no cut,
    // no move.
    let v = watch.observe(2.5, thumb(&frame(2, (0, 0), &traffic(2.5), None, 30)));
    assert_eq!(v.state, PictureState::Normal, "{v:?}");
    let c = v.change.unwrap();
    assert!(c.mean > 25.0 && c.correlation > 0.8, "{v:?}");

    // Another resolution: nothing to compare, the stream changed.
    let small = vec![90u8; 320 * 180 * 3];
    let v = watch.observe(
        3.0,
        Thumbnail::of(ImageView::new(320, 180, &small).unwrap()),
    );
    assert_eq!((v.state, v.change), (PictureState::Cut, None));
}

#[test]
fn a_stream_that_starts_over_ends_a_freeze_and_starts_the_watch_over() {
    let mut watch = PictureWatch::new(SanityConfig::default());
    let still = thumb(&frame(1, (0, 0), &[], None, 0));
    let froze: Vec<bool> = (0..5)
        .map(|i| watch.observe(f64::from(i) * 1.8, still.clone()).froze)
        .collect();
    assert_eq!(froze, [false, false, true, false, false]);
    assert!(watch.is_frozen());
    // Stream time back to zero (a reconnect): the freeze is over, no comparison across it.
    let v = watch.observe(0.1, still.clone());
    assert_eq!(
        (v.state, v.thawed, v.change),
        (PictureState::Normal, true, None)
    );
    assert!(!watch.is_frozen());
    // And a new freeze needs its own three seconds.
    assert_eq!(watch.observe(1.9, still.clone()).state, PictureState::Still);
    assert_eq!(watch.observe(3.7, still).state, PictureState::Frozen);
}

#[test]
fn flat_pictures_are_not_cuts() {
    // A black picture (night, a lens cap) after a dim one: no structure, no evidence of a cut.
    let cfg = SanityConfig::default();
    let dim = Thumbnail::from_luma(64, 36, vec![30.0; 64 * 36]).unwrap();
    let black = Thumbnail::from_luma(64, 36, vec![2.0; 64 * 36]).unwrap();
    let c = compare(&dim, &black, cfg.max_shift, cfg.shift_gain).unwrap();
    assert_eq!((c.shift, c.correlation), ((0, 0), 1.0), "{c:?}");
    let mut watch = PictureWatch::new(cfg);
    watch.observe(0.0, dim);
    assert_eq!(watch.observe(1.0, black).state, PictureState::Normal);
}

#[test]
fn a_picture_that_creeps_never_freezes() {
    // Dusk: every 0.3 s the whole picture darkens by 0.2 levels, under what counts as a
    // change from one frame to the next, but 2 levels over 3 s.
    let mut watch = PictureWatch::new(SanityConfig::default());
    let base = thumb(&frame(1, (0, 0), &[], None, 0));
    for i in 0..30 {
        let t = f64::from(i) * 0.3;
        let dimmed: Vec<f32> = base.luma().iter().map(|v| v - 0.2 * i as f32).collect();
        let v = watch.observe(t, Thumbnail::from_luma(64, 36, dimmed).unwrap());
        assert_ne!(v.state, PictureState::Frozen, "at {t:.1} s: {v:?}");
        assert!(!v.froze);
    }
}

#[test]
fn a_bus_driving_off_in_changing_light_is_not_a_cut() {
    // A bus covering a quarter of the picture leaves while the exposure drops by 30%.
    let cfg = SanityConfig::default();
    let bus = Car {
        x: 80,
        y: 90,
        w: 320,
        h: 180,
        grey: 240,
    };
    let before = frame(1, (0, 0), &[bus], None, 0);
    let after: Vec<u8> = frame(1, (0, 0), &[], None, 0)
        .iter()
        .map(|&v| (f32::from(v) * 0.9) as u8)
        .collect();
    let mut watch = PictureWatch::new(cfg);
    watch.observe(0.0, thumb(&before));
    let v = watch.observe(1.8, thumb(&after));
    assert_eq!(v.state, PictureState::Normal, "{v:?}");
    let c = v.change.unwrap();
    assert!(c.mean > 20.0 && c.residual_median < cfg.cut_median, "{c:?}");
    // Then the exposure halves: every cell changes, but in step.
    let dark: Vec<u8> = after.iter().map(|&v| v / 2).collect();
    let v = watch.observe(3.6, thumb(&dark));
    assert_eq!(v.state, PictureState::Normal, "{v:?}");
    let c = v.change.unwrap();
    assert!(
        c.residual_median > cfg.cut_median && c.correlation > 0.9,
        "{c:?}"
    );
}
