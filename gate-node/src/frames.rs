//! Where scans come from: camera frames (nokhwa/V4L2), image files or a
//! directory of frames, and text lines from a barcode scanner or stdin.

use std::time::Instant;

/// One grayscale camera frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Luma pixels.
    pub image: image::GrayImage,
    /// When it was captured (monotonic).
    pub captured_at: Instant,
}

/// A stream of frames. `Ok(None)` means the stream ended (end of a directory).
pub trait FrameSource: Send {
    /// The next frame.
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError>;
}

/// A stream of already-decoded texts (USB HID/serial scanners, stdin).
pub trait TextSource: Send {
    /// The next line, without its line ending. `Ok(None)` at end of input.
    fn next_line(&mut self) -> Result<Option<String>, FrameError>;
}

/// A frame or text source failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The device or file could not be opened or read.
    #[error("frame source I/O: {0}")]
    Io(String),
    /// The data is not an image this build can read, or is too large.
    #[error("unreadable frame: {0}")]
    Unreadable(String),
}
