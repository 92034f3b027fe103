//! Access logs in Apache's "combined" format (spec LOG-1), written by a
//! thread of their own so a slow disk never blocks the event loop.
//!
//! The loop formats a line and hands it over a bounded channel; when the
//! writer falls behind by more than [`QUEUE`] lines, further lines are
//! dropped and counted (and the count is written when the writer catches
//! up), rather than letting memory grow or the loop wait.
//!
//! A log reopens its file when asked ([`AccessLog::reopen`], SIGUSR1 in
//! the `warren` binary): logrotate moves the file, then signals; lines
//! logged before the signal are in the moved file, later ones in the new
//! file, none lost or written twice. The path `-` is standard output.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

/// Lines that may wait for the writer thread.
pub const QUEUE: usize = 4096;
/// The longest line written (LOG-1: 512 bytes).
const MAX_LINE: usize = 512;
/// The longest path logged (LOG-1: 255 bytes).
const MAX_PATH: usize = 255;
/// The longest method logged (a method is a short token).
const MAX_METHOD: usize = 32;

/// One access log: a file, or standard output. The vhosts of a context
/// that name the same one share it (one writer, so their lines never
/// interleave mid-line).
#[derive(Debug)]
pub(crate) struct AccessLog {
    /// `None` once dropping: the writer then sees the channel end.
    tx: Option<SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
    /// A reopen asked for that did not fit in the queue: sent before the
    /// next line.
    reopen_due: AtomicBool,
    /// Disconnected when the writer thread ends (in a mutex only to be
    /// `Sync`: only `drop` uses it).
    writer_done: Option<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

/// How long a context that ends waits for its access log's writer to
/// write what is queued: a writer stuck on a full pipe (a reader of
/// `--access-log -` or of a FIFO that stopped reading) must not keep the
/// process from exiting.
const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The most write errors logged per writer; then one line saying the
/// rest are not (a log on a full disk must not log a line per request).
const MAX_ERRORS_LOGGED: u32 = 3;

/// What the log needs from a request, kept from its head to its end.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) proto: &'static str,
    pub(crate) referer: String,
    pub(crate) user_agent: String,
}

/// What the loop hands the writer.
#[derive(Debug)]
enum Msg {
    Line(String),
    /// Reopen the file by its path (SIGUSR1 after logrotate moved it):
    /// the lines before this one went to the old file, those after it
    /// go to the new one.
    Reopen,
}

/// Where the writer writes.
enum Sink {
    File {
        path: PathBuf,
        file: std::fs::File,
    },
    /// The process's standard output, through its lock (shared with any
    /// other writer of the process).
    Stdout,
}

/// The most bytes the writer gathers before writing them.
const BATCH: usize = 64 * 1024;

/// What `path` names as an access log: `-` is standard output.
pub(crate) fn is_stdout(path: &Path) -> bool {
    path == Path::new("-")
}

/// [`crate::process::open_log`], its error naming the access log.
fn open_append(path: &Path) -> io::Result<std::fs::File> {
    crate::process::open_log(path).map_err(|e| io::Error::new(e.kind(), format!("access log {e}")))
}

impl Sink {
    /// Writes `batch` whole (one write for a file opened to append, so
    /// lines of other writers to the same file fall between lines).
    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        match self {
            Sink::File { file, .. } => file.write_all(batch),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(batch)?;
                out.flush()
            }
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, file } = self {
            match open_append(path) {
                Ok(f) => *file = f,
                Err(e) => log::error!("{e}; still writing to the file open before"),
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Sink::File { path, .. } => path.display().to_string(),
            Sink::Stdout => "(standard output)".into(),
        }
    }
}

impl AccessLog {
    /// Whether [`AccessLog::open`] could open `path`, without creating
    /// it: an existing file must be writable, else its directory.
    pub(crate) fn check_writable(path: &Path) -> io::Result<()> {
        if is_stdout(path) {
            return Ok(());
        }
        let named = |e: io::Error| io::Error::new(e.kind(), format!("access log {}: {e}", path.display()));
        let (target, what) = match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(named(io::Error::new(io::ErrorKind::IsADirectory, "a directory")));
            }
            // Opened as a start would (it creates nothing: it exists):
            // with no reader, a start would fail.
            Ok(meta) if std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) => {
                return open_append(path).map(drop);
            }
            Ok(_) => (path, libc::W_OK),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let meta = std::fs::metadata(dir)
                    .map_err(|e| named(io::Error::new(e.kind(), format!("its directory: {e}"))))?;
                if !meta.is_dir() {
                    return Err(named(io::Error::new(io::ErrorKind::NotADirectory, "its directory is not one")));
                }
                (dir, libc::W_OK | libc::X_OK)
            }
            Err(e) => return Err(named(e)),
        };
        let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
            .map_err(|e| named(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // SAFETY: access reads the NUL-terminated path only.
        if unsafe { libc::access(c.as_ptr(), what) } != 0 {
            let e = io::Error::last_os_error();
            let which = if target == path { String::new() } else { format!("its directory {}: ", target.display()) };
            return Err(named(io::Error::new(e.kind(), format!("{which}{e}"))));
        }
        Ok(())
    }

    /// Opens (appends to) `path`, or standard output for `-`, and starts
    /// its writer thread.
    pub(crate) fn open(path: &Path) -> io::Result<AccessLog> {
        let sink = if is_stdout(path) {
            Sink::Stdout
        } else {
            Sink::File { path: path.to_path_buf(), file: open_append(path)? }
        };
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = dropped.clone();
        let (done_tx, writer_done) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new().name("warren-access-log".into()).spawn(move || {
            let _done = done_tx;
            let mut sink = sink;
            let mut batch: Vec<u8> = Vec::with_capacity(8192);
            let mut reported = 0;
            let mut errors = 0u32;
            let mut write = |sink: &mut Sink, batch: &mut Vec<u8>| {
                if !batch.is_empty() {
                    if let Err(e) = sink.write(batch) {
                        errors = errors.saturating_add(1);
                        if errors <= MAX_ERRORS_LOGGED {
                            log::error!("access log {}: {e}", sink.name());
                        }
                        if errors == MAX_ERRORS_LOGGED {
                            log::error!("access log {}: further write errors are not logged", sink.name());
                        }
                    }
                    batch.clear();
                }
            };
            while let Ok(first) = rx.recv() {
                // What has queued is written too, in batches.
                for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                    match msg {
                        Msg::Line(line) => {
                            batch.extend_from_slice(line.as_bytes());
                            if batch.len() >= BATCH {
                                write(&mut sink, &mut batch);
                            }
                        }
                        Msg::Reopen => {
                            write(&mut sink, &mut batch);
                            sink.reopen();
                        }
                    }
                }
                let lost = seen.load(Ordering::Relaxed);
                if lost != reported {
                    let note = format!("# warren: {} access log lines dropped (writer behind)\n", lost - reported);
                    batch.extend_from_slice(note.as_bytes());
                    reported = lost;
                }
                write(&mut sink, &mut batch);
            }
        })?;
        Ok(AccessLog {
            tx: Some(tx),
            dropped,
            reopen_due: AtomicBool::new(false),
            writer_done: Some(std::sync::Mutex::new(writer_done)),
        })
    }

    /// Logs one transaction; never blocks.
    pub(crate) fn log(&self, peer: SocketAddr, e: &Entry, status: u16, bytes: u64) {
        let line = format_line(peer, e, status, bytes, &httpdate_clf(SystemTime::now()));
        let Some(tx) = &self.tx else { return };
        if self.reopen_due.load(Ordering::Relaxed) {
            self.reopen();
        }
        if let Err(TrySendError::Full(_)) = tx.try_send(Msg::Line(line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Has the writer reopen the file (by its path), after the lines
    /// logged so far; never blocks. A log to standard output stays.
    pub(crate) fn reopen(&self) {
        let Some(tx) = &self.tx else { return };
        let full = matches!(tx.try_send(Msg::Reopen), Err(TrySendError::Full(_)));
        self.reopen_due.store(full, Ordering::Relaxed);
    }
}

/// The access logs of a context, one per file: vhosts naming the same
/// path share it.
#[derive(Debug, Default)]
pub(crate) struct AccessLogs(Vec<(PathBuf, Arc<AccessLog>)>);

impl AccessLogs {
    /// The files open (not standard output).
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.0.iter().map(|(p, _)| p.clone()).filter(|p| !is_stdout(p)).collect()
    }

    /// The log for `path`: the one open already, or a new one.
    pub(crate) fn open(&mut self, path: &Path) -> io::Result<Arc<AccessLog>> {
        if let Some((_, log)) = self.0.iter().find(|(p, _)| p == path) {
            return Ok(Arc::clone(log));
        }
        let log = Arc::new(AccessLog::open(path)?);
        self.0.push((path.to_path_buf(), Arc::clone(&log)));
        Ok(log)
    }

    /// [`AccessLog::reopen`] for each.
    pub(crate) fn reopen(&self) {
        for (_, log) in &self.0 {
            log.reopen();
        }
    }
}

/// The lines queued are written and flushed before the log is gone: a
/// context that ends (a stop, a drain, a reload's old configuration)
/// loses none.
impl Drop for AccessLog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(done) = self.writer_done.take().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())) {
            // It ends when it has written what was queued; a writer stuck
            // on a reader that stopped is left behind (its lines lost).
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(WRITER_WAIT) {
                log::warn!(
                    "an access log writer is still stuck on its output after {WRITER_WAIT:?}; its last lines are lost"
                );
            }
        }
    }
}

/// One line, at most [`MAX_LINE`] bytes with its newline, every field
/// present and quoted: the path gets up to [`MAX_PATH`] bytes, the referer
/// half of what is left, the user agent the rest (a long referer cannot
/// push the user agent, or a closing quote, off the line).
fn format_line(peer: SocketAddr, e: &Entry, status: u16, bytes: u64, when: &str) -> String {
    let mut line = String::with_capacity(200);
    let _ = write!(line, "{} - - [{when}] \"", peer.ip());
    escape_into(&mut line, &e.method, MAX_METHOD);
    line.push(' ');
    escape_into(&mut line, &e.path, MAX_PATH);
    let _ = write!(line, " {}\" {status} {bytes} \"", e.proto);
    // Left for the two fields: less their quotes, the space and "\n".
    let room = |line: &String| MAX_LINE.saturating_sub(line.len() + 5);
    let referer = room(&line) / 2;
    escape_into(&mut line, &e.referer, referer);
    line.push_str("\" \"");
    let agent = room(&line);
    escape_into(&mut line, &e.user_agent, agent);
    line.push_str("\"\n");
    line
}

/// Appends `s` to `out` escaped as Apache escapes log items, so a field can
/// neither end its quotes nor start a line (no log forging): `"` and `\`
/// get a backslash, and every other byte outside printable ASCII (control
/// bytes, DEL, and each byte of a non-ASCII character) is written `\xhh`.
/// At most `max` bytes are appended, never half an escape.
pub(crate) fn escape_into(out: &mut String, s: &str, max: usize) {
    let start = out.len();
    for &b in s.as_bytes() {
        let need = match b {
            b'"' | b'\\' => 2,
            0x20..=0x7e => 1,
            _ => 4,
        };
        if out.len() - start + need > max {
            break;
        }
        match need {
            1 => out.push(char::from(b)),
            2 => {
                out.push('\\');
                out.push(char::from(b));
            }
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// `s` made safe for any log line (as [`escape_into`]), at most `max`
/// bytes of it.
pub(crate) fn log_safe(s: &str, max: usize) -> String {
    let mut out = String::new();
    escape_into(&mut out, s, max);
    out
}

/// `10/Oct/2000:13:55:36 +0000` (UTC; warren does not read time zones).
fn httpdate_clf(t: SystemTime) -> String {
    // httpdate gives "Tue, 10 Oct 2000 13:55:36 GMT".
    let s = httpdate::fmt_http_date(t);
    let parts: Vec<&str> = s.split(' ').collect();
    match parts.as_slice() {
        [_, day, mon, year, time, _] => format!("{day}/{mon}/{year}:{time} +0000"),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(971_186_136);
        assert_eq!(httpdate_clf(t), "10/Oct/2000:13:55:36 +0000");
    }

    fn escaped(s: &str, max: usize) -> String {
        let mut out = String::new();
        escape_into(&mut out, s, max);
        out
    }

    #[test]
    fn a_long_line_keeps_every_field_and_its_quotes() {
        let long = "r".repeat(2000);
        let e = Entry {
            method: "M".repeat(100),
            path: format!("/{}", "p".repeat(1000)),
            proto: "HTTP/1.1",
            referer: long.clone(),
            user_agent: format!("agent{long}"),
        };
        let peer: SocketAddr = "[2001:db8::1]:4000".parse().expect("addr");
        let line = format_line(peer, &e, 200, u64::MAX, "10/Oct/2000:13:55:36 +0000");
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.ends_with("\"\n"), "{line}");
        assert_eq!(line.matches('"').count(), 6, "three quoted fields: {line}");
        assert!(line.contains("\" \"agent"), "the user agent is there: {line}");
    }

    #[test]
    fn fields_are_escaped_as_apache_does() {
        // Issue 10 item 4: a decoded %0a in a path wrote a second line.
        assert_eq!(
            escaped("/x\n1.2.3.4 - - \"GET /", usize::MAX),
            r#"/x\x0a1.2.3.4 - - \"GET /"#,
            "no newline, and quotes cannot end the field"
        );
        assert_eq!(escaped("a\\b\r\t\u{7f}\u{0}", usize::MAX), r"a\\b\x0d\x09\x7f\x00");
        assert_eq!(escaped("é\u{85}\u{2028}", usize::MAX), r"\xc3\xa9\xc2\x85\xe2\x80\xa8");
        assert_eq!(escaped("plain text", usize::MAX), "plain text");
        // Caps never cut an escape in half.
        assert_eq!(escaped("ab\ncd", 4), "ab");
        assert_eq!(escaped("ab\ncd", 6), r"ab\x0a");
        assert_eq!(escaped("a\"b", 2), "a");
    }
}
