//! Scanning from a camera: the laptop webcam through the gate engine's V4L2
//! source (feature `webcam`), or a folder of image files standing in for
//! one (tests, replays). Frames are decoded and scanned on a thread of their
//! own; each new result (not a repeat read of a code still in view) and a
//! small preview image are handed to callbacks, which the shell turns into
//! window events.

use crate::device::Device;
use crate::error::AppError;
use crate::view::ScanView;
use base64::Engine as _;
use gate_node::decode::default_decoder;
use gate_node::frames::{CameraConfig, CameraSource, DirectorySource, FrameSource};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Where frames come from.
#[derive(Clone, Debug)]
pub enum CameraInput {
    /// A V4L2 camera.
    Webcam(CameraConfig),
    /// Image files in a folder, in natural order (an injected camera).
    Frames(PathBuf),
}

/// Preview width in pixels.
const PREVIEW_WIDTH: u32 = 320;
/// Every how many frames a preview is sent.
const PREVIEW_EVERY: u64 = 5;

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
    /// Whether the source ended (a folder of frames played out).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

fn open(input: &CameraInput) -> Result<Box<dyn FrameSource>, AppError> {
    Ok(match input {
        CameraInput::Webcam(c) => {
            Box::new(CameraSource::open(*c).map_err(|e| AppError::Camera(e.to_string()))?)
        }
        CameraInput::Frames(dir) => {
            Box::new(DirectorySource::open(dir).map_err(|e| AppError::Camera(e.to_string()))?)
        }
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
    let mut source = open(input)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("scanner-camera".into())
        .spawn(move || {
            let decoder = default_decoder();
            let mut n = 0u64;
            while !thread_stop.load(Ordering::SeqCst) {
                let frame = match source.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "camera frame skipped");
                        continue;
                    }
                };
                if n.is_multiple_of(PREVIEW_EVERY)
                    && let Some(p) = preview(&frame.image)
                {
                    on_preview(p);
                }
                n += 1;
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
