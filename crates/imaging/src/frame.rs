//! The owned RGB picture that decoders produce and the detector, crops and encoders read.

use vision::ImageView;

/// An owned, tightly packed RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB bytes.
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// A borrowed view for the detector.
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            width: self.width,
            height: self.height,
            rgb: &self.data,
        }
    }
}
