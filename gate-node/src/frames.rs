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

/// The PNG/JPEG frames arriving in a directory (a watched folder), polled
/// every `poll`: the frames there at start come first (natural order), then
/// each new one once its size and modification time held over one poll, so
/// a frame still being written is not read half-way (writing to `name.part`
/// and renaming is atomic and safest). Never ends by itself: it waits for
/// the next file.
///
/// Each version of a file is read once: a file rewritten in place, or
/// removed and created again under the same name, is a new frame; names
/// that left the directory are forgotten, so a folder that is emptied as it
/// is consumed keeps the bookkeeping small.
///
/// A reader on a thread of its own can be stopped with
/// [`WatchedDirectorySource::stop_on`]: the stream then ends (`Ok(None)`)
/// within one poll, as a camera being switched off.
pub struct WatchedDirectorySource {
    dir: PathBuf,
    poll: Duration,
    /// Files already read, with the version read.
    seen: std::collections::HashMap<PathBuf, Stamp>,
    /// Files not read yet, with the version seen at the last poll.
    pending: std::collections::HashMap<PathBuf, Stamp>,
    ready: std::collections::VecDeque<PathBuf>,
    limits: ImageLimits,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// A file's version: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl std::fmt::Debug for WatchedDirectorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedDirectorySource")
            .field("dir", &self.dir)
            .field("poll", &self.poll)
            .field("seen", &self.seen.len())
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl WatchedDirectorySource {
    /// Watches `dir` (not recursive); it must be a directory.
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
            pending: Default::default(),
            ready: Default::default(),
            limits: ImageLimits::default(),
            stop: None,
        })
    }

    /// Replaces the default [`ImageLimits`].
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Ends the stream (`Ok(None)`) once `stop` is set: checked before each
    /// frame and after each poll, so a waiting reader returns within one
    /// poll instead of waiting for the next file forever.
    pub fn stop_on(mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// One look at the directory: queues the new versions whose stamp held
    /// since the last look, forgets the files that are gone.
    fn scan(&mut self) -> Result<(), FrameError> {
        let io = |e: std::io::Error| FrameError::Io(format!("{}: {e}", self.dir.display()));
        let mut present = std::collections::HashSet::new();
        let mut fresh = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if !is_frame_file(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            present.insert(path.clone());
            let stamp = Stamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            if self.seen.get(&path) == Some(&stamp) {
                continue;
            }
            if stamp.len > 0 && self.pending.get(&path) == Some(&stamp) {
                self.pending.remove(&path);
                self.seen.insert(path.clone(), stamp);
                fresh.push(path);
            } else {
                self.pending.insert(path, stamp);
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        self.pending.retain(|p, _| present.contains(p));
        fresh.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
        self.ready.extend(fresh);
        Ok(())
    }
}

impl FrameSource for WatchedDirectorySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if self.stopped() {
                return Ok(None);
            }
            if let Some(path) = self.ready.pop_front() {
                let image = load_gray_file(&path, self.limits)?;
                return Ok(Some(Frame {
                    image,
                    captured_at: Instant::now(),
                }));
            }
            let looked = self.scan();
            if self.ready.is_empty() {
                // Also after a failed look: a directory that is briefly
                // unavailable is tried again one poll later, not in a spin.
                std::thread::sleep(self.poll);
            }
            looked?;
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

    /// A PNG of one shade, as bytes.
    fn png_bytes(shade: u8) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        GrayImage::from_pixel(8, 8, image::Luma([shade]))
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn a_watched_folder_yields_frames_as_they_arrive() {
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let atomic = |name: &str, shade: u8| {
            let tmp = path.join(format!("{name}.part"));
            std::fs::write(&tmp, png_bytes(shade)).unwrap();
            std::fs::rename(&tmp, path.join(name)).unwrap();
        };
        atomic("old.png", 10);
        assert!(
            WatchedDirectorySource::open(path.join("nope"), Duration::from_millis(20)).is_err(),
            "a missing folder fails at open"
        );
        let mut src = WatchedDirectorySource::open(&path, Duration::from_millis(20)).unwrap();
        // The source blocks while the folder is quiet: read it on a thread,
        // so a frame that never comes fails the test instead of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let next = src
                    .next_frame()
                    .map(|f| f.map(|f| f.image.get_pixel(0, 0).0[0]));
                if tx.send(next.map_err(|e| e.to_string())).is_err() {
                    return;
                }
            }
        });
        let next = || rx.recv_timeout(Duration::from_secs(5));
        let quiet = |what: &str| {
            let got = rx.recv_timeout(Duration::from_millis(300));
            assert!(got.is_err(), "{what}: {got:?}");
        };
        assert_eq!(next().unwrap(), Ok(Some(10)), "a frame there at start");
        quiet("nothing else is there");

        // A frame arriving later is read as it arrives; other files are not
        // frames.
        atomic("new.png", 200);
        std::fs::write(path.join("notes.txt"), "not a frame").unwrap();
        assert_eq!(next().unwrap(), Ok(Some(200)));
        quiet("each file once, notes.txt is no frame");

        // A writer stalling mid-file longer than a poll: the half is read and
        // refused, and the finished file is read again, not lost.
        let bytes = png_bytes(77);
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        std::fs::write(path.join("slow.png"), head).unwrap();
        let half = next().unwrap();
        assert!(half.is_err(), "a half-written PNG is unreadable: {half:?}");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path.join("slow.png"))
            .unwrap();
        std::io::Write::write_all(&mut file, tail).unwrap();
        drop(file);
        assert_eq!(next().unwrap(), Ok(Some(77)), "the finished version");

        // A name used again after the file went away is a new frame.
        std::fs::remove_file(path.join("old.png")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        atomic("old.png", 30);
        assert_eq!(next().unwrap(), Ok(Some(30)));
        quiet("and nothing is read twice");
    }

    #[test]
    fn a_stopped_watched_folder_ends_within_a_poll() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut src = WatchedDirectorySource::open(dir.path(), Duration::from_millis(20))
            .unwrap()
            .stop_on(stop.clone());
        let reader = std::thread::spawn(move || {
            let started = Instant::now();
            (
                src.next_frame().map(|f| f.is_some()).ok(),
                started.elapsed(),
            )
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!reader.is_finished(), "a quiet folder waits for a frame");
        let set = Instant::now();
        stop.store(true, Ordering::SeqCst);
        let (got, _) = reader.join().unwrap();
        assert_eq!(got, Some(false), "a stopped source ends the stream");
        assert!(
            set.elapsed() < Duration::from_millis(500),
            "and returns within a poll, not at the next file: {:?}",
            set.elapsed()
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
