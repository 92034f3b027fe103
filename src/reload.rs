//! Small files the server reads itself (basic-auth credentials, custom
//! error pages): read once when the vhost is attached, kept in memory, and
//! looked at again at most once per [`RECHECK`], read again only when
//! they changed. No request waits on a disk read for them.

use crate::mount::{self, Mount, Origin};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use warren_vfs::{OpenFlags, VPath};

/// How long a loaded file is trusted before it is looked at again.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);
/// A file modified less than this before it was read may change again
/// within the same timestamp tick without its stamp changing: it is read
/// again at the next look (git's "racy" rule).
const RACY: Duration = Duration::from_secs(2);
/// The biggest custom error page read.
pub(crate) const MAX_ERROR_PAGE: u64 = 64 * 1024;

/// What says a file changed: its length, modification time and an
/// identity (inode, device and change time of a local file; the fops'
/// version of a file opened through one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) len: u64,
    pub(crate) mtime: Option<SystemTime>,
    pub(crate) id: Option<u64>,
}

impl Stamp {
    /// The stamp of a local file.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let id = meta.dev().rotate_left(48)
            ^ meta.ino()
            ^ (meta.ctime() as u64).rotate_left(20)
            ^ (meta.ctime_nsec() as u64).rotate_left(40);
        Stamp { len: meta.len(), mtime: meta.modified().ok(), id: Some(id) }
    }
}

/// When to look at a file again, and whether what was loaded is current.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watch {
    /// The last look (`None`: never looked).
    looked: Option<Instant>,
    /// The stamp of what is loaded (`None`: nothing, or it failed since).
    stamp: Option<Stamp>,
    /// Read again at the next look whatever the stamp says.
    racy: bool,
    /// The last look failed (and that was logged).
    failing: bool,
}

impl Watch {
    /// Whether it is time to look again (at least [`RECHECK`] since the
    /// last look); if so, the look is taken as made now.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self.looked.is_some_and(|t| now.saturating_duration_since(t) < RECHECK) {
            return false;
        }
        self.looked = Some(now);
        true
    }

    /// Whether a file now stamped `stamp` must be read again.
    pub(crate) fn changed(&self, stamp: &Stamp) -> bool {
        self.racy || self.stamp != Some(*stamp) || (stamp.mtime.is_none() && stamp.id.is_none())
    }

    /// The file stamped `stamp` was read. Returns whether it had failed
    /// before (so the caller can say it is readable again).
    pub(crate) fn loaded(&mut self, stamp: Stamp) -> bool {
        let recent = match stamp.mtime {
            Some(m) => SystemTime::now().duration_since(m).map_or(true, |age| age < RACY),
            None => true,
        };
        self.racy = recent;
        self.stamp = Some(stamp);
        std::mem::replace(&mut self.failing, false)
    }

    /// Looking or reading failed: what is loaded stays. Returns whether
    /// this is the first failure in a row (the one to log).
    pub(crate) fn failed(&mut self) -> bool {
        self.stamp = None;
        !std::mem::replace(&mut self.failing, true)
    }
}

/// A vhost's own page for one status (`VhostInfo::error_page`), a file of
/// its file mounts, held in memory.
///
/// Read when the vhost is attached and looked at again (one `open`
/// through the mount's fops) at most once per [`RECHECK`] when an error
/// needs it; read again when the opened file's length, modification time
/// or version differ from the loaded one's. A file whose fops gives
/// neither time nor version (a user fops) is read again at each such look.
/// If it cannot be opened or read, the last good copy stays (a warning is
/// logged once); with none, the built-in page is sent.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPage {
    pub(crate) status: u16,
    /// The URL path of the page.
    pub(crate) path: String,
    body: Option<Arc<[u8]>>,
    watch: Watch,
}

impl ErrorPage {
    pub(crate) fn new(status: u16, path: String) -> ErrorPage {
        ErrorPage { status, path, body: None, watch: Watch::default() }
    }

    /// The page's bytes, looked at again first if it is time.
    pub(crate) fn body(&mut self, mounts: &[Mount], now: Instant) -> Option<Arc<[u8]>> {
        if self.watch.due(now) {
            self.refresh(mounts);
        }
        self.body.clone()
    }

    /// Opens the page and reads it if it changed.
    fn refresh(&mut self, mounts: &[Mount]) {
        match self.read_if_changed(mounts) {
            Ok(Some((body, stamp))) => {
                self.body = Some(body.into());
                if self.watch.loaded(stamp) {
                    log::info!("error page {} for {}: readable again", self.path, self.status);
                }
            }
            Ok(None) => {}
            // An archive still loading its directory: look again later,
            // nothing to warn about.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                if self.watch.failed() {
                    let keep =
                        if self.body.is_some() { "keeping the last copy read" } else { "sending the built-in one" };
                    log::warn!("error page {} for {}: {e}; {keep}", self.path, self.status);
                }
            }
        }
    }

    fn read_if_changed(&self, mounts: &[Mount]) -> io::Result<Option<(Vec<u8>, Stamp)>> {
        let not_file = || io::Error::new(io::ErrorKind::NotFound, "not a path of a file mount");
        let (_, m) = mount::find(mounts, &self.path).ok_or_else(not_file)?;
        let Origin::File(fops) = &m.origin else { return Err(not_file()) };
        let vpath = VPath::new(m.remainder(&self.path)).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut h = fops.open(&vpath, OpenFlags::READ)?;
        let info = h.info();
        let stamp = Stamp { len: info.len, mtime: info.mod_time, id: info.version };
        if !self.watch.changed(&stamp) {
            return Ok(None);
        }
        if stamp.len > MAX_ERROR_PAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} bytes, over {MAX_ERROR_PAGE}", stamp.len),
            ));
        }
        let out = warren_vfs::read_all(h.as_mut(), stamp.len)?;
        Ok(Some((out, stamp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_most_once_per_recheck() {
        let mut w = Watch::default();
        let t0 = Instant::now();
        assert!(w.due(t0), "never looked: due");
        assert!(!w.due(t0 + Duration::from_millis(999)));
        assert!(w.due(t0 + RECHECK));
        assert!(!w.due(t0 + RECHECK + Duration::from_millis(10)));
    }

    #[test]
    fn stamps_decide_and_recent_files_are_read_again() {
        let old = SystemTime::now() - Duration::from_secs(60);
        let a = Stamp { len: 5, mtime: Some(old), id: Some(1) };
        let mut w = Watch::default();
        assert!(w.changed(&a), "nothing loaded");
        assert!(!w.loaded(a));
        assert!(!w.changed(&a));
        assert!(w.changed(&Stamp { len: 6, ..a }));
        assert!(w.changed(&Stamp { id: Some(2), ..a }));
        // Modified just now: the same stamp may hide a second edit.
        let fresh = Stamp { mtime: Some(SystemTime::now()), ..a };
        w.loaded(fresh);
        assert!(w.changed(&fresh));
        // No time, no version: nothing tells, so it is read again.
        let blind = Stamp { len: 5, mtime: None, id: None };
        w.loaded(blind);
        assert!(w.changed(&blind));
        // A failure forgets the stamp and is reported once.
        w.loaded(a);
        assert!(w.failed());
        assert!(!w.failed());
        assert!(w.changed(&a));
        assert!(w.loaded(a), "readable again");
    }
}
