//! QR decoding behind one trait, so the measured-best decoder is the default
//! and others stay available for comparison.

/// Finds QR codes in a grayscale frame.
pub trait QrDecoder: Send + Sync {
    /// Short name for logs and benchmark tables.
    fn name(&self) -> &'static str;
    /// The texts of every QR code found (empty if none).
    fn decode(&self, frame: &image::GrayImage) -> Vec<String>;
}
