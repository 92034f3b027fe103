//! Access logs in Apache's "combined" format (spec LOG-1), written by a
//! thread of their own so a slow disk never blocks the event loop.
//!
//! The loop formats a line and hands it over a bounded channel; when the
//! writer falls behind by more than [`QUEUE`] lines, further lines are
//! dropped and counted (and the count is written when the writer catches
//! up), rather than letting memory grow or the loop wait.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

/// Lines that may wait for the writer thread.
pub const QUEUE: usize = 4096;
/// The longest line written (LOG-1: 512 bytes).
const MAX_LINE: usize = 512;
/// The longest path logged (LOG-1: 255 bytes).
const MAX_PATH: usize = 255;

/// One vhost's access log.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

/// What the log needs from a request, kept from its head to its end.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) proto: &'static str,
    pub(crate) referer: String,
    pub(crate) user_agent: String,
}

impl AccessLog {
    /// Opens (appends to) `path` and starts its writer thread.
    pub(crate) fn open(path: &Path) -> io::Result<AccessLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", path.display())))?;
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = dropped.clone();
        let name = path.display().to_string();
        std::thread::Builder::new().name("warren-access-log".into()).spawn(move || {
            let mut out = io::BufWriter::new(file);
            let mut reported = 0;
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(line.as_bytes());
                // Write out what has queued, then flush once.
                while let Ok(line) = rx.try_recv() {
                    let _ = out.write_all(line.as_bytes());
                }
                let lost = seen.load(Ordering::Relaxed);
                if lost != reported {
                    let _ = writeln!(out, "# warren: {} access log lines dropped (writer behind)", lost - reported);
                    reported = lost;
                }
                if let Err(e) = out.flush() {
                    log::error!("access log {name}: {e}");
                }
            }
        })?;
        Ok(AccessLog { tx, dropped })
    }

    /// Logs one transaction; never blocks.
    pub(crate) fn log(&self, peer: SocketAddr, e: &Entry, status: u16, bytes: u64) {
        let mut line = String::with_capacity(200);
        let when = httpdate_clf(SystemTime::now());
        let _ = write!(line, "{} - - [{when}] \"", peer.ip());
        escape_into(&mut line, &e.method, usize::MAX);
        line.push(' ');
        escape_into(&mut line, &e.path, MAX_PATH);
        let _ = write!(line, " {}\" {status} {bytes} \"", e.proto);
        escape_into(&mut line, &e.referer, usize::MAX);
        line.push_str("\" \"");
        escape_into(&mut line, &e.user_agent, usize::MAX);
        line.push('"');
        if line.len() > MAX_LINE - 1 {
            line.truncate(escaped_boundary(&line, MAX_LINE - 1));
        }
        line.push('\n');
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
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

/// The longest prefix of an escaped line, at most `max` bytes, that does
/// not end inside an escape (the line is ASCII).
fn escaped_boundary(line: &str, max: usize) -> usize {
    let bytes = line.as_bytes();
    let (mut i, mut cut) = (0, 0);
    while i < bytes.len() {
        let len = match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'x')) => 4,
            (b'\\', _) => 2,
            _ => 1,
        };
        if i + len > max {
            break;
        }
        i += len;
        cut = i;
    }
    cut.min(line.len())
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
        let line = r#"x "a\x0a\"b"#;
        assert_eq!(&line[..escaped_boundary(line, 7)], r#"x "a"#);
        assert_eq!(&line[..escaped_boundary(line, 8)], r#"x "a\x0a"#);
        assert_eq!(&line[..escaped_boundary(line, 9)], r#"x "a\x0a"#);
        assert_eq!(&line[..escaped_boundary(line, 10)], r#"x "a\x0a\""#);
    }
}
