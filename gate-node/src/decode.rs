//! QR decoding behind one trait, so the measured-best decoder is the default
//! and others stay available for comparison.

/// Finds QR codes in a grayscale frame.
pub trait QrDecoder: Send + Sync {
    /// Short name for logs and benchmark tables.
    fn name(&self) -> &'static str;
    /// The texts of every QR code found (empty if none).
    fn decode(&self, frame: &image::GrayImage) -> Vec<String>;
}

/// The decoder the CLI and daemon use. Placeholder until the measured-best
/// decoder lands: a plain rqrr baseline.
pub fn default_decoder() -> Box<dyn QrDecoder> {
    Box::new(RqrrDecoder)
}

/// The rqrr baseline decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct RqrrDecoder;

impl QrDecoder for RqrrDecoder {
    fn name(&self) -> &'static str {
        "rqrr"
    }
    fn decode(&self, frame: &image::GrayImage) -> Vec<String> {
        let mut prepared = rqrr::PreparedImage::prepare(frame.clone());
        prepared
            .detect_grids()
            .into_iter()
            .filter_map(|g| g.decode().ok().map(|(_, text)| text))
            .collect()
    }
}
