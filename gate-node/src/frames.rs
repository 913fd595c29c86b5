//! Where scans come from: camera frames (nokhwa/V4L2), image files or a
//! directory of frames, and text lines from a barcode scanner or stdin.
//!
//! Image files are outside input: they are read through a byte cap and
//! decoded with width, height and allocation limits ([`ImageLimits`]), and a
//! decoder panic is caught, so a truncated, garbage or decompression-bomb
//! file is a [`FrameError`], never a crash or an out-of-memory kill.

mod camera;
mod lines;

pub use camera::{CameraConfig, CameraSource};
pub use lines::{LineSource, MAX_LINE_BYTES};

use std::fs::File;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::GrayImage;

use crate::decode::QrDecoder;

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
    /// The input is larger than the configured limits allow.
    #[error("input too large: {0}")]
    TooLarge(String),
}

/// Caps on image files, checked before and during decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Largest width and height accepted, in pixels.
    pub max_side: u32,
    /// Most memory the image decoder may allocate, in bytes.
    pub max_alloc: u64,
}

impl Default for ImageLimits {
    /// 32 MiB files, 8192 px sides, 256 MiB of decoder memory: a 12 MP phone
    /// photo passes, a decompression bomb does not.
    fn default() -> Self {
        Self {
            max_bytes: 32 << 20,
            max_side: 8192,
            max_alloc: 256 << 20,
        }
    }
}

/// Decodes PNG or JPEG bytes into luma within `limits`.
pub fn load_gray(bytes: &[u8], limits: ImageLimits) -> Result<GrayImage, FrameError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(too_many_bytes(limits));
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| FrameError::Io(e.to_string()))?;
    match reader.format() {
        None => {
            return Err(FrameError::Unreadable(
                "not a PNG or JPEG image (unknown signature)".into(),
            ));
        }
        Some(image::ImageFormat::Jpeg) if !ends_with_jpeg_eoi(bytes) => {
            return Err(FrameError::Unreadable(
                "truncated JPEG (no end-of-image marker)".into(),
            ));
        }
        Some(_) => {}
    }
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let decoded = catch_unwind(AssertUnwindSafe(|| reader.decode()))
        .map_err(|_| FrameError::Unreadable("image decoder failed on malformed data".into()))?;
    match decoded {
        Ok(img) => Ok(img.into_luma8()),
        Err(image::ImageError::Limits(e)) => Err(FrameError::TooLarge(format!(
            "{e} (limit {} px per side, {} bytes of decoder memory)",
            limits.max_side, limits.max_alloc
        ))),
        Err(e) => Err(FrameError::Unreadable(e.to_string())),
    }
}

/// Reads and decodes one image file within `limits`.
pub fn load_gray_file(path: &Path, limits: ImageLimits) -> Result<GrayImage, FrameError> {
    let io = |e: std::io::Error| FrameError::Io(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() > limits.max_bytes {
        return Err(too_many_bytes(limits));
    }
    let mut bytes = Vec::new();
    file.take(limits.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    load_gray(&bytes, limits).map_err(|e| match e {
        FrameError::Unreadable(m) => FrameError::Unreadable(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// The JPEG decoder fills a cut-off scan with grey instead of failing, so a
/// half-written frame would decode as a plausible image; a complete JPEG
/// ends with the EOI marker (FF D9), possibly followed by zero padding.
fn ends_with_jpeg_eoi(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xFF, 0xD9])
}

fn too_many_bytes(limits: ImageLimits) -> FrameError {
    FrameError::TooLarge(format!("image file over {} bytes", limits.max_bytes))
}

/// The texts of the QR codes in one image file (for `gate-node decode
/// --image PATH`); an empty list when the image holds no readable code.
pub fn decode_image_file(
    path: impl AsRef<Path>,
    decoder: &dyn QrDecoder,
) -> Result<Vec<String>, FrameError> {
    let image = load_gray_file(path.as_ref(), ImageLimits::default())?;
    Ok(decoder.decode(&image))
}

/// One image file as a one-frame stream.
#[derive(Debug)]
pub struct ImageFileSource {
    path: PathBuf,
    limits: ImageLimits,
    done: bool,
}

impl ImageFileSource {
    /// A source yielding the image at `path` once (read on first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            limits: ImageLimits::default(),
            done: false,
        }
    }

    /// Replaces the default [`ImageLimits`].
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl FrameSource for ImageFileSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let image = load_gray_file(&self.path, self.limits)?;
        Ok(Some(Frame {
            image,
            captured_at: Instant::now(),
        }))
    }
}

/// The PNG and JPEG files of a directory, in natural order (`frame2` before
/// `frame10`), as a frame stream. A file that fails to load yields its error
/// and the stream moves on, so one bad frame does not end a replay.
#[derive(Debug)]
pub struct DirectorySource {
    paths: std::vec::IntoIter<PathBuf>,
    limits: ImageLimits,
}

impl DirectorySource {
    /// Lists the frames in `dir` (not recursive).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FrameError> {
        let dir = dir.as_ref();
        let io = |e: std::io::Error| FrameError::Io(format!("{}: {e}", dir.display()));
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_file() && is_frame_file(&path) {
                paths.push(path);
            }
        }
        paths.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
        Ok(Self {
            paths: paths.into_iter(),
            limits: ImageLimits::default(),
        })
    }

    /// Replaces the default [`ImageLimits`].
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl FrameSource for DirectorySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(path) = self.paths.next() else {
            return Ok(None);
        };
        let image = load_gray_file(&path, self.limits)?;
        Ok(Some(Frame {
            image,
            captured_at: Instant::now(),
        }))
    }
}

/// The PNG/JPEG frames arriving in a directory (a watched folder): polled
/// every `poll`; the files there at start come first (natural order), then
/// each new file once its size has stayed the same over one poll (so a frame
/// still being written is not read half-way). Never ends by itself: it waits
/// for the next file. A file is read once; one that reappears under the same
/// name is not read again.
pub struct WatchedDirectorySource {
    dir: PathBuf,
    poll: Duration,
    seen: std::collections::HashSet<PathBuf>,
    sizes: std::collections::HashMap<PathBuf, u64>,
    ready: std::collections::VecDeque<PathBuf>,
    limits: ImageLimits,
}

impl WatchedDirectorySource {
    /// Watches `dir` (not recursive); it must exist.
    pub fn open(dir: impl AsRef<Path>, poll: Duration) -> Result<Self, FrameError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(FrameError::Io(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Ok(Self {
            dir,
            poll,
            seen: Default::default(),
            sizes: Default::default(),
            ready: Default::default(),
            limits: ImageLimits::default(),
        })
    }

    /// One look at the directory: queues the files whose size is stable.
    fn scan(&mut self) -> Result<(), FrameError> {
        let io = |e: std::io::Error| FrameError::Io(format!("{}: {e}", self.dir.display()));
        let mut fresh = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if self.seen.contains(&path) || !is_frame_file(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let len = meta.len();
            if len > 0 && self.sizes.get(&path) == Some(&len) {
                fresh.push(path);
            } else {
                self.sizes.insert(path, len);
            }
        }
        fresh.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
        for path in fresh {
            self.sizes.remove(&path);
            self.seen.insert(path.clone());
            self.ready.push_back(path);
        }
        Ok(())
    }
}

impl FrameSource for WatchedDirectorySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(path) = self.ready.pop_front() {
                let image = load_gray_file(&path, self.limits)?;
                return Ok(Some(Frame {
                    image,
                    captured_at: Instant::now(),
                }));
            }
            self.scan()?;
            if self.ready.is_empty() {
                std::thread::sleep(self.poll);
            }
        }
    }
}

fn is_frame_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Orders names with digit runs compared by value: `f2` < `f10`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (trim_zeros(da), trim_zeros(db));
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then(ta.cmp(tb))
                    .then(da.len().cmp(&db.len()));
                if ord.is_ne() {
                    return ord;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_folder_yields_frames_as_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let png = |name: &str, shade: u8| {
            let img = GrayImage::from_pixel(8, 8, image::Luma([shade]));
            let tmp = dir.path().join(format!("{name}.part"));
            img.save_with_format(&tmp, image::ImageFormat::Png).unwrap();
            std::fs::rename(&tmp, dir.path().join(name)).unwrap();
        };
        png("old.png", 10);
        let mut src = WatchedDirectorySource::open(dir.path(), Duration::from_millis(20)).unwrap();
        assert_eq!(
            src.next_frame().unwrap().unwrap().image.get_pixel(0, 0).0,
            [10]
        );
        let writer = {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                let img = GrayImage::from_pixel(8, 8, image::Luma([200]));
                img.save_with_format(path.join("new.png"), image::ImageFormat::Png)
                    .unwrap();
                std::fs::write(path.join("notes.txt"), "not a frame").unwrap();
            })
        };
        // Blocks until the new frame arrives, then yields it (once).
        let frame = src.next_frame().unwrap().unwrap();
        assert_eq!(frame.image.get_pixel(0, 0).0, [200]);
        writer.join().unwrap();
        assert!(src.ready.is_empty() && src.seen.len() == 2);
        assert!(
            WatchedDirectorySource::open(dir.path().join("nope"), Duration::from_millis(20))
                .is_err()
        );
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut names = vec![
            "f10.png", "f2.png", "f1.png", "a.png", "f02.png", "f100.png",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "a.png", "f1.png", "f2.png", "f02.png", "f10.png", "f100.png"
            ]
        );
    }

    #[test]
    fn bytes_that_are_no_image_are_unreadable() {
        for bytes in [&b""[..], b"hello", &[0xFF; 64]] {
            let err = load_gray(bytes, ImageLimits::default()).expect_err("not an image");
            assert!(matches!(err, FrameError::Unreadable(_)), "{err:?}");
        }
    }
}
