//! Black-box tests of `traffic-algo detect`: parity with the Python onnxruntime + OpenCV
//! reference pipeline on real photos and video frames, expected content, and clean failures.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use std::path::PathBuf;

use serde::Deserialize;
use support::{media, model, reference, run, run_ok, traffic_algo};

const DEFAULT_CLASSES: &str = "person,bicycle,car,motorcycle,bus,truck,traffic light,stop sign";

#[derive(Debug, Deserialize)]
struct Line {
    image: String,
    width: u32,
    height: u32,
    #[serde(rename = "detectedObjects")]
    objects: Vec<Object>,
    #[serde(rename = "processTime")]
    process_time: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct Object {
    class: String,
    confidence: f32,
    bbox: [f32; 4],
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

fn parse_lines(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Frames of the street clips, extracted losslessly to PNG by the reference (OpenCV).
fn video_frames(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut frames = Vec::new();
    for (video, indices) in [
        ("vtest.avi", &["0", "150", "300", "450", "600", "750"][..]),
        ("traffic-street.mp4", &["10", "300", "700"][..]),
    ] {
        let out = dir.join(video.replace('.', "_"));
        let mut cmd = reference();
        cmd.arg("--extract-frames")
            .arg(media(video))
            .arg(&out)
            .args(indices);
        frames.extend(run_ok(&mut cmd).lines().map(PathBuf::from));
    }
    frames
}

/// Tolerances of a parity check.
struct Tolerance {
    /// Reference detections below this confidence need no twin, and ours need a reference twin
    /// only from this plus `max_confidence_diff`.
    min_confidence: f32,
    min_iou: f32,
    max_confidence_diff: f32,
}

/// The bar: every detection twinned at IoU 0.95 and confidence within 0.01.
const STRICT: Tolerance = Tolerance {
    min_confidence: 0.0,
    min_iou: 0.95,
    max_confidence_diff: 0.01,
};

fn compare(rust: &[Line], reference: &[Line], tol: &Tolerance) -> Vec<String> {
    let mut problems = Vec::new();
    assert_eq!(rust.len(), reference.len());
    for (r, p) in rust.iter().zip(reference) {
        assert_eq!((r.width, r.height), (p.width, p.height), "{}", r.image);
        let mut unmatched: Vec<Option<&Object>> = r.objects.iter().map(Some).collect();
        for want in &p.objects {
            let required = want.confidence >= tol.min_confidence;
            let best = unmatched
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.filter(|o| o.class == want.class).map(|o| (i, o)))
                .max_by(|a, b| iou(&a.1.bbox, &want.bbox).total_cmp(&iou(&b.1.bbox, &want.bbox)));
            match best {
                Some((i, got))
                    if iou(&got.bbox, &want.bbox) >= tol.min_iou
                        && (got.confidence - want.confidence).abs() <= tol.max_confidence_diff =>
                {
                    unmatched[i] = None;
                }
                _ if !required => {}
                Some((_, got)) => problems.push(format!(
                    "{}: reference {} {:.4} {:?} has nearest {:.4} {:?} (IoU {:.3})",
                    p.image,
                    want.class,
                    want.confidence,
                    want.bbox,
                    got.confidence,
                    got.bbox,
                    iou(&got.bbox, &want.bbox)
                )),
                None => problems.push(format!(
                    "{}: reference {} {:.4} {:?} has no twin",
                    p.image, want.class, want.confidence, want.bbox
                )),
            }
        }
        let near_threshold = tol.min_confidence + tol.max_confidence_diff;
        for extra in unmatched
            .into_iter()
            .flatten()
            .filter(|o| o.confidence >= near_threshold)
        {
            problems.push(format!("{}: extra detection {extra:?}", r.image));
        }
    }
    problems
}

fn detect_both(images: &[PathBuf], all_classes: bool) -> (Vec<Line>, Vec<Line>) {
    let dir = tempfile::tempdir().unwrap();
    let mut ours = traffic_algo(dir.path());
    ours.arg("detect").arg("--model").arg(model()).args(images);
    if all_classes {
        ours.arg("--all-classes");
    }
    let mut theirs = reference();
    theirs.arg("--model").arg(model()).args(images);
    if !all_classes {
        theirs.args(["--classes", DEFAULT_CLASSES]);
    }
    (
        parse_lines(&run_ok(&mut ours)),
        parse_lines(&run_ok(&mut theirs)),
    )
}

#[test]
fn detections_match_the_python_onnxruntime_reference() {
    let frames_dir = tempfile::tempdir().unwrap();
    let mut images = vec![media("bus.jpg"), media("zidane.jpg")];
    images.extend(video_frames(frames_dir.path()));
    for all_classes in [false, true] {
        let (rust, python) = detect_both(&images, all_classes);
        let total: usize = python.iter().map(|l| l.objects.len()).sum();
        assert!(
            total >= 30,
            "the reference found only {total} objects: weak test data"
        );
        let problems = compare(&rust, &python, &STRICT);
        assert!(
            problems.is_empty(),
            "all_classes={all_classes}:\n{}",
            problems.join("\n")
        );
    }
}

/// lane-splitting.jpg is a dense scene full of small, half-hidden vehicles whose scores sit near
/// the threshold. fast_image_resize and OpenCV's INTER_LINEAR differ by at most 1 grey level in a
/// quarter of the pixels (fixed-point rounding), which moves such scores by up to ~0.012 and can
/// flip a 0.35-0.36 car across the threshold or NMS. Here every reference detection of 0.45 and
/// above must have a twin at IoU 0.95 within 0.02; the strict bar holds on the other images.
#[test]
fn dense_scene_matches_the_reference_within_resize_rounding() {
    let dense = Tolerance {
        min_confidence: 0.45,
        min_iou: 0.95,
        max_confidence_diff: 0.02,
    };
    let (rust, python) = detect_both(&[media("lane-splitting.jpg")], false);
    let confident = python[0]
        .objects
        .iter()
        .filter(|o| o.confidence >= 0.45)
        .count();
    assert!(
        confident >= 8,
        "only {confident} confident reference detections"
    );
    let problems = compare(&rust, &python, &dense);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn bus_and_zidane_have_the_expected_objects() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        traffic_algo(dir.path())
            .arg("detect")
            .arg("--model")
            .arg(model())
            .arg(media("bus.jpg"))
            .arg(media("zidane.jpg")),
    );
    let lines = parse_lines(&out);
    let count = |l: &Line, class: &str| l.objects.iter().filter(|o| o.class == class).count();
    assert_eq!((lines[0].width, lines[0].height), (810, 1080));
    assert_eq!(count(&lines[0], "bus"), 1);
    assert!(count(&lines[0], "person") >= 3);
    assert_eq!(count(&lines[1], "person"), 2);
    // The tie is not a traffic class, so the default filter drops it.
    assert_eq!(lines[1].objects.len(), 2);
    for line in &lines {
        assert!(line.process_time > 0.0 && line.process_time < 30.0);
        for o in &line.objects {
            let [x1, y1, x2, y2] = o.bbox;
            assert!(0.0 <= x1 && x1 < x2 && x2 <= line.width as f32, "{o:?}");
            assert!(0.0 <= y1 && y1 < y2 && y2 <= line.height as f32, "{o:?}");
            assert!(o.confidence > 0.35 && o.confidence <= 1.0);
        }
    }
}

#[test]
fn all_classes_keeps_the_tie_and_classes_flag_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = traffic_algo(dir.path());
    cmd.args(["detect", "--all-classes", "--model"])
        .arg(model())
        .arg(media("zidane.jpg"));
    let line = &parse_lines(&run_ok(&mut cmd))[0];
    assert!(
        line.objects.iter().any(|o| o.class == "tie"),
        "{:?}",
        line.objects
    );

    let mut cmd = traffic_algo(dir.path());
    cmd.args(["detect", "--classes", "bus", "--model"])
        .arg(model())
        .arg(media("bus.jpg"));
    let line = &parse_lines(&run_ok(&mut cmd))[0];
    assert_eq!(line.objects.len(), 1);
    assert_eq!(line.objects[0].class, "bus");
}

#[test]
fn int8_model_loads_and_detects() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = traffic_algo(dir.path());
    cmd.args(["detect", "--model"])
        .arg(support::shared().join("models/yolov8n-int8.onnx"))
        .arg(media("bus.jpg"));
    let line = &parse_lines(&run_ok(&mut cmd))[0];
    assert!(line.objects.iter().filter(|o| o.class == "person").count() >= 3);
    assert!(line.objects.iter().any(|o| o.class == "bus"));
}

/// Runs `detect` over `images` with the model at `precision` (`fp32` or `int8`).
fn detect_at(precision: &str, images: &[PathBuf]) -> Vec<Line> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = traffic_algo(dir.path());
    cmd.arg("detect")
        .arg("--model")
        .arg(support::model_with_int8())
        .args(["--set", &format!("model.precision={precision}")])
        .args(images);
    parse_lines(&run_ok(&mut cmd))
}

/// Share of `of`'s detections at or above `min_conf` that have a twin in `in_` (same class,
/// IoU >= 0.5), and how many there were.
fn found(of: &[Line], in_: &[Line], min_conf: f32) -> (f64, usize) {
    let (mut total, mut twinned) = (0, 0);
    for (a, b) in of.iter().zip(in_) {
        for o in a.objects.iter().filter(|o| o.confidence >= min_conf) {
            total += 1;
            let twin = b
                .objects
                .iter()
                .any(|t| t.class == o.class && iou(&t.bbox, &o.bbox) >= 0.5);
            twinned += usize::from(twin);
        }
    }
    (twinned as f64 / total.max(1) as f64, total)
}

/// The int8 accuracy gate: on frames of the three shared clips (none of them a calibration
/// frame of scripts/quantize.py, which takes frames at (k + 0.5) / 20 of each clip), the int8
/// model at the default threshold finds at least 97% of the fp32 model's detections with
/// confidence 0.5 or more, and the fp32 model finds at least 97% of what it finds with 0.5 or
/// more: it neither loses objects nor makes new ones.
#[test]
fn int8_model_finds_the_fp32_detections() {
    let frames_dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for (video, first, step, count) in [
        ("road-cars-h264.mp4", 3, 10, 20),
        ("traffic-street-h264.mp4", 7, 36, 20),
        ("vtest-h264.mp4", 11, 39, 20),
    ] {
        let indices: Vec<String> = (0..count).map(|k| (first + k * step).to_string()).collect();
        let out = frames_dir.path().join(video.replace('.', "_"));
        let mut cmd = reference();
        cmd.arg("--extract-frames")
            .arg(media(video))
            .arg(&out)
            .args(&indices);
        images.extend(run_ok(&mut cmd).lines().map(PathBuf::from));
    }
    assert_eq!(images.len(), 60);
    let fp32 = detect_at("fp32", &images);
    let int8 = detect_at("int8", &images);
    let (recall, total) = found(&fp32, &int8, 0.5);
    let (precision, made) = found(&int8, &fp32, 0.5);
    eprintln!(
        "int8 gate: found {:.1}% of {total} fp32 detections >= 0.5; {:.1}% of its {made} are fp32's",
        100.0 * recall,
        100.0 * precision
    );
    assert!(total >= 150, "only {total} fp32 detections: weak test data");
    assert!(recall >= 0.97, "int8 found {:.1}%", 100.0 * recall);
    assert!(
        precision >= 0.97,
        "int8 made up {:.1}%",
        100.0 * (1.0 - precision)
    );
}

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

#[test]
fn missing_corrupt_and_bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not a jpeg at all").unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "hello").unwrap();

    for (image, needle) in [
        (dir.path().join("missing.jpg"), "missing.jpg"),
        (corrupt.clone(), "corrupt.jpg"),
        (text, "notes.png"),
    ] {
        let mut cmd = traffic_algo(dir.path());
        cmd.args(["detect", "--model"]).arg(model()).arg(&image);
        let out = run(&mut cmd);
        assert_one_line_error(&out, needle);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
    }

    // A good image beside a bad one is still reported.
    let mut cmd = traffic_algo(dir.path());
    cmd.args(["detect", "--model"])
        .arg(model())
        .arg(&corrupt)
        .arg(media("zidane.jpg"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(parse_lines(&String::from_utf8_lossy(&out.stdout)).len(), 1);

    // The default model in an empty directory does not exist.
    let mut cmd = traffic_algo(dir.path());
    cmd.arg("detect").arg(media("bus.jpg"));
    assert_one_line_error(&run(&mut cmd), "model file not found: weights/yolov8n.onnx");

    // A model file that is not ONNX.
    let fake = dir.path().join("fake.onnx");
    std::fs::write(&fake, b"not a model").unwrap();
    let mut cmd = traffic_algo(dir.path());
    cmd.args(["detect", "--model"])
        .arg(&fake)
        .arg(media("bus.jpg"));
    assert_one_line_error(&run(&mut cmd), "cannot load model");

    // A class the model does not know.
    let mut cmd = traffic_algo(dir.path());
    cmd.args(["detect", "--classes", "car,spaceship", "--model"])
        .arg(model())
        .arg(media("bus.jpg"));
    assert_one_line_error(&run(&mut cmd), "spaceship");

    // A missing ONNX Runtime library named explicitly.
    let mut cmd = traffic_algo(dir.path());
    cmd.env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so"));
    cmd.args(["detect", "--model"])
        .arg(model())
        .arg(media("bus.jpg"));
    assert_one_line_error(&run(&mut cmd), "cannot load ONNX Runtime");
}
