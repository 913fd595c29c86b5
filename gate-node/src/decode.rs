//! QR decoding behind one trait, so the measured-best decoder is the default
//! and others stay available for comparison.
//!
//! Built in: [`RqrrDecoder`] (quirc port, the baseline), [`RxingDecoder`]
//! (ZXing/zxing-cpp port, after a contrast stretch for dim frames) and
//! [`CascadeDecoder`] (one after another). On the distortion corpus
//! (`docs/benchmarks.md`, "Gate node: QR decoding") rxing decodes more
//! frames than rqrr in every class but perspective, with about a third of
//! its p95 latency on frames with a code; rxing-then-rqrr adds a few perspective
//! reads but doubles the cost of every frame without a code and misses the
//! 15 ms p95 at 1280x720. So [`default_decoder`] is rxing.
//!
//! Decoders see camera pixels, which are outside input: both libraries are
//! run under `catch_unwind`, so a frame that trips a bug in them is "no code
//! found", never a crashed gate. Repeat reads of a code held in front of the
//! camera are collapsed later, by the engine's [`crate::debounce`].

mod pipeline;

use std::panic::{AssertUnwindSafe, catch_unwind};

pub use pipeline::{DEFAULT_ATTEMPTS, MAX_ATTEMPTS, PipelineDecoder};

use image::GrayImage;

/// Finds QR codes in a grayscale frame.
pub trait QrDecoder: Send + Sync {
    /// Short name for logs and benchmark tables.
    fn name(&self) -> &'static str;
    /// The texts of every QR code found (empty if none).
    fn decode(&self, frame: &GrayImage) -> Vec<String>;
}

/// Name of the decoder the gate uses unless configured otherwise
/// (`source.decoder`): the best measured one.
pub const DEFAULT_DECODER: &str = "rxing";

/// The decoder the gate uses unless told otherwise: the best measured one.
pub fn default_decoder() -> Box<dyn QrDecoder> {
    Box::new(RxingDecoder::default())
}

/// The decoder `source.decoder` names, with the repair budget
/// `source.decode_attempts` for the `gate` pipeline (other decoders have no
/// budget); `None` for an unknown name.
pub fn configured_decoder(name: &str, attempts: usize) -> Option<Box<dyn QrDecoder>> {
    if name == "gate" {
        return Some(Box::new(PipelineDecoder {
            attempts: attempts.min(MAX_ATTEMPTS),
        }));
    }
    decoder_by_name(name)
}

/// The names [`decoder_by_name`] knows, for error messages.
pub fn decoder_names() -> Vec<&'static str> {
    all_decoders().iter().map(|d| d.name()).collect()
}

/// Every built-in decoder, for benchmarks and comparisons.
pub fn all_decoders() -> Vec<Box<dyn QrDecoder>> {
    vec![
        Box::new(RqrrDecoder),
        Box::new(RxingDecoder::default()),
        Box::new(CascadeDecoder::rxing_then_rqrr()),
        Box::new(PipelineDecoder::default()),
    ]
}

/// A decoder by its [`QrDecoder::name`] (for configuration and the CLI).
pub fn decoder_by_name(name: &str) -> Option<Box<dyn QrDecoder>> {
    all_decoders().into_iter().find(|d| d.name() == name)
}

/// Frames with no pixels or more than this many are not decoded: nothing
/// a gate camera produces is that large, and the libraries' work grows with
/// the area.
pub const MAX_DECODE_PIXELS: u64 = 4096 * 4096;

fn decodable(frame: &GrayImage) -> bool {
    let (w, h) = frame.dimensions();
    let area = u64::from(w) * u64::from(h);
    area > 0 && area <= MAX_DECODE_PIXELS
}

/// Runs `f`, turning a panic inside a decoding library into "nothing found".
fn guarded(f: impl FnOnce() -> Vec<String>) -> Vec<String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_default()
}

/// rqrr (a Rust port of quirc): the baseline.
#[derive(Debug, Clone, Copy, Default)]
pub struct RqrrDecoder;

impl QrDecoder for RqrrDecoder {
    fn name(&self) -> &'static str {
        "rqrr"
    }

    fn decode(&self, frame: &GrayImage) -> Vec<String> {
        if !decodable(frame) {
            return Vec::new();
        }
        guarded(|| {
            let (w, h) = frame.dimensions();
            let mut prepared =
                rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
                    frame.get_pixel(x as u32, y as u32).0[0]
                });
            prepared
                .detect_grids()
                .into_iter()
                .filter_map(|grid| grid.decode().ok().map(|(_, text)| text))
                .collect()
        })
    }
}

/// rxing (a Rust port of ZXing with zxing-cpp's QR detector), restricted to
/// QR codes. Frames with a narrow grey range are stretched first (see
/// [`stretch_contrast`]): rxing's binarizer treats 8x8 blocks spanning fewer
/// than 24 grey levels as flat, so a dim code is otherwise invisible to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RxingDecoder {
    /// Also look for light-on-dark codes. Off by default: ticket wallets show
    /// dark-on-light codes, and the second pass costs about 3 ms on every
    /// 640x480 frame without a code.
    pub also_inverted: bool,
    /// Scan every row for finder patterns. Off by default: no corpus class
    /// decoded better with it, and it costs 20% more per frame.
    pub try_harder: bool,
}

impl QrDecoder for RxingDecoder {
    fn name(&self) -> &'static str {
        "rxing"
    }

    fn decode(&self, frame: &GrayImage) -> Vec<String> {
        if !decodable(frame) {
            return Vec::new();
        }
        guarded(|| {
            let frame = stretch_contrast(frame);
            let (w, h) = frame.dimensions();
            let mut hints = rxing::DecodeHints {
                TryHarder: Some(self.try_harder),
                AlsoInverted: Some(self.also_inverted),
                ..Default::default()
            };
            rxing::helpers::detect_in_luma_with_hints(
                frame.into_owned().into_raw(),
                w,
                h,
                Some(rxing::BarcodeFormat::QR_CODE),
                &mut hints,
            )
            .map(|r| vec![r.getText().to_owned()])
            .unwrap_or_default()
        })
    }
}

/// Tries decoders in order and returns the first non-empty result.
pub struct CascadeDecoder {
    name: &'static str,
    stages: Vec<Box<dyn QrDecoder>>,
}

impl std::fmt::Debug for CascadeDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CascadeDecoder")
            .field("name", &self.name)
            .finish()
    }
}

impl CascadeDecoder {
    /// `stages` in order, reported as `name`.
    pub fn new(name: &'static str, stages: Vec<Box<dyn QrDecoder>>) -> Self {
        Self { name, stages }
    }

    /// rxing, then rqrr on the contrast-stretched frame: rqrr reads some
    /// steep perspectives that rxing misses.
    pub fn rxing_then_rqrr() -> Self {
        Self::new(
            "rxing+rqrr",
            vec![Box::new(RxingDecoder::default()), Box::new(StretchedRqrr)],
        )
    }
}

impl QrDecoder for CascadeDecoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn decode(&self, frame: &GrayImage) -> Vec<String> {
        self.stages
            .iter()
            .map(|d| d.decode(frame))
            .find(|found| !found.is_empty())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct StretchedRqrr;

impl QrDecoder for StretchedRqrr {
    fn name(&self) -> &'static str {
        "rqrr-stretched"
    }

    fn decode(&self, frame: &GrayImage) -> Vec<String> {
        RqrrDecoder.decode(&stretch_contrast(frame))
    }
}

/// Grey-range width (1st to 99th percentile) below which a frame is
/// stretched; wider frames are returned unchanged and uncopied.
pub const STRETCH_BELOW_RANGE: u8 = 160;

/// Linearly maps the frame's 1st..99th percentile grey levels onto 0..255
/// when they span less than [`STRETCH_BELOW_RANGE`] (a dim venue, a code
/// under a dark phone screen). One histogram pass; copies only when it
/// stretches.
pub fn stretch_contrast(frame: &GrayImage) -> std::borrow::Cow<'_, GrayImage> {
    use std::borrow::Cow;
    let raw = frame.as_raw();
    let mut hist = [0usize; 256];
    for &p in raw {
        hist[usize::from(p)] += 1;
    }
    let tail = raw.len().div_ceil(100);
    let percentile = |mut levels: Box<dyn Iterator<Item = usize>>| {
        let mut acc = 0;
        levels.find(|&l| {
            acc += hist[l];
            acc >= tail
        })
    };
    let (Some(lo), Some(hi)) = (
        percentile(Box::new(0..256)),
        percentile(Box::new((0..256).rev())),
    ) else {
        return Cow::Borrowed(frame);
    };
    if hi <= lo || hi - lo >= usize::from(STRETCH_BELOW_RANGE) {
        return Cow::Borrowed(frame);
    }
    let span = (hi - lo) as u32;
    let lut: Vec<u8> = (0..256u32)
        .map(|v| (v.saturating_sub(lo as u32) * 255 / span).min(255) as u8)
        .collect();
    let mut out = frame.clone();
    for p in out.iter_mut() {
        *p = lut[usize::from(*p)];
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_ignore_empty_and_tiny_frames() {
        for decoder in all_decoders() {
            for (w, h) in [(0, 0), (1, 1), (3, 1), (0, 10)] {
                let frame = GrayImage::new(w, h);
                assert!(
                    decoder.decode(&frame).is_empty(),
                    "{}: {w}x{h}",
                    decoder.name()
                );
            }
        }
    }

    #[test]
    fn stretch_widens_a_dim_frame_and_leaves_a_normal_one_alone() {
        let dim = GrayImage::from_fn(64, 64, |x, _| image::Luma([100 + (x % 2) as u8 * 20]));
        let out = stretch_contrast(&dim);
        let (min, max) = out
            .pixels()
            .fold((255, 0), |(lo, hi), p| (lo.min(p.0[0]), hi.max(p.0[0])));
        assert_eq!(
            (min, max),
            (0, 255),
            "a 20-level frame spans the full range after"
        );
        let normal = GrayImage::from_fn(64, 64, |x, _| image::Luma([(x % 2) as u8 * 255]));
        assert!(matches!(
            stretch_contrast(&normal),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn decoders_are_found_by_name() {
        assert_eq!(decoder_by_name("rqrr").map(|d| d.name()), Some("rqrr"));
        assert_eq!(decoder_by_name("rxing").map(|d| d.name()), Some("rxing"));
        assert_eq!(
            decoder_by_name("rxing+rqrr").map(|d| d.name()),
            Some("rxing+rqrr")
        );
        assert_eq!(
            default_decoder().name(),
            DEFAULT_DECODER,
            "the measured best (docs/benchmarks.md)"
        );
        assert_eq!(decoder_names(), ["rqrr", "rxing", "rxing+rqrr", "gate"]);
        assert!(decoder_by_name("nope").is_none());
    }
}
