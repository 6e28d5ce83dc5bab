//! Class-aware non-maximum suppression: within each class, a box is dropped when it overlaps a
//! higher-scoring kept box by more than the IoU threshold; boxes of different classes never
//! suppress each other. Ties in score keep the earlier box, as a stable sort does.
//!
//! And one vehicle, one box: YOLO often reports the same vehicle as both car and truck (or bus),
//! which class-aware NMS keeps; [`one_box_per_vehicle`] drops the weaker of two road-vehicle
//! boxes of different classes that overlap that much, so tracks, rules and counts see one.

use crate::decode::Candidate;
use crate::detector::Detection;

/// IoU above which two boxes of different vehicle classes are one vehicle. Two vehicles side
/// by side or one behind the other overlap far less, even in dense traffic.
pub const VEHICLE_DUPLICATE_IOU: f32 = 0.7;

/// Drops each road vehicle (as `is_vehicle` says) whose box overlaps a more confident vehicle
/// of another class by more than [`VEHICLE_DUPLICATE_IOU`]; the order of the rest is kept.
pub fn one_box_per_vehicle(detections: &mut Vec<Detection>, is_vehicle: impl Fn(&str) -> bool) {
    let n = detections.len();
    let mut drop = vec![false; n];
    for i in 0..n {
        let a = &detections[i];
        if !is_vehicle(&a.label) {
            continue;
        }
        drop[i] = detections.iter().enumerate().any(|(j, b)| {
            j != i
                && b.class_id != a.class_id
                && is_vehicle(&b.label)
                && (b.confidence > a.confidence || (b.confidence == a.confidence && j < i))
                && b.bbox.iou(&a.bbox) > VEHICLE_DUPLICATE_IOU
        });
    }
    let mut k = 0;
    detections.retain(|_| {
        k += 1;
        !drop[k - 1]
    });
}

/// Suppresses overlapping candidates in place and keeps at most `max_det`, best first.
pub fn nms(candidates: &mut Vec<Candidate>, iou_threshold: f32, max_det: usize) {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len().min(max_det));
    for cand in candidates.iter() {
        if kept.len() == max_det {
            break;
        }
        let suppressed = kept
            .iter()
            .any(|k| k.class == cand.class && k.bbox.iou(&cand.bbox) > iou_threshold);
        if !suppressed {
            kept.push(*cand);
        }
    }
    *candidates = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn cand(x: f32, score: f32, class: usize) -> Candidate {
        Candidate {
            bbox: BBox::new(x, 0.0, x + 10.0, 10.0),
            score,
            class,
        }
    }

    #[test]
    fn overlapping_same_class_keeps_the_best() {
        // Shifted by 2 px: IoU = 80/120 = 0.67 > 0.5.
        let mut c = vec![cand(2.0, 0.6, 0), cand(0.0, 0.9, 0)];
        nms(&mut c, 0.5, 100);
        assert_eq!(c, vec![cand(0.0, 0.9, 0)]);
    }

    fn det(label: &str, class_id: usize, x: f32, confidence: f32) -> Detection {
        Detection {
            label: label.into(),
            class_id,
            confidence,
            bbox: BBox::new(x, 0.0, x + 100.0, 50.0),
        }
    }

    #[test]
    fn one_vehicle_reported_as_car_and_truck_keeps_the_better_box() {
        let vehicle = |l: &str| matches!(l, "car" | "truck" | "bus");
        let mut d = vec![
            det("car", 2, 0.0, 0.6),
            det("truck", 7, 3.0, 0.8), // IoU 0.94 with the car: the same vehicle
            det("car", 2, 60.0, 0.7),  // IoU 0.25: the next car
            det("person", 0, 1.0, 0.9), // not a vehicle
            det("bus", 5, 200.0, 0.5),
        ];
        one_box_per_vehicle(&mut d, vehicle);
        let labels: Vec<(&str, f32)> = d.iter().map(|d| (d.label.as_str(), d.bbox.x1)).collect();
        assert_eq!(
            labels,
            vec![
                ("truck", 3.0),
                ("car", 60.0),
                ("person", 1.0),
                ("bus", 200.0)
            ]
        );
        // Same class is NMS's business, not this.
        let mut d = vec![det("car", 2, 0.0, 0.6), det("car", 2, 1.0, 0.8)];
        one_box_per_vehicle(&mut d, vehicle);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn different_classes_do_not_suppress() {
        let mut c = vec![cand(0.0, 0.9, 0), cand(0.0, 0.8, 1)];
        nms(&mut c, 0.5, 100);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn overlap_at_threshold_is_kept() {
        // Shifted by 5 px: IoU = 50/150 = 1/3; threshold 1/3 suppresses only above.
        let mut c = vec![cand(0.0, 0.9, 0), cand(5.0, 0.8, 0)];
        nms(&mut c, 1.0 / 3.0 + 1e-6, 100);
        assert_eq!(c.len(), 2);
        let mut c = vec![cand(0.0, 0.9, 0), cand(5.0, 0.8, 0)];
        nms(&mut c, 0.3, 100);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn suppressed_boxes_do_not_suppress_others() {
        // B overlaps A and C; A kills B; C (no overlap with A) survives.
        let mut c = vec![cand(0.0, 0.9, 0), cand(4.0, 0.8, 0), cand(8.0, 0.7, 0)];
        nms(&mut c, 0.4, 100);
        assert_eq!(c.iter().map(|c| c.bbox.x1).collect::<Vec<_>>(), [0.0, 8.0]);
    }

    #[test]
    fn max_det_keeps_the_highest_scores() {
        let mut c: Vec<_> = (0..10)
            .map(|i| cand(i as f32 * 20.0, i as f32 / 10.0, 0))
            .collect();
        nms(&mut c, 0.5, 3);
        assert_eq!(
            c.iter().map(|c| c.score).collect::<Vec<_>>(),
            [0.9, 0.8, 0.7]
        );
    }
}
