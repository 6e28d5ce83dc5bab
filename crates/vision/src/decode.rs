//! Decoding of YOLO output tensors into candidate boxes. Three layouts are understood, told apart
//! by the output shape and the model metadata (never by the file name):
//! - Ultralytics YOLOv8/YOLO11 `[1, 4+nc, N]`: rows cx, cy, w, h, then class scores;
//! - the same transposed, `[1, N, 4+nc]`;
//! - YOLOv5 style `[1, N, 5+nc]`: cx, cy, w, h, objectness, then class scores.

use crate::classes::ClassFilter;
use crate::geometry::BBox;

/// How a model lays out its detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// `[1, 4+nc, N]`, class scores without objectness (YOLOv8, YOLO11).
    ChannelsFirst {
        /// Number of classes.
        num_classes: usize,
        /// Number of candidate boxes (anchors).
        anchors: usize,
    },
    /// `[1, N, 4+nc]`, the transposed Ultralytics layout.
    ChannelsLast {
        /// Number of classes.
        num_classes: usize,
        /// Number of candidate boxes.
        anchors: usize,
    },
    /// `[1, N, 5+nc]` with an objectness column (YOLOv5).
    Objectness {
        /// Number of classes.
        num_classes: usize,
        /// Number of candidate boxes.
        anchors: usize,
    },
}

/// Why an output shape cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported detection output shape {shape:?}: {reason}")]
pub struct LayoutError {
    /// The shape as the model declares it (-1 for dynamic dimensions).
    pub shape: Vec<i64>,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl OutputLayout {
    /// Infers the layout from the output `shape`, the number of class names in the metadata (when
    /// present) and whether the metadata marks an Ultralytics v8-family export (`task` key).
    pub fn infer(
        shape: &[i64],
        metadata_classes: Option<usize>,
        v8_family: bool,
    ) -> Result<Self, LayoutError> {
        let err = |reason| LayoutError {
            shape: shape.to_vec(),
            reason,
        };
        let dims: Vec<usize> = match shape {
            [1, a, b] | [a, b] if *a > 0 && *b > 0 => vec![*a as usize, *b as usize],
            [_, _, _] | [_, _] => return Err(err("dimensions must be fixed and batch 1")),
            _ => return Err(err("expected [1, C, N] or [1, N, C]")),
        };
        let (a, b) = (dims[0], dims[1]);
        if let Some(nc) = metadata_classes {
            return if a == 4 + nc && b != 4 + nc {
                Ok(Self::ChannelsFirst {
                    num_classes: nc,
                    anchors: b,
                })
            } else if b == 4 + nc {
                Ok(Self::ChannelsLast {
                    num_classes: nc,
                    anchors: a,
                })
            } else if b == 5 + nc {
                Ok(Self::Objectness {
                    num_classes: nc,
                    anchors: a,
                })
            } else {
                Err(err(
                    "no dimension equals 4 + classes or 5 + classes of the metadata names",
                ))
            };
        }
        if a < b {
            // Box rows first: only Ultralytics v8-family exports look like this.
            if a <= 4 {
                return Err(err("too few rows for boxes and class scores"));
            }
            Ok(Self::ChannelsFirst {
                num_classes: a - 4,
                anchors: b,
            })
        } else if b <= 5 {
            Err(err("too few columns for boxes and class scores"))
        } else if v8_family || b == 84 {
            Ok(Self::ChannelsLast {
                num_classes: b - 4,
                anchors: a,
            })
        } else {
            Ok(Self::Objectness {
                num_classes: b - 5,
                anchors: a,
            })
        }
    }

    /// Number of classes the model scores.
    pub fn num_classes(&self) -> usize {
        match *self {
            Self::ChannelsFirst { num_classes, .. }
            | Self::ChannelsLast { num_classes, .. }
            | Self::Objectness { num_classes, .. } => num_classes,
        }
    }

    /// Number of values the output tensor must hold.
    pub fn len(&self) -> usize {
        match *self {
            Self::ChannelsFirst {
                num_classes,
                anchors,
            }
            | Self::ChannelsLast {
                num_classes,
                anchors,
            } => (4 + num_classes) * anchors,
            Self::Objectness {
                num_classes,
                anchors,
            } => (5 + num_classes) * anchors,
        }
    }

    /// Whether the layout holds no values (never true for an inferred layout).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A box that passed the confidence threshold, in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Box in model-input pixels.
    pub bbox: BBox,
    /// Confidence (class score, times objectness for YOLOv5).
    pub score: f32,
    /// Class index.
    pub class: usize,
}

/// Reads candidates out of a raw output tensor. As Ultralytics does, each box takes its best
/// class over all classes; it is kept when that score is above `confidence` and the class passes
/// `filter`. `out` is cleared first.
pub fn decode(
    output: &[f32],
    layout: OutputLayout,
    confidence: f32,
    filter: &ClassFilter,
    out: &mut Vec<Candidate>,
) {
    out.clear();
    match layout {
        OutputLayout::ChannelsFirst {
            num_classes,
            anchors,
        } => {
            let row = |r: usize| &output[r * anchors..(r + 1) * anchors];
            let (cx, cy, w, h) = (row(0), row(1), row(2), row(3));
            // Walk class rows once, keeping the best score per anchor: memory-order access.
            let mut best = vec![(f32::NEG_INFINITY, 0usize); anchors];
            for c in 0..num_classes {
                for (slot, &s) in best.iter_mut().zip(row(4 + c)) {
                    if s > slot.0 {
                        *slot = (s, c);
                    }
                }
            }
            for (i, &(score, class)) in best.iter().enumerate() {
                if score > confidence && filter.allows(class) {
                    let bbox = BBox::from_center(cx[i], cy[i], w[i], h[i]);
                    out.push(Candidate { bbox, score, class });
                }
            }
        }
        OutputLayout::ChannelsLast { num_classes, .. } => {
            for rec in output.chunks_exact(4 + num_classes) {
                let (score, class) = argmax(&rec[4..]);
                if score > confidence && filter.allows(class) {
                    let bbox = BBox::from_center(rec[0], rec[1], rec[2], rec[3]);
                    out.push(Candidate { bbox, score, class });
                }
            }
        }
        OutputLayout::Objectness { num_classes, .. } => {
            for rec in output.chunks_exact(5 + num_classes) {
                let objectness = rec[4];
                if objectness <= confidence {
                    continue;
                }
                let (class_score, class) = argmax(&rec[5..]);
                let score = class_score * objectness;
                if score > confidence && filter.allows(class) {
                    let bbox = BBox::from_center(rec[0], rec[1], rec[2], rec[3]);
                    out.push(Candidate { bbox, score, class });
                }
            }
        }
    }
}

/// Best score and its index; the first one wins ties, as numpy's `argmax`.
fn argmax(scores: &[f32]) -> (f32, usize) {
    scores
        .iter()
        .enumerate()
        .fold((f32::NEG_INFINITY, 0), |best, (i, &s)| {
            if s > best.0 { (s, i) } else { best }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_from_shape_without_metadata() {
        assert_eq!(
            OutputLayout::infer(&[1, 84, 8400], None, false),
            Ok(OutputLayout::ChannelsFirst {
                num_classes: 80,
                anchors: 8400
            })
        );
        assert_eq!(
            OutputLayout::infer(&[1, 8400, 84], None, false),
            Ok(OutputLayout::ChannelsLast {
                num_classes: 80,
                anchors: 8400
            })
        );
        assert_eq!(
            OutputLayout::infer(&[1, 25200, 85], None, false),
            Ok(OutputLayout::Objectness {
                num_classes: 80,
                anchors: 25200
            })
        );
        // A 3-class transposed v8 export is told apart from v5 by the `task` metadata.
        assert_eq!(
            OutputLayout::infer(&[1, 8400, 7], None, true),
            Ok(OutputLayout::ChannelsLast {
                num_classes: 3,
                anchors: 8400
            })
        );
    }

    #[test]
    fn metadata_class_count_decides_between_layouts() {
        assert_eq!(
            OutputLayout::infer(&[1, 8400, 7], Some(3), false),
            Ok(OutputLayout::ChannelsLast {
                num_classes: 3,
                anchors: 8400
            })
        );
        assert_eq!(
            OutputLayout::infer(&[1, 8400, 8], Some(3), false),
            Ok(OutputLayout::Objectness {
                num_classes: 3,
                anchors: 8400
            })
        );
        assert!(OutputLayout::infer(&[1, 8400, 9], Some(3), false).is_err());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(OutputLayout::infer(&[1, -1, 8400], None, false).is_err());
        assert!(OutputLayout::infer(&[1, 2, 3, 4], None, false).is_err());
        assert!(OutputLayout::infer(&[2, 84, 8400], None, false).is_err());
        assert!(OutputLayout::infer(&[1, 3, 8400], None, false).is_err());
    }

    fn filter(n: usize) -> ClassFilter {
        ClassFilter::all(n)
    }

    #[test]
    fn channels_first_takes_best_class_per_anchor() {
        // 2 classes, 3 anchors: rows cx, cy, w, h, class0, class1.
        #[rustfmt::skip]
        let out = [
            10.0, 50.0, 90.0,
            10.0, 50.0, 90.0,
            4.0, 4.0, 4.0,
            2.0, 2.0, 2.0,
            0.9, 0.1, 0.3,
            0.2, 0.8, 0.2,
        ];
        let layout = OutputLayout::ChannelsFirst {
            num_classes: 2,
            anchors: 3,
        };
        let mut c = Vec::new();
        decode(&out, layout, 0.35, &filter(2), &mut c);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].class, c[0].score), (0, 0.9));
        assert_eq!(c[0].bbox, BBox::new(8.0, 9.0, 12.0, 11.0));
        assert_eq!((c[1].class, c[1].score), (1, 0.8));
    }

    #[test]
    fn best_class_filtered_out_drops_the_box() {
        // Ultralytics semantics: a box whose best class is not wanted is dropped, not demoted.
        let out = [10.0, 10.0, 4.0, 4.0, 0.9, 0.6];
        let layout = OutputLayout::ChannelsLast {
            num_classes: 2,
            anchors: 1,
        };
        let only_second =
            ClassFilter::from_names(&["a".into(), "b".into()], &["b".into()]).unwrap();
        let mut c = Vec::new();
        decode(&out, layout, 0.35, &only_second, &mut c);
        assert!(c.is_empty());
    }

    #[test]
    fn objectness_multiplies_class_scores() {
        let out = [
            10.0, 10.0, 4.0, 4.0, 0.5, 0.9, 0.1, 10.0, 10.0, 4.0, 4.0, 0.3, 1.0, 0.0,
        ];
        let layout = OutputLayout::Objectness {
            num_classes: 2,
            anchors: 2,
        };
        let mut c = Vec::new();
        decode(&out, layout, 0.35, &filter(2), &mut c);
        assert_eq!(c.len(), 1);
        assert!((c[0].score - 0.45).abs() < 1e-6);
    }

    #[test]
    fn threshold_is_strict() {
        let out = [10.0, 10.0, 4.0, 4.0, 0.35];
        let layout = OutputLayout::ChannelsLast {
            num_classes: 1,
            anchors: 1,
        };
        let mut c = Vec::new();
        decode(&out, layout, 0.35, &filter(1), &mut c);
        assert!(c.is_empty());
    }
}
