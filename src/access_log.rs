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
        let path = truncate(&e.path, MAX_PATH);
        let _ = write!(
            line,
            "{} - - [{when}] \"{} {path} {}\" {status} {bytes} \"{}\" \"{}\"",
            peer.ip(),
            clean(&e.method),
            e.proto,
            clean(&e.referer),
            clean(&e.user_agent),
        );
        if line.len() > MAX_LINE - 1 {
            let cut = truncate(&line, MAX_LINE - 1).len();
            line.truncate(cut);
        }
        line.push('\n');
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// LOG-1: `"` becomes `'`; control characters become `?` (no log forging).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '"' {
                '\''
            } else if c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
    fn clf_time_and_cleaning() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(971_186_136);
        assert_eq!(httpdate_clf(t), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clean("a\"b\nc"), "a'b?c");
        assert_eq!(truncate("héllo", 2), "h");
    }
}
