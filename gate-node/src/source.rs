//! The daemon's scan input besides `POST /scan`: a camera, an image file, a
//! directory of frames (read once or watched), or text lines from a
//! serial/HID barcode scanner, a FIFO or stdin, chosen by the `[source]` table, fed into the engine on a thread of
//! its own.
//!
//! Frames are decoded on that thread, never on the async runtime, with the
//! configured decoder; every text then goes through [`Engine::scan_text`]
//! like any other scan, so debouncing and the durable-before-signal order
//! are the engine's alone. Nothing here touches the network.
//!
//! A frame or line that cannot be read (a broken file, an overlong line) is
//! logged, counted in `source_errors` and skipped. A device that fails or
//! ends (camera or scanner unplugged) is reopened with backoff; a watched
//! folder and a FIFO do not end; a directory or stdin that ends ends the source, while the daemon goes on serving its
//! API and syncing.

use crate::config::{SourceConfig, SourceKind};
use crate::decode::QrDecoder;
use crate::engine::Engine;
use crate::frames::{
    CameraSource, DirectorySource, FrameError, FrameSource, ImageFileSource, LineSource,
    TextSource, WatchedDirectorySource,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// An open stream of scans.
pub enum Input {
    /// Already-decoded texts (scanner lines, stdin).
    Lines(Box<dyn TextSource>),
    /// Frames, and the decoder for them.
    Frames(Box<dyn FrameSource>, Box<dyn QrDecoder>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Lines(_) => f.write_str("Input::Lines"),
            Input::Frames(_, d) => write!(f, "Input::Frames({})", d.name()),
        }
    }
}

type Opener = Box<dyn FnMut() -> Result<Input, FrameError> + Send>;

/// A scan source: what it reads now, and how to reopen it if it is a device.
pub struct ScanSource {
    name: String,
    input: Option<Input>,
    reopen: Option<Opener>,
}

impl std::fmt::Debug for ScanSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanSource")
            .field("name", &self.name)
            .field("input", &self.input)
            .field("reopens", &self.reopen.is_some())
            .finish()
    }
}

/// The configured source could not be opened. The cause is part of the
/// message and deliberately not an error `source()`: printing the chain
/// (`{:#}`) would otherwise say it twice. The message ends with what to
/// change in the config (`fix`), when the source came from one.
#[derive(Debug, thiserror::Error)]
#[error("scan source {name}: {reason}{}", fix.map(|f| format!("; {f}")).unwrap_or_default())]
pub struct SourceError {
    /// Which source.
    pub name: String,
    /// Why.
    pub reason: FrameError,
    /// The config key to change, and how (`from_config` sets it).
    pub fix: Option<&'static str>,
}

/// What to change in the config when the source of `kind` cannot be opened.
fn fix_for(kind: SourceKind) -> Option<&'static str> {
    Some(match kind {
        SourceKind::Camera => {
            "set source.camera.index to a camera that exists (ls /dev/video*), or another \
             source.kind (images/gate-node/gate.desktop.toml runs without a camera)"
        }
        SourceKind::Serial => {
            "set source.device to the scanner's device (ls /dev/ttyACM* /dev/ttyUSB*), or \
             another source.kind"
        }
        SourceKind::Images => "set source.path to an image file or a directory of frames",
        SourceKind::Fifo => "set source.path to a FIFO made with mkfifo",
        SourceKind::None | SourceKind::Stdin => return None,
    })
}

/// Consecutive I/O errors after which a device counts as gone (about a
/// second of failed captures for a camera, which retries every 100 ms).
const MAX_IO_ERRORS: u32 = 10;
/// Backoff between attempts to reopen a device.
const REOPEN_MIN: Duration = Duration::from_millis(250);
const REOPEN_MAX: Duration = Duration::from_secs(10);

impl ScanSource {
    /// A source that is not reopened when it ends (tests, the scanner app).
    pub fn new(name: impl Into<String>, input: Input) -> Self {
        Self {
            name: name.into(),
            input: Some(input),
            reopen: None,
        }
    }

    /// A device source: opened now (so a missing device fails at start with
    /// a clear error), reopened by `open` whenever it fails or ends.
    pub fn device(
        name: impl Into<String>,
        mut open: impl FnMut() -> Result<Input, FrameError> + Send + 'static,
    ) -> Result<Self, SourceError> {
        let name = name.into();
        let input = open().map_err(|reason| SourceError {
            name: name.clone(),
            reason,
            fix: None,
        })?;
        Ok(Self {
            name,
            input: Some(input),
            reopen: Some(Box::new(open)),
        })
    }

    /// Opens the source `config` names; `None` for `kind = "none"`. The
    /// error says which config key to change.
    pub fn from_config(config: &SourceConfig) -> Result<Option<Self>, SourceError> {
        Self::open_config(config).map_err(|e| SourceError {
            fix: e.fix.or(fix_for(config.kind)),
            ..e
        })
    }

    fn open_config(config: &SourceConfig) -> Result<Option<Self>, SourceError> {
        let (decoder, attempts) = (config.decoder.clone(), config.decode_attempts);
        let decoder_for = move || {
            crate::decode::configured_decoder(&decoder, attempts).ok_or_else(|| {
                FrameError::Io(format!("no QR decoder named {decoder:?} in this build"))
            })
        };
        let source = match config.kind {
            SourceKind::None => return Ok(None),
            SourceKind::Stdin => Self::new("stdin", Input::Lines(Box::new(LineSource::stdin()))),
            SourceKind::Serial => {
                let device = config.device.clone().unwrap_or_default();
                // The device is named by its errors ("/dev/ttyACM0: ..."), once.
                let name = "serial".to_owned();
                Self::device(name, move || {
                    Ok(Input::Lines(Box::new(LineSource::open(&device)?)))
                })?
            }
            SourceKind::Fifo => {
                let path = config.path.clone().unwrap_or_default();
                let name = "fifo".to_owned();
                Self::device(name, move || {
                    Ok(Input::Lines(Box::new(LineSource::open_fifo(&path)?)))
                })?
            }
            SourceKind::Images => {
                let path = config.path.clone().unwrap_or_default();
                let name = format!("images {}", path.display());
                let meta = std::fs::metadata(&path).map_err(|e| SourceError {
                    name: name.clone(),
                    reason: FrameError::Io(e.to_string()),
                    fix: None,
                })?;
                if config.watch && !meta.is_dir() {
                    return Err(SourceError {
                        name,
                        reason: FrameError::Io(
                            "source.watch = true needs source.path to be a directory \
                             (or set watch = false to read one image file)"
                                .into(),
                        ),
                        fix: None,
                    });
                }
                let frames: Box<dyn FrameSource> = if config.watch {
                    let poll = Duration::from_millis(config.watch_poll_ms);
                    Box::new(WatchedDirectorySource::open(&path, poll).map_err(|reason| {
                        SourceError {
                            name: name.clone(),
                            reason,
                            fix: None,
                        }
                    })?)
                } else if meta.is_dir() {
                    Box::new(DirectorySource::open(&path).map_err(|reason| SourceError {
                        name: name.clone(),
                        reason,
                        fix: None,
                    })?)
                } else {
                    Box::new(ImageFileSource::new(&path))
                };
                let decoder = decoder_for().map_err(|reason| SourceError {
                    name: name.clone(),
                    reason,
                    fix: None,
                })?;
                Self::new(name, Input::Frames(frames, decoder))
            }
            SourceKind::Camera => {
                let camera = config.camera;
                let name = format!("camera /dev/video{}", camera.index);
                Self::device(name, move || {
                    let source = CameraSource::open(camera)?;
                    tracing::info!(format = %source.format(), "camera streaming");
                    Ok(Input::Frames(Box::new(source), decoder_for()?))
                })?
            }
        };
        Ok(Some(source))
    }

    /// The source's name for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Feeds the engine until `stop` is set or the source ends for good.
    /// Call it on a thread of its own: it blocks on the device.
    pub fn run(mut self, engine: &Engine, stop: &AtomicBool) {
        let mut backoff = REOPEN_MIN;
        loop {
            let input = match self.input.take() {
                Some(input) => input,
                None => match self.reopen.as_mut() {
                    None => return,
                    Some(open) => {
                        if !pause(backoff, stop) {
                            return;
                        }
                        match open() {
                            Ok(input) => {
                                tracing::info!(source = %self.name, "scan source reopened");
                                backoff = REOPEN_MIN;
                                input
                            }
                            Err(e) => {
                                tracing::warn!(source = %self.name, error = %e, retry_in = ?backoff, "cannot reopen the scan source");
                                backoff = (backoff * 2).min(REOPEN_MAX);
                                continue;
                            }
                        }
                    }
                },
            };
            match feed(engine, input, stop) {
                End::Stopped => return,
                End::Ended => tracing::info!(source = %self.name, "scan source ended"),
                End::Failed(e) => {
                    tracing::error!(source = %self.name, error = %e, "scan source failed");
                }
            }
        }
    }
}

/// Why feeding stopped.
enum End {
    Stopped,
    Ended,
    Failed(FrameError),
}

/// Sleeps `d` in short steps; false if `stop` was set meanwhile.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
    !stop.load(Ordering::Relaxed)
}

fn feed(engine: &Engine, mut input: Input, stop: &AtomicBool) -> End {
    let mut io_errors = 0u32;
    while !stop.load(Ordering::Relaxed) {
        // Store failures are counted and logged by the engine, and the gate
        // stays shut; the next scan tries again.
        let read = match &mut input {
            Input::Lines(lines) => lines.next_line().map(|line| {
                line.map(|line| {
                    let _ = engine.scan_text(&line);
                })
            }),
            Input::Frames(frames, decoder) => frames.next_frame().map(|frame| {
                frame.map(|frame| {
                    let reports = engine.scan_frame(decoder.as_ref(), &frame.image);
                    if reports.is_ok_and(|r| r.iter().any(|r| !r.repeat)) {
                        metrics::histogram!("gate_frame_to_decision_seconds")
                            .record(frame.captured_at.elapsed().as_secs_f64());
                    }
                })
            }),
        };
        match read {
            Ok(Some(())) => io_errors = 0,
            Ok(None) => return End::Ended,
            Err(FrameError::Io(e)) => {
                io_errors += 1;
                count_error(engine, &e);
                if io_errors >= MAX_IO_ERRORS {
                    return End::Failed(FrameError::Io(e));
                }
            }
            Err(e) => count_error(engine, &e.to_string()),
        }
    }
    End::Stopped
}

fn count_error(engine: &Engine, error: &str) {
    engine
        .counters_mut()
        .source_errors
        .fetch_add(1, Ordering::Relaxed);
    metrics::counter!("gate_source_errors_total").increment(1);
    tracing::warn!(%error, "scan source: input skipped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::EventFixture;
    use crate::store::Store;
    use crate::time::{FakeClock, TimeSource};
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    /// Scanner lines and failures, in order; then the end of input.
    struct Script(VecDeque<Result<Option<String>, FrameError>>);

    impl TextSource for Script {
        fn next_line(&mut self) -> Result<Option<String>, FrameError> {
            self.0.pop_front().unwrap_or(Ok(None))
        }
    }

    fn script(items: Vec<Result<Option<String>, FrameError>>) -> Input {
        Input::Lines(Box::new(Script(items.into())))
    }

    #[test]
    fn an_unplugged_device_is_reopened_and_scanning_goes_on() {
        let f = EventFixture::new(81, 5);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open_in(dir.path()).expect("store"));
        crate::provision::import(&store, &f.bundle(1, "West"), [2; 32]).expect("provision");
        let time = Arc::new(TimeSource::new(
            Arc::new(FakeClock::new(1_750_000_000_000)),
            true,
            sync_protocol::Hlc::default(),
        ));
        let engine = Engine::new(store.clone(), time, None, 0, "").expect("engine");
        let stop = Arc::new(AtomicBool::new(false));
        let opens = Arc::new(AtomicU32::new(0));
        let (t1, t2) = (f.credential(f.ticket(1)), f.credential(f.ticket(2)));
        let (opened, stopper) = (opens.clone(), stop.clone());
        let source = ScanSource::device("fake scanner", move || {
            let io = || Err(FrameError::Io("EIO".into()));
            match opened.fetch_add(1, Ordering::SeqCst) {
                0 => {
                    let mut items =
                        vec![Ok(Some(t1.clone())), Err(FrameError::TooLarge("x".into()))];
                    items.extend((0..MAX_IO_ERRORS).map(|_| io()));
                    Ok(script(items))
                }
                1 => Ok(script(vec![Ok(Some(t2.clone()))])),
                _ => {
                    stopper.store(true, Ordering::SeqCst);
                    Err(FrameError::Io("unplugged".into()))
                }
            }
        })
        .expect("the first open succeeds");
        source.run(&engine, &stop);
        assert_eq!(
            opens.load(Ordering::SeqCst),
            3,
            "opened, reopened after the I/O errors, reopened after the end"
        );
        assert_eq!(
            store.record_count().expect("count"),
            2,
            "lines before and after the unplug are both scanned"
        );
        assert_eq!(
            engine.counters().source_errors,
            u64::from(MAX_IO_ERRORS) + 1,
            "every skipped input is counted"
        );
    }

    #[test]
    fn kind_none_opens_nothing_and_a_missing_device_fails_at_start() {
        assert!(
            ScanSource::from_config(&SourceConfig::default())
                .expect("nothing to open")
                .is_none()
        );
        let serial = SourceConfig {
            kind: SourceKind::Serial,
            device: Some("/dev/no-such-scanner".into()),
            ..SourceConfig::default()
        };
        let err = ScanSource::from_config(&serial).expect_err("no such device");
        assert!(err.to_string().contains("/dev/no-such-scanner"), "{err}");
    }
}
