//! The vision slice on real files: the distortion corpus through every
//! decoder, hostile image files, frame sources, the in-process pipeline over
//! a replayed frame sequence, and the actuators.

mod actuators;
mod decoding;
mod files;
mod scan_stream;

use std::path::{Path, PathBuf};

use image::GrayImage;

/// Writes `image` to `dir/name` (format from the extension).
pub fn write_frame(dir: &Path, name: &str, image: &GrayImage) -> PathBuf {
    let path = dir.join(name);
    image.save(&path).expect("test frames can be written");
    path
}
