//! Scanning from a camera: the laptop webcam through the gate engine's V4L2
//! source (feature `webcam`, nokhwa), or a watched folder of image files
//! standing in for one (the injected camera of tests and replays:
//! `--camera-frames DIR`). Either is a [`FrameSource`] read by the same
//! thread, decoded by the same decoder and scanned by the same engine; each
//! new result (not a repeat read of a code still in view) and a small
//! preview image are handed to callbacks, which the shell turns into window
//! events.
//!
//! The folder behaves as a camera pointed at whatever is held up: the
//! images there when it starts are its first frames (natural order), then
//! every image written into it later (write `x.png.part`, rename to
//! `x.png`) is the next frame; it never ends by itself, and stopping the
//! camera ends it within one poll.

use crate::device::Device;
use crate::error::AppError;
use crate::view::ScanView;
use base64::Engine as _;
use gate_node::decode::default_decoder;
use gate_node::frames::{CameraConfig, CameraSource, FrameSource, WatchedDirectorySource};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where frames come from.
#[derive(Clone, Debug)]
pub enum CameraInput {
    /// A V4L2 camera.
    Webcam(CameraConfig),
    /// Image files in a watched folder (an injected camera): those there
    /// at start in natural order, then each one as it arrives.
    Frames(PathBuf),
}

/// Preview width in pixels.
const PREVIEW_WIDTH: u32 = 320;
/// Least time between two previews: a 30 fps webcam previews about six
/// frames a second, a folder's sparse frames each one.
const PREVIEW_GAP: Duration = Duration::from_millis(150);
/// How often the injected camera's folder is looked at.
const FOLDER_POLL: Duration = Duration::from_millis(50);

/// A camera being read; stops when dropped.
#[derive(Debug)]
pub struct CameraRun {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for CameraRun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl CameraRun {
    /// Whether the source ended (the webcam went away, or the folder
    /// could no longer be read).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

fn open(input: &CameraInput, stop: &Arc<AtomicBool>) -> Result<Box<dyn FrameSource>, AppError> {
    Ok(match input {
        CameraInput::Webcam(c) => {
            Box::new(CameraSource::open(*c).map_err(|e| AppError::Camera(e.to_string()))?)
        }
        CameraInput::Frames(dir) => Box::new(
            WatchedDirectorySource::open(dir, FOLDER_POLL)
                .map_err(|e| {
                    AppError::Camera(format!(
                        "{e}: --camera-frames must name an existing folder of PNG or JPEG frames"
                    ))
                })?
                .stop_on(stop.clone()),
        ),
    })
}

/// A PNG data URL of `frame` scaled to the preview width.
pub fn preview(frame: &image::GrayImage) -> Option<String> {
    let (w, h) = frame.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    let ph = (u64::from(h) * u64::from(PREVIEW_WIDTH) / u64::from(w)).max(1) as u32;
    let small = image::imageops::resize(
        frame,
        PREVIEW_WIDTH,
        ph,
        image::imageops::FilterType::Triangle,
    );
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(small)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// Opens `input` and scans its frames until stopped or the source ends.
pub fn start(
    device: Arc<Device>,
    input: &CameraInput,
    on_scan: impl Fn(Result<ScanView, AppError>) + Send + 'static,
    on_preview: impl Fn(String) + Send + 'static,
) -> Result<CameraRun, AppError> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut source = open(input, &stop)?;
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("scanner-camera".into())
        .spawn(move || {
            let decoder = default_decoder();
            let mut last_preview: Option<Instant> = None;
            while !thread_stop.load(Ordering::SeqCst) {
                let frame = match source.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "camera frame skipped");
                        continue;
                    }
                };
                if last_preview.is_none_or(|t| t.elapsed() >= PREVIEW_GAP)
                    && let Some(p) = preview(&frame.image)
                {
                    last_preview = Some(Instant::now());
                    on_preview(p);
                }
                match device.scan_frame(decoder.as_ref(), &frame.image) {
                    Ok(views) => views
                        .into_iter()
                        .filter(|v| !v.repeat)
                        .for_each(|v| on_scan(Ok(v))),
                    Err(e) => on_scan(Err(e)),
                }
            }
        })
        .map_err(|e| AppError::Camera(format!("cannot start the camera thread: {e}")))?;
    Ok(CameraRun {
        stop,
        thread: Some(thread),
    })
}
