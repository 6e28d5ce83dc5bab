//! Pictures, synchronously: the owned RGB frame every layer passes around, reading JPEG and PNG
//! (with a pixel cap checked from the header), encoding JPEG with libjpeg-turbo, and cutting
//! and downscaling evidence crops. No async runtime and no knowledge of cameras or messages.
//!
//! Layout:
//! - [`frame`]: [`RgbFrame`], a tightly packed RGB picture.
//! - [`read`]: decoding image bytes and files, with the size cap.
//! - [`jpeg`]: JPEG encoding.
//! - [`crop`]: a region of a frame as a downscaled JPEG crop.

pub mod crop;
pub mod frame;
pub mod jpeg;
pub mod read;

pub use crop::{GroupCrop, crop_jpeg, downscale};
pub use frame::RgbFrame;
pub use jpeg::{EncodeError, JPEG_QUALITY, encode_jpeg};
pub use read::{ImageError, decode_rgb, read_rgb};
