//! [`PlainFops`]: a directory of the real filesystem, confined to itself
//! (or, by its [`Symlinks`] policy, to where its links lead).

use crate::{seek_target, ContentEncoding, FdSpan, FileFlags, FileHandle, FileInfo, Fops, LocalFile, OpenFlags, VPath};
use std::collections::{HashMap, VecDeque};
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
/// That is the default [`Symlinks::Confined`] policy;
/// [`with_symlinks`](Self::with_symlinks) chooses another, for symbolic
/// links the administrator made that lead out of the origin (the request
/// path itself can never climb: it has no `..`). Every policy first tries
/// the confined open above, so a path that stays inside costs the same
/// under all three; only a path the confinement refuses for leaving the
/// origin is looked at again:
///
/// - [`Symlinks::Follow`] (lighttpd's `server.follow-symlink`) follows it
///   wherever it leads, with `openat2(RESOLVE_NO_MAGICLINKS)` (no
///   `/proc/self/fd/N` style jumps; without `openat2`, by resolving each
///   link's text component by component, which has no magic links either).
/// - [`Symlinks::SameOwner`] (nginx's `disable_symlinks if_not_owner`)
///   resolves it component by component and follows it only if every
///   symbolic link met has the same owner (uid) as the object it leads
///   to (all further links followed); else `PermissionDenied`. So a user
///   who can write in the origin but does not own the files elsewhere
///   cannot link to them.
///
/// Under both, what the resolution found is checked before it is opened
/// (only regular files and directories; a FIFO or device out there is
/// never opened), and the opened file's device and inode must be the
/// ones found, else `PermissionDenied`: swapping the target between the
/// check and the open gains nothing. At most 40 links are followed per
/// path; more, or a loop, is refused as a loop inside the origin is.
/// Opening for writing ([`OpenFlags::WRITE`], [`OpenFlags::CREATE`]) stays
/// confined whatever the policy, and [`Fops::resolve_local`] applies the
/// policy too (returning the real path, which may then lie outside the
/// origin).
///
/// # Open-file cache
///
/// [`with_open_cache`](Self::with_open_cache) keeps recently opened files
/// open, with their metadata, for a short time (as lighttpd's stat cache
/// and nginx's `open_file_cache` do), so a busy file costs no
/// `open`/`stat`/`close` per request. The content of a file of at most
/// 16 KiB is kept too, read once when it is opened, so a small response
/// costs no read either (at most `max` × 16 KiB per origin). Within the
/// time to live a change on disk may go unseen: a replaced file (new
/// inode) is still served from the old one, and a file rewritten in place
/// is served with its old length (or, when small, its old content).
/// Off by default.
#[derive(Debug)]
pub struct PlainFops {
    root: OwnedFd,
    canonical: PathBuf,
    /// Whether this kernel (and seccomp policy) lets us use openat2;
    /// probed once, when the origin is opened.
    openat2: bool,
    symlinks: Symlinks,
    cache: Option<OpenCache>,
}

/// How a [`PlainFops`] treats symbolic links that lead out of its origin
/// (see its SECURITY paragraph). Links that stay inside work under all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Symlinks {
    /// Nothing outside the origin opens (the kernel's `RESOLVE_BENEATH`):
    /// a link leading out is `PermissionDenied`.
    #[default]
    Confined,
    /// Links are followed wherever they lead (lighttpd's
    /// `server.follow-symlink`), except `/proc` magic links.
    Follow,
    /// A link leading out is followed only if each link met on the way has
    /// the same owner as what it points to (nginx's `disable_symlinks
    /// if_not_owner`).
    SameOwner,
}

impl std::str::FromStr for Symlinks {
    type Err = String;

    /// The names configurations use: `confined`, `follow`, `owner`.
    fn from_str(s: &str) -> Result<Symlinks, String> {
        match s {
            "confined" => Ok(Symlinks::Confined),
            "follow" => Ok(Symlinks::Follow),
            "owner" => Ok(Symlinks::SameOwner),
            _ => Err(format!("{s:?}: expected \"confined\", \"follow\" or \"owner\"")),
        }
    }
}

/// Symbolic links followed at most while resolving one path outside the
/// origin (as the kernel's own limit).
const MAX_LINKS: u32 = 40;

/// What resolving a path outside the origin found: the object, all links
/// followed, and how to open it again for reading.
#[derive(Debug)]
struct Found {
    /// An `O_PATH` descriptor of the object.
    fd: File,
    /// Its metadata when found (`fstat` of `fd`).
    meta: std::fs::Metadata,
    reopen: Reopen,
}

#[derive(Debug)]
enum Reopen {
    /// It is a directory: open `.` in `fd`.
    Itself,
    /// This name in this directory (`O_PATH`), not a link.
    At(File, CString),
    /// This path below the origin, through `openat2(RESOLVE_NO_MAGICLINKS)`.
    Follow(CString),
}

#[derive(Debug)]
struct OpenCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<String, Cached>>,
    /// [`Fops::resolve_local_cached`]'s answers, as long as opens are kept.
    resolved: Mutex<HashMap<String, (LocalFile, Instant)>>,
}

#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    info: FileInfo,
    at: Instant,
    /// The whole content of a file of at most [`SMALL_CACHED`] bytes, read
    /// when the entry was made: served with no read at all.
    body: Option<Arc<[u8]>>,
}

/// Files up to this size have their content kept in the open-file cache
/// with their descriptor, so a small response costs no `pread`: with the
/// cache's `max` entries, at most `max` × 16 KiB per origin.
const SMALL_CACHED: u64 = 16 * 1024;

/// The whole of a small file, read at `0`, if it is still `len` long.
fn small_body(file: &File, len: u64) -> Option<Arc<[u8]>> {
    if len > SMALL_CACHED {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(buf.into())
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
        let beneath = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        let openat2 = match openat2_at(&root, &dot, libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECTORY, beneath) {
            Ok(_) => true,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                log_fallback(&canonical);
                false
            }
            Err(e) => return Err(e),
        };
        Ok(PlainFops { root, canonical, openat2, symlinks: Symlinks::Confined, cache: None })
    }

    /// Chooses how symbolic links leading out of the origin are treated
    /// (see the SECURITY paragraph above); [`Symlinks::Confined`] unless
    /// told.
    pub fn with_symlinks(mut self, s: Symlinks) -> PlainFops {
        self.symlinks = s;
        self
    }

    /// The symbolic-link policy in force.
    pub fn symlinks(&self) -> Symlinks {
        self.symlinks
    }

    /// Tests: behave as on a kernel without `openat2`.
    #[cfg(test)]
    fn without_openat2(mut self) -> PlainFops {
        self.openat2 = false;
        self
    }

    /// Keeps up to `max` files open for `ttl` after they were opened (see
    /// the type's docs). Each cached file holds a descriptor. Up to `max`
    /// answers of [`Fops::resolve_local_cached`] are kept as long.
    pub fn with_open_cache(mut self, ttl: Duration, max: usize) -> PlainFops {
        self.cache = (!ttl.is_zero() && max > 0).then(|| OpenCache {
            ttl,
            max,
            entries: Mutex::default(),
            resolved: Mutex::default(),
        });
        self
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
        match self.open_confined(&c, libc::O_PATH | libc::O_CLOEXEC) {
            Err(e) if self.may_leave(&e) => self.find_outside(path, &c).map(|found| found.fd),
            r => r.map_err(|e| self.refusal(e)),
        }
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
        match self.open_confined(&c, flags) {
            // Writing and creating stay confined whatever the policy.
            Err(e) if flags & (libc::O_RDWR | libc::O_CREAT) == 0 && self.may_leave(&e) => {
                let found = self.find_outside(path, &c)?;
                self.open_found(&found, flags)
            }
            r => r.map_err(|e| self.refusal(e)),
        }
    }

    /// Whether `e`, from [`open_confined`](Self::open_confined), says the
    /// path leaves the origin and the policy lets it be looked at again.
    fn may_leave(&self, e: &io::Error) -> bool {
        self.symlinks != Symlinks::Confined && e.raw_os_error() == Some(libc::EXDEV)
    }

    /// Opens `c` confined to the origin; `EXDEV`: it leads out (errors as
    /// the system gives them, for [`refusal`](Self::refusal)).
    fn open_confined(&self, c: &CString, flags: i32) -> io::Result<File> {
        if self.openat2 {
            return openat2_at(&self.root, c, flags, libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS);
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
        let file = openat(self.root.as_fd(), c, flags)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        if real == self.canonical || real.starts_with(&self.canonical) {
            Ok(file)
        } else {
            Err(io::Error::from_raw_os_error(libc::EXDEV))
        }
    }

    /// Resolves `path` (`c`: the same, for `openat2`), which leads out of
    /// the origin, as the policy says. Errors are final.
    fn find_outside(&self, path: &VPath, c: &CString) -> io::Result<Found> {
        let found = if self.symlinks == Symlinks::Follow && self.openat2 {
            openat2_at(&self.root, c, libc::O_PATH | libc::O_CLOEXEC, libc::RESOLVE_NO_MAGICLINKS).and_then(|fd| {
                let meta = fd.metadata()?;
                Ok(Found { fd, meta, reopen: Reopen::Follow(c.clone()) })
            })
        } else {
            walk(&self.root, path, self.symlinks == Symlinks::SameOwner)
        };
        found.map_err(|e| self.refusal(e))
    }

    /// What the caller gets for an error resolving a path: leaving the
    /// origin, or (with `openat2`) too many or forbidden links, is "not
    /// yours to read"; without `openat2` a loop stays `ELOOP`, as the
    /// system said it.
    fn refusal(&self, e: io::Error) -> io::Error {
        match e.raw_os_error() {
            Some(libc::ELOOP) if !self.openat2 => e,
            _ => map_confinement_error(e),
        }
    }

    /// Opens what [`find_outside`](Self::find_outside) found: only a
    /// regular file or a directory, and only if it is still the same
    /// object (device and inode) once opened.
    fn open_found(&self, found: &Found, flags: i32) -> io::Result<File> {
        let kind = found.meta.file_type();
        if !kind.is_file() && !kind.is_dir() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a regular file"));
        }
        let file = match &found.reopen {
            Reopen::Itself => openat(found.fd.as_fd(), c".", flags),
            Reopen::At(dir, name) => openat(dir.as_fd(), name, flags | libc::O_NOFOLLOW),
            Reopen::Follow(c) => openat2_at(&self.root, c, flags, libc::RESOLVE_NO_MAGICLINKS),
        }
        // ELOOP here: the name became a link since it was checked.
        .map_err(map_confinement_error)?;
        same_object(&file, &found.meta)?;
        Ok(file)
    }
}

/// The race check: `file` must be the object `want` describes.
fn same_object(file: &File, want: &std::fs::Metadata) -> io::Result<()> {
    let got = file.metadata()?;
    if (got.dev(), got.ino()) == (want.dev(), want.ino()) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "the file changed between its check and its open"))
    }
}

fn openat(dir: std::os::fd::BorrowedFd<'_>, c: &std::ffi::CStr, flags: i32) -> io::Result<File> {
    // SAFETY: valid fd and C string; ownership of the result is taken below.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat(2) and is owned by no one else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The text of the symbolic link `link` (an `O_PATH | O_NOFOLLOW` descriptor).
fn readlink(link: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the buffer is valid for its length; an empty path names the
    // descriptor itself (readlinkat(2), Linux 2.6.39).
    let n = unsafe { libc::readlinkat(link.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

/// One step of [`walk`]'s work.
enum Step {
    /// A path component to look up in the current directory.
    Name(Vec<u8>),
    /// The end of a link's text: what the walk is at is what the link,
    /// owned by this uid, points to.
    EndOfLink(u32),
}

/// Resolves `path` below `root` as the kernel would, one component at a
/// time (`openat(O_PATH | O_NOFOLLOW)`, each link's text read and walked,
/// absolute ones from `/`, `..` in them the real parent), with no magic
/// links and at most [`MAX_LINKS`] links. With `same_owner`, every link
/// must have the owner of what it points to.
fn walk(root: &OwnedFd, path: &VPath, same_owner: bool) -> io::Result<Found> {
    let mut cur = openat(root.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY)?;
    let mut meta = cur.metadata()?;
    let mut reopen = Reopen::Itself;
    let mut steps: VecDeque<Step> =
        path.as_str().split('/').filter(|s| !s.is_empty()).map(|s| Step::Name(s.as_bytes().to_vec())).collect();
    let mut links = 0;
    while let Some(step) = steps.pop_front() {
        let name = match step {
            Step::EndOfLink(uid) => {
                if same_owner && uid != meta.uid() {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "a link out of the origin whose owner differs from its target's",
                    ));
                }
                continue;
            }
            Step::Name(name) => name,
        };
        if !meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        if name == b"." {
            continue;
        }
        let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        let next = openat(cur.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW)?;
        let next_meta = next.metadata()?;
        if !next_meta.file_type().is_symlink() {
            reopen = Reopen::At(std::mem::replace(&mut cur, next), name);
            meta = next_meta;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let text = readlink(&next)?;
        if text.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        steps.push_front(Step::EndOfLink(next_meta.uid()));
        if text.ends_with(b"/") {
            // `dir/` names a directory, or nothing.
            steps.push_front(Step::Name(b".".to_vec()));
        }
        for part in text.split(|&b| b == b'/').rev().filter(|p| !p.is_empty()) {
            steps.push_front(Step::Name(part.to_vec()));
        }
        if text.starts_with(b"/") {
            cur = openat(root.as_fd(), c"/", libc::O_PATH | libc::O_DIRECTORY)?;
            meta = cur.metadata()?;
            reopen = Reopen::Itself;
        }
        // Else the link's text is looked up from its own directory, `cur`.
    }
    Ok(Found { fd: cur, meta, reopen })
}

impl Fops for PlainFops {
    fn local_path(&self, path: &VPath) -> Option<PathBuf> {
        let rel = path.as_str().trim_start_matches('/');
        Some(if rel.is_empty() { self.canonical.clone() } else { self.canonical.join(rel) })
    }

    fn resolve_local(&self, path: &VPath) -> io::Result<PathBuf> {
        // O_PATH: nothing is read or even opened for reading, so any kind
        // of file (a FIFO, a directory) resolves without side effects.
        // Where it leads out of the origin, the policy has decided.
        let file = self.open_path_beneath(path)?;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }

    fn resolve_local_cached(&self, path: &VPath) -> io::Result<LocalFile> {
        let local = |path: &VPath| -> io::Result<LocalFile> {
            let file = self.open_path_beneath(path)?;
            let file_type = file.metadata()?.file_type();
            let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
            Ok(LocalFile { path, file_type })
        };
        let Some(cache) = self.cache.as_ref() else { return local(path) };
        let now = Instant::now();
        let mut resolved = cache.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((found, _)) = resolved.get(path.as_str()).filter(|(_, at)| now.duration_since(*at) < cache.ttl) {
            return Ok(found.clone());
        }
        let found = local(path)?;
        if resolved.len() >= cache.max {
            resolved.retain(|_, (_, at)| now.duration_since(*at) < cache.ttl);
            if resolved.len() >= cache.max {
                resolved.clear();
            }
        }
        resolved.insert(path.as_str().to_string(), (found.clone(), now));
        Ok(found)
    }

    fn open(&self, path: &VPath, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>> {
        let Some(cache) = self.cache.as_ref().filter(|_| !flags.contains(OpenFlags::WRITE)) else {
            let (file, info) = self.open_uncached(path, flags)?;
            return Ok(Box::new(PlainHandle { file: Arc::new(file), info, pos: 0 }));
        };
        let now = Instant::now();
        let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = entries.get(path.as_str()).filter(|c| now.duration_since(c.at) < cache.ttl) {
            if let Some(body) = &c.body {
                return Ok(Box::new(SmallHandle { body: body.clone(), info: c.info.clone(), pos: 0 }));
            }
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
        let body = small_body(&file, info.len);
        entries.insert(
            path.as_str().to_string(),
            Cached { file: file.clone(), info: info.clone(), at: now, body: body.clone() },
        );
        match body {
            Some(body) => Ok(Box::new(SmallHandle { body, info, pos: 0 })),
            None => Ok(Box::new(PlainHandle { file, info, pos: 0 })),
        }
    }
}

/// HTTP dates have whole seconds; keep mod_time comparable with them.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// openat2(2) relative to `root`, with `resolve` (`RESOLVE_*`).
fn openat2_at(root: &OwnedFd, path: &CString, flags: i32, resolve: u64) -> io::Result<File> {
    /// `struct open_how` of openat2(2) (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow { flags: flags as u64, mode: 0, resolve };
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

/// A small file served from the content the open-file cache read (see
/// [`SMALL_CACHED`]): reads are copies, and there is no descriptor to
/// `sendfile` from.
#[derive(Debug)]
struct SmallHandle {
    body: Arc<[u8]>,
    info: FileInfo,
    pos: u64,
}

impl FileHandle for SmallHandle {
    fn info(&self) -> &FileInfo {
        &self.info
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(self.pos).unwrap_or(usize::MAX).min(self.body.len());
        let n = buf.len().min(self.body.len() - start);
        buf[..n].copy_from_slice(&self.body[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = seek_target(self.pos, self.info.len, pos)?;
        Ok(self.pos)
    }
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

    /// Small files are served from the content the cache read (no
    /// descriptor, so no `sendfile`, and no read); bigger ones from their
    /// descriptor. A small file rewritten in place is not served as it
    /// was past the cache's window.
    #[test]
    fn small_files_are_kept_in_memory_within_the_window() {
        let (_t, fops) = site();
        let root = fops.origin().to_path_buf();
        std::fs::write(root.join("big.bin"), vec![7u8; SMALL_CACHED as usize + 1]).expect("big");
        let fops = fops.with_open_cache(Duration::from_millis(200), 8);
        let open = |p: &str| fops.open(&VPath::new(p).expect("path"), OpenFlags::READ).expect("open");
        assert!(open("a.txt").sendfile_span().is_none(), "small: from memory");
        assert!(open("big.bin").sendfile_span().is_some(), "big: from its descriptor");
        std::fs::write(root.join("a.txt"), b"HELLO").expect("rewrite in place");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(read_all(&fops, "a.txt").ok(), Some(b"HELLO".to_vec()), "after it");
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

    /// Uid of `nobody`, given to links and files in the owner cases.
    const NOBODY: u32 = 65534;

    /// A site for the symbolic-link policies: links leading in, out (to
    /// files, a directory, a chain of links, a loop, a FIFO, a `/proc`
    /// magic link, nothing), with the owners of some set apart.
    struct Links {
        outer: PathBuf,
        root: PathBuf,
        /// Holds the unlinked file `magic` points to through /proc.
        _hidden: File,
        _t: tempfile::TempDir,
    }

    fn links_site() -> Links {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the symlink policy tests give links and files to uid {NOBODY}: run them as root (CI does)"
        );
        let t = tempfile::tempdir().expect("tempdir");
        let outer = t.path().canonicalize().expect("canonical");
        let root = outer.join("root");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::create_dir_all(outer.join("elsewhere")).expect("mkdir");
        for (p, text) in [
            (root.join("a.txt"), "hello"),
            (root.join("sub/b.txt"), "inner"),
            (outer.join("secret"), "secret"),
            (outer.join("elsewhere/c.txt"), "elsewhere"),
            (outer.join("s1"), "s1"),
            (outer.join("s2"), "s2"),
            (outer.join("s3"), "s3"),
        ] {
            std::fs::write(p, text).expect("write");
        }
        let link = |to: &Path, at: &Path| symlink(to, at).expect("symlink");
        link(Path::new("sub/b.txt"), &root.join("inside"));
        link(Path::new("sub"), &root.join("insidedir"));
        link(Path::new("../secret"), &root.join("escape"));
        link(&outer.join("secret"), &root.join("abs-escape"));
        link(&outer.join("elsewhere"), &root.join("dirlink"));
        link(Path::new("../hop"), &root.join("chain"));
        link(Path::new("secret"), &outer.join("hop"));
        link(Path::new("../hop-other"), &root.join("chain-other"));
        link(Path::new("secret"), &outer.join("hop-other"));
        link(&outer.join("s1"), &root.join("link-other"));
        link(&outer.join("s2"), &root.join("target-other"));
        link(&outer.join("s3"), &root.join("both-other"));
        link(&root.join("loop2"), &root.join("loop"));
        link(&root.join("loop"), &root.join("loop2"));
        link(Path::new("selfloop"), &root.join("selfloop"));
        link(&outer.join("fifo"), &root.join("fifo"));
        link(Path::new("../nope"), &root.join("missing-out"));
        link(Path::new("../secret/"), &root.join("slash-out"));
        // Chains of 40 links (the most followed) and of 41, out.
        for n in [40, 41] {
            link(Path::new(&format!("../long{n}-1")), &root.join(format!("long{n}")));
            for k in 1..n - 1 {
                link(Path::new(&format!("long{n}-{}", k + 1)), &outer.join(format!("long{n}-{k}")));
            }
            link(Path::new("secret"), &outer.join(format!("long{n}-{}", n - 1)));
        }
        let fifo = CString::new(outer.join("fifo").as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
        let own = |p: &Path, uid: u32| std::os::unix::fs::lchown(p, Some(uid), None).expect("lchown");
        own(&outer.join("hop-other"), NOBODY);
        own(&root.join("link-other"), NOBODY);
        own(&outer.join("s2"), NOBODY);
        own(&root.join("both-other"), NOBODY);
        own(&outer.join("s3"), NOBODY);
        // A magic link: /proc/self/fd/N opens the file whatever its name,
        // even unlinked; its text names nothing that exists.
        let hidden_path = outer.join("hidden");
        std::fs::write(&hidden_path, "hidden").expect("write");
        let hidden = File::open(&hidden_path).expect("open");
        std::fs::remove_file(&hidden_path).expect("rm");
        link(Path::new(&format!("/proc/self/fd/{}", hidden.as_raw_fd())), &root.join("magic"));
        Links { outer, root, _hidden: hidden, _t: t }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Want {
        Text(&'static str),
        Err(io::ErrorKind),
        /// A loop of links: refused as a loop inside the origin is
        /// (`PermissionDenied` with openat2, `ELOOP` without).
        Loop,
        /// Any error, never the bytes.
        Refused,
        /// A link out to nothing: `PermissionDenied` where `openat2` sees
        /// the path leave, `NotFound` in the fallback, which only sees
        /// where an open lands.
        OutToNothing,
        /// `ENOTDIR`: a file named as a directory (`secret/`).
        NotADir,
    }

    /// The policies, in the order of [`table`]'s columns.
    const POLICIES: [Symlinks; 3] = [Symlinks::Confined, Symlinks::Follow, Symlinks::SameOwner];

    /// Path → what each policy (Confined, Follow, SameOwner) opens.
    fn table() -> Vec<(&'static str, [Want; 3])> {
        use io::ErrorKind::{IsADirectory, NotFound, PermissionDenied as Denied};
        use Want::*;
        let same = |w| [w, w, w];
        vec![
            ("a.txt", same(Text("hello"))),
            ("inside", same(Text("inner"))),
            ("insidedir/b.txt", same(Text("inner"))),
            ("sub", same(Err(IsADirectory))),
            ("escape", [Err(Denied), Text("secret"), Text("secret")]),
            ("abs-escape", [Err(Denied), Text("secret"), Text("secret")]),
            ("dirlink/c.txt", [Err(Denied), Text("elsewhere"), Text("elsewhere")]),
            ("dirlink", [Err(Denied), Err(IsADirectory), Err(IsADirectory)]),
            ("chain", [Err(Denied), Text("secret"), Text("secret")]),
            ("chain-other", [Err(Denied), Text("secret"), Err(Denied)]),
            ("link-other", [Err(Denied), Text("s1"), Err(Denied)]),
            ("target-other", [Err(Denied), Text("s2"), Err(Denied)]),
            ("both-other", [Err(Denied), Text("s3"), Text("s3")]),
            ("missing-out", [OutToNothing, Err(NotFound), Err(NotFound)]),
            ("slash-out", [Refused, NotADir, NotADir]),
            ("long40", [Err(Denied), Text("secret"), Text("secret")]),
            ("long41", same(Loop)),
            ("loop", same(Loop)),
            ("selfloop", same(Loop)),
            ("fifo", same(Err(Denied))),
            ("magic", same(Refused)),
        ]
    }

    fn check(fops: &PlainFops, p: &str, want: Want, how: &str) {
        let got = read_all(fops, p);
        let ok = match (&got, want) {
            (Ok(b), Want::Text(t)) => b == t.as_bytes(),
            (Err(e), Want::Err(k)) => e.kind() == k,
            (Err(e), Want::Loop) if fops.openat2 => e.kind() == io::ErrorKind::PermissionDenied,
            (Err(e), Want::Loop) => e.raw_os_error() == Some(libc::ELOOP),
            (Err(_), Want::Refused) => true,
            (Err(e), Want::OutToNothing) if fops.openat2 => e.kind() == io::ErrorKind::PermissionDenied,
            (Err(e), Want::OutToNothing) => e.kind() == io::ErrorKind::NotFound,
            (Err(e), Want::NotADir) => e.raw_os_error() == Some(libc::ENOTDIR),
            _ => false,
        };
        assert!(ok, "{how} {p}: want {want:?}, got {:?}", got.map(|b| String::from_utf8_lossy(&b).into_owned()));
    }

    /// Every policy over the table, through `openat2` and through the
    /// fallback, with and without the open-file cache.
    #[test]
    fn symlink_policies_open_as_configured() {
        let site = links_site();
        for fallback in [false, true] {
            for (i, policy) in POLICIES.into_iter().enumerate() {
                let fresh = || {
                    let f = PlainFops::new(&site.root).expect("fops").with_symlinks(policy);
                    if fallback {
                        f.without_openat2()
                    } else {
                        f
                    }
                };
                let cached = fresh().with_open_cache(Duration::from_secs(60), 64);
                for (p, wants) in table() {
                    let how = format!("{policy:?} (fallback {fallback})");
                    check(&fresh(), p, wants[i], &how);
                    // Twice through the cache: filled, then hit.
                    check(&cached, p, wants[i], &format!("{how}, cached"));
                    check(&cached, p, wants[i], &format!("{how}, cached again"));
                }
            }
        }
        assert_eq!(PlainFops::new(&site.root).expect("fops").symlinks(), Symlinks::Confined, "the default");
    }

    /// `resolve_local` (PATH_TRANSLATED, scripts run in place) applies the
    /// same policy, and names the real file, outside or not.
    #[test]
    fn symlink_policies_resolve_local() {
        let site = links_site();
        let (o, r) = (&site.outer, &site.root);
        let denied = || Err(io::ErrorKind::PermissionDenied);
        let rows: Vec<(&str, [Result<PathBuf, io::ErrorKind>; 3])> = vec![
            ("a.txt", [Ok(r.join("a.txt")), Ok(r.join("a.txt")), Ok(r.join("a.txt"))]),
            ("inside", [Ok(r.join("sub/b.txt")), Ok(r.join("sub/b.txt")), Ok(r.join("sub/b.txt"))]),
            ("", [Ok(r.clone()), Ok(r.clone()), Ok(r.clone())]),
            ("escape", [denied(), Ok(o.join("secret")), Ok(o.join("secret"))]),
            ("dirlink/c.txt", [denied(), Ok(o.join("elsewhere/c.txt")), Ok(o.join("elsewhere/c.txt"))]),
            ("dirlink", [denied(), Ok(o.join("elsewhere")), Ok(o.join("elsewhere"))]),
            ("chain-other", [denied(), Ok(o.join("secret")), denied()]),
            ("link-other", [denied(), Ok(o.join("s1")), denied()]),
            ("target-other", [denied(), Ok(o.join("s2")), denied()]),
            ("both-other", [denied(), Ok(o.join("s3")), Ok(o.join("s3"))]),
            // O_PATH: a FIFO resolves without being opened.
            ("fifo", [denied(), Ok(o.join("fifo")), Ok(o.join("fifo"))]),
            ("missing-out", [denied(), Err(io::ErrorKind::NotFound), Err(io::ErrorKind::NotFound)]),
        ];
        for fallback in [false, true] {
            for (i, policy) in POLICIES.into_iter().enumerate() {
                let mut fops = PlainFops::new(r).expect("fops").with_symlinks(policy);
                if fallback {
                    fops = fops.without_openat2();
                }
                for (p, wants) in &rows {
                    let got = fops.resolve_local(&VPath::new(p).expect("path")).map_err(|e| e.kind());
                    let want = match (*p, policy, fallback) {
                        // As Want::OutToNothing.
                        ("missing-out", Symlinks::Confined, true) => Err(io::ErrorKind::NotFound),
                        _ => wants[i].clone(),
                    };
                    assert_eq!(got, want, "{policy:?} (fallback {fallback}) {p}");
                }
                let magic = fops.resolve_local(&VPath::new("magic").expect("path"));
                assert!(magic.is_err(), "{policy:?} (fallback {fallback}): magic link resolved to {magic:?}");
            }
        }
    }

    /// Writing and creating stay inside the origin whatever the policy.
    #[test]
    fn symlink_policies_never_write_out() {
        let site = links_site();
        for fallback in [false, true] {
            for policy in POLICIES {
                let mut fops = PlainFops::new(&site.root).expect("fops").with_symlinks(policy);
                if fallback {
                    fops = fops.without_openat2();
                }
                let how = format!("{policy:?} (fallback {fallback})");
                let e = fops.open(&VPath::new("escape").expect("path"), OpenFlags::WRITE).expect_err(&how);
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{how}: {e}");
                let new = VPath::new("dirlink/new.txt").expect("path");
                assert!(fops.open(&new, OpenFlags::WRITE | OpenFlags::CREATE).is_err(), "{how}");
                assert!(!site.outer.join("elsewhere/new.txt").exists(), "{how}: created outside");
                assert_eq!(std::fs::read(site.outer.join("secret")).ok(), Some(b"secret".to_vec()), "{how}");
                // Inside, writing works as before.
                if !fallback {
                    let inside = VPath::new("sub/w.txt").expect("path");
                    assert!(fops.open(&inside, OpenFlags::WRITE | OpenFlags::CREATE).is_ok(), "{how}");
                }
            }
        }
    }

    /// The check/open race: what is opened must be the object the check
    /// found (device and inode), whichever way it was found. The file is
    /// swapped between the two steps here, by hand.
    #[test]
    fn symlinks_swapped_between_check_and_open_are_refused() {
        let site = links_site();
        let flags = libc::O_RDONLY | libc::O_NONBLOCK;
        for (policy, fallback) in [
            (Symlinks::Follow, false),
            (Symlinks::Follow, true),
            (Symlinks::SameOwner, false),
            (Symlinks::SameOwner, true),
        ] {
            let how = format!("{policy:?} (fallback {fallback})");
            let mut fops = PlainFops::new(&site.root).expect("fops").with_symlinks(policy);
            if fallback {
                fops = fops.without_openat2();
            }
            let path = VPath::new("escape").expect("path");
            let c = CString::new("escape").expect("c");
            std::fs::write(site.outer.join("secret"), "secret").expect("write");
            let found = fops.find_outside(&path, &c).expect(&how);
            assert!(fops.open_found(&found, flags).is_ok(), "{how}: unchanged, it opens");
            // A new file (new inode) under the same name.
            std::fs::write(site.outer.join("other"), "other").expect("write");
            std::fs::rename(site.outer.join("other"), site.outer.join("secret")).expect("rename");
            let e = fops.open_found(&found, flags).expect_err(&how);
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{how}: {e}");
            // The name made a link (to a file the check never saw).
            let found = fops.find_outside(&path, &c).expect(&how);
            std::fs::remove_file(site.outer.join("secret")).expect("rm");
            symlink("s1", site.outer.join("secret")).expect("symlink");
            let e = fops.open_found(&found, flags).expect_err(&how);
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{how}: {e}");
            std::fs::remove_file(site.outer.join("secret")).expect("rm");
        }
    }
}
