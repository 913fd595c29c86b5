//! Text lines from a barcode scanner that decodes by itself: a USB scanner
//! in serial (CDC-ACM, `/dev/ttyACM0`) or HID-POS virtual-COM mode, a FIFO,
//! or stdin (keyboard-wedge scanners typing into a terminal).
//!
//! A tty device is switched to raw mode (no echo, no line editing, no
//! CR-to-NL mapping, no signals), so the scanner's bytes arrive as sent.
//! Lines end at `\n` or `\r` (scanners are configured with either suffix);
//! empty lines are skipped; a line over [`MAX_LINE_BYTES`] is dropped whole
//! with [`FrameError::TooLarge`] and reading resumes at the next line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{FrameError, TextSource};

/// Longest line accepted. A credential is at most 311 characters; scanners
/// add a prefix or suffix at most.
pub const MAX_LINE_BYTES: usize = 1024;

/// Lines from a reader.
pub struct LineSource {
    reader: Box<dyn BufRead + Send>,
    name: String,
}

impl std::fmt::Debug for LineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSource")
            .field("name", &self.name)
            .finish()
    }
}

impl LineSource {
    /// Lines from standard input.
    pub fn stdin() -> Self {
        Self::from_reader("stdin", std::io::stdin())
    }

    /// Lines from a device or file; a tty is put into raw mode first.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FrameError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| FrameError::Io(format!("{}: {e}", path.display()));
        let file = OpenOptions::new().read(true).open(path).map_err(io)?;
        if rustix::termios::isatty(&file) {
            raw_mode(&file).map_err(|e| io(e.into()))?;
        }
        Ok(Self::from_reader(path.display().to_string(), file))
    }

    /// Lines from a named pipe (FIFO) that outlives its writers: the pipe is
    /// opened for reading and writing, so opening never waits for a writer
    /// and a writer closing its end is not an end of input; the next writer's
    /// lines are read as they come. `path` must already be a FIFO
    /// (`mkfifo`).
    pub fn open_fifo(path: impl AsRef<Path>) -> Result<Self, FrameError> {
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref();
        let io = |e: std::io::Error| FrameError::Io(format!("{}: {e}", path.display()));
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.file_type().is_fifo() {
            return Err(FrameError::Io(format!(
                "{} is not a FIFO (create it with `mkfifo`)",
                path.display()
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        Ok(Self::from_reader(path.display().to_string(), file))
    }

    /// Lines from any reader (tests, sockets).
    pub fn from_reader(name: impl Into<String>, reader: impl Read + Send + 'static) -> Self {
        Self {
            reader: Box::new(BufReader::new(reader)),
            name: name.into(),
        }
    }

    /// Reads up to the next terminator; `None` at end of input. Returns the
    /// bytes kept (at most `MAX_LINE_BYTES + 1`) and the line's full length.
    fn read_raw_line(&mut self) -> Result<Option<(Vec<u8>, usize)>, FrameError> {
        let mut line = Vec::new();
        let mut total = 0usize;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FrameError::Io(format!("{}: {e}", self.name))),
            };
            if buf.is_empty() {
                return Ok((total > 0).then_some((line, total)));
            }
            let end = buf.iter().position(|&b| b == b'\n' || b == b'\r');
            let chunk = &buf[..end.unwrap_or(buf.len())];
            let room = (MAX_LINE_BYTES + 1).saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len();
            let consumed = end.map_or(buf.len(), |e| e + 1);
            self.reader.consume(consumed);
            if end.is_some() {
                return Ok(Some((line, total)));
            }
        }
    }
}

impl TextSource for LineSource {
    fn next_line(&mut self) -> Result<Option<String>, FrameError> {
        loop {
            let Some((bytes, total)) = self.read_raw_line()? else {
                return Ok(None);
            };
            if total > MAX_LINE_BYTES {
                return Err(FrameError::TooLarge(format!(
                    "{}: line of {total} bytes (limit {MAX_LINE_BYTES})",
                    self.name
                )));
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| FrameError::Unreadable(format!("{}: line is not UTF-8", self.name)))?;
            let text = text.trim_matches(|c: char| c.is_whitespace() || c.is_control());
            if !text.is_empty() {
                return Ok(Some(text.to_owned()));
            }
        }
    }
}

fn raw_mode(file: &File) -> rustix::io::Result<()> {
    use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
    let mut termios = tcgetattr(file)?;
    termios.make_raw();
    tcsetattr(file, OptionalActions::Now, &termios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_survives_writers_coming_and_going() {
        use std::io::Write;
        use std::sync::mpsc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("scans");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo (coreutils) runs");
        assert!(made.success());
        // The reader runs on a thread, as in the daemon, so a source that
        // ends or blocks fails the test instead of hanging it.
        let (tx, rx) = mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let mut src = match LineSource::open_fifo(&path) {
                Ok(src) => src,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            loop {
                let line = src.next_line().map_err(|e| e.to_string());
                let end = !matches!(line, Ok(Some(_)));
                if tx.send(line).is_err() || end {
                    return;
                }
            }
        });
        let next = || {
            rx.recv_timeout(Duration::from_secs(5))
                .expect("a line in 5 s")
        };
        let writer = || OpenOptions::new().write(true).open(&fifo).unwrap();
        for text in ["first", "second", "third"] {
            // Each writer opens, writes one line and goes away; the reader
            // must not take the writer leaving for the end of input.
            let mut w = writer();
            writeln!(w, "{text}").unwrap();
            drop(w);
            assert_eq!(next(), Ok(Some(text.to_owned())));
        }
        // Two writers at once, each line written whole (as `echo` does).
        let (mut a, mut b) = (writer(), writer());
        a.write_all(b"from-a\n").unwrap();
        b.write_all(b"from-b\n").unwrap();
        drop((a, b));
        let mut got = [next(), next()];
        got.sort();
        assert_eq!(
            got,
            [Ok(Some("from-a".to_owned())), Ok(Some("from-b".to_owned()))]
        );
        let quiet = rx.recv_timeout(Duration::from_millis(300));
        assert!(
            quiet.is_err(),
            "no end of input after the writers left: {quiet:?}"
        );

        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x\n").unwrap();
        let err = LineSource::open_fifo(&plain).unwrap_err().to_string();
        assert!(
            err.contains("not a FIFO") && err.contains("mkfifo"),
            "{err}"
        );
        let err = LineSource::open_fifo(dir.path().join("none")).unwrap_err();
        assert!(err.to_string().contains("none"), "{err}");
    }

    fn lines(input: &[u8]) -> Vec<Result<Option<String>, String>> {
        let mut src = LineSource::from_reader("test", std::io::Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        loop {
            let next = src.next_line().map_err(|e| e.to_string());
            let end = matches!(next, Ok(None));
            out.push(next);
            if end || out.len() > 20 {
                return out;
            }
        }
    }

    #[test]
    fn cr_lf_and_crlf_terminators_all_end_a_line() {
        let got = lines(b"TK1:A\rTK1:B\nTK1:C\r\n\r\nTK1:D");
        let want = ["TK1:A", "TK1:B", "TK1:C", "TK1:D"].map(|s| Ok(Some(s.to_owned())));
        assert_eq!(
            got[..4],
            want,
            "every terminator style, empty lines skipped"
        );
        assert_eq!(got[4], Ok(None));
    }

    #[test]
    fn an_overlong_line_is_refused_and_reading_resumes() {
        let mut input = vec![b'X'; MAX_LINE_BYTES * 3];
        input.extend_from_slice(b"\nTK1:OK\n");
        let got = lines(&input);
        assert!(
            matches!(&got[0], Err(m) if m.contains("too large")),
            "{:?}",
            got[0]
        );
        assert_eq!(
            got[1],
            Ok(Some("TK1:OK".into())),
            "the next line is still read"
        );
    }

    #[test]
    fn invalid_utf8_is_unreadable_not_a_panic() {
        let got = lines(b"\xff\xfe\nTK1:OK\n");
        assert!(
            matches!(&got[0], Err(m) if m.contains("UTF-8")),
            "{:?}",
            got[0]
        );
        assert_eq!(got[1], Ok(Some("TK1:OK".into())));
    }

    #[test]
    fn a_regular_file_is_read_without_raw_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scans.txt");
        std::fs::write(&path, "TK1:ONE\nTK1:TWO\n").expect("write");
        let mut src = LineSource::open(&path).expect("a plain file opens");
        assert_eq!(src.next_line().expect("read").as_deref(), Some("TK1:ONE"));
        assert_eq!(src.next_line().expect("read").as_deref(), Some("TK1:TWO"));
        assert_eq!(src.next_line().expect("read"), None);
    }

    #[test]
    fn a_missing_device_is_an_io_error() {
        let err = LineSource::open("/dev/does-not-exist-scanner").expect_err("missing");
        assert!(matches!(err, FrameError::Io(_)), "{err:?}");
    }
}
