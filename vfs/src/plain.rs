//! [`PlainFops`]: a directory of the real filesystem, confined to itself.

use crate::{seek_target, ContentEncoding, FdSpan, FileFlags, FileHandle, FileInfo, Fops, OpenFlags, VPath};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Serves the files below one directory, the *origin*.
///
/// SECURITY: nothing outside the origin can be opened. Paths are
/// [`VPath`]s (no `..`), and the kernel resolves them with
/// `openat2(..., RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to a
/// descriptor of the origin held open for the life of the `PlainFops`, so
/// a symlink whose target leaves the origin (and any absolute symlink)
/// fails with `PermissionDenied`, while relative symlinks that stay inside
/// work. Where `openat2` is unavailable (kernels before 5.6, or a seccomp
/// filter), the opened file's real path is read back from
/// `/proc/self/fd` and checked to lie under the origin's canonical path.
///
/// Only regular files are served; devices, FIFOs and sockets inside the
/// origin are refused (`PermissionDenied`), and files are opened
/// non-blocking so a FIFO can never stall the caller.
///
/// # Open-file cache
///
/// [`with_open_cache`](Self::with_open_cache) keeps recently opened files
/// open, with their metadata, for a short time (as lighttpd's stat cache
/// and nginx's `open_file_cache` do), so a busy file costs no
/// `open`/`stat`/`close` per request. Within the time to live a change on
/// disk may go unseen: a replaced file (new inode) is still served from
/// the old one, and a file rewritten in place is served with its old
/// length. Off by default.
#[derive(Debug)]
pub struct PlainFops {
    root: OwnedFd,
    canonical: PathBuf,
    /// Whether this kernel (and seccomp policy) lets us use openat2;
    /// probed once, when the origin is opened.
    openat2: bool,
    cache: Option<OpenCache>,
    symlinks: crate::Symlinks,
}

#[derive(Debug)]
struct OpenCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    info: FileInfo,
    at: Instant,
}

impl PlainFops {
    /// Opens `origin`, which must be a directory.
    pub fn new(origin: impl AsRef<Path>) -> io::Result<PlainFops> {
        let origin = origin.as_ref();
        let canonical = origin.canonicalize()?;
        let c = CString::new(canonical.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in origin path"))?;
        // SAFETY: `c` is a valid NUL-terminated string; the flags are plain
        // integers; on success the returned fd is owned by us alone.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open(2) and is not owned elsewhere.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        let dot = CString::new(".").map_err(|_| io::ErrorKind::InvalidInput)?;
        let openat2 = match openat2_beneath(&root, &dot, libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECTORY) {
            Ok(_) => true,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                log_fallback(&canonical);
                false
            }
            Err(e) => return Err(e),
        };
        Ok(PlainFops { root, canonical, openat2, cache: None, symlinks: crate::Symlinks::Confined })
    }

    /// Keeps up to `max` files open for `ttl` after they were opened (see
    /// the type's docs). Each cached file holds a descriptor.
    pub fn with_open_cache(mut self, ttl: Duration, max: usize) -> PlainFops {
        self.cache = (!ttl.is_zero() && max > 0).then(|| OpenCache { ttl, max, entries: Mutex::default() });
        self
    }

    /// How links out of the origin are treated.
    pub fn with_symlinks(mut self, s: crate::Symlinks) -> PlainFops {
        self.symlinks = s;
        self
    }

    /// The symlink policy.
    pub fn symlinks(&self) -> crate::Symlinks {
        self.symlinks
    }

    fn open_uncached(&self, path: &VPath, flags: OpenFlags) -> io::Result<(File, FileInfo)> {
        let file = self.open_beneath(path, flags)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a regular file"));
        }
        let mod_time = meta.modified().ok();
        let mut h = DefaultHasher::new();
        (meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()).hash(&mut h);
        let info = FileInfo {
            len: meta.len(),
            mod_time: mod_time.map(whole_seconds),
            flags: FileFlags::NONE,
            encoding: ContentEncoding::Identity,
            version: Some(h.finish()),
        };
        Ok((file, info))
    }

    /// The origin directory, canonicalised.
    pub fn origin(&self) -> &Path {
        &self.canonical
    }

    /// An `O_PATH` descriptor of `path`, resolved as `open_beneath` does.
    fn open_path_beneath(&self, path: &VPath) -> io::Result<File> {
        let rel = if path.is_root() { "." } else { path.as_str().trim_start_matches('/') };
        let rel = if rel.is_empty() { "." } else { rel };
        let c = CString::new(rel).map_err(|_| io::ErrorKind::InvalidInput)?;
        let flags = libc::O_PATH | libc::O_CLOEXEC;
        if self.openat2 {
            return openat2_beneath(&self.root, &c, flags).map_err(map_confinement_error);
        }
        // SAFETY: valid fd and C string; ownership of the result is taken below.
        let fd = unsafe { libc::openat(self.root.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat(2); the caller checks
        // where it landed.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn open_beneath(&self, path: &VPath, open: OpenFlags) -> io::Result<File> {
        let rel = if path.is_root() { "." } else { path.as_str() };
        let c = CString::new(rel).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        if open.contains(OpenFlags::WRITE) {
            flags = flags & !libc::O_RDONLY | libc::O_RDWR;
            if open.contains(OpenFlags::CREATE) {
                flags |= libc::O_CREAT;
            }
        }
        if self.openat2 {
            return openat2_beneath(&self.root, &c, flags).map_err(map_confinement_error);
        }
        if flags & libc::O_CREAT != 0 {
            // Without openat2 a created file could land outside through a
            // symlinked directory before the check below could refuse it.
            return Err(io::Error::new(io::ErrorKind::Unsupported, "creating files needs openat2"));
        }
        // Fallback: open relative to the origin, then check where we landed.
        // Symlinks are followed before the check, so a FIFO or device
        // outside may be opened (non-blocking) before it is refused; no
        // byte of it is ever read.
        // SAFETY: valid fd and C string; ownership of the result is taken below.
        let fd = unsafe { libc::openat(self.root.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat(2).
        let file = unsafe { File::from_raw_fd(fd) };
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        if real == self.canonical || real.starts_with(&self.canonical) {
            Ok(file)
        } else {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "path leaves the origin"))
        }
    }
}

impl Fops for PlainFops {
    fn local_path(&self, path: &VPath) -> Option<PathBuf> {
        let rel = path.as_str().trim_start_matches('/');
        Some(if rel.is_empty() { self.canonical.clone() } else { self.canonical.join(rel) })
    }

    fn resolve_local(&self, path: &VPath) -> io::Result<PathBuf> {
        // O_PATH: nothing is read or even opened for reading, so any kind
        // of file (a FIFO, a directory) resolves without side effects.
        let file = self.open_path_beneath(path)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        if real == self.canonical || real.starts_with(&self.canonical) {
            Ok(real)
        } else {
            // Only reachable without openat2 (or if the origin moved).
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "path leaves the origin"))
        }
    }

    fn open(&self, path: &VPath, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        let Some(cache) = self.cache.as_ref().filter(|_| !flags.contains(OpenFlags::WRITE)) else {
            let (file, info) = self.open_uncached(path, flags)?;
            return Ok(Box::new(PlainHandle { file: Arc::new(file), info, pos: 0 }));
        };
        let now = Instant::now();
        let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = entries.get(path.as_str()).filter(|c| now.duration_since(c.at) < cache.ttl) {
            return Ok(Box::new(PlainHandle { file: c.file.clone(), info: c.info.clone(), pos: 0 }));
        }
        let (file, info) = match self.open_uncached(path, flags) {
            Ok(x) => x,
            Err(e) => {
                entries.remove(path.as_str());
                return Err(e);
            }
        };
        let file = Arc::new(file);
        if entries.len() >= cache.max {
            entries.retain(|_, c| now.duration_since(c.at) < cache.ttl);
            if entries.len() >= cache.max {
                entries.clear();
            }
        }
        entries.insert(path.as_str().to_string(), Cached { file: file.clone(), info: info.clone(), at: now });
        Ok(Box::new(PlainHandle { file, info, pos: 0 }))
    }
}

/// HTTP dates have whole seconds; keep mod_time comparable with them.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

fn openat2_beneath(root: &OwnedFd, path: &CString, flags: i32) -> io::Result<File> {
    /// `struct open_how` of openat2(2) (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow { flags: flags as u64, mode: 0, resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS };
    // SAFETY: openat2 reads `how` (of the size passed) and the C string;
    // both outlive the call. The result is an fd we own, or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd; it fits in i32 by contract.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// Says once per origin that the weaker check is in use.
fn log_fallback(origin: &Path) {
    eprintln!("warren-vfs: openat2 unavailable; confining {} by checking /proc/self/fd after open", origin.display());
}

/// EXDEV: resolution would leave the origin; ELOOP: too many or forbidden
/// links. Both are "not yours to read", not "missing".
fn map_confinement_error(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EXDEV | libc::ELOOP) => io::Error::new(io::ErrorKind::PermissionDenied, "path leaves the origin"),
        _ => e,
    }
}

#[derive(Debug)]
struct PlainHandle {
    file: Arc<File>,
    info: FileInfo,
    pos: u64,
}

impl FileHandle for PlainHandle {
    fn info(&self) -> &FileInfo {
        &self.info
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.info.len {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.info.len - self.pos).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_target(self.pos, self.info.len, pos)?;
        Ok(self.pos)
    }

    fn sendfile_span(&self) -> Option<FdSpan<'_>> {
        Some(FdSpan { fd: self.file.as_fd(), offset: self.pos, len: self.info.len.saturating_sub(self.pos) })
    }

    fn advance(&mut self, n: u64) -> io::Result<()> {
        self.pos = self.pos.saturating_add(n);
        Ok(())
    }

    /// Writes at the position (files opened with [`OpenFlags::WRITE`];
    /// others fail with the OS's `EBADF`).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        self.info.len = self.info.len.max(self.pos);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn site() -> (tempfile::TempDir, PlainFops) {
        let outer = tempfile::tempdir().expect("tempdir");
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("a.txt"), b"hello").expect("write");
        std::fs::write(root.join("sub/b.txt"), b"inner").expect("write");
        std::fs::write(outer.path().join("secret"), b"secret").expect("write");
        symlink("../secret", root.join("escape")).expect("symlink");
        symlink(outer.path().join("secret"), root.join("abs-escape")).expect("symlink");
        symlink("sub/b.txt", root.join("inside")).expect("symlink");
        let fops = PlainFops::new(&root).expect("fops");
        (outer, fops)
    }

    fn read_all(fops: &PlainFops, p: &str) -> io::Result<Vec<u8>> {
        let path = VPath::new(p).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut h = fops.open(&path, OpenFlags::READ)?;
        let mut out = vec![0; h.info().len as usize];
        let mut got = 0;
        while got < out.len() {
            let n = h.read(&mut out[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        out.truncate(got);
        Ok(out)
    }

    #[test]
    fn reads_files_and_inside_symlinks() {
        let (_t, fops) = site();
        assert_eq!(read_all(&fops, "a.txt").ok(), Some(b"hello".to_vec()));
        assert_eq!(read_all(&fops, "sub/b.txt").ok(), Some(b"inner".to_vec()));
        assert_eq!(read_all(&fops, "inside").ok(), Some(b"inner".to_vec()));
    }

    #[test]
    fn refuses_symlinks_out() {
        let (_t, fops) = site();
        for p in ["escape", "abs-escape"] {
            let e = read_all(&fops, p).expect_err(p);
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{p}: {e}");
        }
    }

    #[test]
    fn directories_and_missing() {
        let (_t, fops) = site();
        let e = read_all(&fops, "sub").expect_err("dir");
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
        let e = read_all(&fops, "").expect_err("root");
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
        let e = read_all(&fops, "nope").expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn open_cache_reuses_then_expires() {
        let (_t, fops) = site();
        let root = fops.origin().to_path_buf();
        let fops = fops.with_open_cache(Duration::from_millis(200), 2);
        assert_eq!(read_all(&fops, "a.txt").ok(), Some(b"hello".to_vec()));
        // Replaced on disk: within the TTL the old file is still served.
        std::fs::write(root.join("new"), b"HELLO!").expect("write");
        std::fs::rename(root.join("new"), root.join("a.txt")).expect("rename");
        assert_eq!(read_all(&fops, "a.txt").ok(), Some(b"hello".to_vec()));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(read_all(&fops, "a.txt").ok(), Some(b"HELLO!".to_vec()));
        // Confinement and errors are the same through the cache.
        assert_eq!(read_all(&fops, "escape").map_err(|e| e.kind()).err(), Some(io::ErrorKind::PermissionDenied));
        for p in ["sub/b.txt", "inside", "a.txt"] {
            assert!(read_all(&fops, p).is_ok(), "{p}");
        }
        let n = fops.cache.as_ref().map_or(0, |c| c.entries.lock().map_or(0, |e| e.len()));
        assert!(n <= 2, "cache bounded: {n}");
    }

    #[test]
    fn write_create_and_helpers() {
        use crate::HandleExt;
        let (_t, fops) = site();
        let path = VPath::new("sub/new.txt").expect("path");
        assert!(fops.open(&path, OpenFlags::WRITE).is_err(), "no CREATE, no file");
        let mut h = fops.open(&path, OpenFlags::WRITE | OpenFlags::CREATE).expect("create");
        assert_eq!(h.write(b"abcdef").ok(), Some(6));
        assert_eq!(h.length(), 6);
        assert_eq!(h.seek_set(2).ok(), Some(2));
        assert_eq!(h.write(b"XY").ok(), Some(2));
        assert_eq!(h.seek_end(-1).ok(), Some(5));
        assert_eq!(h.tell(), 5);
        drop(h);
        assert_eq!(crate::read_to_vec(&fops, &path, 100).ok(), Some(b"abXYef".to_vec()));
        assert!(crate::read_to_vec(&fops, &path, 3).is_err(), "over the limit");
        // Read-only handles refuse writes; writes stay inside the origin.
        let mut ro = fops.open(&VPath::new("a.txt").expect("path"), OpenFlags::READ).expect("open");
        assert!(ro.write(b"x").is_err());
        let out = VPath::new("escape").expect("path");
        assert!(fops.open(&out, OpenFlags::WRITE).is_err());
    }

    #[test]
    fn seek_and_span() {
        let (_t, fops) = site();
        let path = VPath::new("a.txt").expect("path");
        let mut h = fops.open(&path, OpenFlags::READ).expect("open");
        assert_eq!(h.seek(SeekFrom::End(-2)).ok(), Some(3));
        let span = h.sendfile_span().expect("span");
        assert_eq!((span.offset, span.len), (3, 2));
        let mut b = [0u8; 8];
        assert_eq!(h.read(&mut b).ok(), Some(2));
        assert_eq!(&b[..2], b"lo");
        assert_eq!(h.read(&mut b).ok(), Some(0));
        assert!(h.info().mod_time.is_some());
        assert!(h.info().version.is_some());
    }
}
