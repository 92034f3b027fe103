//! The server's own log: records of the `log` crate, one line each, to
//! standard error (the default), a file (`--log-file`) or the local
//! syslog (`--syslog`).
//!
//! - stderr and files: `2026-11-27T23:41:07.123Z INFO  target: message`,
//!   the time in UTC (RFC 3339, milliseconds);
//! - stderr that is the systemd journal (`JOURNAL_STREAM` names the
//!   device and inode of fd 2): `<6>INFO  target: message`, the
//!   sd-daemon prefix giving journald the level (it adds the time);
//! - syslog: `<30>Nov 27 23:41:07 warren[PID]: INFO  target: message`
//!   (RFC 3164, facility daemon), one datagram each.
//!
//! [`reopen`] (SIGUSR1) reopens the `--log-file` by its path.
//!
//! A thread of its own writes the lines: a thread that logs (an event
//! loop) only formats its line and queues it, and never waits for a slow
//! disk, a stalled pipe on stderr or a busy syslog daemon. When the
//! writer falls [`QUEUE`] lines behind, further lines are dropped, and
//! how many is written when it catches up. [`flush`] waits (bounded) for
//! what is queued before the process exits.

use crate::cli::ServeArgs;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines that may wait for the writer.
const QUEUE: usize = 4096;
/// How long [`flush`] waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Where the lines go.
enum Dest {
    Stderr { journal: bool },
    File { path: PathBuf, file: std::fs::File },
    Syslog { path: PathBuf, sock: UnixDatagram },
}

/// What the writer thread is sent.
enum Msg {
    Line { level: log::Level, body: String, at: SystemTime },
    Reopen,
    Flush(SyncSender<()>),
}

/// The logger: a queue to the writer thread, which owns the destination.
pub struct Logger {
    tx: SyncSender<Msg>,
    dropped: std::sync::Arc<AtomicU64>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger `args` ask for, at `args`' level (else info; the
/// configuration's may change it, [`set_level`]).
///
/// # Errors
///
/// The `--log-file` cannot be opened.
pub fn install(args: &ServeArgs) -> Result<(), String> {
    let mut warning = None;
    let dest = if let Some(path) = &args.log_file {
        let file = open_append(path).map_err(|e| format!("--log-file {e}"))?;
        Dest::File { path: path.clone(), file }
    } else if let Some(path) = &args.syslog {
        match connect(path) {
            Ok(sock) => Dest::Syslog { path: path.clone(), sock },
            Err(e) => {
                warning = Some(format!("--syslog: cannot reach {} ({e}); logging to standard error", path.display()));
                Dest::Stderr { journal: stderr_is_journal() }
            }
        }
    } else {
        Dest::Stderr { journal: stderr_is_journal() }
    };
    if LOGGER.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = sync_channel(QUEUE);
    let dropped = std::sync::Arc::new(AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&dropped);
    std::thread::Builder::new()
        .name("warren-log".into())
        .spawn(move || write_lines(dest, rx, &counted))
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
    let logger = LOGGER.get_or_init(|| Logger { tx, dropped });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(args.log_level.unwrap_or(log::LevelFilter::Info));
    }
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    Ok(())
}

/// Applies the level a configuration asks for (`global.log-level`),
/// unless the command line chose one.
pub fn set_level(args: &ServeArgs, configured: Option<log::LevelFilter>) {
    if args.log_level.is_none() {
        log::set_max_level(configured.unwrap_or(log::LevelFilter::Info));
    }
}

/// Reopens the `--log-file` by its path (after logrotate moved it): the
/// lines logged after this go to the file now at the path. A failure
/// keeps the file open before, and is logged there.
pub fn reopen() {
    if let Some(logger) = LOGGER.get() {
        // Waits (bounded) for room rather than being dropped.
        send_bounded(&logger.tx, Msg::Reopen);
    }
}

/// Waits until the lines logged so far are written (at most
/// [`FLUSH_WAIT`]): before the process exits.
pub fn flush() {
    let Some(logger) = LOGGER.get() else { return };
    let (tx, rx) = sync_channel(1);
    if send_bounded(&logger.tx, Msg::Flush(tx)) {
        let _ = rx.recv_timeout(FLUSH_WAIT);
    }
}

/// Queues `msg`, waiting at most [`FLUSH_WAIT`] for room; whether it is.
fn send_bounded(tx: &SyncSender<Msg>, mut msg: Msg) -> bool {
    let until = std::time::Instant::now() + FLUSH_WAIT;
    loop {
        match tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Full(m)) if std::time::Instant::now() < until => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return false,
        }
    }
}

/// The writer thread: takes lines and requests off the queue until every
/// sender is gone.
fn write_lines(mut dest: Dest, rx: Receiver<Msg>, dropped: &AtomicU64) {
    let mut reported = 0;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line { level, body, at } => {
                let lost = dropped.load(Ordering::Relaxed);
                if lost != reported {
                    let note = format!("{} log lines dropped (the log writer fell behind)", lost - reported);
                    dest.write(log::Level::Warn, &note, at);
                    reported = lost;
                }
                dest.write(level, &body, at);
            }
            Msg::Reopen => dest.reopen(),
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Dest {
    /// Writes one line (one write each: lines of other processes writing
    /// to the same file, a reload's, a CGI program's stderr, fall between).
    fn write(&mut self, level: log::Level, body: &str, at: SystemTime) {
        match self {
            Dest::Stderr { journal: true } => {
                let _ = std::io::stderr().write_all(format!("<{}>{body}\n", severity(level)).as_bytes());
            }
            Dest::Stderr { journal: false } => {
                let _ = std::io::stderr().write_all(format!("{} {body}\n", rfc3339(at)).as_bytes());
            }
            Dest::File { file, .. } => {
                let _ = file.write_all(format!("{} {body}\n", rfc3339(at)).as_bytes());
            }
            Dest::Syslog { path, sock } => {
                let pri = DAEMON * 8 + severity(level);
                let line = format!("<{pri}>{} warren[{}]: {body}", rfc3164(at), std::process::id());
                match sock.send(line.as_bytes()) {
                    // The daemon is busy: the line is lost, as syslog's are.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // A daemon restarted since: connect again, once.
                    Err(_) => {
                        if let Ok(again) = connect(path) {
                            *sock = again;
                            let _ = sock.send(line.as_bytes());
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    /// Reopens a `--log-file` by its path.
    fn reopen(&mut self) {
        if let Dest::File { path, file } = self {
            match open_append(path) {
                Ok(f) => *file = f,
                Err(e) => {
                    let note = format!("--log-file: cannot reopen {e}; still writing to the file open before");
                    self.write(log::Level::Error, &note, SystemTime::now());
                }
            }
        }
    }
}

/// [`warren::process::open_log`]: a FIFO with no reader is an error, not
/// an open that hangs the start or a reopen.
fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    warren::process::open_log(path)
}

/// A datagram socket connected to the syslog socket at `path`, not
/// blocking: a syslog daemon that falls behind costs lines, never a
/// stalled thread.
fn connect(path: &Path) -> std::io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Whether fd 2 is the stream systemd connected to the journal: its
/// device and inode are those `JOURNAL_STREAM` gives (`dev:ino`).
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    // SAFETY: fstat writes the stat it is given; fd 2 is only read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// The longest log line's message, in bytes.
const MAX_LOG_LINE: usize = 1024;

/// The syslog and sd-daemon severity of `level`.
fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// syslog's facility daemon.
const DAEMON: u8 = 3;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    /// One line per record, cut at [`MAX_LOG_LINE`] bytes: what a client
    /// sends (a 60 KB SNI a dependency quotes in a warning) cannot write
    /// kilobytes per connection. rustls's warnings are about what clients
    /// did wrong (a bad SNI, a renegotiation attempt): debug, not warn,
    /// unless the level asks for them.
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if r.target().starts_with("rustls")
            && r.level() > log::Level::Error
            && log::max_level() < log::LevelFilter::Debug
        {
            return;
        }
        let mut text = r.args().to_string();
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let more = text.len() - cut;
            text.truncate(cut);
            text.push_str(&format!("... ({more} bytes more)"));
        }
        let body = format!("{:<5} {}: {}", r.level(), r.target(), text);
        let line = Msg::Line { level: r.level(), body, at: SystemTime::now() };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        flush();
    }
}

/// Seconds and milliseconds since the epoch (0 before it).
fn since_epoch(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_millis())
}

/// The civil date (year, month 1-12, day 1-31) of day `days` since
/// 1970-01-01 (proleptic Gregorian): the days are counted in eras of
/// 400 years (146097 days) from 0000-03-01, so that leap days fall at
/// the end of each year counted from March.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March is 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-27T23:41:07.123Z`.
fn rfc3339(t: SystemTime) -> String {
    let (secs, millis) = since_epoch(t);
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", s / 3600, s / 60 % 60, s % 60)
}

/// `Nov 27 23:41:07` (RFC 3164's timestamp, in UTC: warren does not read
/// time zones; local syslog daemons take their own time anyway).
fn rfc3164(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (secs, _) = since_epoch(t);
    let (_, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let month = MONTHS[(mo as usize - 1) % 12];
    format!("{month} {d:>2} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2000 is a leap year (divisible by 400), 2100 is not.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        // Every day of 1970..2400 follows the one before.
        let mut prev = civil_from_days(0);
        for days in 1..157_000 {
            let next = civil_from_days(days);
            let (y, m, d) = prev;
            let ok = next == (y, m, d + 1) || (next.2 == 1 && (next == (y, m + 1, 1) || next == (y + 1, 1, 1)));
            assert!(ok, "{prev:?} then {next:?}");
            assert!((28..=31).contains(&d) || next.2 == d + 1, "{prev:?} then {next:?}");
            prev = next;
        }
    }

    #[test]
    fn timestamps() {
        // date -u -d @1795822867 → Fri Nov 27 23:41:07 UTC 2026
        assert_eq!(rfc3339(at(1_795_822_867, 123)), "2026-11-27T23:41:07.123Z");
        assert_eq!(rfc3339(at(971_186_136, 5)), "2000-10-10T13:55:36.005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3164(at(1_795_822_867, 999)), "Nov 27 23:41:07");
        assert_eq!(rfc3164(at(971_186_136 - 9 * 86_400, 0)), "Oct  1 13:55:36");
    }
}
