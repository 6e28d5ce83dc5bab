//! Axis-aligned boxes in pixel coordinates and the overlap maths (IoU) that NMS, tracking and
//! grouping share.

use serde::{Deserialize, Serialize};

/// An axis-aligned box `[x1, y1, x2, y2]` in pixels, top-left inclusive, bottom-right exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "[f32; 4]", from = "[f32; 4]")]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl From<BBox> for [f32; 4] {
    fn from(b: BBox) -> Self {
        [b.x1, b.y1, b.x2, b.y2]
    }
}

impl From<[f32; 4]> for BBox {
    fn from([x1, y1, x2, y2]: [f32; 4]) -> Self {
        Self { x1, y1, x2, y2 }
    }
}

impl BBox {
    /// A box from its corners.
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// A box from its centre and size, the YOLO output encoding.
    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    /// Width, never negative.
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height, never negative.
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area, zero for degenerate boxes.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Centre point `(x, y)`.
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Area of the intersection with `other`.
    pub fn intersection(&self, other: &BBox) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        w * h
    }

    /// Intersection over union; 0 when both boxes are empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox::new(
            self.x1.min(other.x1),
            self.y1.min(other.y1),
            self.x2.max(other.x2),
            self.y2.max(other.y2),
        )
    }

    /// The box grown by `dx` left and right and `dy` up and down.
    pub fn expand(&self, dx: f32, dy: f32) -> BBox {
        BBox::new(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)
    }

    /// The box moved by `(dx, dy)`.
    pub fn shift(&self, dx: f32, dy: f32) -> BBox {
        BBox::new(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)
    }

    /// The box clipped to `[0, width] x [0, height]`.
    pub fn clip(&self, width: f32, height: f32) -> BBox {
        BBox::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one() {
        let b = BBox::new(10.0, 10.0, 20.0, 30.0);
        assert!((b.iou(&b) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn iou_of_half_overlap() {
        // Two 10x10 boxes overlapping in a 5x10 strip: 50 / 150.
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn disjoint_and_degenerate_boxes_have_zero_iou() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(20.0, 20.0, 30.0, 30.0);
        assert_eq!(a.iou(&b), 0.0);
        let empty = BBox::new(5.0, 5.0, 5.0, 5.0);
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn center_encoding_round_trips() {
        let b = BBox::from_center(50.0, 40.0, 20.0, 10.0);
        assert_eq!(b, BBox::new(40.0, 35.0, 60.0, 45.0));
        assert_eq!(b.center(), (50.0, 40.0));
    }

    #[test]
    fn clip_keeps_box_inside_image() {
        let b = BBox::new(-5.0, 3.0, 700.0, 500.0).clip(640.0, 480.0);
        assert_eq!(b, BBox::new(0.0, 3.0, 640.0, 480.0));
    }
}
