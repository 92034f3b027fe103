//! warren's virtual filesystem layer ("fops").
//!
//! The web server never touches `std::fs` directly: it asks a [`Fops`] to
//! open a sanitised relative path ([`VPath`]) and gets back a
//! [`FileHandle`] it can read, seek and (where the filesystem supports it)
//! hand to `sendfile(2)`. This is the Rust shape of libwebsockets'
//! `lws_plat_file_ops`:
//!
//! | lws                              | here                                   |
//! |----------------------------------|----------------------------------------|
//! | `open(fops, path, &flags)`       | [`Fops::open`] with [`OpenFlags`]      |
//! | `close`                          | [`FileHandle::close`] (or drop)        |
//! | `read`, `write`                  | [`FileHandle::read`], [`FileHandle::write`] |
//! | `seek_cur`, `seek_set`, `seek_end` | [`FileHandle::seek`] with [`std::io::SeekFrom`] |
//! | `lws_vfs_tell`, `_get_length`    | [`FileHandle::pos`], [`FileInfo::len`] |
//! | `mod_time` + `MOD_TIME_VALID`    | [`FileInfo::mod_time`] (`Some` = valid) |
//! | `LWS_FOP_FLAG_VIRTUAL`           | [`FileFlags::VIRTUAL`]                 |
//! | `COMPR_ACCEPTABLE_GZIP`          | [`OpenFlags::ACCEPT_GZIP`]             |
//! | `COMPR_IS_GZIP`                  | [`FileInfo::encoding`] = [`ContentEncoding::Gzip`] |
//!
//! # From the top
//!
//! - [`VPath`]: a path that has been checked once, at the edge, to contain
//!   no `..`, no empty or `.` segments, no NUL and no leading `/`. Every
//!   filesystem receives only these, so a traversal bug in one cannot
//!   exist.
//! - [`Fops`]: the filesystem. [`PlainFops`] serves a directory and is
//!   confined to it by the kernel (`openat2(RESOLVE_BENEATH)`), unless its
//!   [`Symlinks`] policy lets links the administrator made lead out.
//! - [`FileHandle`]: an open file: bounded reads, seeks, and an optional
//!   [`FdSpan`] telling the server which bytes it may send with
//!   `sendfile(2)` instead of reading them.
//! - [`ZipFops`]: entries of zip archives, with gzip passthrough of
//!   deflated entries and bounded-memory inflation for other clients.
//! - [`MemoryFile`]: a handle over bytes in memory, for filesystems of
//!   your own.
//!
//! # Blocking
//!
//! `Fops` is synchronous and is called from the server's event loop. Reads
//! of regular files are the accepted exception to "never block the loop";
//! implementations must keep every call bounded (one chunk per `read`, no
//! `read_to_end`) and do slow work (indexing an archive) off the caller's
//! thread: an fops may answer [`io::ErrorKind::WouldBlock`], carrying a
//! [`Pending`] that says when to try again, and the server retries.
//! [`ZipFops`] does this while a big archive's directory loads.
#![deny(missing_docs)]

mod memory;
mod path;
mod pending;
mod plain;
#[cfg(feature = "zip")]
mod zip;

#[cfg(feature = "zip")]
pub use crate::zip::{ZipFops, DEFAULT_CACHE_BYTES, GZIP_HEADER, INFLATE_MEMORY, MAX_LOADERS, SYNC_DIRECTORY_BYTES};
pub use memory::MemoryFile;
pub use path::{PathError, VPath};
pub use pending::{open_blocking, Pending};
pub use plain::{PlainFops, Symlinks};

use std::fmt::Debug;
use std::io::{self, SeekFrom};
use std::ops::BitOr;
use std::os::fd::BorrowedFd;
use std::time::SystemTime;

/// A filesystem: something that opens paths.
///
/// Implementations must be cheap to call from an event loop: `open` may
/// touch the disk, but must not wait on anything else (network, locks held
/// by other threads for long, child processes).
pub trait Fops: Send + Sync + Debug {
    /// Opens `path`, relative to this filesystem's root.
    ///
    /// # Errors
    ///
    /// - [`io::ErrorKind::NotFound`]: nothing there (the server answers 404);
    /// - [`io::ErrorKind::IsADirectory`]: `path` names a directory (the
    ///   server then redirects or tries the default document);
    /// - [`io::ErrorKind::PermissionDenied`]: it exists but may not be
    ///   served, e.g. a symlink leading outside the root (403);
    /// - [`io::ErrorKind::WouldBlock`]: not ready yet (work this open
    ///   depends on is going on elsewhere): an fops may answer this and the
    ///   server retries. With a [`Pending`] in the error
    ///   ([`Pending::to_error`]) it retries when that work is done;
    ///   without one it polls. A request that is still not ready after a
    ///   while gets 503. Callers that may block use [`open_blocking`];
    /// - anything else is reported as a server error (500).
    fn open(&self, path: &VPath, flags: OpenFlags) -> io::Result<Box<dyn FileHandle>>;

    /// Where `path` would be on the local disk, if this filesystem is a
    /// directory of it (for CGI's `PATH_TRANSLATED` and
    /// `DOCUMENT_ROOT`). The default: nowhere.
    fn local_path(&self, path: &VPath) -> Option<std::path::PathBuf> {
        let _ = path;
        None
    }

    /// Where `path` really is on the local disk, resolved as
    /// [`open`](Self::open) resolves it (symbolic links followed, and
    /// confined to this filesystem's root the same way), for paths handed
    /// to other programs (CGI's `PATH_TRANSLATED`). The result names no
    /// symbolic link. Any kind of file, directories included.
    ///
    /// # Errors
    ///
    /// As `open`: [`io::ErrorKind::NotFound`] when nothing is there,
    /// [`io::ErrorKind::PermissionDenied`] when resolving leaves the root;
    /// [`io::ErrorKind::Unsupported`] (the default) when this filesystem
    /// is not a directory of the local disk.
    fn resolve_local(&self, path: &VPath) -> io::Result<std::path::PathBuf> {
        let _ = path;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// [`resolve_local`](Self::resolve_local) and the kind of file there,
    /// answered from a cache where the filesystem keeps one: an answer may
    /// be as old as its cache keeps them (a [`PlainFops`] with an open
    /// cache: as long as it keeps files open). For the scripts a server
    /// runs in place, looked up on every request; never for paths that
    /// must be confined as of now.
    ///
    /// # Errors
    ///
    /// As `resolve_local`, or what reading the file's metadata gives.
    fn resolve_local_cached(&self, path: &VPath) -> io::Result<LocalFile> {
        let path = self.resolve_local(path)?;
        let file_type = std::fs::metadata(&path)?.file_type();
        Ok(LocalFile { path, file_type })
    }

    /// Asks this filesystem to add one to `counter` for each archive
    /// directory it reads (a zip's central directory: at first use, and
    /// again when the archive changes), and the reads it made before.
    /// A server calls it when a mount is attached, for its metrics; a
    /// later call replaces the counter. Filesystems that wrap others pass
    /// it on. The default: nothing is counted.
    fn count_directory_loads(&self, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let _ = counter;
    }
}

/// An open file of some [`Fops`].
///
/// Dropping the handle closes it; [`close`](Self::close) does the same but
/// reports errors.
pub trait FileHandle: Send + Debug {
    /// What is known about the file since it was opened.
    fn info(&self) -> &FileInfo;

    /// The current position, in bytes from the start of the content as
    /// served (for a gzip view of an entry, of the gzip stream).
    fn pos(&self) -> u64;

    /// Reads up to `buf.len()` bytes at the current position and advances
    /// it. Returns 0 only at the end of the content.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Moves the position; returns the new position from the start.
    ///
    /// Seeking before the start is an error; seeking past the end is
    /// allowed and reads there return 0.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64>;

    /// Writes at the current position. Read-only filesystems keep the
    /// default, which refuses.
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "read-only file"))
    }

    /// Which bytes from the current position the server may copy straight
    /// from a file descriptor with `sendfile(2)`, if any.
    ///
    /// The descriptor must stay open, and keep mapping the handle's bytes,
    /// for as long as the handle lives (archives keep using it).
    ///
    /// After sending `n` of them the server calls
    /// [`advance`](Self::advance)`(n)`. `None` (the default) means: use
    /// [`read`](Self::read).
    fn sendfile_span(&self) -> Option<FdSpan<'_>> {
        None
    }

    /// Moves the position forward by `n` bytes that were sent by other
    /// means (see [`sendfile_span`](Self::sendfile_span)).
    fn advance(&mut self, n: u64) -> io::Result<()> {
        let delta = i64::try_from(n).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.seek(SeekFrom::Current(delta)).map(drop)
    }

    /// Closes the handle, reporting any error the filesystem has.
    fn close(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// A file of the local disk, as [`Fops::resolve_local_cached`] finds it.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Its real path: no link on the way.
    pub path: std::path::PathBuf,
    /// What it is (a link at the end followed).
    pub file_type: std::fs::FileType,
}

/// Bytes of a file descriptor that stand for the handle's next bytes.
#[derive(Debug, Clone, Copy)]
pub struct FdSpan<'a> {
    /// The descriptor to read from.
    pub fd: BorrowedFd<'a>,
    /// Offset in `fd` of the handle's current position.
    pub offset: u64,
    /// How many bytes from there are the handle's, in order.
    pub len: u64,
}

/// Metadata of an open file, fixed at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Length of the content as it will be read (for a gzip view of a zip
    /// entry: of the gzip stream).
    pub len: u64,
    /// Last modification time, if the filesystem knows it (lws's
    /// `MOD_TIME_VALID`).
    pub mod_time: Option<SystemTime>,
    /// Properties of the file.
    pub flags: FileFlags,
    /// How the bytes read are encoded.
    pub encoding: ContentEncoding,
    /// A value that changes whenever the content does (a hash of inode,
    /// size and mtime for a plain file; CRC-32 and size for a zip entry).
    /// The server builds the ETag from it. `None`: no validator.
    pub version: Option<u64>,
}

/// The content coding of the bytes a handle returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContentEncoding {
    /// The file's own bytes.
    #[default]
    Identity,
    /// A gzip stream of the file's bytes (the server adds
    /// `Content-Encoding: gzip`).
    Gzip,
}

/// Flags the caller passes to [`Fops::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags(u32);

impl OpenFlags {
    /// Read only: the default.
    pub const READ: OpenFlags = OpenFlags(0);
    /// The client accepts a gzip-encoded body, so a filesystem that holds
    /// gzip bytes may return them as they are.
    pub const ACCEPT_GZIP: OpenFlags = OpenFlags(1 << 0);
    /// Open for writing as well as reading.
    pub const WRITE: OpenFlags = OpenFlags(1 << 1);
    /// With [`WRITE`](Self::WRITE): create the file if it does not exist.
    pub const CREATE: OpenFlags = OpenFlags(1 << 2);

    /// Whether every flag of `other` is set in `self`.
    pub fn contains(self, other: OpenFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | rhs.0)
    }
}

/// Properties of an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileFlags(u32);

impl FileFlags {
    /// No flags.
    pub const NONE: FileFlags = FileFlags(0);
    /// Not a file of the operating system (inside an archive, in memory,
    /// made up by user code): the server must not `stat` it.
    pub const VIRTUAL: FileFlags = FileFlags(1 << 0);
    /// The bytes depend on [`OpenFlags::ACCEPT_GZIP`] (a deflated zip
    /// entry comes as gzip or inflated): responses carry
    /// `Vary: Accept-Encoding`.
    pub const NEGOTIATED: FileFlags = FileFlags(1 << 1);

    /// Whether every flag of `other` is set in `self`.
    pub fn contains(self, other: FileFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for FileFlags {
    type Output = FileFlags;
    fn bitor(self, rhs: FileFlags) -> FileFlags {
        FileFlags(self.0 | rhs.0)
    }
}

/// Helpers over any [`FileHandle`], named as lws names them
/// (`lws_vfs_tell`, `lws_vfs_get_length`, `lws_vfs_file_seek_set`, …).
pub trait HandleExt: FileHandle {
    /// The current position (`lws_vfs_tell`).
    fn tell(&self) -> u64 {
        self.pos()
    }
    /// The length of the content (`lws_vfs_get_length`).
    fn length(&self) -> u64 {
        self.info().len
    }
    /// The modification time if valid (`lws_vfs_get_mod_time`).
    fn mod_time(&self) -> Option<SystemTime> {
        self.info().mod_time
    }
    /// Moves to `offset` from the start (`lws_vfs_file_seek_set`).
    fn seek_set(&mut self, offset: u64) -> io::Result<u64> {
        self.seek(SeekFrom::Start(offset))
    }
    /// Moves to `offset` from the end (`lws_vfs_file_seek_end`).
    fn seek_end(&mut self, offset: i64) -> io::Result<u64> {
        self.seek(SeekFrom::End(offset))
    }
    /// Moves by `offset` from here (`lws_vfs_file_seek_cur`).
    fn seek_cur(&mut self, offset: i64) -> io::Result<u64> {
        self.seek(SeekFrom::Current(offset))
    }
}

impl<T: FileHandle + ?Sized> HandleExt for T {}

/// Reads a whole file of any [`Fops`], refusing one longer than `max`
/// bytes: for small files a server reads itself (password lists, error
/// pages), never for bodies it serves.
pub fn read_to_vec(fops: &dyn Fops, path: &VPath, max: u64) -> io::Result<Vec<u8>> {
    let mut h = fops.open(path, OpenFlags::READ)?;
    let len = h.info().len;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {len} bytes, over {max}")));
    }
    read_all(h.as_mut(), len)
}

/// Reads up to `len` bytes from an open handle (fewer if it ends first);
/// the caller has bounded `len`.
pub fn read_all(h: &mut dyn FileHandle, len: u64) -> io::Result<Vec<u8>> {
    let mut out = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut got = 0;
    while got < out.len() {
        match h.read(&mut out[got..])? {
            0 => break,
            n => got += n,
        }
    }
    out.truncate(got);
    Ok(out)
}

/// Moves `pos` as `seek` asks, within `0..=u64::MAX`, for content of
/// length `len`. A helper for [`FileHandle::seek`] implementations.
pub fn seek_target(pos: u64, len: u64, seek: SeekFrom) -> io::Result<u64> {
    let (base, delta) = match seek {
        SeekFrom::Start(n) => return Ok(n),
        SeekFrom::End(d) => (len, d),
        SeekFrom::Current(d) => (pos, d),
    };
    base.checked_add_signed(delta).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_target_moves_and_refuses_negative() {
        assert_eq!(seek_target(5, 10, SeekFrom::Start(3)).ok(), Some(3));
        assert_eq!(seek_target(5, 10, SeekFrom::Current(2)).ok(), Some(7));
        assert_eq!(seek_target(5, 10, SeekFrom::End(-4)).ok(), Some(6));
        assert!(seek_target(5, 10, SeekFrom::Current(-6)).is_err());
        assert!(seek_target(5, 10, SeekFrom::End(-11)).is_err());
    }

    #[test]
    fn flags_combine() {
        let f = OpenFlags::ACCEPT_GZIP | OpenFlags::WRITE;
        assert!(f.contains(OpenFlags::ACCEPT_GZIP));
        assert!(f.contains(OpenFlags::WRITE));
        assert!(!OpenFlags::READ.contains(OpenFlags::WRITE));
        assert!(FileFlags::VIRTUAL.contains(FileFlags::NONE));
    }

    #[test]
    fn handles_are_send() {
        fn assert_send<T: Send + ?Sized>() {}
        assert_send::<dyn FileHandle>();
        assert_send::<dyn Fops>();
    }
}
