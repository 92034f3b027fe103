//! HTTP basic authentication for mounts (spec AUTH-1..3).

use crate::reload::{Stamp, Watch};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The longest credentials file read (bigger: nobody gets in).
const MAX_FILE: u64 = 64 * 1024;
/// The longest base64 credentials accepted (AUTH-2: ~160).
const MAX_ENCODED: usize = 160;
/// Lines longer than this can never match (AUTH-1).
const MAX_LINE: usize = 255;

/// The realm basic-auth challenges name (as lwsws's), and the challenge.
pub(crate) const REALM: &str = "lwsws";
pub(crate) const CHALLENGE: &str = "Basic realm=\"lwsws\"";

/// The outcome of checking a request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Credentials match a line of the file.
    Allowed,
    /// None given, or none that match: 401 with a challenge.
    Challenge,
    /// An Authorization header that is not well-formed Basic: 403.
    Malformed,
}

/// A mount's credentials file (`user:password` per line), held in memory.
///
/// Read when the vhost is attached; then, for requests that carry
/// credentials, looked at again (one `stat`) at most once per
/// [`RECHECK`](crate::reload::RECHECK) and read again only when its
/// length, modification time, inode or change time differ. If it becomes
/// unreadable (deleted, over 64 KiB, no permission), the last table read
/// stays and a warning is logged once; if it was never readable, nobody
/// gets in.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    file: PathBuf,
    /// The file's usable lines (not empty, at most [`MAX_LINE`] bytes).
    lines: Vec<Box<[u8]>>,
    /// Whether the file was ever read (else nobody gets in).
    ever_read: bool,
    watch: Watch,
}

impl Credentials {
    /// Credentials from `file`, not read yet.
    pub(crate) fn new(file: PathBuf) -> Credentials {
        Credentials { file, lines: Vec::new(), ever_read: false, watch: Watch::default() }
    }

    /// Reads the file now (when the vhost is attached).
    pub(crate) fn load(&mut self, now: Instant) {
        self.watch.due(now);
        self.refresh();
    }

    /// Whether the file was ever read (else nobody gets in).
    pub(crate) fn readable(&self) -> bool {
        self.ever_read
    }

    /// Checks `authorization` (the header's value) against the table,
    /// looking at the file again first if it is time.
    pub(crate) fn check(&mut self, authorization: Option<&[u8]>, now: Instant) -> Verdict {
        let Some(value) = authorization else { return Verdict::Challenge };
        let value = String::from_utf8_lossy(value);
        let value = value.trim();
        let Some((scheme, encoded)) = value.split_once(' ') else { return Verdict::Malformed };
        let encoded = encoded.trim();
        if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > MAX_ENCODED {
            return Verdict::Malformed;
        }
        let Ok(creds) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return Verdict::Malformed };
        if !creds.contains(&b':') {
            return Verdict::Malformed;
        }
        if self.watch.due(now) {
            self.refresh();
        }
        // SECURITY: every line is compared, each in constant time, so the
        // time taken says nothing about which line or byte differed.
        let mut allowed = false;
        for line in &self.lines {
            allowed |= constant_time_eq(line, &creds);
        }
        if allowed {
            Verdict::Allowed
        } else {
            Verdict::Challenge
        }
    }

    /// One `stat`; the file is read again only if it changed.
    fn refresh(&mut self) {
        let read = std::fs::metadata(&self.file).and_then(|meta| {
            let stamp = Stamp::of(&meta);
            if !self.watch.changed(&stamp) {
                return Ok(None);
            }
            read_small(&self.file).map(|list| Some((list, stamp)))
        });
        match read {
            Ok(None) => {}
            Ok(Some((list, stamp))) => {
                self.lines = parse(&list);
                self.ever_read = true;
                if self.watch.loaded(stamp) {
                    log::info!("basic-auth file {}: readable again", self.file.display());
                }
            }
            Err(e) => {
                if self.watch.failed() {
                    let keep = if !self.ever_read {
                        "refusing everyone until it can be read"
                    } else {
                        "keeping the credentials last read"
                    };
                    log::warn!("basic-auth file {}: {e}; {keep}", self.file.display());
                }
            }
        }
    }
}

/// The lines of a credentials file that can match.
fn parse(list: &[u8]) -> Vec<Box<[u8]>> {
    list.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty() && line.len() <= MAX_LINE)
        .map(Box::from)
        .collect()
}

/// Reads `file` whole if it is a regular file of at most [`MAX_FILE`]
/// bytes. Opened without blocking: a FIFO (or a device) put in its place
/// must not stop the loop in `open(2)` waiting for a writer, and is
/// refused rather than read.
fn read_small(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(file)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    let mut out = Vec::new();
    f.by_ref().take(MAX_FILE + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("over {MAX_FILE} bytes")));
    }
    Ok(out)
}

/// Equal, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A one-off check against `file`, read now.
    fn check(authorization: Option<&[u8]>, file: &Path) -> Verdict {
        Credentials::new(file.to_path_buf()).check(authorization, Instant::now())
    }

    #[test]
    fn verdicts() {
        let t = tempfile::tempdir().expect("tempdir");
        let file = t.path().join("pw");
        std::fs::write(&file, "alice:secret\r\nbob:hunter2\n").expect("write");
        let b64 = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        let c = |h: Option<&str>| check(h.map(str::as_bytes), &file);
        assert_eq!(c(Some(&b64("alice:secret"))), Verdict::Allowed);
        assert_eq!(c(Some(&b64("bob:hunter2"))), Verdict::Allowed);
        assert_eq!(c(Some(&b64("bob:hunter"))), Verdict::Challenge);
        assert_eq!(c(Some(&b64("alice:secret\r\nbob:hunter2"))), Verdict::Challenge);
        assert_eq!(c(None), Verdict::Challenge);
        assert_eq!(c(Some("Bearer abc")), Verdict::Malformed);
        assert_eq!(c(Some("Basic !!!")), Verdict::Malformed);
        assert_eq!(c(Some(&b64("nocolon"))), Verdict::Malformed);
        assert_eq!(c(Some(&format!("Basic {}", "A".repeat(200)))), Verdict::Malformed);
        assert_eq!(check(Some(b64("alice:secret").as_bytes()), &t.path().join("none")), Verdict::Challenge);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn read_once_then_again_when_changed() {
        let t = tempfile::tempdir().expect("tempdir");
        let file = t.path().join("pw");
        std::fs::write(&file, "alice:secret\n").expect("write");
        let b64 = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        let (alice, bob) = (b64("alice:secret"), b64("bob:hunter2"));
        let t0 = Instant::now();
        let mut c = Credentials::new(file.clone());
        c.load(t0);
        assert_eq!(c.check(Some(alice.as_bytes()), t0), Verdict::Allowed);
        // Same length, so only the time (or the racy rule) tells.
        std::fs::write(&file, "bob:hunter2\n").expect("write");
        let soon = t0 + Duration::from_millis(500);
        assert_eq!(c.check(Some(alice.as_bytes()), soon), Verdict::Allowed, "not looked at within a second");
        let later = t0 + crate::reload::RECHECK;
        assert_eq!(c.check(Some(bob.as_bytes()), later), Verdict::Allowed, "the edit is read");
        assert_eq!(c.check(Some(alice.as_bytes()), later), Verdict::Challenge);
        // Deleted: the table last read stays.
        std::fs::remove_file(&file).expect("rm");
        let gone = later + crate::reload::RECHECK;
        assert_eq!(c.check(Some(bob.as_bytes()), gone), Verdict::Allowed);
        // Back, empty: nobody.
        std::fs::write(&file, "").expect("write");
        let back = gone + crate::reload::RECHECK;
        assert_eq!(c.check(Some(bob.as_bytes()), back), Verdict::Challenge);
        // Never readable: nobody.
        let mut none = Credentials::new(t.path().join("none"));
        none.load(t0);
        assert_eq!(none.check(Some(alice.as_bytes()), t0), Verdict::Challenge);
    }
}
