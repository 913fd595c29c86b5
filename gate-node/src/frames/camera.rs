//! A V4L2 camera through nokhwa, delivering luma frames.
//!
//! The requested format is tried as uncompressed YUYV first (luma is a
//! byte pick, no JPEG decode on the Pi's CPU), then MJPEG, then whatever the
//! camera offers closest to the requested size. Without a camera (CI, a
//! desktop without webcam) [`CameraSource::open`] returns
//! [`FrameError::Io`]; tests feed image files instead. Built without the
//! `camera` feature (the scanner app's slim builds), the source exists but
//! opening it says so.

#[cfg(feature = "camera")]
use std::sync::mpsc;
#[cfg(feature = "camera")]
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(feature = "camera")]
use std::thread::JoinHandle;
#[cfg(feature = "camera")]
use std::time::{Duration, Instant};

#[cfg(feature = "camera")]
use nokhwa::pixel_format::LumaFormat;
#[cfg(feature = "camera")]
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
#[cfg(feature = "camera")]
use nokhwa::{Buffer, Camera};
use serde::{Deserialize, Serialize};

use super::{Frame, FrameError, FrameSource};

/// Which camera and how (the `[camera]` table of the node's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// V4L2 device index (`/dev/videoN`).
    pub index: u32,
    /// Requested frame width in pixels.
    pub width: u32,
    /// Requested frame height in pixels.
    pub height: u32,
    /// Requested frames per second.
    pub fps: u32,
}

impl Default for CameraConfig {
    /// `/dev/video0` at 640x480, 30 fps: enough pixels for a phone-held
    /// code at arm's length and decodes well inside the latency budget.
    fn default() -> Self {
        Self {
            index: 0,
            width: 640,
            height: 480,
            fps: 30,
        }
    }
}

impl CameraConfig {
    /// Checks the request is one a camera can grant and the decoder accepts.
    pub fn validate(&self) -> Result<(), String> {
        if self.width == 0 || self.height == 0 || self.fps == 0 {
            return Err("width, height and fps must be positive".into());
        }
        if u64::from(self.width) * u64::from(self.height) > crate::decode::MAX_DECODE_PIXELS {
            return Err(format!(
                "{}x{} is larger than the decoder accepts",
                self.width, self.height
            ));
        }
        if self.fps > 240 {
            return Err(format!("{} fps is not a camera rate", self.fps));
        }
        Ok(())
    }
}

/// Frames from a camera.
///
/// nokhwa's `Camera` is not `Send`, so it lives on its own capture thread,
/// which keeps only the newest raw buffer: a consumer slower than the
/// camera gets the latest frame, not a growing backlog (stale frames would
/// add their age to frame-to-decision latency). Buffers are converted to
/// luma on the consumer's thread, so dropped frames cost no conversion.
#[cfg(feature = "camera")]
pub struct CameraSource {
    shared: Arc<Shared>,
    format: CameraFormat,
    worker: Option<JoinHandle<()>>,
}

#[cfg(feature = "camera")]
#[derive(Default)]
struct Slot {
    latest: Option<Result<(Buffer, Instant), String>>,
    stop: bool,
    ended: bool,
}

#[cfg(feature = "camera")]
#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
}

#[cfg(feature = "camera")]
impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(feature = "camera")]
impl std::fmt::Debug for CameraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraSource")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "camera")]
/// Pause after a failed capture before retrying, so an unplugged camera
/// does not spin a core.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

#[cfg(feature = "camera")]
impl CameraSource {
    /// Opens the camera and starts streaming.
    pub fn open(config: CameraConfig) -> Result<Self, FrameError> {
        let shared = Arc::new(Shared::default());
        let (opened_tx, opened_rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name(format!("camera-{}", config.index))
            .spawn(move || match open_camera(config) {
                Ok(camera) => {
                    let _ = opened_tx.send(Ok(camera.camera_format()));
                    capture_loop(camera, &thread_shared);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(|e| FrameError::Io(format!("cannot start camera thread: {e}")))?;
        let opened = opened_rx
            .recv()
            .unwrap_or_else(|_| Err(FrameError::Io("camera thread ended while opening".into())));
        match opened {
            Ok(format) => Ok(Self {
                shared,
                format,
                worker: Some(worker),
            }),
            Err(e) => {
                let _ = worker.join();
                Err(e)
            }
        }
    }

    /// The format the camera agreed to.
    pub fn format(&self) -> CameraFormat {
        self.format
    }
}

#[cfg(feature = "camera")]
fn open_camera(config: CameraConfig) -> Result<Camera, FrameError> {
    let resolution = Resolution::new(config.width, config.height);
    let requests = [
        RequestedFormatType::Closest(CameraFormat::new(resolution, FrameFormat::YUYV, config.fps)),
        RequestedFormatType::Closest(CameraFormat::new(
            resolution,
            FrameFormat::MJPEG,
            config.fps,
        )),
        RequestedFormatType::HighestResolution(resolution),
    ];
    let index = CameraIndex::Index(config.index);
    let mut last_error = None;
    for request in requests {
        match Camera::new(index.clone(), RequestedFormat::new::<LumaFormat>(request)) {
            Ok(mut camera) => {
                camera.open_stream().map_err(|e| {
                    FrameError::Io(format!("camera {}: start streaming: {e}", config.index))
                })?;
                return Ok(camera);
            }
            Err(e) => last_error = Some(e),
        }
    }
    // nokhwa's error names the device ("Could not open device 0: ..."),
    // and the caller names the source: the cause alone, said once.
    Err(FrameError::Io(last_error.map_or_else(
        || format!("camera {}: no usable format", config.index),
        |e| e.to_string(),
    )))
}

#[cfg(feature = "camera")]
fn capture_loop(mut camera: Camera, shared: &Shared) {
    loop {
        if shared.lock().stop {
            break;
        }
        let grabbed = camera
            .frame()
            .map(|b| (b, Instant::now()))
            .map_err(|e| e.to_string());
        let failed = grabbed.is_err();
        shared.lock().latest = Some(grabbed);
        shared.ready.notify_all();
        if failed {
            std::thread::sleep(RETRY_PAUSE);
        }
    }
    let _ = camera.stop_stream();
    shared.lock().ended = true;
    shared.ready.notify_all();
}

#[cfg(feature = "camera")]
impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let mut slot = self.shared.lock();
        while slot.latest.is_none() && !slot.ended {
            slot = self
                .shared
                .ready
                .wait(slot)
                .unwrap_or_else(|e| e.into_inner());
        }
        let Some(latest) = slot.latest.take() else {
            return Ok(None);
        };
        drop(slot);
        let (buffer, captured_at) =
            latest.map_err(|e| FrameError::Io(format!("camera frame: {e}")))?;
        let image = buffer
            .decode_image::<LumaFormat>()
            .map_err(|e| FrameError::Unreadable(format!("camera frame: {e}")))?;
        Ok(Some(Frame { image, captured_at }))
    }
}

#[cfg(feature = "camera")]
impl Drop for CameraSource {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Frames from a camera: this build has no camera support.
#[cfg(not(feature = "camera"))]
#[derive(Debug)]
pub struct CameraSource(std::convert::Infallible);

#[cfg(not(feature = "camera"))]
impl CameraSource {
    /// Always fails: the crate was built without the `camera` feature.
    pub fn open(config: CameraConfig) -> Result<Self, FrameError> {
        Err(FrameError::Io(format!(
            "camera {}: this build has no camera support (cargo feature `camera`)",
            config.index
        )))
    }

    /// Never called: no camera source exists in this build.
    pub fn format(&self) -> String {
        match self.0 {}
    }
}

#[cfg(not(feature = "camera"))]
impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_to_vga_at_30_fps_on_video0() {
        let c = CameraConfig::default();
        assert_eq!((c.index, c.width, c.height, c.fps), (0, 640, 480, 30));
    }

    #[test]
    fn config_validation_refuses_empty_and_huge_frames() {
        assert!(CameraConfig::default().validate().is_ok());
        for bad in [
            CameraConfig {
                width: 0,
                ..CameraConfig::default()
            },
            CameraConfig {
                width: 8192,
                height: 8192,
                ..CameraConfig::default()
            },
            CameraConfig {
                fps: 1000,
                ..CameraConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn opening_a_missing_camera_is_an_io_error() {
        let config = CameraConfig {
            index: 63,
            ..CameraConfig::default()
        };
        let err = CameraSource::open(config).expect_err("no /dev/video63 on a test machine");
        assert!(matches!(err, FrameError::Io(_)), "{err:?}");
    }
}
