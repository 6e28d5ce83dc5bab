//! Class-aware non-maximum suppression: within each class, a box is dropped when it overlaps a
//! higher-scoring kept box by more than the IoU threshold; boxes of different classes never
//! suppress each other. Ties in score keep the earlier box, as a stable sort does.
//! One vehicle seen as two classes is `crate::detector::one_box_per_vehicle`'s business.

use crate::decode::Candidate;

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
